import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.losses import PriorGuidedDiffusion, SparseBinaryCrossentropy
from tests.conftest import tiny_data, tiny_source, value_and_grad

RNG = np.random.default_rng(6)
NEIGHBOURS = [[1, 3], [0], [], [2]]  # N(c) besides c, for N = 4 upstream classes
LOGITS = RNG.normal(size=(5, 4)) * 2
LABELS = np.array([0, 1, 2, 3, 0])


def numpy_pgd(logits, labels, neighbours, tau):
    """Eq. 3 per example, with N(ȳ) = {ȳ} ∪ neighbours[ȳ], mean over the batch."""
    total = 0.0
    for row, label in zip(logits, labels, strict=True):
        shifted = row.astype("float64").copy()
        for n in [label, *neighbours[label]]:
            shifted[n] -= np.log(tau)
        y = np.eye(len(row))[label]
        h = 1 / (1 + np.exp(-shifted))
        total += -np.sum(y * np.log(h) + (1 - y) * np.log(1 - h))
    return total / len(labels)


def test_value_matches_eq3():
    loss = PriorGuidedDiffusion(tau=100, neighbours=NEIGHBOURS)
    value = float(keras.ops.convert_to_numpy(loss(LABELS, LOGITS.astype("float32"))))
    assert value == pytest.approx(numpy_pgd(LOGITS, LABELS, NEIGHBOURS, 100.0), rel=1e-5)


def test_the_three_gradient_cases_of_eq4():
    tau = 100.0
    loss = PriorGuidedDiffusion(tau=tau, neighbours=NEIGHBOURS)
    _, (grad,) = value_and_grad(lambda t: loss(LABELS, t[0]), [LOGITS])
    magnitude = np.abs(grad) * len(LABELS)  # undo the batch mean
    e = np.exp(LOGITS)
    for i, label in enumerate(LABELS):
        for n in range(4):
            if n == label:
                want = tau / (tau + e[i, n])
            elif n in NEIGHBOURS[label]:
                want = e[i, n] / (tau + e[i, n])
            else:
                want = e[i, n] / (1 + e[i, n])
            assert magnitude[i, n] == pytest.approx(want, rel=1e-4, abs=1e-7), (i, n)
    # The ground truth is pushed up (negative gradient), every other class down.
    assert np.all(grad[np.arange(5), LABELS] < 0)


def test_tau_one_is_the_sparse_binary_crossentropy():
    plain = PriorGuidedDiffusion(tau=1.0, neighbours=NEIGHBOURS)(LABELS, LOGITS.astype("float32"))
    bce = SparseBinaryCrossentropy()(LABELS, LOGITS.astype("float32"))
    h = 1 / (1 + np.exp(-LOGITS))
    y = np.eye(4)[LABELS]
    want = np.mean(-np.sum(y * np.log(h) + (1 - y) * np.log(1 - h), axis=1))
    assert float(keras.ops.convert_to_numpy(plain)) == pytest.approx(want, rel=1e-5)
    assert float(keras.ops.convert_to_numpy(bce)) == pytest.approx(want, rel=1e-5)
    # Keras' BinaryCrossentropy averages over the classes; ours sums them (Eq. 3 and 6).
    keras_bce = keras.losses.BinaryCrossentropy(from_logits=True)(y, LOGITS)
    assert float(keras.ops.convert_to_numpy(keras_bce)) * 4 == pytest.approx(want, rel=1e-5)


def test_validation_errors():
    with pytest.raises(ValueError, match=r"Expected tau > 0 \(a float\). Received: tau=0"):
        PriorGuidedDiffusion(tau=0, neighbours=NEIGHBOURS)
    with pytest.raises(ValueError, match=r"Expected neighbours to be a non-empty list"):
        PriorGuidedDiffusion(tau=100)
    with pytest.raises(
        ValueError, match=r"Expected neighbours\[1\] to hold distinct int class ids \[0, 2\). Received: \[2\]"
    ):
        PriorGuidedDiffusion(neighbours=[[1], [2]])
    with pytest.raises(ValueError, match=r"Expected logits with one column per class of `neighbours` \(4\)"):
        PriorGuidedDiffusion(neighbours=NEIGHBOURS)(LABELS, np.zeros((5, 3), "float32"))


def test_config_round_trip():
    loss = PriorGuidedDiffusion(tau=50, neighbours=NEIGHBOURS)
    config = loss.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["tau"] == 50.0 and config["neighbours"] == NEIGHBOURS
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, PriorGuidedDiffusion) and restored.get_config() == config
    assert (
        SparseBinaryCrossentropy.from_config(SparseBinaryCrossentropy().get_config()).name
        == "sparse_binary_crossentropy"
    )


def test_pretrains_a_transfer_model_with_dtnh_and_save_load(tmp_path):
    # PGD on the 3-class head of a two-head TransferModel, with an L2 term so that DTNH acts.
    loss = PriorGuidedDiffusion(tau=100, neighbours=[[1], [0], []])
    model = keras_tl.TransferModel(
        tiny_source(),
        3,
        keep_source_head=True,
        regularizers=[keras_tl.regularizers.L2(0.01)],
        gradient_rule=keras_tl.gradients.DTNH(),
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss)
    x, y = tiny_data()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0).history
    assert (
        np.all(np.isfinite(history["empirical_loss"]))
        and history["empirical_loss"][1] < history["empirical_loss"][0]
    )
    path = str(tmp_path / "pgd.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored.loss, PriorGuidedDiffusion) and restored.loss.neighbours == [[1], [0], []]
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
