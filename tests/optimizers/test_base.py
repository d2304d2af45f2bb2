"""What the three wrappers share: `fit` in a TransferModel and a plain model, loss scaling, saving, resuming."""

import json
import os
import warnings

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.callbacks import AtomicBackupAndRestore, AutoRGNScales
from keras_tl.optimizers import FTP, SPD, AutoRGN
from tests.conftest import tiny_data, tiny_source
from tests.optimizers.test_auto_rgn import chain_model, data

NAMES = ("ftp", "spd", "auto_rgn")


def make(name, head="head", momentum=0.9):
    inner = keras.optimizers.SGD(0.05, momentum=momentum)
    if name == "ftp":
        return FTP(inner, exclude=(head,))
    if name == "spd":
        return SPD(inner, strength=1.0)
    return AutoRGN(inner, frozen=("_bn/", "fc2_bn"))


def callbacks(name, x, y):
    return [AutoRGNScales((x, y), num_batches=2, batch_size=4)] if name == "auto_rgn" else []


def values(model):
    return [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]


def compile_and_fit(model, optimizer, x, y, epochs, name, extra=()):
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model.fit(
        x,
        y,
        batch_size=4,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[*extra, *callbacks(name, x, y)],
    )


@pytest.mark.parametrize("name", NAMES)
def test_fit_inside_a_transfer_model(name):
    x, y = tiny_data(8)
    # One of them with a regularizer and DTNH: what the optimizer receives is then the rule's direction.
    terms = {
        "regularizers": [keras_tl.regularizers.L2SP(alpha=0.01, beta=0.01)],
        "gradient_rule": keras_tl.gradients.DTNH(),
    }
    model = keras_tl.TransferModel(tiny_source(), 3, **(terms if name == "spd" else {}))
    start = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
    optimizer = make(name, head="^head/")
    history = compile_and_fit(model, optimizer, x, y, 2, name).history
    assert np.all(np.isfinite(history["loss"]))
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 4
    moved = {
        v.path: float(np.abs(keras.ops.convert_to_numpy(v) - start[v.path]).max())
        for v in model.trainable_variables
    }
    assert moved["head/kernel"] > 1e-3
    if name == "auto_rgn":
        assert all(m == 0.0 for path, m in moved.items() if "_bn/" in path)
        assert moved["conv1_conv/kernel"] > 0.0
    else:
        # θ0 is the source: the anchors are the target's weights before the first step.
        kernel = next(v for v in model.trainable_variables if v.path == "conv1_conv/kernel")
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(optimizer.anchor(kernel)), start[kernel.path]
        )
        assert moved["conv1_conv/kernel"] > 0.0
    if name == "ftp":
        head = next(v for v in model.trainable_variables if v.path == "head/kernel")
        assert optimizer.anchor(head) is None
        assert float(np.max(keras.ops.convert_to_numpy(optimizer.gamma))) > 1e-8


@pytest.fixture
def mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("name", NAMES)
def test_composes_with_loss_scaling(name, mixed_precision):
    x, y = data(8)
    model = chain_model()
    compile_and_fit(model, make(name), x, y, 1, name)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert type(model.optimizer.inner_optimizer) is type(make(name))
    assert model.optimizer.inner_optimizer.inner_optimizer.loss_scale_factor is None
    mixed = values(model)
    keras.config.set_dtype_policy("float32")
    reference = chain_model()
    start = values(reference)
    compile_and_fit(reference, make(name), x, y, 1, name)
    # The loss was scaled by 2^15 and unscaled once: the float16 forward pass only rounds.
    moved = max(float(np.abs(a - b).max()) for a, b in zip(values(reference), start, strict=True))
    assert moved > 0.02
    for a, b in zip(mixed, values(reference), strict=True):
        np.testing.assert_allclose(a, b, atol=moved / 20)


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt("killed after the first epoch's checkpoint")


@pytest.mark.parametrize("name", NAMES)
def test_a_resumed_run_equals_an_uninterrupted_one(name, tmp_path):
    x, y = data(12)
    uninterrupted = chain_model()
    compile_and_fit(uninterrupted, make(name), x, y, 3, name)

    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        compile_and_fit(
            chain_model(), make(name), x, y, 3, name, extra=[AtomicBackupAndRestore(backup), _Interrupt()]
        )
    # Not vacuous: the checkpoint's model weights without its optimizer state end elsewhere.
    with open(os.path.join(backup, "training_metadata.json")) as handle:
        weights_file = os.path.join(backup, json.load(handle)["weights"])
    stateless = chain_model()
    stateless.compile(optimizer=make(name), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stateless.load_weights(weights_file)  # the optimizer is not built: Keras skips its variables
    stateless.fit(
        x,
        y,
        batch_size=4,
        epochs=3,
        initial_epoch=1,
        shuffle=False,
        verbose=0,
        callbacks=callbacks(name, x, y),
    )
    differs = max(
        float(np.abs(a - b).max()) for a, b in zip(values(stateless), values(uninterrupted), strict=True)
    )
    assert differs > 1e-4

    resumed = chain_model()
    restore = AtomicBackupAndRestore(backup)
    compile_and_fit(resumed, make(name), x, y, 3, name, extra=[restore])
    assert restore.restored_epoch == 1
    for a, b in zip(values(resumed), values(uninterrupted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_keras_file_round_trip_keeps_the_state(name, tmp_path):
    x, y = data(8)
    model = chain_model()
    compile_and_fit(model, make(name), x, y, 1, name)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path
        )
    for m in (model, loaded):
        m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=callbacks(name, x, y))
    for a, b in zip(values(loaded), values(model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_learning_rate_and_iterations_are_the_inner_optimizers():
    inner = keras.optimizers.SGD(0.1)
    optimizer = FTP(inner)
    optimizer.learning_rate = 0.02
    assert float(keras.ops.convert_to_numpy(inner.learning_rate)) == pytest.approx(0.02)
    assert optimizer.iterations is inner.iterations


def test_anchor_of_an_unknown_variable():
    optimizer = SPD(keras.optimizers.SGD(0.1))
    variable = keras.Variable(np.zeros(2), name="w")
    with pytest.raises(
        ValueError, match=r"Expected a variable SPD was built with. Received: 'w' \(the optimizer"
    ):
        optimizer.anchor(variable)


def test_the_inner_loss_scale_factor_is_used_once():
    inner = keras.optimizers.SGD(0.1, loss_scale_factor=8.0)
    optimizer = SPD(inner)
    assert optimizer.loss_scale_factor == 8.0
    assert float(keras.ops.convert_to_numpy(optimizer.scale_loss(1.0))) == 8.0
    variable = keras.Variable(np.ones(2, "float32"), name="w")
    optimizer.apply([np.full(2, 8.0, "float32")], [variable])  # the gradient of 8 × loss
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), [0.9, 0.9], rtol=1e-6)
    # A LossScaleOptimizer around the wrapper scales instead: the inner optimizer must not unscale too.
    keras.optimizers.LossScaleOptimizer(FTP(inner := keras.optimizers.SGD(0.1, loss_scale_factor=8.0)))
    assert inner.loss_scale_factor is None
