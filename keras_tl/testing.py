"""The contract every keras_tl regularizer meets, as a check a user can run on their own term.

Like optax's transformation tests: one function runs a term through serialization, `fit`
with and without DTNH on the active backend, the frozen source's integrity, and a `.keras`
round trip, on a tiny deterministic source.

Example:
>>> @keras.saving.register_keras_serializable(package="my_terms")
... def l1_sp(target_weights, source_weights, alpha=0.01):
...     return alpha * sum(keras.ops.sum(keras.ops.abs(target_weights[k] - source_weights[k]))
...                        for k in source_weights)
>>> keras_tl.testing.check_regularizer(lambda: keras_tl.regularizers.from_function(l1_sp))
"""

import json
import os
import tempfile

import keras
import numpy as np

from keras_tl import gradients
from keras_tl.models import TransferModel
from keras_tl.regularizers.base import Regularizer
from keras_tl.utils.weights import named_variables

# The conv layers of `tiny_source()`'s three stages (16, 32 and 64 channels).
TINY_TAPS = ["conv2_block1_2_conv", "conv3_block1_2_conv", "conv4_block1_2_conv"]


def tiny_source(classes=5, input_shape=(8, 8, 3), seed=0, include_top=True):
    """A CIFAR ResNet-8-like source (one block per stage) with deterministic, non-trivial weights."""
    keras.utils.set_random_seed(seed)
    from keras_tl.backbones.cifar_resnet import cifar_resnet

    model = cifar_resnet(8, input_shape=input_shape, include_top=include_top, classes=classes)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "variance" in variable.name:  # must stay positive
            value = rng.uniform(0.5, 1.5, variable.shape)
        elif "gamma" in variable.name:
            value = rng.uniform(0.8, 1.2, variable.shape)
        else:
            value = rng.normal(0, 0.2, variable.shape)
        variable.assign(value.astype("float32"))
    return model


def tiny_data(n=8, input_shape=(8, 8, 3), classes=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n,) + tuple(input_shape)).astype("float32")
    y = (np.arange(n) % classes).astype("int32")
    return x, y


def _numpy(part):
    return {key: keras.ops.convert_to_numpy(v) for key, v in named_variables(part).items()}


def _require(condition, message):
    # Not `assert`: `python -O` strips asserts, and a contract check must never pass silently.
    if not condition:
        raise AssertionError(message)


def _zero_loss(y_true, y_pred):
    # J = 0: whatever moves the weights in the step is the term's own gradient.
    return 0.0 * keras.ops.mean(y_pred)


def check_regularizer(factory, source=None, taps=None, num_classes=3, data=None, lr=0.05):
    """Runs the regularizer `factory()` returns through the contract; raises `AssertionError` on a breach
    (a raised error, not an `assert`: it holds under `python -O` too).

    Checks, on the active backend:
    1. `get_config` is JSON-safe and round-trips through `from_config` and Keras
       (de)serialization (a user's class or function must be registered).
    2. Inside a `TransferModel` (with and without `keras_tl.gradients.DTNH()`): the term is a
       finite float32 scalar; one `fit` step with an empirical loss of zero moves the target's
       weights (from a perturbed start, so that target and source differ); the frozen
       source copy is untouched and has no trainable weights; `reg/<name>` is logged.
    3. The model saves to `.keras` and loads with the same term config and weights.

    Args:
        factory: `() -> Regularizer`, called once per check (terms hold state).
        source: the source `keras.Model`; default `tiny_source()` with taps `TINY_TAPS`.
        taps: the tap layers (default: `TINY_TAPS` for the default source, else none).
        num_classes: target classes.
        data: `(x, y)` numpy arrays; default `tiny_data()` for the default source.
        lr: the SGD learning rate of the step.
    """
    if source is None:
        source_fn = tiny_source
        taps = TINY_TAPS if taps is None else taps
        data = tiny_data(classes=num_classes) if data is None else data
    else:
        source_fn = lambda: source  # noqa: E731
        if data is None:
            raise ValueError("Expected data=(x, y) with a custom source. Received: data=None")
    x, y = data

    reg = factory()
    if not isinstance(reg, Regularizer):
        raise TypeError(f"Expected factory() to return a keras_tl Regularizer. Received: {reg!r}")
    config = reg.get_config()
    _require(json.loads(json.dumps(config)) == config, f"{reg.name}: get_config is not JSON-safe: {config}")
    _require(type(reg).from_config(config).get_config() == config, f"{reg.name}: from_config(get_config()) differs")
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(reg)))
    restored = keras.saving.deserialize_keras_object(serialized)
    _require(type(restored) is type(reg) and restored.get_config() == config, f"{reg.name}: Keras round trip differs")

    for rule in (None, gradients.DTNH()):
        what = f"{reg.name} ({'DTNH' if rule else 'no rule'})"
        model = TransferModel(source_fn(), num_classes, taps=taps, regularizers=[factory()], gradient_rule=rule)
        term_name = model.regularizers[0].name
        rng = np.random.default_rng(0)
        for variable in model.trainable_variables:
            value = keras.ops.convert_to_numpy(variable)
            variable.assign(value + rng.normal(0, 0.01, value.shape).astype(value.dtype))
        term = model.objective.terms(model.objective.step_values(x, y))[term_name]
        term = keras.ops.convert_to_numpy(term)
        _require(term.shape == () and term.dtype == np.float32 and np.isfinite(term), f"{what}: term {term!r}")

        model.compile(optimizer=keras.optimizers.SGD(lr), loss=_zero_loss)
        frozen = [m for m in (model.source_backbone, model.frozen_source_head) if m is not None]
        source_before = [{v.path: keras.ops.convert_to_numpy(v) for v in m.weights} for m in frozen]
        before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
        history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False).history
        after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
        _require(np.isfinite(history[f"reg/{term_name}"][0]), f"{what}: logged reg/{term_name} is not finite")
        moved = max(float(np.max(np.abs(a - b))) for a, b in zip(after, before, strict=True))
        _require(moved > 0.0, f"{what}: one fit step with J = 0 did not move any weight: the term has no gradient")
        for m, old in zip(frozen, source_before, strict=True):
            _require(not m.trainable_weights, f"{what}: the frozen source copy has trainable weights")
            for v in m.weights:
                np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), old[v.path], err_msg=f"{what}: {v.path}")
        if rule is not None:
            _require(0.0 <= history["dtnh/projected"][0] <= 1.0, f"{what}: dtnh/projected out of [0, 1]")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path, compile=False)
    _require(loaded.regularizers[0].get_config() == model.regularizers[0].get_config(), f"{reg.name}: config after load")
    for a, b in zip(_numpy(model.target_backbone).values(), _numpy(loaded.target_backbone).values(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.regularizers[0].weights, loaded.regularizers[0].weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
