"""Fine-tuning and pre-training killed mid-epoch or while the checkpoint is written, then rerun,
end where an uninterrupted run ends, with the whole history.

Tolerance: the weights of `best_model.keras` agree to atol 1e-6 and the accuracy exactly. The
resumed process restores the weights and optimizer state of the last finished epoch
(`BackupAndRestore`), and epoch k's data order is drawn from `(seed, k)`
(`keras_tl.data`'s per-epoch shuffle), so on CPU it replays the same arithmetic. Run with
`--augment=none`: Keras' random augmentation layers draw from a generator state that a
checkpoint does not hold.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_tl.data
from keras_tl import backbones, fine_tuning, models
from keras_tl.callbacks import backup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPOCHS = 2


def write_source(path):
    keras.utils.set_random_seed(0)
    model = backbones.build("cifar_resnet8", weights=None, input_shape=(8, 8, 3), include_top=True, classes=5)
    card = {
        "kind": "source",
        "backbone": "cifar_resnet8",
        "preprocess": "cifar_resnet8",
        "image_size": [8, 8],
    }
    models.save_model(model, path, card)


def start(source, output_dir):
    args = [
        sys.executable,
        "-m",
        "apps.finetune",
        f"--source={source}",
        "--per_class=40",
        "--batch_size=4",
        f"--epochs={EPOCHS}",
        "--method=l2_sp",
        "--augment=none",
        "--noten_crop",
        "--noexport",
        "--verbose=0",
        f"--output_dir={output_dir}",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finished_epochs(output_dir):
    path = os.path.join(output_dir, "backup", "l2_sp", "seed0", "training_metadata.json")
    try:
        with open(path) as handle:
            return json.load(handle)["epoch"]
    except (OSError, ValueError):  # not there yet, or being written
        return 0


def wait(process):
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out.decode()[-3000:]


def result(output_dir):
    with open(os.path.join(output_dir, "results.json")) as handle:
        run = json.load(handle)["results"]["l2_sp"]["runs"][0]
    model = keras.saving.load_model(os.path.join(output_dir, "best_model.keras"), compile=False)
    return run, model.get_weights()


def wait_for_epoch_end(process, output_dir):
    """Returns once epoch 1's checkpoint is written."""
    while finished_epochs(output_dir) < 1:
        assert process.poll() is None, process.communicate()[0].decode()[-3000:]
        time.sleep(0.005)


def test_sigkill_mid_epoch_then_rerun_matches_an_uninterrupted_run(tmp_path):
    source = str(tmp_path / "source.keras")
    write_source(source)

    reference_dir = str(tmp_path / "reference")
    wait(start(source, reference_dir))

    killed_dir = str(tmp_path / "killed")
    killed = start(source, killed_dir)
    wait_for_epoch_end(killed, killed_dir)
    # Epoch 1's checkpoint is complete: the process is now starting epoch 2's 50 steps.
    time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    assert finished_epochs(killed_dir) == 1  # killed within epoch 2
    assert not os.path.exists(os.path.join(killed_dir, "results.json"))

    wait(start(source, killed_dir))
    (expected_run, expected), (resumed_run, resumed) = result(reference_dir), result(killed_dir)
    # The resumed process trained epochs 2..EPOCHS only, to the same end, and its history
    # holds epoch 1 too (from the checkpoint).
    assert len(resumed_run["history"]["loss"]) == EPOCHS
    np.testing.assert_allclose(resumed_run["history"]["loss"], expected_run["history"]["loss"], atol=1e-6)
    assert resumed_run["top1"] == expected_run["top1"]
    for got, want in zip(resumed, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert not os.path.exists(os.path.join(killed_dir, "backup", "l2_sp", "seed0"))


# ------------------------------------------------------------------ a kill while the checkpoint is written


class _Killed(BaseException):
    """Stands in for SIGKILL: no `except Exception` catches it and nothing runs `on_train_end`."""


@contextlib.contextmanager
def kill_at(point, nth_save):
    """Fault injection: "kills" training during its `nth_save`-th checkpoint save, at `point`.

    `("weights", f)`: the weights file is cut to the fraction `f` of its bytes (what a kill
    half-way through h5py's write leaves) and the process dies. `("metadata", "before")` /
    `("metadata", "after")`: it dies just before / after the metadata file is renamed in place.
    """
    saves = {"count": 0}
    save_weights, replace = keras.Model.save_weights, os.replace

    def cut_weights(model, filepath, *args, **kwargs):
        save_weights(model, filepath, *args, **kwargs)
        saves["count"] += 1
        if point[0] == "weights" and saves["count"] == nth_save:
            with open(filepath, "r+b") as handle:
                handle.truncate(int(os.path.getsize(filepath) * point[1]))
            raise _Killed(point)

    def replace_metadata(src, dst):
        at_the_save = (
            point[0] == "metadata" and str(dst).endswith(backup.METADATA) and saves["count"] == nth_save
        )
        if at_the_save and point[1] == "before":
            raise _Killed(point)
        replace(src, dst)
        if at_the_save:
            raise _Killed(point)

    keras.Model.save_weights, os.replace = cut_weights, replace_metadata
    try:
        yield
    finally:
        keras.Model.save_weights, os.replace = save_weights, replace


# Every instant of a save: the weights cut at 11 offsets (0 bytes ... complete, not yet committed),
# and just before and after the commit.
KILL_POINTS = [("weights", f) for f in (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0)] + [
    ("metadata", "before"),
    ("metadata", "after"),
]
LOOP_EPOCHS = len(KILL_POINTS) + 2


def tiny_source():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="upstream")(x), name="tiny")


def digits(split, **kwargs):
    return keras_tl.data.load(
        "digits",
        split,
        image_size=8,
        preprocess="cifar_resnet8",
        batch_size=4,
        augment="none",
        classes=["5", "6"],
        **kwargs,
    )


def test_kills_at_every_instant_of_a_checkpoint_write_then_reruns_match_an_uninterrupted_run(tmp_path):
    source = tiny_source()
    train = digits("train", training=True, per_class=4)
    evaluation = digits("test", per_class=4)

    def finetune(backup_dir):
        return fine_tuning.fine_tune_and_evaluate(
            "l2_sp",
            source,
            train,
            evaluation,
            taps=[],
            epochs=LOOP_EPOCHS,
            lr=0.05,
            verbose=0,
            validation_freq=0,
            backup_dir=str(backup_dir),
        )

    expected_model, expected = finetune(tmp_path / "reference")
    backup_dir = tmp_path / "killed"
    for point in KILL_POINTS:
        # Each rerun resumes, commits one more epoch, and dies inside the next save.
        with kill_at(point, nth_save=2), pytest.raises(_Killed):
            finetune(backup_dir)
    model, record = finetune(backup_dir)
    assert record["history"].keys() == expected["history"].keys()
    for key, values in expected["history"].items():
        assert len(record["history"][key]) == LOOP_EPOCHS
        np.testing.assert_allclose(record["history"][key], values, atol=1e-6, err_msg=key)
    for got, want in zip(model.get_weights(), expected_model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert not os.path.exists(backup_dir)


def test_pretraining_killed_while_writing_resumes_to_the_uninterrupted_end(tmp_path):
    train = digits("train", training=True, per_class=4)

    def pretrain(name):
        return keras_tl.pretrain(
            train,
            "cifar_resnet8",
            epochs=3,
            lr=0.05,
            seed=0,
            verbose=0,
            output=str(tmp_path / name / "source.keras"),
            backup_dir=str(tmp_path / name / "backup"),
        )

    expected_model, expected = pretrain("reference")
    with kill_at(("weights", 0.5), nth_save=2), pytest.raises(_Killed):
        pretrain("killed")
    model, history = pretrain("killed")
    assert list(history) == list(expected) and len(history["loss"]) == 3
    np.testing.assert_allclose(history["loss"], expected["loss"], atol=1e-6)
    for got, want in zip(model.get_weights(), expected_model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
