import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.regularizers import CoTuning
from tests.conftest import tiny_source, value_and_grad
from tests.regularizers.output_level import fit_save_reload

RNG = np.random.default_rng(2)
RELATIONSHIP = RNG.dirichlet(np.ones(5), size=3).astype("float32")  # [M=3, N=5]
LOGITS = RNG.normal(size=(4, 5))
LABELS = np.array([0, 2, 1, 2], "int32")


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("labels", [LABELS, LABELS[:, None], np.eye(3, dtype="float32")[LABELS]])
def test_value_and_gradient_match_numpy(labels):
    reg = CoTuning(lam=0.7, relationship=RELATIONSHIP)
    value, (grad,) = value_and_grad(lambda t: reg(t[0], labels), [LOGITS])
    targets = RELATIONSHIP[LABELS].astype("float64")
    assert value == pytest.approx(0.7 * np.mean(-np.sum(targets * log_softmax(LOGITS), axis=1)), rel=1e-5)
    softmax = np.exp(log_softmax(LOGITS))
    np.testing.assert_allclose(grad, 0.7 / 4 * (softmax - targets), rtol=1e-4, atol=1e-6)


def test_relationship_variable_drives_the_term():
    reg = CoTuning(lam=1.0, relationship=RELATIONSHIP)
    uniform = np.full((3, 5), 0.2, "float32")
    reg.relationship.assign(uniform)  # what a callback refreshing p(ȳ|y) would do
    value = float(keras.ops.convert_to_numpy(reg(LOGITS.astype("float32"), LABELS)))
    assert value == pytest.approx(np.mean(-np.sum(0.2 * log_softmax(LOGITS), axis=1)), rel=1e-5)
    assert CoTuning.from_config(reg.get_config()).get_config()["relationship"] == uniform.tolist()


def test_validation_errors():
    with pytest.raises(ValueError, match=r"Expected lam >= 0 \(a float\). Received: lam=-2"):
        CoTuning(lam=-2, relationship=RELATIONSHIP)
    with pytest.raises(ValueError, match=r"Expected relationship to be an \[M, N\] matrix .* shape \(0,\)"):
        CoTuning(lam=1.0)
    with pytest.raises(
        ValueError, match=r"non-negative rows summing to 1. Received: relationship of shape \(2, 2\)"
    ):
        CoTuning(relationship=[[0.5, 0.4], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        CoTuning(relationship=[[1.5, -0.5], [0.5, 0.5]])


def test_relationship_width_must_match_the_source_head():
    reg = CoTuning(relationship=np.full((3, 4), 0.25))
    with pytest.raises(
        ValueError, match=r"one column per upstream class \(5 source head outputs\). Received 4"
    ):
        keras_tl.TransferModel(tiny_source(), 3, keep_source_head=True, regularizers=[reg])


def test_config_round_trip():
    reg = CoTuning(lam=2.3, relationship=RELATIONSHIP)
    config = reg.get_config()
    assert config["lam"] == 2.3 and config["name"] == "co_tuning"
    np.testing.assert_array_equal(np.asarray(config["relationship"], "float32"), RELATIONSHIP)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(reg))
    assert restored.get_config() == config


def test_fit_with_dtnh_and_save_load(tmp_path):
    fit_save_reload(CoTuning(lam=2.3, relationship=RELATIONSHIP), tmp_path)
