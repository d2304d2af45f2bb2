"""`apps.finetune --method=auto`: `keras_tl.select` per seed, its choice and table in results.json and results.md."""

import json

import numpy as np
import pytest
from absl import flags

from apps import auto_select, common, finetune
from tests.apps.helpers import tiny_finetune, to_argv
from tests.apps.test_kill_resume import write_source
from tests.conftest import on_backend


@on_backend("tensorflow")  # the app's wiring; select on each backend: tests/selection
def test_method_auto_selects_on_the_samples_complement_and_reports_the_search(tmp_path):
    source = str(tmp_path / "source.keras")
    write_source(source)
    config = tiny_finetune(
        source, tmp_path / "out", method=("auto", "l2"), select_candidates=("l2_sp",), hparams={"alpha": 0.1}
    )
    report = finetune.run(config)
    with open(tmp_path / "out" / "results.json") as handle:
        saved = json.load(handle)
    run = saved["results"]["auto"]["runs"][0]
    selection = run["selection"]
    # One epoch: a single rung, L2 and L2-SP (α from --hparams) each trained once: 2 L2 runs.
    assert [(row["candidate"], row["rung"], row["epochs"]) for row in selection["table"]] == [
        ("L2", 0, 1),
        ("L2-SP (alpha=0.1)", 0, 1),
    ]
    assert selection["cost"]["ratio"] == selection["cost"]["planned_ratio"] == 2.0
    scores = {row["method"]: row["val_top1"] for row in selection["table"]}
    assert run["selected"] == ("l2_sp" if scores["l2_sp"] > scores["l2"] else "l2")
    assert run["selected"] == selection["method"] and 0.0 <= run["top1"] <= 1.0
    assert run["history"]["loss"] and list(saved["results"]) == ["auto", "l2"]
    with open(tmp_path / "out" / "results.md") as handle:
        text = handle.read()
    assert text == report["table"] + "\n"
    assert "| auto | " in text and "## auto, seed 0" in text and "| L2-SP (alpha=0.1) | 0 | 1 |" in text


def images(split):
    return {x.tobytes() for x, _ in split.dataset.unbatch().as_numpy_iterator()}


def test_auto_validates_on_the_complement_of_the_sample_or_a_held_out_fraction(tmp_path):
    digits = finetune.DIGITS_CLASSES
    whole = common.load_split(
        tiny_finetune("s", tmp_path), "train", (8, 8), None, training=False, digits_classes=digits
    )
    for per_class, expected_train in ((4, 4 * 5), (0, None)):
        config = tiny_finetune("s", tmp_path, per_class=per_class, batch_size=1)
        train, validation = auto_select.splits(config, 0, (8, 8), None, digits)
        if expected_train is None:  # no few-shot sample: --select_holdout (0.2) of each class held out
            counts = np.bincount(validation.labels)
            assert np.all(np.abs(counts - 0.2 * np.bincount(whole.labels)) <= 0.5)
        else:
            assert train.num_examples == expected_train
        assert train.num_examples + validation.num_examples == whole.num_examples
        assert not images(train) & images(validation)  # (augment="none": a training image is its eval crop)


def test_auto_flags_parse_and_are_checked():
    argv = [
        "prog",
        "--method=auto,l2",
        "--select_candidates=l2_sp,delta+dtnh",
        "--select_budget=4",
        "--select_validation=val",
        "--hparams=alpha=0.1",
    ]
    common.parse(finetune.FLAGS, argv)
    config = finetune.FinetuneConfig.from_flags(finetune.FLAGS)
    assert (config.method, config.select_candidates, config.select_budget, config.select_validation) == (
        ("auto", "l2"),
        ("l2_sp", "delta+dtnh"),
        4.0,
        "val",
    )
    common.parse(finetune.FLAGS, to_argv(config))
    assert finetune.FinetuneConfig.from_flags(finetune.FLAGS) == config
    with pytest.raises(flags.Error, match=r"Unknown method\(s\) \['nope'\]"):
        common.parse(finetune.FLAGS, ["prog", "--method=auto", "--select_candidates=nope"])
    with pytest.raises(flags.Error, match=r"Unknown hyperparameter\(s\) \['alpha'\] for methods \[\]"):
        common.parse(finetune.FLAGS, ["prog", "--method=auto", "--hparams=alpha=0.1"])
    with pytest.raises(flags.Error, match=r"select_budget"):
        common.parse(finetune.FLAGS, ["prog", "--method=auto", "--select_budget=0.5"])
