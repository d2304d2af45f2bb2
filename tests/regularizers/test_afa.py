import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.regularizers import ACT, AST, FeatureMapDistillation
from tests.conftest import TAPS, tiny_source, value_and_grad
from tests.regularizers.feature_checks import (
    channel_attention_numpy,
    channel_term_numpy,
    check_reinitialize,
    check_source_untouched_and_attention_trained,
    position_term_numpy,
    random_maps,
    randomize,
    spatial_attention_numpy,
)

TARGET, SOURCE = random_maps(0), random_maps(1)
NAMES = sorted(TARGET)


def built(cls, seed=5):
    """A regularizer built for SHAPES, with given (random) attention weights."""
    reg = cls(alpha=0.7, relative=False)
    reg(TARGET, SOURCE)
    return reg, {name: randomize(reg.attention[name].weights, seed + i) for i, name in enumerate(NAMES)}


def ast_weights(reg, given, name):
    layer = reg.attention[name]
    values = dict(zip([v.path for v in layer.weights], given[name], strict=True))
    return [values[v.path] for v in (layer.hidden.kernel, layer.scores.kernel, layer.scores.bias)]


def test_ast_attention_and_value_match_numpy():
    reg, given = built(AST)
    attention = reg.attention_weights(SOURCE)
    want = 0.0
    for name in NAMES:
        expected = spatial_attention_numpy(SOURCE[name], *ast_weights(reg, given, name))
        batch, height, width, _ = SOURCE[name].shape
        assert tuple(attention[name].shape) == (batch, height * width)
        np.testing.assert_allclose(
            np.sum(keras.ops.convert_to_numpy(attention[name]), axis=-1), 1.0, rtol=1e-6
        )
        np.testing.assert_allclose(attention[name], expected, rtol=1e-5, atol=1e-7)
        want += position_term_numpy(TARGET[name], SOURCE[name], expected)
    assert float(reg(TARGET, SOURCE)) == pytest.approx(0.7 * want, rel=1e-5)


def test_ast_gradient_wrt_the_target_is_the_attended_difference():
    reg, given = built(AST)

    def fn(tensors):
        return reg(dict(zip(NAMES, tensors, strict=True)), SOURCE)

    _, grads = value_and_grad(fn, [TARGET[n] for n in NAMES])
    for name, grad in zip(NAMES, grads, strict=True):
        batch, height, width, _ = TARGET[name].shape
        attention = spatial_attention_numpy(SOURCE[name], *ast_weights(reg, given, name))
        weight = ((height * width * attention) ** 2).reshape(batch, height, width, 1)
        np.testing.assert_allclose(
            grad, 0.7 * weight * (TARGET[name] - SOURCE[name]) / batch, rtol=1e-4, atol=1e-6
        )


def test_act_attention_and_value_match_numpy():
    reg, given = built(ACT)
    attention = reg.attention_weights(SOURCE)
    want = 0.0
    for name in NAMES:
        layer = reg.attention[name]
        values = dict(zip([v.path for v in layer.weights], given[name], strict=True))
        k1, k2, bias = (values[v.path] for v in (layer.hidden.kernel, layer.scores.kernel, layer.bias))
        expected = channel_attention_numpy(SOURCE[name], k1, k2, bias)
        assert tuple(attention[name].shape) == (SOURCE[name].shape[0], SOURCE[name].shape[-1])
        np.testing.assert_allclose(
            np.sum(keras.ops.convert_to_numpy(attention[name]), axis=-1), 1.0, rtol=1e-6
        )
        np.testing.assert_allclose(attention[name], expected, rtol=1e-5, atol=1e-7)
        want += channel_term_numpy(TARGET[name], SOURCE[name], expected, scale=SOURCE[name].shape[-1])
    assert float(reg(TARGET, SOURCE)) == pytest.approx(0.7 * want, rel=1e-5)


@pytest.mark.parametrize("cls", [AST, ACT])
def test_uniform_attention_is_distillation(cls):
    reg, _ = built(cls)
    for layer in reg.attention.values():
        layer.scores.kernel.assign(np.zeros(layer.scores.kernel.shape, "float32"))
        for variable in layer.weights:
            if "bias" in variable.path:
                variable.assign(np.zeros(variable.shape, "float32"))
    want = float(FeatureMapDistillation(relative=False, alpha=0.7, reduction="mean")(TARGET, SOURCE))  # AFA: batch mean
    assert float(reg(TARGET, SOURCE)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("cls", [AST, ACT])
def test_source_untouched_and_attention_trained_jointly(cls):
    check_source_untouched_and_attention_trained(cls(alpha=1.0))


@pytest.mark.parametrize("cls", [AST, ACT])
def test_reinitialize_draws_new_weights(cls):
    reg, _ = built(cls)
    check_reinitialize(reg)


def test_attention_layers_follow_the_input_resolution():
    sizes = {}
    for side in (8, 16):
        reg = AST(relative=False, alpha=0.1)
        keras_tl.TransferModel(tiny_source(input_shape=(side, side, 3)), 3, taps=TAPS, regularizers=[reg])
        sizes[side] = {name: layer.scores.units for name, layer in reg.attention.items()}
    # The taps are at 1, 1/2 and 1/4 of the input resolution.
    assert sizes[8] == dict(zip(TAPS, (64, 16, 4), strict=True))
    assert sizes[16] == dict(zip(TAPS, (256, 64, 16), strict=True))


def test_validation():
    with pytest.raises(ValueError, match=r"Expected alpha >= 0 \(a float\). Received: alpha=-0.5"):
        ACT(relative=False, alpha=-0.5)
    with pytest.raises(ValueError, match=r"static height, width and channels for tap 'x'"):
        AST()(
            {"x": keras.KerasTensor((None, None, None, 4))}, {"x": keras.KerasTensor((None, None, None, 4))}
        )
