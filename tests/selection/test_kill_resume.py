"""A `keras_tl.select` process killed (SIGKILL) mid-rung, then rerun with the same arguments, trains
only what was left: no finished trial again, and the killed candidate from its last finished epoch.

The search: L2 and L2-SP, 3 epochs, rungs (1 epoch, 2 candidates) and (3 epochs, 2). The first
process stands still once L2's second epoch of rung 1 is checkpointed and is killed there; each
process records the epochs it begins (`tests.selection.search_process`).
"""

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import on_backend

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start(directory, record, pause=""):
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": ROOT,
        "DIRECTORY": directory,
        "RECORD": record,
        "PAUSE": pause,
        "EPOCHS": "3",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.selection.search_process"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def epochs_begun(record):
    with open(record) as handle:
        return [int(line) for line in handle]


# The oracle's folder and the candidates' checkpoints; a killed run resuming on each backend:
# tests/apps/test_kill_resume.py.
@on_backend("tensorflow")
def test_a_killed_select_resumes_where_it_was_killed(tmp_path):
    directory, pause = str(tmp_path / "search"), str(tmp_path / "paused")
    killed = start(directory, str(tmp_path / "killed.txt"), pause)
    deadline = time.time() + 900
    while not os.path.exists(pause):
        assert killed.poll() is None, killed.communicate()[0].decode()[-3000:]
        assert time.time() < deadline, "the search never reached rung 1's second epoch"
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    # Rung 0: L2's and L2-SP's epoch 0; rung 1: L2's epochs 1 and 2, killed after epoch 2's checkpoint.
    assert epochs_begun(str(tmp_path / "killed.txt")) == [0, 0, 1]
    metadata = os.path.join(directory, "select", "candidate_0", "backup", "training_metadata.json")
    with open(metadata) as handle:
        assert json.load(handle)["epoch"] == 2

    rerun = start(directory, str(tmp_path / "rerun.txt"))
    out, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, out.decode()[-3000:]
    # L2 goes on with its third epoch (index 2), then L2-SP's rung 1 (epochs 2 and 3); nothing else.
    assert epochs_begun(str(tmp_path / "rerun.txt")) == [2, 1, 2]
    result = json.loads(out.decode().strip().splitlines()[-1])
    rows = [(row["candidate"], row["rung"], row["epochs"], row["steps"]) for row in result["table"]]
    # 5 steps per epoch (45 training examples, batch 8); L2's rung 1 counts its 2 epochs once. The rungs
    # cost 6 of the budget's 9 epochs: rung 0 is scored after a cool-down of one epoch (5 steps) each.
    assert rows == [
        ("L2", 0, 1, 10),
        ("L2-SP (alpha=0.01)", 0, 1, 10),
        ("L2", 1, 3, 10),
        ("L2-SP (alpha=0.01)", 1, 3, 10),
    ]
    assert result["cost"]["ratio"] == result["cost"]["planned_ratio"] == 40 / 15
    assert sorted(row["status"] for row in result["table"][2:]) == ["chosen", "final"]
    assert result["method"] in ("l2", "l2_sp")
