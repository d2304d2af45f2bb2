"""The scale-free (`relative=True`) feature-map terms: values, gradients, invariances, the mapping to the authors'."""

import numpy as np
import pytest

from keras_tl.regularizers import ACT, AST, DELTA, GCA, SPA, FeatureMapDistillation
from tests.conftest import value_and_grad
from tests.regularizers.feature_checks import random_maps

TARGET, SOURCE = random_maps(0), random_maps(1)
NAMES = sorted(TARGET)
WEIGHTS = {"a_tap": [0.5, 1.0, 2.0, 0.1, 3.0], "b_tap": [1.0, 2.0, 0.5, 0.25, 1.0, 4.0]}


def numpy_relative(alpha, target, source, channel_weights=None):
    """α/2 · mean over taps of Σ_b Σ_{h,w,c} w̃_c (t − s)² / Σ_b Σ_{h,w,c} s², from the definition."""
    ratios = []
    for name in sorted(target):
        t, s = target[name].astype("float64"), source[name].astype("float64")
        weights = np.ones(t.shape[-1])
        if channel_weights is not None:
            weights = np.asarray(channel_weights[name], "float64")
            weights = weights * len(weights) / weights.sum()
        ratios.append(np.sum(weights * (t - s) ** 2) / np.sum(s**2))
    return 0.5 * alpha * np.mean(ratios)


def test_knowdist_and_delta_match_the_definition_and_its_gradient():
    for reg, weights in ((FeatureMapDistillation(alpha=3.0), None), (DELTA(alpha=3.0, channel_weights=WEIGHTS), WEIGHTS)):

        def fn(tensors, reg=reg):
            return reg(dict(zip(NAMES, tensors, strict=True)), SOURCE)

        value, grads = value_and_grad(fn, [TARGET[n] for n in NAMES])
        assert value == pytest.approx(numpy_relative(3.0, TARGET, SOURCE, weights), rel=1e-5)
        for name, grad in zip(NAMES, grads, strict=True):
            w = np.ones(5 if name == "a_tap" else 6) if weights is None else np.asarray(weights[name])
            w = w * len(w) / w.sum()
            # ∂/∂t of α/2·(1/L)·Σ w(t − s)²/E_l is α/L·w(t − s)/E_l (E_l summed over the batch: the means' B cancels).
            want = 3.0 / len(NAMES) * w * (TARGET[name] - SOURCE[name]) / np.sum(SOURCE[name].astype("float64") ** 2)
            np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "make",
    [
        lambda: FeatureMapDistillation(alpha=2.0),
        lambda: DELTA(alpha=2.0, channel_weights=WEIGHTS),
        lambda: AST(alpha=2.0),
        lambda: ACT(alpha=2.0),
        lambda: SPA(alpha=2.0),
        lambda: GCA(alpha=2.0, reduction=2),
    ],
    ids=["knowdist", "delta", "ast", "act", "spa", "gca"],
)
def test_relative_terms_do_not_change_with_the_features_scale_or_the_batch_size(make):
    reg = make()
    base = float(reg(TARGET, SOURCE))
    assert base > 0
    doubled = float(reg({n: np.concatenate([v, v]) for n, v in TARGET.items()},
                        {n: np.concatenate([v, v]) for n, v in SOURCE.items()}))
    assert doubled == pytest.approx(base, rel=1e-5) and not reg.sums_over_batch
    if not hasattr(reg, "attention"):  # a learned attention sees the maps' scale; the distance itself does not
        scaled = float(reg({n: 7.0 * v for n, v in TARGET.items()}, {n: 7.0 * v for n, v in SOURCE.items()}))
        assert scaled == pytest.approx(base, rel=1e-4)


def test_relative_knowdist_and_delta_do_not_change_with_the_resolution():
    # Nearest-neighbour upsampling ×2 quadruples both the distance and the energy of every tap.
    up = lambda maps: {n: np.repeat(np.repeat(v, 2, axis=1), 2, axis=2) for n, v in maps.items()}  # noqa: E731
    for reg in (FeatureMapDistillation(alpha=2.0), DELTA(alpha=2.0, channel_weights=WEIGHTS)):
        assert float(reg(up(TARGET), up(SOURCE))) == pytest.approx(float(reg(TARGET, SOURCE)), rel=1e-5)


def test_the_documented_mapping_to_the_authors_alpha():
    """One tap: relative α gives the authors' batch-summed term at α_sum = α / (L·B·E), E = mean_b ‖FM_s‖²."""
    target, source = {"a_tap": TARGET["a_tap"]}, {"a_tap": SOURCE["a_tap"]}
    batch = source["a_tap"].shape[0]
    energy = np.sum(source["a_tap"].astype("float64") ** 2) / batch
    relative = float(FeatureMapDistillation(alpha=5.0)(target, source))
    authors = float(FeatureMapDistillation(alpha=5.0 / (1 * batch * energy), relative=False)(target, source))
    assert relative == pytest.approx(authors, rel=1e-5)
    positions = source["a_tap"].shape[1] * source["a_tap"].shape[2]
    delta_authors = DELTA(alpha=5.0 * positions / (batch * energy), channel_weights="uniform", relative=False)
    assert float(DELTA(alpha=5.0, channel_weights="uniform")(target, source)) == pytest.approx(
        float(delta_authors(target, source)), rel=1e-5
    )
    mean_authors = AST(alpha=5.0 / energy, relative=False)
    reg = AST(alpha=5.0)
    reg(target, source)
    mean_authors(target, source)
    for a, b in zip(reg.attention["a_tap"].weights, mean_authors.attention["a_tap"].weights, strict=True):
        b.assign(np.asarray(a))
    assert float(reg(target, source)) == pytest.approx(float(mean_authors(target, source)), rel=1e-5)


def test_a_zero_source_map_does_not_divide_by_zero():
    zero = {n: np.zeros_like(v) for n, v in SOURCE.items()}
    assert np.isfinite(float(FeatureMapDistillation()(TARGET, zero)))


def test_configs_of_keras_tl_0_1_keep_the_authors_convention():
    old = {"name": "feature_map_distillation", "alpha": 0.01, "reduction": "sum"}  # no "relative" key
    assert FeatureMapDistillation.from_config(old).relative is False
    assert FeatureMapDistillation.from_config({**old, "relative": True}).relative is True
    with pytest.raises(ValueError, match=r"Expected relative to be True or False. Received: relative=1"):
        FeatureMapDistillation(relative=1)
