"""`keras_tl.batchnorm.update_statistics` against a numpy restatement of `torch.optim.swa_utils.update_bn`."""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.batchnorm import batchnorm_layers, update_statistics
from tests.conftest import tiny_data, tiny_source


def dense_bn(trainable=True):
    """Dense (fixed weights) → BatchNorm: the BatchNorm's input is a numpy expression of x."""
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(3, name="dense")
    outputs = keras.layers.BatchNormalization(momentum=0.9, name="bn", trainable=trainable)(dense(inputs))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    dense.set_weights([rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")])
    return model, dense


def reference_update_bn(batches, kernel, bias):
    """update_bn with momentum=None: the running statistics are the cumulative average of the batches'
    (Keras normalizes with the biased variance, so the biased one is averaged here)."""
    means, variances = [], []
    for x in batches:
        h = x.astype("float64") @ kernel + bias
        means.append(h.mean(axis=0))
        variances.append(h.var(axis=0))
    return np.mean(means, axis=0), np.mean(variances, axis=0)


def stats(layer):
    return [keras.ops.convert_to_numpy(v) for v in (layer.moving_mean, layer.moving_variance)]


@pytest.mark.parametrize("trainable", [True, False])
def test_statistics_are_the_average_of_the_batches(trainable):
    model, dense = dense_bn(trainable)
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(10, 4)).astype("float32")
    y = np.zeros(10, dtype="int64")
    assert update_statistics(model, (x, y), batch_size=4) == 1
    kernel, bias = dense.get_weights()
    mean, variance = reference_update_bn([x[:4], x[4:8], x[8:]], kernel, bias)
    layer = model.get_layer("bn")
    np.testing.assert_allclose(stats(layer)[0], mean, rtol=1e-5)
    np.testing.assert_allclose(stats(layer)[1], variance, rtol=1e-5)
    assert layer.momentum == 0.9 and layer.trainable is trainable  # restored after the pass


def test_steps_caps_the_batches():
    model, dense = dense_bn()
    x = np.random.default_rng(2).normal(size=(12, 4)).astype("float32")
    update_statistics(model, (x, np.zeros(12)), steps=1, batch_size=4)
    mean, variance = reference_update_bn([x[:4]], *dense.get_weights())
    np.testing.assert_allclose(stats(model.get_layer("bn")), [mean, variance], rtol=1e-5)


def test_a_failed_pass_leaves_the_statistics_as_they_were():
    model, _ = dense_bn()
    before = stats(model.get_layer("bn"))
    good = np.ones((2, 4), dtype="float32")
    bad = np.ones((2, 5), dtype="float32")  # the Dense layer refuses it on the second batch
    with pytest.raises(ValueError):
        update_statistics(model, [(good, np.zeros(2)), (bad, np.zeros(2))])
    np.testing.assert_array_equal(stats(model.get_layer("bn"))[0], before[0])
    np.testing.assert_array_equal(stats(model.get_layer("bn"))[1], before[1])
    assert model.get_layer("bn").momentum == 0.9


def test_nested_layers_are_found_once():
    inner, _ = dense_bn()
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, keras.layers.BatchNormalization(name="outer_bn")(inner(inputs)))
    assert [layer.name for layer in batchnorm_layers(outer)] == ["outer_bn", "bn"]


def test_bad_steps():
    model, _ = dense_bn()
    with pytest.raises(ValueError, match=r"Expected steps to be a positive integer or None. Received: steps=0"):
        update_statistics(model, (np.ones((2, 4)), np.zeros(2)), steps=0)


def test_wise_ft_re_estimates_each_interpolation_and_keeps_the_chosen_one():
    keras.utils.set_random_seed(3)
    model = keras_tl.TransferModel(tiny_source(), 3, keep_source=True)
    rng = np.random.default_rng(3)
    for variable in model.target_backbone.trainable_weights:
        value = keras.ops.convert_to_numpy(variable)
        variable.assign((value + rng.normal(0, 0.2, value.shape)).astype("float32"))
    x, y = tiny_data(n=6, seed=2)
    x_val, y_val = tiny_data(n=6, seed=4)
    trained = {layer.name: stats(layer) for layer in batchnorm_layers(model.target_backbone)}

    # Independently: the interpolated weights (plain), then statistics from update_statistics.
    expected_05, _ = keras_tl.wise_ft(model, alphas=0.5)
    update_statistics(expected_05.target_backbone, (x, y), batch_size=4)
    result, selection = keras_tl.wise_ft(
        model, alphas=[0.5], validation_data=(x_val, y_val), batchnorm_data=(x, y), batch_size=4
    )
    for layer in batchnorm_layers(result.target_backbone):
        want = stats(expected_05.target_backbone.get_layer(layer.name))
        np.testing.assert_allclose(stats(layer)[0], want[0], rtol=1e-5, atol=1e-6, err_msg=layer.name)
        np.testing.assert_allclose(stats(layer)[1], want[1], rtol=1e-5, atol=1e-6, err_msg=layer.name)
        assert not np.allclose(stats(layer)[1], trained[layer.name][1])  # not the trained statistics
    assert selection["alpha"] == 0.5

    # α = 1 is the fine-tuned model as trained: its statistics are not re-estimated.
    same, _ = keras_tl.wise_ft(model, alphas=1.0, batchnorm_data=(x, y))
    for layer in batchnorm_layers(same.target_backbone):
        np.testing.assert_array_equal(stats(layer)[1], trained[layer.name][1])


def test_wise_ft_method_batchnorm_setting():
    method = keras_tl.methods.get("wise_ft", batchnorm="recompute")
    assert method.get_config()["batchnorm"] == "recompute"
    assert type(method).from_config(method.get_config()) == method
    with pytest.raises(ValueError, match=r"Expected batchnorm to be 'interpolate' or 'recompute'. Received: batchnorm='x'"):
        keras_tl.methods.get("wise_ft", batchnorm="x")
