"""`keras_tl.utils.run_identity`: what decides a run's weights, JSON-safe, the same digest on every backend."""

import json
import os

import numpy as np
import pytest

import keras_tl
from keras_tl.utils import run_identity
from tests.conftest import only_once, run_python, tiny_source

IDENTITY_CODE = """
import json, keras_tl
from keras_tl.utils import run_identity
from keras_tl.testing import tiny_source
train = keras_tl.data.load("digits", "train", image_size=8, classes=["5", "6"], per_class=4, batch_size=4,
                           training=True, preprocess="cifar_resnet8")
identity = run_identity.fine_tune_identity(
    keras_tl.methods.get("l2_sp", alpha=0.1), tiny_source(), train, epochs=2, lr=0.05, momentum=0.9,
    taps=[], dropout=0.0, seed=0)
print(json.dumps(identity))
"""


def split(**kwargs):
    options = dict(image_size=8, classes=["5", "6"], per_class=4, batch_size=4, training=True)
    return keras_tl.data.load("digits", "train", **{**options, **kwargs})


def identity(train=None, method=("l2_sp", {}), source=None, **settings):
    settings = {**dict(epochs=2, lr=0.05, momentum=0.9, taps=[], dropout=0.0, seed=0), **settings}
    return run_identity.fine_tune_identity(
        keras_tl.methods.get(method[0], **method[1]), source or tiny_source(), train or split(), **settings
    )


def test_the_identity_is_json_and_holds_every_setting_that_decides_the_weights():
    first = identity(method=("l2_sp", {"alpha": 0.1}))
    assert json.loads(json.dumps(first)) == first
    settings = first["settings"]
    assert {key: settings[key] for key in ("method", "hparams", "epochs", "lr", "momentum", "batch_size", "seed")} == {
        "method": "l2_sp", "hparams": {"alpha": 0.1}, "epochs": 2, "lr": 0.05, "momentum": 0.9, "batch_size": 4,
        "seed": 0,
    }
    assert settings["data"]["class_names"] == ["5", "6"] and settings["data"]["per_class"] == 4
    assert settings["data"]["examples"] == 8
    assert settings["source"]["weights"].startswith("sha256:")
    assert identity(method=("l2_sp", {"alpha": 0.1})) == first  # deterministic


@pytest.mark.parametrize(
    "change, expected",
    [
        (dict(lr=0.1), ["lr: 0.05 -> 0.1"]),
        (dict(epochs=3), ["epochs: 2 -> 3"]),
        (dict(method=("l2_sp", {"alpha": 1})), ["hparams.alpha: (unset) -> 1"]),
        (dict(method=("l2_sp+dtnh", {})), ["method: 'l2_sp' -> 'l2_sp+dtnh'"]),
        (dict(train="per_class"), ["data.examples: 8 -> 6", "data.per_class: 4 -> 3"]),
        (dict(train="classes"), ["data.class_names: [\"5\", \"6\"] -> [\"6\", \"5\"]", "data.classes: [\"5\", \"6\"] -> [\"6\", \"5\"]"]),
        (dict(train="augment"), ["data.augment: 'keras' -> 'none'"]),
        (dict(taps=["conv"]), ["taps: [] -> [\"conv\"]"]),
    ],
)
def test_each_changed_setting_changes_the_digest_and_is_named(change, expected):
    trains = {"per_class": dict(per_class=3), "classes": dict(classes=["6", "5"]), "augment": dict(augment="none")}
    if "train" in change:
        change = {"train": split(**trains[change["train"]])}
    base, other = identity(), identity(**change)
    assert base["digest"] != other["digest"]
    assert run_identity.differences(base["settings"], other["settings"]) == expected


def test_another_source_weight_changes_the_identity():
    source = tiny_source()
    before = run_identity.source_identity(source)
    source.weights[0].assign(source.weights[0] + 1e-6)
    assert run_identity.source_identity(source) != before
    assert run_identity.source_identity("resnet50") == {"backbone": "resnet50"}


def test_json_safe_values():
    assert run_identity.json_safe(
        {"a": (1, np.int64(2)), "b": np.float32(0.5), "c": np.bool_(True), "d": np.arange(2), "e": np.mean, 3: None}
    ) == {"a": [1, 2], "b": 0.5, "c": True, "d": [0, 1], "e": "numpy.mean", "3": None}


def test_claim_folder_refuses_another_run_naming_the_settings(tmp_path):
    first = run_identity.make({"lr": 0.01, "hparams": {"alpha": 0.1}})
    path = run_identity.claim_folder(str(tmp_path), first)
    assert json.loads(open(path).read()) == first
    run_identity.claim_folder(str(tmp_path), first)  # the same run: claimed again
    other = run_identity.make({"lr": 0.05, "hparams": {"alpha": 1}})
    with pytest.raises(ValueError) as info:
        run_identity.claim_folder(str(tmp_path), other, name="--output_dir")
    assert str(info.value) == (
        f"{tmp_path} holds a run with other settings (hparams.alpha: 0.1 -> 1; lr: 0.01 -> 0.05). Use a new "
        "--output_dir to keep it, or overwrite=True (apps.finetune: --overwrite) to replace it."
    )
    run_identity.claim_folder(str(tmp_path), other, overwrite=True)
    assert json.loads(open(os.path.join(tmp_path, "identity.json")).read()) == other


@only_once
def test_the_identity_is_the_same_on_both_backends():
    tensorflow, jax = (run_python(IDENTITY_CODE, backend) for backend in ("tensorflow", "jax"))
    assert tensorflow == jax
