import numpy as np
import pytest

from keras_tl.regularizers import L2SP
from tests.conftest import value_and_grad

RNG = np.random.default_rng(1)
TARGET = {
    "backbone/conv1_conv/kernel": RNG.normal(size=(3, 3, 3, 4)),
    "backbone/conv1_bn/gamma": RNG.normal(size=(4,)),
    "backbone/conv1_bn/beta": RNG.normal(size=(4,)),
    "head/kernel": RNG.normal(size=(4, 3)),
    "head/bias": RNG.normal(size=(3,)),
}
SOURCE = {k: v + RNG.normal(scale=0.1, size=v.shape) for k, v in TARGET.items() if k.startswith("backbone/")}


def test_value_and_gradient_match_numpy():
    reg = L2SP(alpha=0.7, beta=0.2)
    names = list(TARGET)
    source = {k: v.astype("float32") for k, v in SOURCE.items()}

    def fn(tensors):
        return reg(dict(zip(names, tensors, strict=False)), source)

    value, grads = value_and_grad(fn, [TARGET[k] for k in names])
    distance = sum(np.sum((TARGET[k] - SOURCE[k]) ** 2) for k in SOURCE)
    decay = np.sum(TARGET["head/kernel"] ** 2) + np.sum(TARGET["head/bias"] ** 2)
    assert value == pytest.approx(0.5 * 0.7 * distance + 0.5 * 0.2 * decay, rel=1e-5)
    for name, grad in zip(names, grads, strict=False):
        want = 0.7 * (TARGET[name] - SOURCE[name]) if name in SOURCE else 0.2 * TARGET[name]
        np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


def test_source_only_keys_and_shape_mismatches_are_errors():
    reg = L2SP()
    target = {"backbone/a/kernel": np.ones((2,), "float32")}
    with pytest.raises(ValueError, match=r"source-only keys: \['backbone/b/kernel'\]"):
        reg(target, {"backbone/a/kernel": np.ones((2,), "float32"), "backbone/b/kernel": np.ones((2,), "float32")})
    with pytest.raises(ValueError, match=r"Expected matching shapes for weight 'backbone/a/kernel'"):
        reg(target, {"backbone/a/kernel": np.ones((3,), "float32")})


def test_validation_errors():
    with pytest.raises(ValueError, match=r"Expected alpha >= 0 \(a float\). Received: alpha=-0.1"):
        L2SP(alpha=-0.1)
    with pytest.raises(ValueError, match=r"Expected beta >= 0 \(a float\). Received: beta='x'"):
        L2SP(beta="x")


def test_config_round_trip():
    reg = L2SP(alpha=0.1, beta=0.01)
    assert L2SP.from_config(reg.get_config()).get_config() == {"name": "l2_sp", "alpha": 0.1, "beta": 0.01}
