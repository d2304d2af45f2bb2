"""A fine-tuning app run killed with SIGKILL mid-epoch and rerun ends where an uninterrupted run ends.

Tolerance: the weights of `best_model.keras` agree to atol 1e-6 and the accuracy exactly. The
resumed process restores the weights and optimizer state of the last finished epoch
(`BackupAndRestore`), and epoch k's data order is drawn from `(seed, k)`
(`keras_tl.data`'s per-epoch shuffle), so on CPU it replays the same arithmetic. Run with
`--augment=none`: Keras' random augmentation layers draw from a generator state that a
checkpoint does not hold.
"""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np

from apps import common
from keras_tl import backbones

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
    common.save_model(model, path, card)


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
    # The resumed process trained epochs 2..EPOCHS only, and to the same end.
    assert len(resumed_run["history"]["loss"]) == EPOCHS - 1
    assert resumed_run["history"]["loss"][-1] == expected_run["history"]["loss"][-1]
    assert resumed_run["top1"] == expected_run["top1"]
    for got, want in zip(resumed, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert not os.path.exists(os.path.join(killed_dir, "backup", "l2_sp", "seed0"))
