import numpy as np
import pytest

from keras_tl.regularizers import L2SP, L2SPAttention
from tests.conftest import value_and_grad

RNG = np.random.default_rng(2)
TARGET = {
    "backbone/tap_conv/kernel": RNG.normal(size=(3, 3, 2, 4)),
    "backbone/tap_conv/bias": RNG.normal(size=(4,)),
    "backbone/tap_bn/gamma": RNG.normal(size=(4,)),  # a layer after the tap, not a tap itself
    "backbone/other_conv/kernel": RNG.normal(size=(1, 1, 4, 3)),
    "head/kernel": RNG.normal(size=(3, 2)),
}
SOURCE = {k: v + RNG.normal(scale=0.1, size=v.shape) for k, v in TARGET.items() if k.startswith("backbone/")}
WEIGHTS = {"tap_conv": [0.1, 0.2, 0.3, 0.4]}


def test_value_and_gradient_match_numpy():
    reg = L2SPAttention(alpha=0.6, beta=0.3, channel_weights=WEIGHTS)
    names = list(TARGET)
    source = {k: v.astype("float32") for k, v in SOURCE.items()}

    def fn(tensors):
        return reg(dict(zip(names, tensors, strict=True)), source)

    value, grads = value_and_grad(fn, [TARGET[k] for k in names])
    filters = 4 * np.asarray(WEIGHTS["tap_conv"]) / np.sum(WEIGHTS["tap_conv"])  # average 1

    def weight_of(key):
        return filters if key.startswith("backbone/tap_conv/") else 1.0

    distance = sum(np.sum(weight_of(k) * (TARGET[k] - SOURCE[k]) ** 2) for k in SOURCE)
    decay = np.sum(TARGET["head/kernel"] ** 2)
    assert value == pytest.approx(0.5 * 0.6 * distance + 0.5 * 0.3 * decay, rel=1e-5)
    for key, grad in zip(names, grads, strict=True):
        want = 0.6 * weight_of(key) * (TARGET[key] - SOURCE[key]) if key in SOURCE else 0.3 * TARGET[key]
        np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


def test_uniform_weights_are_l2_sp():
    target = {k: v.astype("float32") for k, v in TARGET.items()}
    source = {k: v.astype("float32") for k, v in SOURCE.items()}
    uniform = L2SPAttention(alpha=0.6, beta=0.3, channel_weights={"tap_conv": [2.0] * 4})
    assert float(uniform(target, source)) == pytest.approx(
        float(L2SP(alpha=0.6, beta=0.3)(target, source)), rel=1e-6
    )


def test_errors_name_the_layer():
    target = {k: v.astype("float32") for k, v in TARGET.items()}
    source = {k: v.astype("float32") for k, v in SOURCE.items()}
    with pytest.raises(ValueError, match=r"Expected 3 filters .* of 'backbone/tap_conv/kernel'"):
        L2SPAttention(channel_weights={"tap_conv": [1.0] * 3})(target, source)
    with pytest.raises(ValueError, match=r"Received layers without: \['missing'\]"):
        L2SPAttention(channel_weights={**WEIGHTS, "missing": [1.0]})(target, source)
    with pytest.raises(ValueError, match=r"Expected beta >= 0"):
        L2SPAttention(beta=-1.0, channel_weights=WEIGHTS)


def test_config_round_trip():
    reg = L2SPAttention(alpha=0.1, beta=0.2, channel_weights=WEIGHTS)
    config = reg.get_config()
    assert config == {"name": "l2_sp_attention", "alpha": 0.1, "beta": 0.2, "channel_weights": WEIGHTS}
    assert L2SPAttention.from_config(config).get_config() == config
