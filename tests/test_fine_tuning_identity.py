"""A rerun of `keras_tl.fine_tune` over a checkpoint: the same run resumes (and says so), another run
is refused naming what differs, `overwrite=True` starts over, fewer epochs are refused."""

import logging

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.utils import locks
from tests.utils.test_locks import holder

EPOCHS = 3


class _Stop(BaseException):
    """A kill after a checkpoint: nothing catches it, `on_train_end` does not run."""


def stop_after(epochs):
    def on_epoch_end(epoch, logs=None):
        if epoch + 1 == epochs:
            raise _Stop

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def tiny_source():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="upstream")(x), name="tiny")


@pytest.fixture(scope="module")
def train():
    return keras_tl.data.load(
        "digits", "train", image_size=8, preprocess="cifar_resnet8", batch_size=4, augment="none",
        classes=["5", "6"], per_class=4, training=True,
    )


def finetune(train, backup_dir, method="l2_sp", epochs=EPOCHS, lr=0.05, stop=None, **kwargs):
    return keras_tl.fine_tune(
        method, tiny_source(), train, taps=[], epochs=epochs, lr=lr, verbose=0, validation_freq=0,
        backup_dir=str(backup_dir), callbacks=[stop_after(stop)] if stop else [], **kwargs,
    )


def killed(train, backup_dir, after, **kwargs):
    with pytest.raises(_Stop):
        finetune(train, backup_dir, stop=after, **kwargs)


def test_a_rerun_with_other_settings_is_refused_naming_each(train, tmp_path):
    backup = tmp_path / "backup"
    killed(train, backup, after=1)
    with pytest.raises(ValueError) as info:
        finetune(train, backup, method=keras_tl.methods.get("l2_sp", alpha=1.0), lr=0.1)
    assert str(info.value) == (
        f"The checkpoint in {backup} was written by a run with other settings (hparams.alpha: (unset) -> 1.0; "
        "lr: 0.05 -> 0.1): continuing it would mix two runs. Use a new folder to keep it, or overwrite=True "
        "(apps.finetune: --overwrite) to replace it."
    )


def test_a_rerun_with_fewer_epochs_than_the_checkpoint_says_so(train, tmp_path):
    backup = tmp_path / "backup"
    killed(train, backup, after=2)
    with pytest.raises(ValueError) as info:
        finetune(train, backup, epochs=1)
    assert str(info.value) == (
        f"The checkpoint in {backup} holds 2 finished epochs, and this run asks for epochs=1: resuming would "
        "train none and return that run's weights. Use a new folder to keep it, or overwrite=True "
        "(apps.finetune: --overwrite) to start over."
    )
    with pytest.raises(ValueError, match=r"weights\. Other settings differ too \(lr: 0\.05 -> 0\.1\)\. Use a new"):
        finetune(train, backup, epochs=1, lr=0.1)


def test_the_same_run_resumes_and_logs_it(train, tmp_path, caplog):
    backup = tmp_path / "backup"
    killed(train, backup, after=1)
    with caplog.at_level(logging.INFO):
        _, history = finetune(train, backup)
    assert f"Resuming from epoch 1 (the checkpoint in {backup})." in caplog.text
    assert history.epoch == [0, 1, 2]


def test_overwrite_starts_another_run_over_and_ends_as_a_fresh_one(train, tmp_path, caplog):
    backup = tmp_path / "backup"
    killed(train, backup, after=2)
    with caplog.at_level(logging.WARNING):
        model, history = finetune(train, backup, lr=0.1, overwrite=True)
    assert f"Overwriting the checkpoint of another run: The checkpoint in {backup} was written" in caplog.text
    fresh, expected = finetune(train, tmp_path / "fresh", lr=0.1)
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], atol=1e-6)
    for got, want in zip(model.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_a_checkpoint_without_identity_resumes(train, tmp_path, caplog):
    """Checkpoints written before runs recorded their identity (a suite under way) still resume."""
    import json
    import os

    backup = tmp_path / "backup"
    killed(train, backup, after=1)
    path = os.path.join(backup, "training_metadata.json")
    with open(path) as handle:
        metadata = json.load(handle)
    del metadata["identity"]
    with open(path, "w") as handle:
        json.dump(metadata, handle)
    with caplog.at_level(logging.INFO):
        _, history = finetune(train, backup)
    assert "records no settings (older keras_tl): resuming it." in caplog.text
    assert history.epoch == [0, 1, 2]


def test_a_backup_dir_in_use_by_another_process_is_refused(train, tmp_path):
    backup = tmp_path / "backup"
    process = holder(backup)
    try:
        with pytest.raises(locks.FolderInUseError, match=f"^Expected {backup} to be free. Received: it is in use by process {process.pid} "):
            finetune(train, backup)
    finally:
        process.kill()
        process.wait()
