"""TensorFlow and JAX take the same step with every output-level term and DTNH at once."""

import numpy as np
import pytest

from tests.conftest import only_once, run_python

STEP = """
import json, keras, numpy as np, keras_tl
from tests.conftest import tiny_source, tiny_data
r = keras_tl.regularizers
relationship = np.full((3, 5), 0.2, "float32")
relationship[:, 0] = [0.6, 0.0, 0.1]
relationship /= relationship.sum(axis=1, keepdims=True)
model = keras_tl.TransferModel(
    tiny_source(), 3, keep_source_head=True, gradient_rule=keras_tl.gradients.DTNH(),
    regularizers=[r.BSS(eta=0.1, k=2), r.CoTuning(2.3, relationship), r.LwF(1.0, 2.0),
                  r.DiscrepantDiffusion(0.01, [[0, 1], [0, 2], [3, 1]])])
# The new head's random initialiser differs between backends: set it from numpy.
rng = np.random.default_rng(7)
model.head.set_weights([rng.normal(scale=0.3, size=w.shape).astype("float32") for w in model.head.get_weights()])
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=keras_tl.losses.SparseBinaryCrossentropy())
x, y = tiny_data()
history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history
print(json.dumps({"weights": {v.path + str(i): keras.ops.convert_to_numpy(v).tolist()
                              for i, v in enumerate(model.trainable_variables)},
                  "history": {k: float(v[-1]) for k, v in history.items()}}))
"""


@only_once
def test_tensorflow_and_jax_take_the_same_steps():
    results = {b: run_python(STEP, b) for b in ("tensorflow", "jax")}
    tf_weights, jax_weights = results["tensorflow"]["weights"], results["jax"]["weights"]
    assert len(tf_weights) == len(jax_weights) > 10
    for (name, a), b in zip(tf_weights.items(), jax_weights.values(), strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-4, err_msg=name)
    history = results["tensorflow"]["history"]
    assert {"reg/bss", "reg/co_tuning", "reg/lwf", "reg/discrepant_diffusion", "dtnh/projected"} <= set(
        history
    )
    for key, value in history.items():
        assert results["jax"]["history"][key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
