"""`keras_tl.projection` against a numpy restatement of TPGM's `utils/tpgm.py`, in PyTorch's layout."""

import numpy as np
import pytest
from keras import ops

from keras_tl import projection
from tests.conftest import value_and_grad


def torch_norms(t, mode):
    """`_project_ratio` of PotatoTian/TPGM `DomainNet_ResNet_Exp/utils/tpgm.py` on a PyTorch-layout tensor."""
    if "l2" in mode:
        return np.sqrt(np.sum(t**2))
    if t.ndim == 4:
        return np.sum(np.abs(t), axis=(1, 2, 3), keepdims=True)
    if t.ndim == 2:
        return np.sum(np.abs(t), axis=1, keepdims=True)
    return np.abs(t)


def torch_clip(constraint, norms):
    """`_clip`: non-positive -> 1e-8; every ratio above 1 -> the largest norm."""
    if constraint <= 0:
        constraint = 1e-8
    if np.min(max(constraint, 0.0) / (norms + 1e-8)) > 1:
        constraint = np.max(norms)
    return constraint


def torch_project(new, anchor, constraint, mode):
    t = new - anchor
    norms = torch_norms(t, mode)
    ratio = np.clip(max(constraint, 0.0) / (norms + 1e-8), 0.0, 1.0)  # Hardtanh(0, 1)(ReLU(c) / n)
    return anchor + t * ratio


def to_torch(kernel):
    """Keras `(kh, kw, in, out)` / `(in, out)` -> PyTorch `(out, in, kh, kw)` / `(out, in)`."""
    if kernel.ndim == 4:
        return kernel.transpose(3, 2, 0, 1)
    if kernel.ndim == 2:
        return kernel.T
    return kernel


RNG = np.random.default_rng(0)
SHAPES = [(3, 3, 4, 5), (6, 4), (7,)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("norm", ["mars", "l2"])
def test_project_matches_reference_code(shape, norm):
    anchor = RNG.normal(size=shape).astype("float32")
    theta = anchor + RNG.normal(scale=0.3, size=shape).astype("float32")
    norms = torch_norms(to_torch(theta - anchor).astype("float64"), norm)
    # Radii that leave some rows inside the ball and pull others in.
    for radius in (float(np.median(norms)), float(np.min(norms)) / 2, float(np.max(norms)) * 2):
        got = ops.convert_to_numpy(projection.project(theta, anchor, radius, norm))
        want = torch_project(
            to_torch(theta).astype("float64"), to_torch(anchor).astype("float64"), radius, norm
        )
        np.testing.assert_allclose(to_torch(got), want, rtol=1e-5, atol=1e-6)
        keras_norms = ops.convert_to_numpy(projection.distance_norms(theta - anchor, norm))
        np.testing.assert_allclose(np.ravel(keras_norms), np.ravel(norms), rtol=1e-5)


def test_projected_rows_are_within_the_radius():
    anchor = RNG.normal(size=(3, 3, 4, 5)).astype("float32")
    theta = anchor + RNG.normal(size=anchor.shape).astype("float32")
    projected = ops.convert_to_numpy(projection.project(theta, anchor, 2.0, "mars"))
    rows = np.sum(np.abs(projected - anchor), axis=(0, 1, 2))
    assert np.all(rows <= 2.0 + 1e-5)
    before = np.sum(np.abs(theta - anchor), axis=(0, 1, 2))
    inside = before <= 2.0
    np.testing.assert_allclose(projected[..., inside], theta[..., inside])


@pytest.mark.parametrize("shape", SHAPES)
def test_radius_gradient_is_hardtanh_derivative(shape):
    anchor = RNG.normal(size=shape).astype("float32")
    theta = anchor + RNG.normal(scale=0.3, size=shape).astype("float32")
    weights = RNG.normal(size=shape).astype("float32")
    norms = torch_norms(to_torch(theta - anchor).astype("float64"), "mars")
    middle = np.sort(np.ravel(norms))[len(np.ravel(norms)) // 2 - 1 :][:2]
    radius = float(np.mean(middle))  # between two rows: no ratio sits on Hardtanh's bound

    def loss(values):
        return ops.sum(projection.project(values[1], values[2], values[0], "mars") * values[3])

    _, grads = value_and_grad(loss, [np.float32(radius), theta, anchor, weights])
    # d/dγ Σ w·(θ0 + r·Δ) = Σ_rows 1[γ/n < 1] / (n + 1e-8) · ⟨w_row, Δ_row⟩ (Hardtanh passes (0, 1) only).
    t, w = to_torch(theta - anchor).astype("float64"), to_torch(weights).astype("float64")
    inside = (radius / (norms + 1e-8)) < 1
    want = np.sum(np.where(inside, w * t / (norms + 1e-8), 0.0))
    np.testing.assert_allclose(grads[0], want, rtol=1e-4)
    np.testing.assert_array_equal(grads[1], 0.0)  # θ and θ0 are constants of the projection
    np.testing.assert_array_equal(grads[2], 0.0)


@pytest.mark.parametrize("radius", [-1.0, 0.0, 0.05, 0.7, 50.0])
def test_initial_and_clipped_radius(radius):
    delta = RNG.normal(size=(6, 4)).astype("float32")
    norms = projection.distance_norms(delta, "mars")
    torch_n = torch_norms(to_torch(delta).astype("float64"), "mars")
    np.testing.assert_allclose(
        ops.convert_to_numpy(projection.initial_radius(norms)), torch_n.min() / 2, rtol=1e-6
    )
    got = float(ops.convert_to_numpy(projection.clip_radius(np.float32(radius), norms)))
    np.testing.assert_allclose(got, torch_clip(radius, torch_n), rtol=1e-6)


def test_unknown_norm():
    with pytest.raises(ValueError, match=r"Expected norm to be one of \('mars', 'l2'\). Received: norm='l1'"):
        projection.project(np.ones(3), np.zeros(3), 1.0, "l1")
