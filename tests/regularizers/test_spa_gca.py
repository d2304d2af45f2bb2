import keras
import numpy as np
import pytest

from keras_tl.regularizers import GCA, SPA, FeatureMapDistillation
from tests.conftest import value_and_grad
from tests.regularizers.feature_checks import (
    channel_term_numpy,
    check_reinitialize,
    check_source_untouched_and_attention_trained,
    position_term_numpy,
    random_maps,
    randomize,
    relu,
    softmax,
    spatial_attention_numpy,
)

TARGET, SOURCE = random_maps(0), random_maps(1)
NAMES = sorted(TARGET)


def built_spa():
    reg = SPA(relative=False, alpha=0.6)
    reg(TARGET, SOURCE)
    weights = {}
    for i, name in enumerate(NAMES):
        layer = reg.attention[name]
        randomize(layer.weights, 10 + i)
        weights[name] = [
            keras.ops.convert_to_numpy(v)
            for v in (layer.hidden.kernel, layer.scores.kernel, layer.scores.bias)
        ]
    return reg, weights


def spa_numpy(name, weights):
    """Eq. 7: the attention sees the channel average of Concat(FM_S, FM_T)."""
    return spatial_attention_numpy(np.concatenate([SOURCE[name], TARGET[name]], axis=-1), *weights[name])


def test_spa_attention_and_value_match_numpy():
    reg, weights = built_spa()
    attention = reg.attention_weights(TARGET, SOURCE)
    want = 0.0
    for name in NAMES:
        expected = spa_numpy(name, weights)
        np.testing.assert_allclose(
            np.sum(keras.ops.convert_to_numpy(attention[name]), axis=-1), 1.0, rtol=1e-6
        )
        np.testing.assert_allclose(attention[name], expected, rtol=1e-5, atol=1e-7)
        want += position_term_numpy(TARGET[name], SOURCE[name], expected)
    assert float(reg(TARGET, SOURCE)) == pytest.approx(0.6 * want, rel=1e-5)


def test_spa_target_gradient_does_not_flow_through_the_attention():
    reg, weights = built_spa()

    def fn(tensors):
        return reg(dict(zip(NAMES, tensors, strict=True)), SOURCE)

    _, grads = value_and_grad(fn, [TARGET[n] for n in NAMES])
    for name, grad in zip(NAMES, grads, strict=True):
        batch, height, width, _ = TARGET[name].shape
        weight = ((height * width * spa_numpy(name, weights)) ** 2).reshape(batch, height, width, 1)
        np.testing.assert_allclose(
            grad, 0.6 * weight * (TARGET[name] - SOURCE[name]) / batch, rtol=1e-4, atol=1e-6
        )


def test_gca_one_softmax_over_all_layers_matches_numpy():
    reg = GCA(relative=False, alpha=0.5, reduction=2)
    reg(TARGET, SOURCE)
    layer = reg.attention["global"]
    k1, b1, k2, b2 = (
        randomize([v], 20 + i)[0]
        for i, v in enumerate(
            (layer.hidden.kernel, layer.hidden.bias, layer.scores.kernel, layer.scores.bias)
        )
    )
    total = sum(SOURCE[n].shape[-1] for n in NAMES)
    assert k1.shape == (total, total // 2)
    pooled = np.concatenate([SOURCE[n].mean(axis=(1, 2)) for n in NAMES], axis=-1)  # sorted tap order
    expected = softmax(relu(pooled @ k1 + b1) @ k2 + b2)
    attention = reg.attention_weights(SOURCE)
    joined = np.concatenate([keras.ops.convert_to_numpy(attention[n]) for n in NAMES], axis=-1)
    np.testing.assert_allclose(joined.sum(axis=-1), 1.0, rtol=1e-6)  # over all layers together
    np.testing.assert_allclose(joined, expected, rtol=1e-5, atol=1e-7)
    want, start = 0.0, 0
    for name in NAMES:
        channels = SOURCE[name].shape[-1]
        want += channel_term_numpy(
            TARGET[name], SOURCE[name], expected[:, start : start + channels], scale=total
        )
        start += channels
    assert float(reg(TARGET, SOURCE)) == pytest.approx(0.5 * want, rel=1e-5)


@pytest.mark.parametrize("cls", [SPA, GCA])
def test_uniform_attention_is_distillation(cls):
    reg = cls(alpha=0.6, relative=False)
    reg(TARGET, SOURCE)
    for layer in reg.attention.values():
        layer.scores.kernel.assign(np.zeros(layer.scores.kernel.shape, "float32"))
        layer.scores.bias.assign(np.zeros(layer.scores.bias.shape, "float32"))
    want = float(FeatureMapDistillation(relative=False, alpha=0.6, reduction="mean")(TARGET, SOURCE))  # batch mean
    assert float(reg(TARGET, SOURCE)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("cls", [SPA, GCA])
def test_source_untouched_and_attention_trained_jointly(cls):
    check_source_untouched_and_attention_trained(cls(alpha=1.0))


@pytest.mark.parametrize("cls", [SPA, GCA])
def test_reinitialize_draws_new_weights(cls):
    reg = cls(alpha=0.1)
    reg(TARGET, SOURCE)
    randomize(reg.trainable_weights, 7)
    check_reinitialize(reg)


def test_gca_validation_and_config():
    with pytest.raises(ValueError, match=r"Expected reduction >= 1 \(an int\). Received: reduction=0"):
        GCA(reduction=0)
    assert GCA(relative=False, alpha=0.02, reduction=8).get_config() == {
        "name": "gca", "alpha": 0.02, "relative": False, "reduction": 8
    }
    assert SPA(relative=False, alpha=0.03).get_config() == {"name": "spa", "alpha": 0.03, "relative": False}
