"""One process at a time in a folder: an advisory lock file that names its owner's pid.

Two runs writing one folder lose each other's files (a checkpoint one deletes, the other
reads). `folder_lock(folder)` makes the second refuse at once, naming the first's pid.

The lock is `fcntl.flock` on `<folder>/.keras_tl.lock`: the kernel drops it when its process
dies, however it dies (SIGKILL included), so a lock file left by a dead process is free and
the next owner takes it over, with a log line naming the dead pid. The pid, host and start
time written into the file are for people (and the message), not for the decision. Where
`fcntl` is missing (Windows) the pid decides instead: a lock whose process is gone is stale.

Reentrant within a process: a run that locks `output_dir` and calls a function that locks the
same folder again keeps one lock.
"""

import contextlib
import logging
import os
import socket
import time

logger = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".keras_tl.lock"
# realpath of a folder -> times it is held by this process (see `folder_lock`'s reentrancy).
_HELD = {}


class FolderInUseError(RuntimeError):
    """The folder is owned by another live process."""


@contextlib.contextmanager
def folder_lock(folder):
    """Holds `folder` (created if needed) for this process; raises `FolderInUseError` if another has it.

    Example:
    >>> with keras_tl.utils.locks.folder_lock("runs/finetune"):
    ...     ...  # no other process writes runs/finetune meanwhile
    """
    if not isinstance(folder, (str, os.PathLike)) or not os.fspath(folder):
        raise ValueError(f"Expected folder to be a non-empty path. Received: folder={folder!r}")
    os.makedirs(folder, exist_ok=True)
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    path = os.path.join(folder, LOCK_FILE)
    handle = _acquire(path, folder)
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        _release(path, handle)


def owner(folder):
    """`"process 123 on host h (since 2024-01-01 12:00:00)"` from the lock file of `folder`; "" if none."""
    return _describe(_read(os.path.join(folder, LOCK_FILE)))


def _acquire(path, folder):
    for _ in range(100):  # another process may delete or replace the file under us: try again
        handle = open(path, "a+")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                _refuse(path, folder)
            if not _same_file(path, handle):
                # The owner released (deleted) the file between our open and our lock: the lock we
                # hold is on a file nobody else will open. Lock the new one.
                handle.close()
                continue
        else:
            previous = _read(path)
            if previous and previous.get("pid") != os.getpid() and _alive(previous):
                handle.close()
                _refuse(path, folder)
        previous = _read(path)
        if "pid" in previous and (previous["pid"], previous.get("host")) != (
            os.getpid(),
            socket.gethostname(),
        ):
            logger.warning(
                "Took over %s: its owner, %s, is no longer running (killed?).", path, _describe(previous)
            )
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"pid={os.getpid()}\nhost={socket.gethostname()}\nsince={time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        )
        handle.flush()
        os.fsync(handle.fileno())
        return handle
    raise FolderInUseError(f"Expected to lock {path}. Received: it was replaced 100 times while trying.")


def _release(path, handle):
    # Delete the file only if it is still ours: once `folder` is deleted (a finished backup) and
    # made again, its new lock file belongs to whoever made it.
    try:
        if _same_file(path, handle):
            os.remove(path)
    except OSError:
        pass
    handle.close()  # closing drops the flock


def _refuse(path, folder):
    holder = _describe(_read(path)) or "another process"
    raise FolderInUseError(
        f"Expected {folder} to be free. Received: it is in use by {holder} (lock file {path}). "
        "Wait for that run to finish, or use another folder."
    )


def _same_file(path, handle):
    try:
        return os.path.samestat(os.stat(path), os.fstat(handle.fileno()))
    except OSError:
        return False


def _read(path):
    try:
        with open(path) as file:
            text = file.read()
    except OSError:
        return {}
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if "pid" in fields:
        try:
            fields["pid"] = int(fields["pid"])
        except ValueError:
            del fields["pid"]
    return fields


def _describe(fields):
    if "pid" not in fields:
        return ""
    host = f" on host {fields['host']}" if fields.get("host") else ""
    since = f" (since {fields['since']})" if fields.get("since") else ""
    return f"process {fields['pid']}{host}{since}"


def _alive(fields):
    if fields.get("host", socket.gethostname()) != socket.gethostname():
        return True  # cannot tell: assume alive
    try:
        os.kill(fields["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
