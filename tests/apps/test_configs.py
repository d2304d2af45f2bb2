"""Each app's frozen config: built from flags or in Python, the same run."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest

from apps import common, evaluate, export, finetune, pretrain
from tests.apps.helpers import tiny_finetune, to_argv
from tests.apps.test_kill_resume import write_source
from tests.conftest import on_backend

APPS = {
    finetune: finetune.FinetuneConfig,
    pretrain: pretrain.PretrainConfig,
    evaluate: evaluate.EvaluateConfig,
    export: export.ExportConfig,
}


def config_from_argv(app, argv):
    common.parse(app.FLAGS, argv)
    return APPS[app].from_flags(app.FLAGS)


@pytest.mark.parametrize("app", list(APPS), ids=lambda app: app.__name__)
def test_a_config_has_a_field_per_flag_and_the_flags_defaults(app):
    fields = {field.name for field in dataclasses.fields(APPS[app])}
    assert fields == set(app.FLAGS) - {"debug"}  # --debug only changes how an error is shown
    assert config_from_argv(app, ["prog"]) == APPS[app]()


@pytest.mark.parametrize("app", list(APPS), ids=lambda app: app.__name__)
def test_configs_are_frozen_and_replace_makes_a_new_one(app):
    config = APPS[app]()
    name = "seed" if app in (finetune, pretrain) else "model"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, name, 3)
    changed = dataclasses.replace(config, **{name: 3})
    assert getattr(changed, name) == 3 and changed != config and config == APPS[app]()


def test_from_flags_round_trips_the_flags():
    argv = [
        "prog",
        "--dataset=folder:/data/x",
        "--classes=a,b",
        "--method=l2,bss+dtnh",
        "--hparams=beta=0.1,bss.k=2",
        "--noexport",
        "--fraction=0.5",
        "--lr=0.02",
        "--ten_crop",
    ]
    config = config_from_argv(finetune, argv)
    assert config.classes == ("a", "b") and config.method == ("l2", "bss+dtnh")
    assert config.hparams == {"beta": 0.1, "bss.k": 2} and config.export is False
    assert (config.per_class, config.fraction, config.lr, config.ten_crop) == (0, 0.5, 0.02, True)
    assert config_from_argv(finetune, to_argv(config)) == config
    for app, fields in [
        (pretrain, dict(backbone="cifar_resnet8", loss="pgd", pgd_tau=10.0, classes=("1", "2"), flip=False)),
        (evaluate, dict(model="m.keras", crops=("ten",), image_size=8)),
        (export, dict(model="m.keras", version=3, resize_ratio=1.5, name="digits")),
    ]:
        config = APPS[app](**fields)
        assert config_from_argv(app, to_argv(config)) == config


@on_backend("tensorflow")  # flags against a config; each backend's bitwise run: tests/test_fine_tuning.py
def test_a_python_config_runs_as_the_same_command_line(tmp_path):
    source = str(tmp_path / "source.keras")
    write_source(source)
    python = tiny_finetune(source, tmp_path / "python", method=("l2_sp", "l2"), hparams={"alpha": 0.1})
    report = finetune.run(python)
    cli = dataclasses.replace(python, output_dir=str(tmp_path / "cli"))
    common.parse(finetune.FLAGS, to_argv(cli))
    finetune.main(["prog"])  # what `python -m apps.finetune <flags>` runs after parsing them
    with open(tmp_path / "cli" / "results.json") as handle:
        saved = json.load(handle)
    assert saved["config"] == json.loads(json.dumps(dataclasses.asdict(cli)))
    assert list(saved["results"]) == list(report["results"]) == ["l2_sp", "l2"]
    for label, result in report["results"].items():
        (ours,), (theirs,) = result["runs"], saved["results"][label]["runs"]
        for key in ("top1", "mean_per_class", "history"):
            assert ours[key] == theirs[key], (label, key)
        assert len(ours["history"]["loss"]) == 1 and 0.0 <= ours["top1"] <= 1.0
    for name in ("python", "cli"):
        assert os.path.isfile(tmp_path / name / "best_model.keras")
    weights = [
        keras.saving.load_model(str(tmp_path / name / "best_model.keras")).get_weights()
        for name in ("python", "cli")
    ]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
    best = evaluate.EvaluateConfig(model=str(tmp_path / "cli" / "best_model.keras"), crops=("center",))
    best_run = report["results"][report["best"]["method"]]["runs"][0]
    assert evaluate.run(best)["center"]["top1"] == pytest.approx(best_run["top1"])
