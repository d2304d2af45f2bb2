"""`StagedRegularization` under `BackupAndRestore`: a run killed after a switch resumes in its stage.

Tolerance: resumed weights agree with an uninterrupted run's to atol 1e-6. The data are a
fixed array fed unshuffled, the checkpoint holds the weights, the optimizer's momentum and
learning rate, and the stage, so on CPU the resumed epoch replays the same arithmetic.
"""

import os
import shutil

import h5py
import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.callbacks import StagedRegularization
from keras_tl.regularizers import ACT, AST
from keras_tl.utils.weights import named_variables
from tests.conftest import TAPS, compile_sgd, tiny_data, tiny_source

ATOL = 1e-6
EPOCHS = 3
INTERRUPT_AT = 2  # the start of the third epoch, after the switch at epoch 1 and its backup


class Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == INTERRUPT_AT:
            raise RuntimeError("Interrupting!")


class ForgetStage(keras.callbacks.Callback):
    """Placed right after `BackupAndRestore`: the restored model as it was before the fix."""

    def on_train_begin(self, logs=None):
        self.model.regularization_stage.assign(0)


class StageLog(keras.callbacks.Callback):
    """Placed after `StagedRegularization`: the stage each epoch trains in."""

    def __init__(self, staged):
        super().__init__()
        self.staged, self.epochs = staged, []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(
            (
                epoch,
                self.staged.stage,
                int(keras.ops.convert_to_numpy(self.model.regularization_stage)),
                [r.name for r in self.model.objective.active],
            )
        )


def build():
    model = keras_tl.TransferModel(
        # alpha keeps both terms near the empirical loss here: larger ones diverge in 3 epochs.
        tiny_source(),
        3,
        taps=TAPS,
        regularizers=[AST(relative=False, alpha=1e-5), ACT(relative=False, alpha=1e-5)],
        keep_source=True,
    )
    return compile_sgd(model, lr=0.01, momentum=0.9)  # momentum: the optimizer state must be restored too


def staged():
    return StagedRegularization([["ast"], ["act"]], switch_at=1, learning_rates=[0.02])


def fit(model, callbacks, epochs=EPOCHS, **kwargs):
    x, y = tiny_data(8)
    return model.fit(
        x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks, **kwargs
    )


def snapshot(model):
    regs = {r.name: r for r in model.regularizers}
    return {
        "target": named_variables(model.target_backbone),
        "source": named_variables(model.source_backbone),
        "head": {v.name: v for v in model.head.weights},
        "ast": {str(i): v for i, v in enumerate(regs["ast"].weights)},
        "act": {str(i): v for i, v in enumerate(regs["act"].weights)},
    }


def numpy(snap):
    return {part: {k: keras.ops.convert_to_numpy(v) for k, v in vs.items()} for part, vs in snap.items()}


def max_difference(a, b):
    assert sorted(a) == sorted(b)
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted run's final weights, and a checkpoint of a run killed at the start of epoch 2."""
    root = tmp_path_factory.mktemp("staged_resume")
    reference = build()
    fit(reference, [keras.callbacks.BackupAndRestore(str(root / "reference")), staged()])
    expected = numpy(snapshot(reference))
    initial = numpy(snapshot(build()))
    keras.backend.clear_session()

    killed = build()
    backup = str(root / "killed")
    with pytest.raises(RuntimeError, match="Interrupting!"):
        fit(killed, [keras.callbacks.BackupAndRestore(backup), staged(), Interrupt()])
    assert os.path.isfile(os.path.join(backup, "latest.weights.h5"))
    keras.backend.clear_session()
    return {"expected": expected, "initial": initial, "backup": backup}


def resume(runs, tmp_path, forget=False):
    backup = str(tmp_path / "backup")
    shutil.copytree(runs["backup"], backup)  # each test resumes from its own copy
    model, callback = build(), staged()
    log = StageLog(callback)
    restore = [keras.callbacks.BackupAndRestore(backup)] + ([ForgetStage()] if forget else [])
    history = fit(model, restore + [callback, log]).history
    return model, callback, log, history


def test_a_run_killed_after_the_switch_resumes_in_stage_1_and_ends_as_an_uninterrupted_run(runs, tmp_path):
    model, callback, log, history = resume(runs, tmp_path)
    # Only the last epoch ran, in stage 1, without a switch (no re-sync, no re-initialisation).
    assert log.epochs == [(INTERRUPT_AT, 1, 1, ["act"])]
    assert callback.stage == 1 and callback.switched_at == []
    assert list(history["reg/act"]) and "reg/ast" not in history
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.02)

    got, expected, initial = numpy(snapshot(model)), runs["expected"], runs["initial"]
    for part in expected:
        assert max_difference(got[part], expected[part]) <= ATOL, part
    # The checkpoint held the synced source copy (a fresh model's is the original source),
    # and the sync was not replayed: the target trained on past the copy it made at epoch 1.
    assert max_difference(got["source"], initial["source"]) > 1e-3
    assert max_difference(got["source"], got["target"]) > 1e-3


def test_replaying_the_switch_on_resume_would_be_detected(runs, tmp_path):
    # What the callback did before the stage was stored: restart at stage 0 and replay the
    # switch at epoch 2, syncing the source from later weights and redrawing ACT.
    model, callback, log, _ = resume(runs, tmp_path, forget=True)
    assert callback.switched_at == [(INTERRUPT_AT, 0)]
    got, expected = numpy(snapshot(model)), runs["expected"]
    assert max_difference(got["source"], expected["source"]) > 1e-3
    assert max_difference(got["act"], expected["act"]) > 1e-3
    assert max_difference(got["target"], expected["target"]) > ATOL


def test_a_second_fresh_fit_starts_again_at_stage_0():
    model = build()
    first = staged()
    fit(model, [first], epochs=2)
    assert int(keras.ops.convert_to_numpy(model.regularization_stage)) == 1
    callback = staged()
    log = StageLog(callback)
    history = fit(model, [callback, log], epochs=2).history
    assert [entry[:3] for entry in log.epochs] == [(0, 0, 0), (1, 1, 1)]
    assert [entry[3] for entry in log.epochs] == [["ast"], ["act"]]
    assert callback.switched_at == [(1, 0)]
    assert len(history["reg/ast"]) == 1 and len(history["reg/act"]) == 1


def test_an_initial_epoch_past_an_unrecorded_switch_switches_at_once():
    # A fresh model (stage 0) asked to start at epoch 2: the switch due at epoch 1 happens
    # at the first epoch, with its sync, as no checkpoint recorded it.
    model = build()
    callback = staged()
    log = StageLog(callback)
    fit(model, [callback, log], initial_epoch=2)
    assert callback.switched_at == [(2, 0)] and log.epochs == [(2, 1, 1, ["act"])]
    got = numpy(snapshot(model))
    assert max_difference(got["source"], got["target"]) > 1e-3  # the target trained after the sync


def test_a_stored_stage_out_of_range_is_reported():
    model = build()
    model.regularization_stage.assign(5)
    with pytest.raises(
        ValueError, match=r"one of the 2 stages when resuming\. Received: regularization_stage=5"
    ):
        fit(model, [staged()], initial_epoch=1)


def test_weights_saved_without_the_stage_variable_load_as_stage_0(tmp_path):
    model = build()
    model.regularization_stage.assign(1)
    path = str(tmp_path / "old.weights.h5")
    model.save_weights(path)
    with h5py.File(path, "a") as handle:
        assert list(handle["vars"]) == ["0"]  # the model's only own variable is the stage
        del handle["vars"]  # a file written before the stage variable existed
    restored = build()
    restored.regularization_stage.assign(3)
    restored.load_weights(path)
    assert int(keras.ops.convert_to_numpy(restored.regularization_stage)) == 0
    for a, b in zip(model.head.weights, restored.head.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
