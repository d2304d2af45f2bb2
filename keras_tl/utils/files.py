"""Files that a kill at any instant leaves either complete or untouched: write a temp file, then rename."""

import json
import os

TEMP_SUFFIX = ".tmp"


def fsync_file(path):
    """Flushes `path`'s data to disk: a rename that follows must never expose an empty file after a crash."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path):
    """Flushes a folder's entries (a rename or a new file in it) to disk, where the OS supports it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, text):
    """Writes `text` to `path` so that a reader (or a kill) sees the old content or the new, never a part.

    The text goes to `<path>.tmp` in the same folder (same file system, so the rename is
    atomic), is flushed to disk, and `os.replace` puts it in place.
    """
    temp = path + TEMP_SUFFIX
    with open(temp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_json(path, obj):
    """`json.dump(obj)` to `path` atomically (see `write_atomic`)."""
    write_atomic(path, json.dumps(obj, indent=2))
