"""`apps.finetune`'s --output_dir: one process at a time (two real processes), one run's settings."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

from apps import finetune, output_folder
from keras_tl import fine_tuning
from keras_tl.utils import locks
from tests.apps.helpers import tiny_finetune
from tests.apps.test_kill_resume import write_source
from tests.conftest import on_backend

# A lock file and a run's flags: nothing here depends on the backend.
pytestmark = on_backend("tensorflow")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def app(source, output_dir, *flags):
    args = [
        sys.executable, "-m", "apps.finetune", f"--source={source}", "--per_class=4", "--batch_size=4",
        "--epochs=1", "--method=l2_sp", "--augment=none", "--noten_crop", "--noexport", "--verbose=0",
        "--validation_freq=0", f"--output_dir={output_dir}", *flags,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("source") / "source.keras")
    write_source(path)
    return path


def test_a_second_process_on_the_same_output_dir_is_refused_and_the_first_finishes(source, tmp_path):
    output = tmp_path / "out"
    first = app(source, output)
    lock = output / locks.LOCK_FILE
    while not (lock.exists() and f"pid={first.pid}" in lock.read_text()):
        assert first.poll() is None, first.communicate()
        time.sleep(0.01)
    # Paused while it holds the folder: however long the second takes to start, the first still has it.
    first.send_signal(signal.SIGSTOP)
    try:
        second = app(source, output, "--lr=0.05", "--hparams=alpha=1")
        _, err = second.communicate(timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 1
    assert err.strip().splitlines()[-1].startswith(
        f"error: Expected {output} to be free. Received: it is in use by process {first.pid} on host "
    )
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    with open(output / "results.json") as handle:
        report = json.load(handle)
    assert report["complete"] and report["config"]["lr"] == 0.005 and report["config"]["hparams"] == {}
    assert len(report["results"]["l2_sp"]["runs"][0]["history"]["loss"]) == 1
    assert not lock.exists()


class _Killed(BaseException):
    pass


def killed_after_first_epoch(monkeypatch):
    original = fine_tuning.fine_tune_and_evaluate

    def kill(epoch, logs=None):
        raise _Killed

    def with_a_kill(*args, callbacks=(), **kwargs):
        return original(*args, callbacks=[*callbacks, keras.callbacks.LambdaCallback(on_epoch_end=kill)], **kwargs)

    monkeypatch.setattr(fine_tuning, "fine_tune_and_evaluate", with_a_kill)


def test_a_rerun_with_other_flags_over_a_killed_run_is_refused_naming_them(source, tmp_path, monkeypatch):
    config = tiny_finetune(source, tmp_path, method=("l2_sp",), epochs=2)
    with monkeypatch.context() as patch:
        killed_after_first_epoch(patch)
        with pytest.raises(_Killed):
            finetune.run(config)
    assert os.path.isfile(tmp_path / "backup" / "l2_sp" / "seed0" / "training_metadata.json")
    other = dataclasses.replace(config, lr=0.05, hparams={"alpha": 1})
    with pytest.raises(ValueError) as info:
        finetune.run(other)
    assert str(info.value) == (
        f"{tmp_path} holds a run with other settings (hparams.alpha: (unset) -> 1; lr: 0.005 -> 0.05). Use a new "
        "--output_dir to keep it, or overwrite=True (apps.finetune: --overwrite) to replace it."
    )
    report = finetune.run(dataclasses.replace(other, overwrite=True))
    run = report["results"]["l2_sp"]["runs"][0]
    assert report["config"]["lr"] == 0.05 and len(run["history"]["loss"]) == 2
    fresh = finetune.run(dataclasses.replace(other, output_dir=str(tmp_path / "fresh")))["results"]["l2_sp"]["runs"][0]
    assert run["history"]["loss"] == pytest.approx(fresh["history"]["loss"], abs=1e-6)  # trained from scratch
    with open(tmp_path / "identity.json") as handle:
        assert json.load(handle) == output_folder.identity(dataclasses.replace(other, overwrite=True))


def test_a_folder_where_nothing_was_trained_is_claimed_by_the_next_run(source, tmp_path):
    with output_folder.owned(tiny_finetune(source, tmp_path, lr=0.1)):
        pass  # e.g. the run failed on a typo in --dataset
    with output_folder.owned(tiny_finetune(source, tmp_path, lr=0.2)):
        pass
    with open(tmp_path / "identity.json") as handle:
        assert json.load(handle)["settings"]["lr"] == 0.2


def test_the_identity_names_the_source_by_its_content(source, tmp_path):
    moved = str(tmp_path / "moved.keras")
    with open(source, "rb") as src, open(moved, "wb") as dst:
        dst.write(src.read())
    here, there = (output_folder.identity(tiny_finetune(path, tmp_path / "o")) for path in (source, moved))
    assert here == there and here["settings"]["source"].startswith("sha256:")
    assert "output_dir" not in here["settings"] and "verbose" not in here["settings"]
