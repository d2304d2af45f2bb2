"""The per-backend train steps: DTNH under `fit` against a manual computation, and TF == JAX."""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.regularizers import L2
from tests.conftest import BACKEND, compile_sgd, only_once, run_python, tiny_data, tiny_source
from tests.gradients.test_dtnh import dtnh_reference


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def head_gradients(features, labels, kernel, bias):
    """∇J of the mean sparse cross-entropy of a linear head, in closed form."""
    residual = softmax(features @ kernel + bias)
    residual[np.arange(len(labels)), labels] -= 1.0
    residual /= len(labels)
    return [features.T @ residual, residual.sum(axis=0)]


def head_weights_with_sign(features, labels, beta, obtuse):
    """Head weights along ∓∇J(0): for small enough w, ⟨∇J(w), β·w⟩ has the sign of ±‖∇J(0)‖²."""
    zeros = [np.zeros((features.shape[1], 3)), np.zeros(3)]
    g_kernel, g_bias = head_gradients(features, labels, *zeros)
    for norm in 10.0 ** -np.arange(1, 8):
        scale = (-1.0 if obtuse else 1.0) * norm / np.sqrt(np.sum(g_kernel**2) + np.sum(g_bias**2))
        kernel, bias = (scale * g_kernel).astype("float32"), (scale * g_bias).astype("float32")
        grads = head_gradients(features, labels, kernel.astype("float64"), bias.astype("float64"))
        inner = beta * (np.sum(grads[0] * kernel) + np.sum(grads[1] * bias))
        cosine = inner / (beta * np.sqrt(np.sum(grads[0] ** 2) + np.sum(grads[1] ** 2)) * norm)
        if (inner < 0) == obtuse and abs(cosine) > 0.1:
            return kernel, bias
    raise AssertionError("no head weights with the wanted sign")


@pytest.mark.parametrize("obtuse", [True, False])
def test_dtnh_under_fit_matches_a_manual_step(source, obtuse):
    lr = 0.3
    reg = L2(beta=1.0)
    model = keras_tl.TransferModel(source, 3, freeze_backbone=True, regularizers=[reg],
                                   gradient_rule=keras_tl.gradients.DTNH())
    model.compile(optimizer=keras.optimizers.SGD(lr), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = tiny_data()
    features = keras.ops.convert_to_numpy(model.target_backbone(x, training=False)["features"]).astype("float64")
    kernel, bias = head_weights_with_sign(features, y, 1.0, obtuse)
    model.head.set_weights([kernel, bias])
    loss_grads = head_gradients(features, y, kernel.astype("float64"), bias.astype("float64"))
    # β such that ‖∇Ω‖ = ‖∇J‖: the projection then changes the step visibly.
    beta = np.sqrt(sum(np.sum(g**2) for g in loss_grads) / (np.sum(kernel**2) + np.sum(bias**2)))
    reg.scale.assign(beta)  # the term is scale · ½‖w‖²

    reg_grads = [beta * kernel, beta * bias]
    direction, projected = dtnh_reference(loss_grads, reg_grads)
    plain = [j + r for j, r in zip(loss_grads, reg_grads, strict=True)]

    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False).history
    new_kernel, new_bias = model.head.get_weights()
    np.testing.assert_allclose(new_kernel, kernel - lr * direction[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new_bias, bias - lr * direction[1], rtol=1e-4, atol=1e-6)
    assert history["dtnh/projected"][0] == projected == float(obtuse)
    change = max(np.abs(p - d).max() for p, d in zip(plain, direction, strict=True))
    if obtuse:  # DTNH changed the update, by far more than the tolerance above
        assert change > 1e-3 * max(np.abs(d).max() for d in direction)
    else:
        assert change == 0.0


CROSS_BACKEND_STEP = """
import json, keras, numpy as np, keras_tl
from tests.conftest import tiny_source, tiny_data, TAPS
source = tiny_source()
rule = keras_tl.gradients.DTNH() if {dtnh} else None
model = keras_tl.TransferModel(source, 3, taps=TAPS, gradient_rule=rule,
                               regularizers=[keras_tl.regularizers.L2SP(alpha=2.0, beta=0.1)])
rng = np.random.default_rng(7)
# Move the target away from the source so that L2-SP pulls back on every variable.
for v in model.target_backbone.trainable_weights:
    v.assign(keras.ops.convert_to_numpy(v) + rng.normal(scale=0.05, size=v.shape).astype("float32"))
model.head.set_weights([rng.normal(scale=0.3, size=w.shape).astype("float32") for w in model.head.get_weights()])
model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x, y = tiny_data()
history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False).history
print(json.dumps({{"weights": {{v.path + str(i): keras.ops.convert_to_numpy(v).tolist()
                               for i, v in enumerate(model.trainable_variables)}},
                  "history": {{k: float(v[0]) for k, v in history.items()}}}}))
"""


@only_once
@pytest.mark.parametrize("dtnh", [False, True], ids=["l2_sp", "dtnh_l2_sp"])
def test_tensorflow_and_jax_take_the_same_step(dtnh):
    results = {b: run_python(CROSS_BACKEND_STEP.format(dtnh=dtnh), b) for b in ("tensorflow", "jax")}
    tf_weights, jax_weights = results["tensorflow"]["weights"], results["jax"]["weights"]
    assert len(tf_weights) == len(jax_weights) > 10
    for (name, a), b in zip(tf_weights.items(), jax_weights.values(), strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-5, err_msg=name)
    assert results["tensorflow"]["history"].keys() == results["jax"]["history"].keys()
    for key, value in results["tensorflow"]["history"].items():
        assert results["jax"]["history"][key] == pytest.approx(value, rel=1e-4, abs=1e-4), key


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tracing is TensorFlow's; the JAX step is jitted once by Keras")
@pytest.mark.parametrize("dtype_policy, dtnh", [("float32", False), ("mixed_float16", True)])
def test_tensorflow_traces_each_step_once_and_its_state_is_keras(dtype_policy, dtnh):
    """Keras' TF trainer makes the optimizer's and metrics' variables in the first trace, which
    TF then redoes; the step builds them eagerly instead. One trace, and the same values."""
    import tensorflow as tf

    from tests.trainers.test_mixed_precision import policy

    x, y = tiny_data(n=16)
    with policy(dtype_policy):
        rule = keras_tl.gradients.DTNH() if dtnh else None
        model = keras_tl.TransferModel(tiny_source(), 3, regularizers=[L2(beta=0.01)], gradient_rule=rule)
        compile_sgd(model, lr=0.05, momentum=0.9)
        traces = {"train_step": 0, "test_step": 0}
        for name in traces:
            step = getattr(model, name)

            def counted(data, step=step, name=name):
                traces[name] += 1
                return step(data)

            setattr(model, name, counted)
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
        logits = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
        evaluated = model.evaluate(data, verbose=0, return_dict=True)
        history = model.fit(data, epochs=3, verbose=0)
        model.evaluate(data, verbose=0)
    assert traces == {"train_step": 1, "test_step": 1}
    # The eagerly built metric is Keras' sparse accuracy (labels are class ids), and it counts.
    assert evaluated["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y))
    assert len(history.history["accuracy"]) == 3
    optimizer = model.optimizer
    if dtype_policy == "mixed_float16":
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        optimizer = optimizer.inner_optimizer
    assert int(optimizer.iterations.numpy()) == 12
    momenta = [v for v in optimizer.variables if "momentum" in v.path]
    assert len(momenta) == len(model.trainable_variables)
    assert all(np.any(keras.ops.convert_to_numpy(m) != 0) for m in momenta)
