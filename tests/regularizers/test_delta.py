import json

import numpy as np
import pytest

from keras_tl.regularizers import DELTA, FeatureMapDistillation
from tests.conftest import value_and_grad
from tests.regularizers.feature_checks import (
    SHAPES,
    model_with,
    perturb_target,
    random_maps,
    regularizer_gradient_norms,
)

TARGET, SOURCE = random_maps(0), random_maps(1)
NAMES = sorted(TARGET)
RNG = np.random.default_rng(4)
WEIGHTS = {name: list(RNG.uniform(0.1, 2.0, shape[-1])) for name, shape in SHAPES.items()}


def test_value_and_gradient_match_numpy():
    reg = DELTA(relative=False, alpha=0.4, channel_weights=WEIGHTS)

    def fn(tensors):
        return reg(dict(zip(NAMES, tensors, strict=True)), SOURCE)

    value, grads = value_and_grad(fn, [TARGET[n] for n in NAMES])
    want = 0.0
    for name, grad in zip(NAMES, grads, strict=True):
        w = np.asarray(WEIGHTS[name])
        scaled = len(w) * w / w.sum()  # averages 1 per layer
        diff = TARGET[name] - SOURCE[name]
        positions = diff.shape[1] * diff.shape[2]  # mean over positions, sum over the batch
        want += 0.5 * np.sum(scaled * np.sum(diff**2, axis=(1, 2))) / positions
        np.testing.assert_allclose(grad, 0.4 * scaled * diff / positions, rtol=1e-5, atol=1e-6)
    assert value == pytest.approx(0.4 * want, rel=1e-5)


def test_uniform_weights_are_distillation_per_position_and_only_ratios_matter():
    uniform = {name: [1.0] * shape[-1] for name, shape in SHAPES.items()}
    distillation = sum(
        float(FeatureMapDistillation(relative=False, alpha=0.4)({n: TARGET[n]}, {n: SOURCE[n]})) / (s[1] * s[2])
        for n, s in SHAPES.items()
    )
    assert float(DELTA(relative=False, alpha=0.4, channel_weights=uniform)(TARGET, SOURCE)) == pytest.approx(
        distillation, rel=1e-5
    )
    scaled = {name: [7.0 * v for v in values] for name, values in WEIGHTS.items()}
    assert float(DELTA(relative=False, alpha=0.4, channel_weights=scaled)(TARGET, SOURCE)) == pytest.approx(
        float(DELTA(relative=False, alpha=0.4, channel_weights=WEIGHTS)(TARGET, SOURCE)), rel=1e-5
    )


def test_uniform_is_delta_without_attention_and_round_trips():
    ones = {name: [1.0] * shape[-1] for name, shape in SHAPES.items()}
    reg = DELTA(relative=False, alpha=0.4, channel_weights="uniform")
    value = float(reg(TARGET, SOURCE))
    assert value == pytest.approx(float(DELTA(relative=False, alpha=0.4, channel_weights=ones)(TARGET, SOURCE)), rel=1e-6)
    config = json.loads(json.dumps(reg.get_config()))
    assert config["channel_weights"] == "uniform"
    assert float(DELTA.from_config(config)(TARGET, SOURCE)) == pytest.approx(value, rel=1e-6)
    with pytest.raises(ValueError, match=r"or 'uniform'. Received: channel_weights='Uniform'"):
        DELTA(channel_weights="Uniform")


def test_channel_weights_must_match_the_taps():
    with pytest.raises(ValueError, match=r"channel_weights layers=\['a_tap'\], taps=\['a_tap', 'b_tap'\]"):
        DELTA(channel_weights={"a_tap": WEIGHTS["a_tap"]})(TARGET, SOURCE)
    with pytest.raises(
        ValueError, match=r"one channel weight per channel of tap 'b_tap' \(6\). Received: 5 weights"
    ):
        DELTA(channel_weights={**WEIGHTS, "b_tap": [1.0] * 5})(TARGET, SOURCE)


@pytest.mark.parametrize(
    "weights, match",
    [
        (None, r"Expected channel_weights to be a non-empty dict"),
        ({}, r"Expected channel_weights to be a non-empty dict"),
        ({"a": [1.0, -1.0]}, r"Received: channel_weights\['a'\]=\[1.0, -1.0\]"),
        ({"a": [0.0, 0.0]}, r"with a positive sum"),
        ({"a": [float("nan")]}, r"finite"),
        ({"a": "xy"}, r"Received: channel_weights\['a'\]='xy'"),
    ],
)
def test_invalid_channel_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        DELTA(relative=False, alpha=0.1, channel_weights=weights)


def test_mean_reduction_divides_by_the_batch():
    batch = TARGET[NAMES[0]].shape[0]
    summed = float(DELTA(relative=False, alpha=0.4, channel_weights=WEIGHTS)(TARGET, SOURCE))
    mean = float(DELTA(relative=False, alpha=0.4, channel_weights=WEIGHTS, reduction="mean")(TARGET, SOURCE))
    assert mean == pytest.approx(summed / batch, rel=1e-6)


def test_config_holds_the_weights_as_json():
    reg = DELTA(relative=False, alpha=0.02, channel_weights={k: np.asarray(v) for k, v in WEIGHTS.items()})
    config = json.loads(json.dumps(reg.get_config()))
    assert (
        config["alpha"] == 0.02
        and config["reduction"] == "sum"
        and sorted(config["channel_weights"]) == NAMES
    )
    for name in NAMES:
        np.testing.assert_allclose(config["channel_weights"][name], WEIGHTS[name], rtol=1e-12)
    assert float(DELTA.from_config(config)(TARGET, SOURCE)) == pytest.approx(
        float(reg(TARGET, SOURCE)), rel=1e-6
    )


def test_gradient_reaches_the_target_and_never_the_source():
    from tests.regularizers.contract_examples_feature import uneven_channel_weights

    model = perturb_target(model_with(DELTA(relative=False, alpha=1.0, channel_weights=uneven_channel_weights())))
    target_norm, source_norm = regularizer_gradient_norms(model)
    assert target_norm > 1e-3 and source_norm == 0.0
