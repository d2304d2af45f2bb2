import numpy as np
import pytest

from keras_tl.regularizers import L2
from tests.conftest import value_and_grad

RNG = np.random.default_rng(0)
WEIGHTS = {
    "backbone/conv1_conv/kernel": RNG.normal(size=(3, 3, 3, 4)),
    "backbone/conv1_bn/gamma": RNG.normal(size=(4,)),
    "head/kernel": RNG.normal(size=(4, 3)),
    "head/bias": RNG.normal(size=(3,)),
    "source_head/kernel": RNG.normal(size=(4, 5)),
}


@pytest.mark.parametrize(
    "scope, keys",
    [
        ("head", ["head/kernel", "head/bias"]),
        ("backbone", ["backbone/conv1_conv/kernel", "backbone/conv1_bn/gamma"]),
        ("all", list(WEIGHTS)),
    ],
)
def test_value_and_gradient_match_numpy(scope, keys):
    reg = L2(beta=0.3, scope=scope)
    names = list(WEIGHTS)

    def fn(tensors):
        return reg(dict(zip(names, tensors, strict=False)))

    value, grads = value_and_grad(fn, [WEIGHTS[k] for k in names])
    expected = 0.5 * 0.3 * sum(np.sum(WEIGHTS[k] ** 2) for k in keys)
    assert value == pytest.approx(expected, rel=1e-5)
    for name, grad in zip(names, grads, strict=False):
        want = 0.3 * WEIGHTS[name] if name in keys else np.zeros_like(WEIGHTS[name])
        np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


def test_scale_variable_multiplies_the_term():
    reg = L2(beta=1.0, scope="all")
    reg.scale.assign(0.25)
    value = float(np.asarray(reg({"head/kernel": np.ones((2, 2), "float32")})))
    assert value == pytest.approx(0.25 * 0.5 * 4)


def test_validation_errors():
    with pytest.raises(ValueError, match=r"Expected beta >= 0 \(a float\). Received: beta=-1"):
        L2(beta=-1)
    with pytest.raises(ValueError, match=r"Expected scope to be one of \('head', 'backbone', 'all'\). Received: scope='neck'"):
        L2(scope="neck")


def test_config_round_trip():
    reg = L2(beta=0.2, scope="backbone", name="decay")
    restored = L2.from_config(reg.get_config())
    assert restored.get_config() == {"name": "decay", "beta": 0.2, "scope": "backbone"}
