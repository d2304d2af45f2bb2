"""`AtomicBackupAndRestore` beyond the kill loop of tests/apps/test_kill_resume.py."""

import json
import os

import keras
import numpy as np
import pytest

import keras_tl

X = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
Y = np.arange(8, dtype="float32") % 2


def model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    return m


class _Stop(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


def test_a_run_whose_every_epoch_was_restored_returns_the_whole_history(tmp_path):
    backup = str(tmp_path / "backup")
    first = model()
    expected = first.fit(
        X,
        Y,
        epochs=3,
        verbose=0,
        callbacks=[keras_tl.callbacks.AtomicBackupAndRestore(backup, delete_checkpoint=False)],
    )
    with open(os.path.join(backup, "training_metadata.json")) as handle:
        assert json.load(handle)["epoch"] == 3
    assert sorted(os.listdir(backup)) == ["epoch-3.weights.h5", "training_metadata.json"]  # one checkpoint
    # Killed after the last checkpoint, before `fit` returned: the rerun trains nothing.
    again = model()
    history = again.fit(
        X, Y, epochs=3, verbose=0, callbacks=[keras_tl.callbacks.AtomicBackupAndRestore(backup)]
    )
    assert history.epoch == [0, 1, 2]
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-6)
    for got, want in zip(again.get_weights(), first.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert not os.path.exists(backup)


def test_a_later_fit_of_a_resumed_model_starts_at_its_own_initial_epoch(tmp_path):
    backup = str(tmp_path / "backup")
    callback = keras_tl.callbacks.AtomicBackupAndRestore(backup, delete_checkpoint=False)
    model().fit(X, Y, epochs=2, verbose=0, callbacks=[callback])
    resumed = model()
    resumed.fit(X, Y, epochs=3, verbose=0, callbacks=[keras_tl.callbacks.AtomicBackupAndRestore(backup)])
    # Keras' trainers start at the restore hook when it is set: left set, this fit would run epochs 2-5.
    history = resumed.fit(X, Y, initial_epoch=5, epochs=6, verbose=0)
    assert history.epoch == [5]


def test_a_folder_keras_backup_and_restore_left_resumes(tmp_path):
    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        model().fit(X, Y, epochs=2, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(backup), _Stop()])
    epochs_run = []
    count = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: epochs_run.append(epoch))
    model().fit(
        X, Y, epochs=2, verbose=0, callbacks=[keras_tl.callbacks.AtomicBackupAndRestore(backup), count]
    )
    assert epochs_run == [1]


def test_metadata_cut_short_by_keras_backup_and_restore_says_what_to_do(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text('{"epoch": ')
    with pytest.raises(ValueError) as info:
        model().fit(
            X, Y, epochs=1, verbose=0, callbacks=[keras_tl.callbacks.AtomicBackupAndRestore(str(backup))]
        )
    assert str(info.value) == (
        f"Expected {backup / 'training_metadata.json'} to hold a checkpoint's metadata. Received: "
        f"'{{\"epoch\": ' (a file cut short by a kill during Keras' BackupAndRestore?). Delete {backup} to start over."
    )


def test_a_rerun_asking_for_fewer_epochs_than_the_checkpoint_holds_is_refused(tmp_path):
    backup = str(tmp_path / "backup")
    model().fit(X, Y, epochs=2, verbose=0, callbacks=[keras_tl.callbacks.AtomicBackupAndRestore(backup, delete_checkpoint=False)])
    with pytest.raises(ValueError) as info:
        model().fit(X, Y, epochs=1, verbose=0, callbacks=[keras_tl.callbacks.AtomicBackupAndRestore(backup)])
    assert str(info.value) == (
        f"The checkpoint in {backup} holds 2 finished epochs, and this run asks for epochs=1: resuming would "
        "train none and return that run's weights. Use a new folder to keep it, or overwrite=True "
        "(apps.finetune: --overwrite) to start over."
    )
    again = model()
    history = again.fit(
        X, Y, epochs=1, verbose=0, callbacks=[keras_tl.callbacks.AtomicBackupAndRestore(backup, overwrite=True)]
    )
    assert history.epoch == [0]
    expected = model()
    expected.fit(X, Y, epochs=1, verbose=0)
    for got, want in zip(again.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
