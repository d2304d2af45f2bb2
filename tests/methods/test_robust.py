"""LP-FT and WiSE-FT as methods: what each does before and after `fit`, on a base method."""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl import methods
from tests.conftest import TAPS, tiny_data, tiny_source
from tests.methods.test_defaults_train import CLASSES, tiny_train

VALIDATION = tiny_data(n=12, classes=CLASSES, seed=3)


def test_lp_ft_starts_its_head_from_the_probe_and_caches_it(tmp_path):
    source, train = tiny_source(classes=10), tiny_train()
    method = methods.get("lp_ft")
    setup = method.setup(source, train, TAPS, str(tmp_path), validation=VALIDATION)
    (kernel, bias), _ = keras_tl.linear_probe.fit_head(
        source, train, validation_data=VALIDATION, num_classes=CLASSES
    )
    np.testing.assert_allclose(setup.head_weights[0], kernel, rtol=1e-5, atol=1e-6)
    model = method.build(source, train, taps=TAPS, setup=setup)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.head.kernel), kernel, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "lp_head.npz").exists()
    again = method.setup(source, train, TAPS, str(tmp_path))  # read back: no validation data needed
    np.testing.assert_array_equal(again.head_weights[1], setup.head_weights[1])
    with pytest.raises(ValueError, match=r"Expected held-out validation data for method 'lp_ft'"):
        method.setup(source, train, TAPS)
    assert methods.get("lp_ft", C=1.0).setup(source, train, TAPS).head_weights[0].shape == kernel.shape
    (kernel, bias), _ = keras_tl.linear_probe.fit_head(source, train, folds=3, num_classes=CLASSES)
    folded = methods.get("lp_ft", folds=3)
    assert not folded.needs_validation and method.needs_validation
    np.testing.assert_allclose(folded.setup(source, train, TAPS).head_weights[1], bias, rtol=1e-5, atol=1e-6)
    with pytest.raises(
        ValueError, match=r"^Expected folds to be 0 \(C on validation data\) or >= 2. Received: folds=1"
    ):
        methods.get("lp_ft", folds=1)
    (kernel, bias), _ = keras_tl.linear_probe.fit_head(
        source, train, folds=3, scoring="log_loss", num_classes=CLASSES
    )
    by_loss = methods.get("lp_ft", folds=3, scoring="log_loss").setup(source, train, TAPS)
    np.testing.assert_allclose(by_loss.head_weights[0], kernel, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"^Expected scoring to be 'top1' or 'log_loss'. Received: scoring='auc'"):
        methods.get("lp_ft", scoring="auc")


def test_lp_ft_over_co_tuning_starts_from_the_probe_and_keeps_co_tunings_term(tmp_path):
    # select's second LP-FT default candidate: the probe's head, then Co-Tuning's fine-tuning.
    source, train = tiny_source(classes=10), tiny_train()
    stacked = methods.get("lp_ft", base="co_tuning")
    setup = stacked.setup(source, train, TAPS, str(tmp_path / "stacked"), validation=VALIDATION)
    probe = methods.get("lp_ft").setup(source, train, TAPS, str(tmp_path / "probe"), validation=VALIDATION)
    co_tuning = methods.get("co_tuning").setup(source, train, TAPS)
    np.testing.assert_allclose(setup.head_weights[0], probe.head_weights[0], rtol=1e-6)
    assert co_tuning.head_weights is None and setup.keep_source_head and co_tuning.keep_source_head
    assert [r.name for r in setup.regularizers] == [r.name for r in co_tuning.regularizers]
    assert "co_tuning" in [r.name for r in setup.regularizers]
    model, history = keras_tl.fine_tune(
        stacked, source, train, epochs=1, lr=0.05, taps=TAPS, validation_data=VALIDATION, verbose=0
    )
    assert np.isfinite(history.history["loss"][0]) and model.source_head is not None


def test_wise_ft_interpolates_after_fit_and_reports_its_alpha():
    source = tiny_source(classes=10)
    keras.utils.set_random_seed(0)
    model, history = keras_tl.fine_tune(
        methods.get("wise_ft", alpha=0.5), source, tiny_train(), epochs=1, lr=0.05, taps=TAPS, verbose=0
    )
    assert history.history["wise_ft/alpha"] == [0.5] and history.history["wise_ft/top1"] == [None]
    keras.utils.set_random_seed(0)
    plain, _ = keras_tl.fine_tune("l2", source, tiny_train(), epochs=1, lr=0.05, taps=TAPS, verbose=0)
    kernel = lambda m: keras.ops.convert_to_numpy(m.target_backbone.get_layer("conv1_conv").kernel)  # noqa: E731
    want = 0.5 * keras.ops.convert_to_numpy(source.get_layer("conv1_conv").kernel) + 0.5 * kernel(plain)
    np.testing.assert_allclose(kernel(model), want, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"Expected alpha in \[0, 1\] or None"):
        methods.get("wise_ft", alpha=1.5)


def test_wise_ft_re_estimates_batchnorm_statistics_on_pass_0_by_default():
    # The default re-estimates; the papers' setting (the reference's) interpolates the statistics too.
    assert methods.get("wise_ft").batchnorm == "recompute"
    assert methods.registered("wise_ft").authors().batchnorm == "interpolate"

    def train():  # augmented: each pass over the split holds other views
        return keras_tl.data.load(
            "digits", "train", image_size=8, preprocess="cifar_resnet8", batch_size=4, augment="keras",
            classes=["0", "1", "2"], per_class=4, training=True,
        )

    source, runs = tiny_source(classes=10), {}
    for setting in ("recompute", "interpolate"):
        keras.utils.set_random_seed(0)
        runs[setting], _ = keras_tl.fine_tune(
            methods.get("wise_ft", alpha=0.5, batchnorm=setting), source, train(), epochs=2, lr=0.05,
            taps=TAPS, verbose=0,
        )
    recomputed, interpolated = (runs[k].target_backbone for k in ("recompute", "interpolate"))
    layers = keras_tl.batchnorm.batchnorm_layers(recomputed)
    assert layers
    numpy = keras.ops.convert_to_numpy
    for layer in layers:  # the same weights: only the statistics differ
        np.testing.assert_allclose(
            numpy(layer.gamma), numpy(interpolated.get_layer(layer.name).gamma), rtol=1e-5, atol=1e-6
        )
    # What the method left: the interpolated network's statistics re-estimated on the split's first
    # pass, as a fresh process reads it, not on the pass fit stopped at.
    keras_tl.batchnorm.update_statistics(interpolated, keras_tl.data.first_pass(train(), name="train"))
    for layer in layers:
        for name in ("moving_mean", "moving_variance"):
            np.testing.assert_allclose(
                numpy(getattr(layer, name)), numpy(getattr(interpolated.get_layer(layer.name), name)),
                rtol=1e-4, atol=1e-6, err_msg=f"{layer.name}/{name}",
            )
