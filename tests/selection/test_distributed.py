"""`keras_tl.select` in KerasTuner's chief/worker mode: a chief and two worker processes on this machine.

The same script (`tests.selection.search_process`) runs in the three processes, as on three
machines; only `KERASTUNER_TUNER_ID` differs. The chief serves the trials over gRPC and returns the result; the workers train, each
candidate's run moving between them from rung to rung through the shared folder.
"""

import json
import os
import socket
import subprocess
import sys

import keras_tl
from keras_tl import methods
from tests.conftest import on_backend

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# KerasTuner's gRPC oracle and the shared folder; each backend's trial resuming: tests/apps/test_kill_resume.py.
@on_backend("tensorflow")
def test_a_chief_and_two_workers_run_the_search(tmp_path):
    port = free_port()
    processes = {}
    for tuner_id in ("chief", "worker0", "worker1"):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": ROOT,
            "DIRECTORY": str(tmp_path / "search"),
            "RECORD": str(tmp_path / f"{tuner_id}.txt"),
            "KERASTUNER_TUNER_ID": tuner_id,
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(port),
            "EPOCHS": "2",
        }
        processes[tuner_id] = subprocess.Popen(
            [sys.executable, "-m", "tests.selection.search_process"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    outputs = {}
    try:
        for tuner_id, process in processes.items():
            outputs[tuner_id] = process.communicate(timeout=900)[0].decode()
            assert process.returncode == 0, f"{tuner_id}:\n{outputs[tuner_id][-3000:]}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    last = {tuner_id: json.loads(out.strip().splitlines()[-1]) for tuner_id, out in outputs.items()}
    assert last["worker0"] is None and last["worker1"] is None  # a worker trains; the chief answers
    result = last["chief"]

    # Rungs (1 epoch, 2 candidates), (2 epochs, 2): four trials, the epochs of each begun once, on the workers.
    begun = {
        t: open(tmp_path / f"{t}.txt").read().split() if (tmp_path / f"{t}.txt").exists() else []
        for t in processes
    }
    assert begun["chief"] == []  # the chief restores the chosen run, it trains nothing
    assert sorted(begun["worker0"] + begun["worker1"]) == ["0", "0", "1", "1"]
    assert begun["worker0"] and begun["worker1"]  # both workers trained
    rows = [
        (row["candidate"], row["rung"], row["epochs"], row["steps"], row["status"] != "running")
        for row in result["table"]
    ]
    # The rungs cost 4 of the budget's 6 epochs: the 2 left pay rung 0's cool-down, an epoch each.
    assert rows == [
        ("L2", 0, 1, 10, True),
        ("L2-SP (alpha=0.01)", 0, 1, 10, True),
        ("L2", 1, 2, 5, True),
        ("L2-SP (alpha=0.01)", 1, 2, 5, True),
    ]
    assert result["cost"]["ratio"] == 3.0
    final = {row["method"]: row["val_top1"] for row in result["table"][2:]}
    expected = "l2_sp" if final["l2_sp"] > final["l2"] else "l2"  # strictly above L2, or L2
    assert result["method"] == expected
    assert methods.get(result["method"]) == keras_tl.methods.get(expected)
