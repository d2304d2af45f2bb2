"""Tiny runs through the apps' code on this backend: pretrain → finetune → evaluate → export."""

import glob
import json
import os

import keras
import numpy as np
import pytest

import keras_tl.data
from apps import common, evaluate, export, finetune, pretrain
from keras_tl import backbones, fine_tuning, models
from tests.apps.helpers import tiny_finetune, to_argv


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("apps")
    common.parse(
        pretrain.FLAGS,
        [
            "prog",
            "--backbone=cifar_resnet8",
            "--image_size=8",
            "--epochs=1",
            "--per_class=8",
            "--batch_size=16",
            "--eval_split=",
            f"--output_dir={root}/pretrain",
            "--bn_momentum=0.9",
        ],
    )
    _, history, source = pretrain.run(pretrain.PretrainConfig.from_flags(pretrain.FLAGS))
    config = finetune.FinetuneConfig(
        source=source,
        per_class=4,
        epochs=1,
        batch_size=8,
        repeats=2,
        method=("l2_sp",),
        dtnh=True,
        hparams={"alpha": 0.1},
        ten_crop=True,
        verbose=0,
        output_dir=f"{root}/finetune",
    )
    common.parse(finetune.FLAGS, to_argv(config))  # the command line, as `python -m apps.finetune` parses it
    report = finetune.run(finetune.FinetuneConfig.from_flags(finetune.FLAGS))
    return root, source, history, report


def test_pretrain_writes_the_source_and_its_card(runs):
    root, source, history, _ = runs
    assert list(history) == ["accuracy", "loss"] and len(history["loss"]) == 1
    model = keras.saving.load_model(source, compile=False)
    assert model.output.shape[-1] == 5  # digits 0-4, the pretrain default
    card = models.load_card(source)
    assert card["backbone"] == "cifar_resnet8" and card["class_names"] == ["0", "1", "2", "3", "4"]
    assert not os.path.exists(
        os.path.join(root, "pretrain", "backup")
    )  # BackupAndRestore cleans up when done


def test_finetune_reports_mean_and_std_over_the_seeds(runs):
    root, _, _, report = runs
    out = os.path.join(root, "finetune")
    with open(os.path.join(out, "results.json")) as handle:
        saved = json.load(handle)
    assert list(saved["results"]) == ["l2_sp+dtnh"]  # --dtnh applies to every method
    for result in saved["results"].values():
        assert [run["seed"] for run in result["runs"]] == [0, 1]
        top1 = [run["top1"] for run in result["runs"]]
        assert result["summary"]["top1"]["mean"] == pytest.approx(np.mean(top1))
        assert result["summary"]["top1"]["std"] == pytest.approx(np.std(top1, ddof=1))
        assert "top1_10crop" in result["summary"]
    assert "dtnh/angle_d_loss" in saved["results"]["l2_sp+dtnh"]["runs"][0]["history"]
    assert "reg/l2_sp" in saved["results"]["l2_sp+dtnh"]["runs"][0]["history"]
    table = open(os.path.join(out, "results.md")).read().splitlines()
    assert table[0].startswith("| method | top-1 (%) | mean per-class (%) | 10-crop top-1 (%)")
    assert table[2].startswith("| l2_sp+dtnh | ") and table[2].endswith(" | 2 |")
    assert report["table"].splitlines() == table


def test_finetune_writes_plots_logs_model_and_saved_model(runs):
    root, _, _, report = runs
    out = os.path.join(root, "finetune")
    assert sorted(os.path.basename(p) for p in report["plots"]) == ["dtnh_angles.png", "learning_curves.png"]
    for plot in report["plots"]:
        with open(plot, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert glob.glob(
        os.path.join(out, "tensorboard", "l2_sp+dtnh", "seed1", "train", "events.out.tfevents.*")
    )
    assert report["best"]["saved_model"] == os.path.join(out, "saved_models", "digits", "1")
    assert os.path.isfile(os.path.join(report["best"]["saved_model"], "saved_model.pb"))


def test_evaluate_and_export_apps_on_the_best_model(runs):
    root, _, _, report = runs
    best = report["best"]
    results = evaluate.run(evaluate.EvaluateConfig(model=best["model"]))
    first_run = report["results"][best["method"]]["runs"][0]
    assert results["center"]["top1"] == pytest.approx(first_run["top1"])
    assert results["ten"]["mean_per_class"] == pytest.approx(first_run["mean_per_class_10crop"])
    base = os.path.join(root, "finetune", "saved_models")
    common.parse(export.FLAGS, ["prog", f"--model={best['model']}", f"--base_dir={base}"])
    assert export.run(export.ExportConfig.from_flags(export.FLAGS)) == os.path.join(base, "digits", "2")


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("interrupted after the first epoch")


def test_pretraining_resumes_after_an_interruption(tmp_path):
    train = keras_tl.data.load(
        "digits", "train", image_size=8, per_class=2, classes=[0, 1], batch_size=4, training=True
    )
    kwargs = dict(epochs=2, lr=0.01, output=str(tmp_path / "s.keras"), backup_dir=str(tmp_path / "b"))
    with pytest.raises(KeyboardInterrupt):
        keras_tl.pretrain(train, "cifar_resnet8", callbacks=[_Interrupt()], verbose=0, **kwargs)
    assert os.path.isdir(tmp_path / "b") and not os.path.exists(tmp_path / "s.keras")
    epochs_run = []
    count = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: epochs_run.append(epoch))
    _, history = keras_tl.pretrain(train, "cifar_resnet8", callbacks=[count], verbose=0, **kwargs)
    assert epochs_run == [1]  # only the second epoch ran
    assert len(history["loss"]) == 2  # and the history holds both, the first from the checkpoint
    assert keras_tl.models.load_card(kwargs["output"])["history"]["loss"] == history["loss"]
    assert os.path.exists(tmp_path / "s.keras") and not os.path.exists(tmp_path / "b")


def test_a_delta_rerun_with_its_attention_cached_trains_as_the_first_run(tmp_path):
    """A DELTA run killed after its channel-weight cache was written, before its first checkpoint,
    restarts from scratch: the rerun reads the cache instead of training DELTA's head, and must still
    build and train the same model (the cache holds plain floats, which round-trip exactly)."""
    train = keras_tl.data.load(
        "digits",
        "train",
        image_size=8,
        per_class=4,
        classes=[5, 6, 7],
        batch_size=4,
        training=True,
        augment="none",
    )
    source = backbones.build(
        "cifar_resnet8", weights=None, input_shape=(8, 8, 3), include_top=True, classes=5
    )
    runs = []
    for _ in range(2):
        model, record = fine_tuning.fine_tune_and_evaluate(
            keras_tl.methods.get("delta", head_epochs=1, num_batches=1),
            source,
            train,
            train,
            taps=backbones.default_taps("cifar_resnet8"),
            epochs=1,
            verbose=0,
            validation_freq=0,
            log_dir=str(tmp_path),
        )
        runs.append(model.get_weights())
    assert os.path.isfile(tmp_path / "delta_channel_weights.json")
    for first, rerun in zip(*runs, strict=True):
        np.testing.assert_array_equal(first, rerun)


def test_a_backbone_name_source_without_weights_is_seeded(tmp_path):
    """Same flags, same --seed: the randomly initialised source, and so the run, are identical."""
    histories = []
    for attempt in ("a", "b"):
        keras.utils.set_random_seed(1000 + len(attempt) * ord(attempt))  # what ran before must not matter
        config = tiny_finetune(
            "cifar_resnet8", tmp_path / attempt, image_size=8, batch_size=8, method=("l2_sp",), augment="keras", validation_freq=1
        )
        report = finetune.run(config)
        histories.append(report["results"]["l2_sp"]["runs"][0]["history"])
    assert histories[0] == histories[1]
