"""One training step on 2 logical CPU devices equals the single-device step (issue 7)."""

import numpy as np
import pytest

from tests.conftest import only_once, run_python

STEP = """
import json, os, keras
from tests.distribute.steps import step
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

case = os.environ["CASE"]
single = step(case)
if keras.backend.backend() == "tensorflow":
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        multi = step(case)
else:
    import jax
    assert len(jax.devices()) == 2
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    multi = step(case)
print(json.dumps({"single": single, "multi": multi}))
"""


@only_once
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
@pytest.mark.parametrize("case", ["l2_sp", "delta", "dtnh_l2_sp"])
def test_two_devices_take_the_single_device_step(backend, case):
    env = {"CASE": case, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    result = run_python(STEP, backend, env=env)
    (single_weights, single_logs), (multi_weights, multi_logs) = result["single"], result["multi"]
    assert len(single_weights) == len(multi_weights) > 4
    for a, b in zip(single_weights, multi_weights, strict=True):
        np.testing.assert_allclose(np.array(b), np.array(a), atol=1e-5)
    for key, value in single_logs.items():
        assert multi_logs[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
