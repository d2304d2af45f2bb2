"""`keras_tl.select` end to end through `keras_tl.fine_tune` on tiny data: the guarantee, the rungs'
continued runs, the cost, and its data arguments."""

import os

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl import methods
from keras_tl.selection import SelectionTuner
from keras_tl.selection import data as selection_data
from keras_tl.selection import search as search_module
from keras_tl.selection.tuner import Recipe
from tests.conftest import TAPS, on_backend, tiny_source

SETTINGS = dict(epochs=2, lr=0.05, taps=TAPS, batch_size=8, seed=0, verbose=0)


def arrays(n=60, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype("int32")
    x = rng.uniform(-1, 1, (n, 8, 8, 3)).astype("float32") + 0.5 * y[:, None, None, None]
    return x, y


class StepCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


def test_select_returns_l2_when_every_other_candidate_is_worse(tmp_path, monkeypatch):
    # L2-SP at α = 1e8 diverges for real on rung 0; LwF's scores are stubbed: the best on rung 0, so it is
    # promoted past L2, then on the last rung exactly L2's real score: the tie goes to L2.
    real = SelectionTuner.validation_score
    scores = {}

    def score(self, trial, model):
        values = trial.hyperparameters.values
        scores[values["method"], values["rung"]] = real(self, trial, model)
        if values["method"] == "lwf":
            return 1.0 if values["rung"] == 0 else scores["l2", values["rung"]]
        return scores[values["method"], values["rung"]]

    monkeypatch.setattr(SelectionTuner, "validation_score", score)
    x, y = arrays()
    candidates = [("l2_sp", {"alpha": 1e8}), ("lwf", {"lam": 0.5})]
    # Below 3 full runs, 3 candidates are halved (at 3, `keras_tl.selection.ladder` trains all to the end).
    settings = {**SETTINGS, "budget": 2.9}
    result = keras_tl.select(
        tiny_source(), (x, y), 0.25, directory=str(tmp_path), candidates=candidates, wise_ft=False, **settings
    )

    assert result.method == methods.get("l2")
    table = [(row["candidate"], row["rung"], row["epochs"], row["status"]) for row in result.table]
    assert table == [
        ("L2", 0, 1, "promoted"),
        ("L2-SP (alpha=1e+08)", 0, 0, "diverged"),
        ("LwF (lam=0.5)", 0, 1, "promoted"),
        ("L2", 1, 2, "chosen"),
        ("LwF (lam=0.5)", 1, 2, "final"),
    ]
    assert result.validation_top1 == result.reference_top1 == scores["l2", 1] == result.table[3]["val_top1"]
    assert result.table[4]["val_top1"] == scores["l2", 1]  # the stubbed tie

    # The returned model is L2's run at epoch 2 (restored, not retrained): the score the trial reported.
    train, validation = selection_data.splits((x, y), 0.25, batch_size=8, seed=0)
    assert train.num_examples == 45 and validation.num_examples == 15  # 5 of each class's 20 held out
    evaluated = keras_tl.data.evaluate(result.model, validation.dataset, validation.num_classes)["top1"]
    assert evaluated == result.validation_top1
    assert len(result.history["loss"]) == 2

    # Cost: 5 steps per epoch (45 // 8); L2 and LwF 1 + 1 epochs each, L2-SP the steps until it diverged.
    # The rungs (1, 3), (2, 2) cost 5 of the budget's 5.8 epochs: the 0.8 left pays rung 0's cool-down,
    # 4 // 3 = 1 step each before it is scored (L2-SP diverged before its own).
    diverged_steps = result.table[1]["steps"]
    assert 1 <= diverged_steps <= 5
    assert [row["steps"] for row in result.table] == [6, diverged_steps, 6, 5, 5]
    assert [row["rung_top1"] is None for row in result.table] == [False, True, False, True, True]
    assert result.cost["training_steps"] == 22 + diverged_steps
    assert result.cost["l2_run_steps"] == 10
    assert result.cost["ratio"] == (22 + diverged_steps) / 10 <= result.cost["planned_ratio"] == 2.8 <= 3
    assert "Chosen: L2, validation top-1" in result.markdown()

    # Rungs continue one run: L2 stopped at epoch 1 (and cooled down off the run to be scored) and resumed
    # equals one uninterrupted 2-epoch run.
    keras.utils.set_random_seed(0)
    model, _ = keras_tl.fine_tune("l2", tiny_source(), train, epochs=2, lr=0.05, taps=TAPS, seed=0, verbose=0)
    for got, want in zip(result.model.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # Only the chosen run's checkpoint is kept.
    folders = sorted(f for f in os.listdir(result.directory) if f.startswith("candidate_"))
    assert [f for f in folders if os.path.isdir(os.path.join(result.directory, f, "backup"))] == [
        "candidate_0"
    ]

    # Rerun with the same arguments: the search is over, nothing trains; the same result.
    counter = StepCounter()
    again = keras_tl.select(
        tiny_source(),
        (x, y),
        0.25,
        directory=str(tmp_path),
        candidates=candidates,
        callbacks=[counter],
        **settings,
    )
    assert counter.steps == 0
    assert again.table == result.table and again.method == result.method
    with pytest.raises(ValueError, match=r"Received: other lr: 0.05 there, 0.1 now"):
        keras_tl.select(
            tiny_source(),
            (x, y),
            0.25,
            directory=str(tmp_path),
            candidates=candidates,
            **{**settings, "lr": 0.1},
        )


def test_candidates_within_the_budget_all_train_to_the_end_and_the_best_is_chosen(tmp_path, monkeypatch):
    # LwF's last score is stubbed above L2's and L2-SP's real ones: with 3 candidates and 3 full runs,
    # none is stopped early, and the choice is made on the full runs.
    real = SelectionTuner.validation_score
    scores = {}

    def score(self, trial, model):
        values = trial.hyperparameters.values
        scores[values["method"]] = real(self, trial, model)
        return 1.0 if values["method"] == "lwf" else scores[values["method"]]

    monkeypatch.setattr(SelectionTuner, "validation_score", score)
    x, y = arrays()
    result = keras_tl.select(
        tiny_source(), (x, y), 0.25, directory=str(tmp_path), candidates=["l2_sp", "lwf"], wise_ft=False, **SETTINGS
    )
    assert [(row["candidate"], row["rung"], row["epochs"], row["status"]) for row in result.table] == [
        ("L2", 0, 2, "final"),
        ("L2-SP (alpha=0.01)", 0, 2, "final"),
        ("LwF (lam=1)", 0, 2, "chosen"),
    ]
    assert result.method == methods.get("lwf")
    assert [row["val_top1"] for row in result.table] == [scores["l2"], scores["l2_sp"], 1.0]
    assert result.reference_top1 == scores["l2"]
    assert result.cost["training_steps"] == 30 and result.cost["ratio"] == result.cost["planned_ratio"] == 3.0
    assert len(result.history["loss"]) == 2


def test_held_out_fraction_is_stratified_and_a_split_needs_a_validation_split():
    x, y = arrays(n=60)
    train, validation = selection_data.splits((x, y), 0.2, batch_size=8, seed=3)
    assert np.bincount(validation.labels).tolist() == [4, 4, 4]
    assert np.bincount(train.labels).tolist() == [16, 16, 16]
    held = np.concatenate([images for images, _ in validation.dataset.as_numpy_iterator()])
    kept = np.concatenate([images for images, _ in train.dataset.as_numpy_iterator()])
    assert len(held) == 12 and len(kept) == 48  # every batch full: 48 = 6 × 8
    assert not {row.tobytes() for row in held} & {row.tobytes() for row in kept}
    with pytest.raises(
        ValueError,
        match=r"^Expected a validation split with a keras_tl.data.Split as train \(a fraction "
        r"is held out of in-memory arrays only\): pass a validation split, e.g. "
        r"keras_tl.data.load\(spec, 'train', per_class=k, seed=s, complement=True\)",
    ):
        selection_data.splits(train, 0.2)
    with pytest.raises(
        ValueError, match=r"^Expected 0 < validation < 1 \(a fraction\). Received: validation=1.5$"
    ):
        selection_data.splits((x, y), 1.5)
    with pytest.raises(ValueError, match=r"^Expected budget >= 1 \(a float\). Received: budget=0.5$"):
        keras_tl.select(tiny_source(), (x, y), 0.2, directory="unused", budget=0.5)


def test_select_tries_wise_ft_on_the_chosen_model_at_no_training_cost(tmp_path):
    x, y = arrays()
    source = tiny_source()
    plain = keras_tl.select(source, (x, y), 0.25, directory=str(tmp_path), candidates=[], wise_ft=False, **SETTINGS)
    assert plain.wise_ft is None
    counter = StepCounter()
    # The same search again: every trial is restored from its checkpoint, then the α sweep evaluates only.
    result = keras_tl.select(
        source, (x, y), 0.25, directory=str(tmp_path), candidates=[], callbacks=[counter], **SETTINGS
    )
    assert counter.steps == 0
    table = result.wise_ft["table"]
    assert [row["alpha"] for row in table] == list(keras_tl.interpolation.DEFAULT_ALPHAS)
    itself = table[-1]["top1"]
    assert itself == plain.validation_top1  # α = 1 is the chosen model
    _, validation = selection_data.splits((x, y), 0.25, batch_size=8, seed=0)
    evaluated = keras_tl.data.evaluate(result.model, validation.dataset, validation.num_classes)["top1"]
    assert evaluated == result.validation_top1
    best = max(row["top1"] for row in table)
    assert result.wise_ft["sweep_alpha"] == min(row["alpha"] for row in table if row["top1"] == best)
    if best > itself and result.wise_ft["p_value"] < 0.05:  # kept only when significantly better
        assert result.wise_ft["alpha"] == result.wise_ft["sweep_alpha"] < 1.0
        assert result.validation_top1 == best
    else:
        assert result.wise_ft["alpha"] == 1.0 and result.validation_top1 == itself
        assert (result.wise_ft["p_value"] is None) == (best == itself)
    assert "WiSE-FT on the chosen model (no training)" in result.markdown()


@pytest.mark.parametrize("p_value, replaced", [(0.01, True), (0.05, False), (0.5, False)])
def test_wise_ft_replaces_the_model_only_on_a_significant_edge(monkeypatch, p_value, replaced):
    chosen, interpolated = object(), object()
    table = [{"alpha": 0.5, "top1": 0.75}, {"alpha": 1.0, "top1": 0.7}]
    monkeypatch.setattr(
        keras_tl.interpolation, "wise_ft", lambda *a, **k: (interpolated, {"alpha": 0.5, "top1": 0.75, "table": table})
    )
    monkeypatch.setattr(search_module.paired, "correct", lambda model, data: model)
    seen = []
    monkeypatch.setattr(search_module.paired, "mcnemar_p", lambda a, b: seen.append((a, b)) or p_value)
    result = keras_tl.selection.SelectionResult(None, chosen, {}, 0.7, 0.7, [], {}, "unused")
    recipe = Recipe(source=tiny_source(), train=arrays(n=8), validation=None, epochs=1, lr=0.01)
    out = search_module._with_wise_ft(result, recipe)
    assert seen == [(interpolated, chosen)]  # the interpolation tested against the model itself
    assert out.model is (interpolated if replaced else chosen)
    assert out.validation_top1 == (0.75 if replaced else 0.7)
    assert out.wise_ft["alpha"] == (0.5 if replaced else 1.0) and out.wise_ft["sweep_alpha"] == 0.5
    assert out.wise_ft["p_value"] == p_value


def test_the_cost_counts_the_short_last_batch_a_split_keeps_in_the_l2_run_too():
    # 3 digit classes × 15 = 45 images in batches of 8: 5 full batches; a split that keeps the short
    # last one runs 6 a epoch, and one full L2 run costs that many (the trials' meter counts them).
    common = dict(image_size=8, classes=["0", "1", "2"], per_class=15, batch_size=8, seed=0, training=True)
    dropping = keras_tl.data.load("digits", "train", **common)
    keeping = keras_tl.data.load("digits", "train", drop_remainder=False, **common)
    assert dropping.num_examples == keeping.num_examples == 45
    recipe = lambda train: Recipe(source=None, train=train, validation=None, epochs=2, lr=0.01)  # noqa: E731
    assert recipe(dropping).batches_per_epoch() == 5 == sum(1 for _ in dropping.dataset)
    assert recipe(keeping).batches_per_epoch() == 6 == sum(1 for _ in keeping.dataset)


# Which split reaches the probe is plumbing the backends share; the slow search runs once (40-60 s).
@on_backend("tensorflow")
def test_lp_ft_as_a_candidate_chooses_its_probe_c_on_the_search_validation_split(tmp_path, monkeypatch):
    real, calls = keras_tl.linear_probe.fit_head, []

    def fit_head(source, train, **kwargs):
        calls.append(kwargs)
        return real(source, train, **kwargs)

    monkeypatch.setattr(keras_tl.linear_probe, "fit_head", fit_head)
    x, y = arrays()
    result = keras_tl.select(
        tiny_source(), (x, y), 0.25, directory=str(tmp_path), candidates=["lp_ft"], wise_ft=False, **SETTINGS
    )
    assert [row["candidate"] for row in result.table if row["rung"] == 0] == ["L2", "LP-FT"]
    assert len(calls) == 1  # rung 1 reads the head back from the candidate's cache
    (probe,) = calls
    assert "folds" not in probe and "Cs" not in probe
    validation = probe["validation_data"]
    _, expected = selection_data.splits((x, y), 0.25, batch_size=8, seed=0)
    assert validation.num_examples == expected.num_examples == 15
    scored = [keras_tl.data.evaluate(result.model, split.dataset, 3)["top1"] for split in (validation, expected)]
    assert scored[0] == scored[1]  # the same 15 held-out images
    assert os.path.isfile(os.path.join(tmp_path, "select", "candidate_1", "cache", "lp_head.npz"))


def test_the_wise_ft_line_says_why_the_model_was_kept():
    from keras_tl.selection.result import _wise_ft_kept

    assert _wise_ft_kept({"alpha": 0.7, "sweep_alpha": 0.7, "p_value": 0.01}) == ""
    assert _wise_ft_kept({"alpha": 1.0, "sweep_alpha": 0.8, "p_value": None}) == " (the model itself: no α < 1 was better)"
    assert _wise_ft_kept({"alpha": 1.0, "sweep_alpha": 0.9, "p_value": 0.4529}) == (
        " (the model itself: α = 0.9's edge was not significant, McNemar p = 0.45)"
    )
