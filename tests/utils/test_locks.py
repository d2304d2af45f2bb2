"""`folder_lock`: one process at a time, a live owner named, a dead one's lock taken over."""

import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from keras_tl.utils import locks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The module alone, not `keras_tl` (whose import loads TensorFlow): the process is ready in a blink.
HOLD = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("locks", "keras_tl/utils/locks.py")
locks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(locks)
with locks.folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def holder(folder):
    """A real process that takes the lock of `folder` and holds it until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert line == "locked\n", process.stderr.read()
    return process


def test_a_folder_held_by_a_live_process_is_refused_naming_its_pid(tmp_path):
    process = holder(tmp_path)
    try:
        with pytest.raises(locks.FolderInUseError) as info, locks.folder_lock(tmp_path):
            pass
        message = str(info.value)
        assert message.startswith(f"Expected {tmp_path} to be free. Received: it is in use by process {process.pid} on host ")
        assert message.endswith(
            f"(lock file {tmp_path / locks.LOCK_FILE}). Wait for that run to finish, or use another folder."
        )
        assert locks.owner(tmp_path).startswith(f"process {process.pid} ")
    finally:
        process.kill()
        process.wait()


def test_the_lock_of_a_killed_process_is_taken_over_with_a_log_line(tmp_path, caplog):
    process = holder(tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert os.path.exists(tmp_path / locks.LOCK_FILE)  # nothing ran to delete it
    with caplog.at_level(logging.WARNING), locks.folder_lock(tmp_path):
        assert locks.owner(tmp_path).startswith(f"process {os.getpid()} ")
    assert f"Took over {tmp_path / locks.LOCK_FILE}: its owner, process {process.pid} on host " in caplog.text
    assert "is no longer running (killed?)." in caplog.text
    assert not os.path.exists(tmp_path / locks.LOCK_FILE)  # released


def test_a_released_folder_is_free_and_the_lock_is_reentrant_in_a_process(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        with locks.folder_lock(tmp_path), locks.folder_lock(str(tmp_path) + "/"):
            assert os.path.exists(tmp_path / locks.LOCK_FILE)
        assert not os.path.exists(tmp_path / locks.LOCK_FILE)
        with locks.folder_lock(tmp_path):
            pass
    assert "Took over" not in caplog.text


def test_a_folder_deleted_while_held_is_released_cleanly(tmp_path):
    folder = tmp_path / "backup"
    with locks.folder_lock(folder):
        import shutil

        shutil.rmtree(folder)  # what a finished backup does
        with locks.folder_lock(tmp_path / "other"):
            pass
    with locks.folder_lock(folder):
        assert os.path.exists(folder / locks.LOCK_FILE)


def test_without_fcntl_a_dead_pid_is_stale_and_a_live_one_refused(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(locks, "fcntl", None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = __import__("socket").gethostname()
    (tmp_path / locks.LOCK_FILE).write_text(f"pid={dead.pid}\nhost={host}\n")
    with caplog.at_level(logging.WARNING), locks.folder_lock(tmp_path):
        pass
    assert f"its owner, process {dead.pid} on host {host}, is no longer running" in caplog.text
    (tmp_path / locks.LOCK_FILE).write_text(f"pid={os.getppid()}\nhost={host}\n")
    with pytest.raises(locks.FolderInUseError, match=f"in use by process {os.getppid()} on host"):
        with locks.folder_lock(tmp_path):
            pass
