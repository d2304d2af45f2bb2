"""One training step on 2 logical CPU devices equals the single-device step (issue 7)."""

import numpy as np
import pytest

from tests.conftest import only_once, run_python

STEP = """
import json, os, keras, numpy as np
import keras_tl
from keras import layers
BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

def source():
    # No BatchNorm: under MirroredStrategy its batch statistics are per replica (see the trainer's doc).
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(6, 3, padding="same", name="c2")(x)
    x = layers.GlobalAveragePooling2D()(layers.Activation("relu")(x))
    model = keras.Model(inputs, layers.Dense(5, name="predictions")(x))
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    return model

def regularizers(case):
    if case == "delta":
        return [keras_tl.regularizers.DELTA(alpha=0.5, channel_weights={"c1": [0.1, 0.2, 0.3, 0.4],
                                                                    "c2": [1 / 6] * 6})]
    return [keras_tl.regularizers.L2SP(alpha=2.0, beta=0.1)]

def step(case):
    model = keras_tl.TransferModel(source(), 3, taps=["c1", "c2"], regularizers=regularizers(case),
                                   gradient_rule=keras_tl.gradients.DTNH() if case == "dtnh_l2_sp" else None)
    rng = np.random.default_rng(1)
    for v in model.target_backbone.trainable_weights:
        v.assign(keras.ops.convert_to_numpy(v) + rng.normal(scale=0.05, size=v.shape).astype("float32"))
    model.head.set_weights([rng.normal(scale=0.3, size=w.shape).astype("float32") for w in model.head.get_weights()])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.uniform(-1, 1, (8, 8, 8, 3)).astype("float32")
    y = np.arange(8) % 3
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False).history
    return [keras.ops.convert_to_numpy(v).tolist() for v in model.trainable_variables], \
        {k: float(v[0]) for k, v in history.items()}

case = os.environ["CASE"]
single = step(case)
if BACKEND == "tensorflow":
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
