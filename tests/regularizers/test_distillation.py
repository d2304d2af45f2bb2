import numpy as np
import pytest

from keras_tl.regularizers import FeatureMapDistillation
from tests.conftest import value_and_grad
from tests.regularizers.feature_checks import (
    model_with,
    perturb_target,
    random_maps,
    regularizer_gradient_norms,
)

TARGET, SOURCE = random_maps(0), random_maps(1)
NAMES = sorted(TARGET)


def test_value_and_gradient_match_numpy():
    reg = FeatureMapDistillation(relative=False, alpha=0.3)

    def fn(tensors):
        return reg(dict(zip(NAMES, tensors, strict=True)), SOURCE)

    value, grads = value_and_grad(fn, [TARGET[n] for n in NAMES])
    # The default reduction sums over the batch (the DELTA authors' `reg_fea_map`).
    want = 0.3 * sum(0.5 * np.sum((TARGET[n] - SOURCE[n]) ** 2) for n in NAMES)
    assert value == pytest.approx(want, rel=1e-5)
    for name, grad in zip(NAMES, grads, strict=True):
        np.testing.assert_allclose(grad, 0.3 * (TARGET[name] - SOURCE[name]), rtol=1e-5, atol=1e-6)


def test_batch_reduction_sum_doubles_and_mean_does_not():
    # The same examples twice: a batch sum doubles, a batch mean does not change.
    doubled = {n: np.concatenate([v, v]) for n, v in TARGET.items()}
    doubled_source = {n: np.concatenate([v, v]) for n, v in SOURCE.items()}
    summed = FeatureMapDistillation(relative=False, alpha=1.0)
    mean = FeatureMapDistillation(relative=False, alpha=1.0, reduction="mean")
    assert float(summed(doubled, doubled_source)) == pytest.approx(
        2 * float(summed(TARGET, SOURCE)), rel=1e-6
    )
    assert float(mean(doubled, doubled_source)) == pytest.approx(float(mean(TARGET, SOURCE)), rel=1e-6)
    batch = TARGET[NAMES[0]].shape[0]
    assert float(mean(TARGET, SOURCE)) == pytest.approx(float(summed(TARGET, SOURCE)) / batch, rel=1e-6)


def test_mismatched_taps_and_shapes_are_errors():
    reg = FeatureMapDistillation()
    with pytest.raises(ValueError, match=r"target-only=\['a_tap'\], source-only=\[\]"):
        reg(TARGET, {"b_tap": SOURCE["b_tap"]})
    with pytest.raises(ValueError, match=r"Expected matching shapes for feature map 'a_tap'"):
        reg(TARGET, {**SOURCE, "a_tap": SOURCE["a_tap"][..., :2]})


def test_validation_and_config():
    with pytest.raises(ValueError, match=r"Expected alpha >= 0 \(a float\). Received: alpha=-1"):
        FeatureMapDistillation(relative=False, alpha=-1)
    with pytest.raises(
        ValueError, match=r"Expected reduction to be one of \('sum', 'mean'\). Received: reduction='avg'"
    ):
        FeatureMapDistillation(reduction="avg")
    config = FeatureMapDistillation(relative=False, alpha=0.2).get_config()
    assert config == {"name": "feature_map_distillation", "alpha": 0.2, "relative": False, "reduction": "sum"}


def test_gradient_reaches_the_target_and_never_the_source():
    model = perturb_target(model_with(FeatureMapDistillation(relative=False, alpha=1.0)))
    target_norm, source_norm = regularizer_gradient_norms(model)
    assert target_norm > 1e-3 and source_norm == 0.0
