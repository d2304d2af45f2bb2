"""Two worker processes on 127.0.0.1 take the same step as one process on the same global batch."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import only_once, run_python

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

JAX_WORKER = """
import json, os, jax, keras
jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
index = int(os.environ["WORKER_INDEX"])
keras.distribution.initialize(os.environ["COORDINATOR"], num_processes=2, process_id=index)
distribution = keras.distribution.DataParallel(devices=jax.devices())
distribution.auto_shard_dataset = False  # each process passes its own half of the global batch
keras.distribution.set_distribution(distribution)
from tests.distribute.steps import data, step
x, y = data()
print(json.dumps(step(os.environ["CASE"], x[4 * index:4 * index + 4], y[4 * index:4 * index + 4], batch_size=4)))
"""

TF_WORKER = """
import json, os
ports = os.environ["PORTS"].split(",")
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                      "task": {"type": "worker", "index": int(os.environ["WORKER_INDEX"])}})
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
from tests.distribute.steps import step
with strategy.scope():
    print(json.dumps(step(os.environ["CASE"])))
"""

SINGLE = """
import json, os
from tests.distribute.steps import step
print(json.dumps(step(os.environ["CASE"])))
"""


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(code, backend, env):
    base = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT, **env}
    workers = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env={**base, "WORKER_INDEX": str(i)})
        for i in range(2)
    ]
    outputs = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=300)
            if worker.returncode != 0:
                raise AssertionError(f"{backend} worker failed:\n{err[-4000:]}")
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            worker.kill()
    return outputs


@only_once
@pytest.mark.parametrize("case", ["l2_sp", "dtnh_l2_sp"])
def test_two_jax_processes_match_one(case):
    single_weights, single_logs = run_python(SINGLE, "jax", env={"CASE": case})
    (port,) = free_ports(1)
    for weights, logs in run_workers(JAX_WORKER, "jax", {"CASE": case, "COORDINATOR": f"127.0.0.1:{port}"}):
        for a, b in zip(single_weights, weights, strict=True):
            np.testing.assert_allclose(np.array(b), np.array(a), atol=1e-5)
        assert logs["loss"] == pytest.approx(single_logs["loss"], rel=1e-5)


@only_once
@pytest.mark.parametrize("case", ["l2_sp", "dtnh_l2_sp"])
def test_two_tensorflow_workers_match_one(case):
    """MultiWorkerMirroredStrategy: each worker reads its half of the global batch of 8 (auto-sharded)."""
    single_weights, single_logs = run_python(SINGLE, "tensorflow", env={"CASE": case})
    ports = ",".join(map(str, free_ports(2)))
    for weights, logs in run_workers(TF_WORKER, "tensorflow", {"CASE": case, "PORTS": ports}):
        for a, b in zip(single_weights, weights, strict=True):
            np.testing.assert_allclose(np.array(b), np.array(a), atol=1e-5)
        assert logs["loss"] == pytest.approx(single_logs["loss"], rel=1e-5)
