import keras
import numpy as np
import pytest

from keras_tl.regularizers import BSS
from tests.conftest import value_and_grad
from tests.regularizers.output_level import fit_save_reload

RNG = np.random.default_rng(0)


def numpy_bss(features, eta, k):
    """Value and gradient: ∂σ_i/∂F = u_i v_iᵀ, so ∂(η Σ σ_i²)/∂F = η Σ 2 σ_i u_i v_iᵀ."""
    u, s, vt = np.linalg.svd(features.astype("float64"), full_matrices=False)
    smallest = np.argsort(s)[:k]
    value = eta * np.sum(s[smallest] ** 2)
    grad = sum(2 * eta * s[i] * np.outer(u[:, i], vt[i]) for i in smallest)
    return value, grad


@pytest.mark.parametrize("shape, k", [((6, 4), 1), ((6, 4), 2), ((3, 5), 1), ((3, 5), 3)])
def test_value_and_gradient_match_numpy(shape, k):
    features = RNG.normal(size=shape)
    reg = BSS(eta=0.5, k=k)
    value, (grad,) = value_and_grad(lambda t: reg(t[0]), [features])
    want_value, want_grad = numpy_bss(features, 0.5, k)
    assert value == pytest.approx(want_value, rel=1e-4)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-3, atol=1e-5)


def test_k_beyond_the_batch_penalises_every_singular_value():
    features = RNG.normal(size=(2, 4))
    value, _ = value_and_grad(lambda t: BSS(eta=1.0, k=5)(t[0]), [features])
    assert value == pytest.approx(np.sum(features.astype("float64") ** 2), rel=1e-4)  # Σσ² = ‖F‖²


@pytest.mark.parametrize(
    "features",
    [
        np.repeat(RNG.normal(size=(1, 4)), 5, axis=0),  # rank 1: repeated zero singular values
        np.zeros((4, 4)),
        np.tile(np.eye(3), (2, 1)),  # all singular values equal
    ],
)
def test_gradients_are_finite_on_degenerate_batches(features):
    value, (grad,) = value_and_grad(lambda t: BSS(eta=1.0, k=2)(t[0]), [features])
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_validation_errors():
    with pytest.raises(ValueError, match=r"Expected eta >= 0 \(a float\). Received: eta=-1"):
        BSS(eta=-1)
    with pytest.raises(ValueError, match=r"Expected k >= 1 \(an int\). Received: k=0"):
        BSS(k=0)
    with pytest.raises(ValueError, match=r"Expected k >= 1 \(an int\). Received: k=1.5"):
        BSS(k=1.5)


def test_config_round_trip():
    reg = BSS(eta=0.01, k=2)
    assert BSS.from_config(reg.get_config()).get_config() == {"name": "bss", "eta": 0.01, "k": 2}
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(reg))
    assert isinstance(restored, BSS) and restored.k == 2


def test_fit_with_dtnh_and_save_load(tmp_path):
    fit_save_reload(BSS(eta=0.1, k=1), tmp_path)
