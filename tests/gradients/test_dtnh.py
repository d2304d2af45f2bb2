import json

import keras
import numpy as np
import pytest

from keras_tl.gradients import DTNH, angle_degrees, dtnh


def dtnh_reference(loss_grads, reg_grads, reg_weight=1.0, granularity="global"):
    """Algorithm 1 written out in numpy."""
    if granularity == "global":
        j = np.concatenate([g.ravel() for g in loss_grads])
        r = np.concatenate([g.ravel() for g in reg_grads])
        inner = j @ r
        coeff = inner / (j @ j) if inner < 0 else 0.0
        return [gj + reg_weight * (gr - coeff * gj) for gj, gr in zip(loss_grads, reg_grads, strict=True)], float(inner < 0)
    out, projected = [], []
    for gj, gr in zip(loss_grads, reg_grads, strict=True):
        inner = np.sum(gj * gr)
        coeff = inner / np.sum(gj * gj) if inner < 0 else 0.0
        out.append(gj + reg_weight * (gr - coeff * gj))
        projected.append(float(inner < 0))
    return out, float(np.mean(projected))


def as_numpy(tensors):
    return [keras.ops.convert_to_numpy(t) for t in tensors]


CASES = {
    # name: (loss_grads, reg_grads)
    "acute": ([np.array([1.0, 2.0]), np.array([[0.5]])], [np.array([1.0, 0.0]), np.array([[1.0]])]),
    "obtuse": ([np.array([1.0, 0.0]), np.array([[1.0]])], [np.array([-3.0, 1.0]), np.array([[0.5]])]),
    "orthogonal": ([np.array([1.0, 0.0]), np.array([[0.0]])], [np.array([0.0, 2.0]), np.array([[0.0]])]),
    "zero_loss_grad": ([np.zeros(2), np.zeros((1, 1))], [np.array([-1.0, 1.0]), np.array([[2.0]])]),
    # Obtuse for the first variable only: global and per-variable disagree.
    "mixed": ([np.array([1.0, 0.0]), np.array([[2.0]])], [np.array([-1.0, 1.0]), np.array([[3.0]])]),
}


@pytest.mark.parametrize("granularity", ["global", "per_variable"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_dtnh_matches_numpy(case, granularity):
    loss_grads, reg_grads = CASES[case]
    expected, expected_projected = dtnh_reference(loss_grads, reg_grads, 0.5, granularity)
    directions, projected = dtnh(loss_grads, reg_grads, reg_weight=0.5, granularity=granularity)
    for got, want in zip(as_numpy(directions), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert float(projected) == pytest.approx(expected_projected)
    assert all(np.all(np.isfinite(d)) for d in as_numpy(directions))


def test_acute_is_the_plain_sum_and_obtuse_removes_the_conflict():
    loss_grads, reg_grads = CASES["acute"]
    directions, projected = dtnh(loss_grads, reg_grads)
    np.testing.assert_allclose(as_numpy(directions)[0], loss_grads[0] + reg_grads[0])
    assert float(projected) == 0.0

    loss_grads, reg_grads = CASES["obtuse"]
    directions, projected = dtnh(loss_grads, reg_grads)
    flat_d = np.concatenate([d.ravel() for d in as_numpy(directions)])
    flat_j = np.concatenate([g.ravel() for g in loss_grads])
    flat_r = np.concatenate([g.ravel() for g in reg_grads])
    # The corrected regularizer part d - ∇J is orthogonal to ∇J, so ⟨d, ∇J⟩ = ‖∇J‖².
    assert (flat_d - flat_j) @ flat_j == pytest.approx(0.0, abs=1e-6)
    assert flat_d @ flat_j == pytest.approx(flat_j @ flat_j)
    assert flat_j @ flat_r < 0 and float(projected) == 1.0


def test_zero_loss_gradient_gives_no_nan():
    loss_grads, reg_grads = CASES["zero_loss_grad"]
    for granularity in ("global", "per_variable"):
        directions, _ = dtnh(loss_grads, reg_grads, granularity=granularity)
        for got, want in zip(as_numpy(directions), reg_grads, strict=True):
            np.testing.assert_allclose(got, want)


def test_angles_in_degrees():
    assert float(angle_degrees([np.array([1.0, 0.0])], [np.array([0.0, 3.0])])) == pytest.approx(90.0, abs=1e-4)
    assert float(angle_degrees([np.array([1.0, 1.0])], [np.array([1.0, 0.0])])) == pytest.approx(45.0, abs=1e-4)
    assert float(angle_degrees([np.zeros(2)], [np.array([1.0, 0.0])])) == pytest.approx(0.0)


@pytest.mark.parametrize("granularity", ["global", "per_variable"])
@pytest.mark.parametrize("case", ["obtuse", "mixed"])
def test_rule_stats_follow_section_v_d(case, granularity):
    loss_grads, reg_grads = CASES[case]
    directions, stats = DTNH(reg_weight=0.7, granularity=granularity)(loss_grads, reg_grads)
    expected_directions, expected_projected = dtnh_reference(loss_grads, reg_grads, 0.7, granularity)
    for got, want in zip(as_numpy(directions), expected_directions, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    plain = [j + 0.7 * r for j, r in zip(loss_grads, reg_grads, strict=True)]
    expected = {
        "angle_d_loss": angle_degrees(directions, loss_grads),
        "angle_d_reg": angle_degrees(directions, reg_grads),
        "angle_sum_loss": angle_degrees(plain, loss_grads),
        "angle_sum_reg": angle_degrees(plain, reg_grads),
    }
    for key, value in expected.items():
        assert float(stats[key]) == pytest.approx(float(value), abs=1e-4)
    assert float(stats["projected"]) == pytest.approx(expected_projected)
    # Assumption 1: the corrected direction is closer to ∇J than the plain sum.
    if expected_projected:
        assert float(stats["angle_d_loss"]) < float(stats["angle_sum_loss"])
    else:
        assert float(stats["angle_d_loss"]) == pytest.approx(float(stats["angle_sum_loss"]))


def test_validation_errors():
    with pytest.raises(ValueError, match=r"Expected granularity to be one of .*Received: granularity='layer'"):
        DTNH(granularity="layer")
    with pytest.raises(ValueError, match=r"Expected reg_weight >= 0.*Received: reg_weight=-1"):
        DTNH(reg_weight=-1)
    with pytest.raises(ValueError, match="Expected as many regularizer gradients"):
        dtnh([np.ones(2)], [])


def test_serialization_round_trip():
    rule = DTNH(reg_weight=0.5, granularity="per_variable")
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(rule)))
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, DTNH)
    assert restored.get_config() == {"reg_weight": 0.5, "granularity": "per_variable"}
