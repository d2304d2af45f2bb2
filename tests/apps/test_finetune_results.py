"""`apps.finetune` keeps what finished: a diverged method is recorded, each run is on disk at once."""

import json
import os

import numpy as np
import pytest

import keras_tl.data
from apps import common, finetune
from keras_tl import fine_tuning
from tests.apps.helpers import tiny_finetune
from tests.apps.test_kill_resume import write_source


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("source") / "source.keras")
    write_source(path)
    return path


def run(source, output_dir, **fields):
    return finetune.run(tiny_finetune(source, output_dir, **fields))


def results(output_dir):
    with open(os.path.join(output_dir, "results.json")) as handle:
        return json.load(handle)


def test_a_diverged_method_is_recorded_and_the_others_finish(source, tmp_path):
    report = run(source, tmp_path, method=("l2_sp", "l2"), hparams={"l2_sp.alpha": 1e30})
    saved = results(tmp_path)
    assert saved["complete"] is True and list(saved["results"]) == ["l2_sp", "l2"]
    diverged = saved["results"]["l2_sp"]
    assert diverged["runs"] == [] and diverged["diverged"]["seed"] == 0
    assert "'reg/l2_sp'" in diverged["diverged"]["error"]
    assert "coefficient of regularizer 'l2_sp'" in diverged["diverged"]["error"]
    assert len(saved["results"]["l2"]["runs"]) == 1 and saved["best"]["method"] == "l2"
    assert report["table"].splitlines()[-1] == "| l2_sp | diverged (seed 0) |  | 0 |"
    with open(tmp_path / "results.md") as handle:
        assert handle.read() == report["table"] + "\n"


def test_every_method_diverged_fails_after_writing_the_results(source, tmp_path):
    with pytest.raises(
        FloatingPointError, match=r"^Every method diverged; results in .*results.json\. l2_sp: "
    ):
        run(source, tmp_path, method=("l2_sp",), hparams={"l2_sp.alpha": 1e30})
    assert results(tmp_path)["results"]["l2_sp"]["diverged"]["seed"] == 0


def test_each_finished_run_is_on_disk_before_the_next_starts(source, tmp_path, monkeypatch):
    calls = []
    original = fine_tuning.fine_tune_and_evaluate

    def crash_on_the_second_run(method, *args, **kwargs):
        calls.append(method.label)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return original(method, *args, **kwargs)

    monkeypatch.setattr(fine_tuning, "fine_tune_and_evaluate", crash_on_the_second_run)
    with pytest.raises(RuntimeError, match="killed"):
        run(source, tmp_path, method=("l2", "l2_fe"))
    saved = results(tmp_path)
    assert saved["complete"] is False and calls == ["l2", "l2_fe"]
    assert list(saved["results"]) == ["l2"] and len(saved["results"]["l2"]["runs"]) == 1


def test_own_data_trains_on_every_image_and_the_demo_on_its_few_shot_count():
    def per_class(*args):
        common.parse(finetune.FLAGS, ["prog", *args])
        return finetune.FinetuneConfig.from_flags(finetune.FLAGS).train_per_class()

    assert per_class() == finetune.DEMO_PER_CLASS == 30
    assert per_class("--dataset=folder:/data/mine") == 0  # 0: all images
    assert per_class("--per_class=0") == 0
    assert per_class("--fraction=0.5") == 0 and finetune.FLAGS.fraction == 0.5  # alone: no --per_class=0
    assert per_class("--fraction=0") == 0  # given, even as 0: not the demo's count
    assert finetune.FinetuneConfig().train_per_class() == 30  # the same rules in Python
    assert finetune.FinetuneConfig(fraction=0.5).train_per_class() == 0


def test_the_training_images_per_class_are_reported():
    train = keras_tl.data.load("digits", "train", image_size=8, classes=["5", "6", "7"], per_class=30)
    assert (
        train.describe() == "90 training images in 3 classes, 30 per class (5: 30, 6: 30, 7: 30)"
    )
    uneven = keras_tl.data.Split(None, ["a", "b", "c"], np.array([0, 0, 1, 2, 2, 2]), (8, 8))
    assert (
        uneven.describe() == "6 training images in 3 classes, 1-3 per class (a: 2, b: 1, c: 3)"
    )
    many = keras_tl.data.Split(None, [f"c{i}" for i in range(25)], np.arange(25), (8, 8))
    shown = ", ".join(f"c{i}: 1" for i in range(20))
    assert many.describe() == f"25 training images in 25 classes, 1 per class ({shown}, ...)"
