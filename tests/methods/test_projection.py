"""TPGM, FTP, SPD and surgical fine-tuning as methods: what each does to the weights during `fit`, on a base method."""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl import methods
from tests.conftest import TAPS, tiny_data, tiny_source
from tests.methods.test_defaults_train import CLASSES, tiny_train

VALIDATION = tiny_data(n=12, classes=CLASSES, seed=3)


def test_tpgm_projects_within_its_radii_on_a_base_method():
    method = methods.get("tpgm", base="l2_sp")
    source, train = tiny_source(classes=10), tiny_train()
    setup = method.setup(source, train, TAPS, validation=VALIDATION)
    assert [r.name for r in setup.regularizers] == ["l2_sp"] and setup.keep_source
    (callback,) = method.callbacks(1, 3, setup)
    assert isinstance(callback, keras_tl.callbacks.TPGM)
    _, history = keras_tl.fine_tune(
        method, source, train, epochs=1, taps=TAPS, verbose=0, validation_data=VALIDATION
    )
    assert np.isfinite(history.history["reg/l2_sp"][0])
    with pytest.raises(ValueError, match=r"Expected base to be another registered method"):
        methods.get("tpgm", base="tpgm")


def _one_step(method):
    """`method` fine-tuned for one step (one batch of 8) from the tiny source, seed 0."""
    keras.utils.set_random_seed(0)
    model, _ = keras_tl.fine_tune(
        method, tiny_source(classes=10), tiny_train(n=8), epochs=1, lr=0.05, taps=TAPS, verbose=0
    )
    return model


def _wrapper(model, cls):
    optimizer = model.optimizer
    while optimizer is not None and not isinstance(optimizer, cls):
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return optimizer


def _numpy(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _backbone_moves(model, source):
    """max |θ − θ_source| of each trainable backbone variable, matched to the source's by path."""
    sources = {v.path: keras.ops.convert_to_numpy(v) for v in source.trainable_variables}
    return [
        np.abs(keras.ops.convert_to_numpy(v) - sources[v.path]).max()
        for v in model.target_backbone.trainable_variables
    ]


def test_ftp_projects_the_backbone_onto_the_source_at_its_first_step_not_the_head():
    model, plain = _one_step("ftp"), _one_step("l2")
    assert _wrapper(model, keras_tl.optimizers.FTP).exclude == ("^head/",)
    # The first γ is 1e-8 (official): the backbone stays at the source, the excluded head takes L2's step.
    source = tiny_source(classes=10)
    assert max(_backbone_moves(model, source)) < 1e-6
    assert max(_backbone_moves(plain, source)) > 1e-3  # L2's step does move it: the projection held it
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.head.kernel),
        keras.ops.convert_to_numpy(plain.head.kernel),
        rtol=1e-5,
        atol=1e-7,
    )


def test_spd_first_step_is_the_inner_step_and_later_ones_decay():
    model, plain = _one_step("spd"), _one_step("l2")
    assert _wrapper(model, keras_tl.optimizers.SPD).strength == 1.0
    # θ_{t−1} = θ0 at the first step, so c = 0 and nothing is decayed (official AdamSPD).
    for got, want in zip(_numpy(model.trainable_variables), _numpy(plain.trainable_variables), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"strength"):
        methods.get("spd", strength=-1.0)
    with pytest.raises(ValueError, match=r"Expected k"):
        methods.get("ftp", k=2.0)


def test_surgical_rescales_every_epoch_and_leaves_batchnorm_untrained():
    method = methods.get("surgical")
    source, train = tiny_source(classes=10), tiny_train()
    setup = method.setup(source, train, TAPS)
    (callback,) = method.callbacks(2, 3, setup)
    assert isinstance(callback, keras_tl.callbacks.AutoRGNScales) and callback.num_batches == 5
    keras.utils.set_random_seed(0)
    model, history = keras_tl.fine_tune(method, source, train, epochs=2, lr=0.05, taps=TAPS, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    gammas = [v for v in model.target_backbone.trainable_variables if "_bn/" in v.path]
    assert gammas
    for variable in gammas:
        layer = source.get_layer(variable.path.split("/")[-2])
        want = {w.name: keras.ops.convert_to_numpy(w) for w in layer.trainable_weights}[variable.name]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), want)
    scales = keras.ops.convert_to_numpy(_wrapper(model, keras_tl.optimizers.AutoRGN).scales)
    # Set from gradients (not the initial ones and zeros): the top RGN is 1, the others below it.
    assert scales.max() == 1.0 and 0.0 < np.median(scales[scales > 0]) < 1.0
