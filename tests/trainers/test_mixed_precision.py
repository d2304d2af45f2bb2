"""Parity with Keras' own trainers: loss scaling under mixed policies, float32 terms, layer losses."""

import contextlib

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.regularizers import DELTA, L2SP
from tests.conftest import TAPS, compile_sgd, tiny_data, tiny_source
from tests.regularizers.contract_examples_feature import uneven_channel_weights

POLICIES = ["mixed_float16", "mixed_bfloat16"]


@contextlib.contextmanager
def policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


METHODS = {
    "plain": lambda: ([], None),
    "l2_sp": lambda: ([L2SP(alpha=0.1, beta=0.01)], None),
    "l2_sp+dtnh": lambda: ([L2SP(alpha=0.1, beta=0.01)], keras_tl.gradients.DTNH()),
    # tiny_source's random BatchNorm statistics make the batch-statistics target and the
    # inference-mode source differ a lot: α = 1e-5 keeps the term near the cross-entropy (~3),
    # where float16 gradients do not overflow (an overflow is skipped by the LossScaleOptimizer).
    "delta": lambda: ([DELTA(relative=False, alpha=1e-5, channel_weights=uneven_channel_weights())], None),
}


def one_step_displacement(dtype_policy, method, x, y):
    """‖w₁ − w₀‖ over the trainable variables after one SGD step of `fit` under `dtype_policy`."""
    with policy(dtype_policy):
        regularizers, rule = METHODS[method]()
        model = keras_tl.TransferModel(
            tiny_source(), 3, taps=TAPS, regularizers=regularizers, gradient_rule=rule
        )
        model.head.set_weights([np.full(w.shape, 0.05, "float32") for w in model.head.get_weights()])
        compile_sgd(model, lr=0.05)
        if dtype_policy == "mixed_float16":  # bfloat16 has float32's range: Keras does not scale it
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
        after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    return np.sqrt(sum(np.sum((a.astype("float64") - b) ** 2) for a, b in zip(after, before, strict=True)))


@pytest.mark.parametrize("dtype_policy", POLICIES)
@pytest.mark.parametrize("method", list(METHODS))
def test_a_mixed_precision_step_moves_the_weights_as_far_as_float32(dtype_policy, method):
    x, y = tiny_data()
    reference = one_step_displacement("float32", method, x, y)
    mixed = one_step_displacement(dtype_policy, method, x, y)
    assert reference > 1e-3
    # Unscaled gradients would move the weights 2^-15 as far (3e-5) under mixed_float16.
    assert 0.9 <= mixed / reference <= 1.1, (mixed, reference)


@pytest.mark.parametrize("dtype_policy", POLICIES)
def test_the_loss_falls_over_twenty_mixed_precision_steps(dtype_policy):
    x, y = tiny_data(n=16)
    with policy(dtype_policy):
        model = keras_tl.TransferModel(
            tiny_source(), 3, regularizers=[L2SP(alpha=0.01)], gradient_rule=keras_tl.gradients.DTNH()
        )
        compile_sgd(model, lr=0.05, momentum=0.9)
        losses = model.fit(x, y, batch_size=16, epochs=20, verbose=0, shuffle=False).history["empirical_loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("dtype_policy", POLICIES)
def test_l2_sp_under_a_mixed_policy_is_computed_from_float32_weights(dtype_policy):
    with policy(dtype_policy):
        model = keras_tl.TransferModel(tiny_source(), 3, regularizers=[L2SP(alpha=0.3, beta=0.7)])
        rng = np.random.default_rng(0)
        for variable in model.trainable_variables:  # tiny, float32-exact moves from the source
            variable.assign(keras.ops.convert_to_numpy(variable) + rng.normal(0, 1e-3, variable.shape).astype("float32"))
        values = model.objective.step_values(*tiny_data())
        term = float(model.objective.terms(values)["l2_sp"])
    target = {k: keras.ops.convert_to_numpy(v).astype("float64") for k, v in values["target_weights"].items()}
    source = {k: keras.ops.convert_to_numpy(v).astype("float64") for k, v in values["source_weights"].items()}
    assert all(keras.ops.convert_to_numpy(v).dtype == np.float32 for v in values["target_weights"].values())
    shared = sum(np.sum((target[k] - source[k]) ** 2) for k in source)
    new = sum(np.sum(target[k] ** 2) for k in target if k not in source)
    expected = 0.5 * 0.3 * shared + 0.5 * 0.7 * new
    np.testing.assert_allclose(term, expected, rtol=1e-6)


def activity_regularized_source(classes=4):
    """A source whose body holds an activity regularizer (an `add_loss` during the forward pass)."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, name="conv")(inputs)
    x = keras.layers.ActivityRegularization(l2=10.0, name="activity")(x)
    x = keras.layers.Conv2D(6, 3, name="conv2", kernel_regularizer=keras.regularizers.L2(0.5))(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, name="predictions")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("rule", [None, "dtnh"])
def test_empirical_loss_holds_the_targets_layer_losses_as_keras_does(rule):
    model = keras_tl.TransferModel(
        activity_regularized_source(),
        3,
        taps=["conv2"],  # a feature term, so the frozen source (and its own activity loss) runs too
        regularizers=[keras_tl.regularizers.FeatureMapDistillation(relative=False, alpha=0.01)],
        gradient_rule=keras_tl.gradients.DTNH() if rule else None,
    )
    compile_sgd(model, lr=0.0)
    x, y = tiny_data()
    # Keras' own reference: the plain classifier with the same layers, its compiled loss plus its losses.
    plain = model.inference_model()
    logits = plain(x, training=True)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    expected = float(cross_entropy) + float(np.sum([keras.ops.convert_to_numpy(v) for v in plain.losses]))
    assert expected > 10 * float(cross_entropy)  # the layer losses dominate: dropping them shows
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False).history
    np.testing.assert_allclose(history["empirical_loss"][0], expected, rtol=1e-5)
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)["empirical_loss"], expected, rtol=1e-5)
