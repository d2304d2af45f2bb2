import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.regularizers import DiscrepantDiffusion
from tests.conftest import tiny_source, value_and_grad
from tests.regularizers.output_level import fit_save_reload

RNG = np.random.default_rng(5)
SEQUENCES = [[0, 1], [0, 2], [3, 1]]  # S^m for M=3 downstream classes, N=5 upstream classes
LOGITS = RNG.normal(size=(4, 5)) * 2
LABELS = np.array([2, 0, 1, 2], "int32")


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_value_and_gradient_match_numpy():
    reg = DiscrepantDiffusion(lam=0.01, sequences=SEQUENCES)
    value, (grad,) = value_and_grad(lambda t: reg(t[0], LABELS), [LOGITS])
    targets = np.zeros((3, 5))
    for m, row in enumerate(SEQUENCES):
        targets[m, row] = 1
    t, h = targets[LABELS], sigmoid(LOGITS)
    eq5 = -np.sum(t * np.log(h) + (1 - t) * np.log(1 - h), axis=1)  # Σ_n over upstream classes
    assert value == pytest.approx(0.01 * np.mean(eq5), rel=1e-5)
    np.testing.assert_allclose(grad, 0.01 / 4 * (h - t), rtol=1e-4, atol=1e-8)


def test_ragged_sequences_and_default_lambda():
    reg = DiscrepantDiffusion(sequences=[[4], [0, 2, 1], []])
    assert reg.lam == 0.001
    value, _ = value_and_grad(lambda t: reg(t[0], np.array([0, 1, 2])), [np.zeros((3, 5))])
    assert value == pytest.approx(0.001 * 5 * np.log(2), rel=1e-5)  # σ(0) = ½ on every class


def test_validation_errors():
    with pytest.raises(ValueError, match=r"Expected lam >= 0 \(a float\). Received: lam=-0.1"):
        DiscrepantDiffusion(lam=-0.1, sequences=SEQUENCES)
    with pytest.raises(ValueError, match=r"Expected sequences to be a non-empty list"):
        DiscrepantDiffusion(lam=0.1)
    with pytest.raises(
        ValueError, match=r"Expected sequences\[1\] to hold distinct int class ids >= 0. Received: \[0, 0\]"
    ):
        DiscrepantDiffusion(sequences=[[1], [0, 0]])
    with pytest.raises(
        ValueError, match=r"Expected sequences\[0\] to hold distinct int class ids >= 0. Received: \[-1\]"
    ):
        DiscrepantDiffusion(sequences=[[-1]])


def test_ids_beyond_the_source_head_fail_at_model_construction():
    reg = DiscrepantDiffusion(sequences=[[0], [7], [1]])
    with pytest.raises(ValueError, match=r"Expected the sequences' upstream class ids < 5 .* Received id 7"):
        keras_tl.TransferModel(tiny_source(), 3, keep_source_head=True, regularizers=[reg])


def test_config_round_trip():
    reg = DiscrepantDiffusion(lam=0.01, sequences=SEQUENCES)
    config = {"name": "discrepant_diffusion", "lam": 0.01, "sequences": SEQUENCES}
    assert DiscrepantDiffusion.from_config(reg.get_config()).get_config() == config
    assert (
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(reg)).get_config() == config
    )


def test_fit_eq7_with_dtnh_and_save_load(tmp_path):
    # Eq. 7 with the BCE of Eq. 6 (the contract test runs it with softmax cross-entropy).
    loss = keras_tl.losses.SparseBinaryCrossentropy()
    _, _, restored = fit_save_reload(DiscrepantDiffusion(lam=0.01, sequences=SEQUENCES), tmp_path, loss)
    assert isinstance(restored.loss, keras_tl.losses.SparseBinaryCrossentropy)
