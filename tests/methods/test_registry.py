"""The method registry: every registered method meets the contract, and a user's own works everywhere."""

import dataclasses
import importlib
import json
import os
import re
import sys

import keras
import numpy as np
import pytest

import keras_tl
from apps import common, finetune
from benchmarks import plans
from keras_tl import methods
from tests.conftest import TAPS, tiny_data, tiny_source


@pytest.mark.parametrize("name", methods.names())
def test_every_registered_method_meets_the_contract(name):
    cls = methods.registered(name)
    assert cls.name == name and dataclasses.is_dataclass(cls)
    assert cls.display_name and cls.reference and cls.rule
    defaults = cls.defaults()
    assert cls.coefficient is None or cls.coefficient in defaults
    assert cls.grid_from is None or methods.registered(cls.grid_from).coefficient == cls.coefficient
    assert set(cls.quick_hparams) <= set(defaults)
    for variant in cls.select_variants:  # each of select's default candidate sets is a valid method
        assert json.loads(json.dumps(variant)) == variant
        assert methods.get(name, **variant).hparams == variant
    for claim in cls.claims:
        assert methods.split_label(claim.over)[0] in methods.names(), claim
        assert claim.datasets is None or set(claim.datasets) <= set(plans.DATASETS)
    for dtnh in (False, True):
        method = methods.get(name + ("+dtnh" if dtnh else ""))
        assert method.dtnh is dtnh and method.hparams == {} and method.label.startswith(name)
        config = method.get_config()
        assert json.loads(json.dumps(config)) == config
        assert cls.from_config(config) == method
        assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(method)) == method
        assert (method.gradient_rule() is not None) is dtnh
    with pytest.raises(dataclasses.FrozenInstanceError):
        method.dtnh = False
    try:
        setup = methods.get(name).setup()
    except ValueError as error:  # measures the training data first
        assert f"Expected the training data for method {name!r}" in str(error)
    else:
        assert setup.regularizers and all(isinstance(r, keras_tl.regularizers.Regularizer) for r in setup.regularizers)


def test_get_and_its_errors():
    assert methods.names()[:3] == ["l2", "l2_fe", "l2_sp"]
    method = methods.get("l2_sp+dtnh", alpha=np.float32(0.1))
    assert method.dtnh and method.label == "l2_sp+dtnh" and method.hparams == {"alpha": np.float32(0.1)}
    assert methods.get(method) is method and methods.get("l2_sp", dtnh=True).dtnh
    assert repr(methods.get("l2_sp", alpha=0.1)) == "L2SP(alpha=0.1, beta=0.01, dtnh=False)"
    assert methods.registered("delta").display(dtnh=True) == "DTNH(DELTA)"
    with pytest.raises(ValueError, match=r"Expected a method from \['l2', .*Received: name='l3'"):
        methods.get("l3")
    with pytest.raises(ValueError, match=r"Expected hyperparameters of 'l2_sp' from \['alpha', 'beta'\]"):
        methods.get("l2_sp", lam=1.0)
    with pytest.raises(ValueError, match=r"Expected k to be an integer"):
        methods.get("bss", k=1.5)
    with pytest.raises(ValueError, match=r"Expected attention to be True or False .* Received: attention=0"):
        methods.get("delta", attention=0)
    with pytest.raises(ValueError, match=r"Expected alpha to be a finite number .* Received: alpha=nan"):
        methods.L2SP(alpha=float("nan"))
    with pytest.raises(TypeError, match="takes 1 positional argument"):
        methods.L2SP(0.1)  # hyperparameters are always named


def test_registering_checks_the_name_and_refuses_a_second_owner():
    with pytest.raises(ValueError, match=r"Expected the method's name to be a lower-case identifier"):

        @methods.register
        class Bad(methods.Method):
            name = "Bad-Name"

    with pytest.raises(ValueError, match=r"Expected a new method name. Received: Mine.name='l2_sp', already registered"):

        @methods.register
        class Mine(methods.Method):
            name = "l2_sp"

    with pytest.raises(TypeError, match="Expected a subclass of keras_tl.methods.Method"):
        methods.register(dict)

    with pytest.raises(
        ValueError, match=r"^Expected select_variants, .* \(select_hparams was replaced by it\). Received: Old.select_hparams"
    ):

        @methods.register
        class Old(methods.Method):
            name = "old_select_hparams"
            select_hparams = {"alpha": 1.0}

    with pytest.raises(
        ValueError, match=r"^Expected select_variants to be a non-empty tuple .* Received: Single.select_variants=\{\}"
    ):

        @methods.register
        class Single(methods.Method):
            name = "single_select_variant"
            select_variants = {}

    assert "old_select_hparams" not in methods.names() and "single_select_variant" not in methods.names()


@pytest.fixture
def user_method():
    """`tests.methods.user_method`: a method registered outside the package, unregistered afterwards."""
    module = importlib.import_module("tests.methods.user_method")
    module = importlib.reload(module) if "l1_sp" not in methods.names() else module
    yield module.L1SP
    methods.unregister("l1_sp")
    sys.modules.pop("tests.methods.user_method", None)


def test_a_users_method_runs_through_fine_tune(user_method):
    x, y = tiny_data(n=8)
    import tensorflow as tf

    train = keras_tl.data.as_split((x, y), batch_size=4) if hasattr(keras_tl.data, "as_split") else None
    if train is None:  # before plain data is accepted everywhere: a split-like namespace
        import types

        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4, drop_remainder=True)
        train = types.SimpleNamespace(
            dataset=dataset, num_classes=3, num_examples=8, batch_size=4, epoch_callback=keras.callbacks.Callback
        )
    model, history = keras_tl.fine_tune("l1_sp+dtnh", tiny_source(), train, epochs=1, taps=TAPS, verbose=0)
    assert np.isfinite(history.history["reg/l1_sp"][0]) and "dtnh/projected" in history.history
    assert model.regularizers[0].hparams == {"alpha": user_method.defaults()["alpha"]}


def test_a_users_method_enters_the_benchmark_plans_and_the_app_flags(user_method, tmp_path):
    assert "l1_sp" in plans.table_labels() and "l1_sp" in plans.grid_methods()
    assert ("dtd10", "l1_sp", "l2") in plans.directions(list(plans.DATASETS))
    source = tmp_path / "source.keras"
    source.write_bytes(b"x")
    settings = plans.Settings(sources=(("cross_entropy", str(source)),), data_root="", runs_dir=str(tmp_path))
    run = plans.make_run(settings, "dtd10", "l1_sp", 20, hparams=(("alpha", 0.01),))
    assert (run.method, run.hparams, run.source) == ("l1_sp", (("alpha", 0.01),), str(source))
    assert plans.grid_values(settings, "l1_sp", 20) == pytest.approx([0.0001, 0.001, 0.01])
    common.parse(finetune.FLAGS, ["prog", "--plugins=tests.methods.user_method", "--method=l1_sp+dtnh"])
    assert finetune.FinetuneConfig.from_flags(finetune.FLAGS).method == ("l1_sp+dtnh",)


def test_the_app_names_a_plugin_it_cannot_import():
    with pytest.raises(Exception, match=r"Expected --plugins to name importable modules. Received: 'no_such_module'"):
        common.parse(finetune.FLAGS, ["prog", "--plugins=no_such_module"])


def test_the_readme_methods_table_says_what_the_registry_says():
    """Every method row of README.md is the registry's metadata (a row can go stale, not drift)."""
    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "README.md")).read()
    rows = [line for line in readme.splitlines() if re.search(r"^\| .* \| `keras_tl\.methods\.\w+` \|$", line)]
    keys = [line.split("|")[2].strip().strip("`") for line in rows]
    assert len(rows) >= 13 and all(key in methods.names() for key in keys), keys
    for row, key in zip(rows, keys, strict=True):
        cls = methods.registered(key)
        assert row == f"| {cls.display_name} | `{key}` | {cls.rule} | {cls.reference} | `keras_tl.methods.{cls.__name__}` |"
