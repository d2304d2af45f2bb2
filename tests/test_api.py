"""The public namespace is built from `keras_tl_export`: every exported path imports to its object."""

import importlib
import os
import pkgutil

import keras
import pytest

import keras_tl
from keras_tl.api_export import EXPORTED

# Implementation modules: the backend trainers, helpers and the export decorator itself.
PRIVATE = {"api_export", "trainers", "utils"}


def public_submodules():
    folder = os.path.dirname(keras_tl.__file__)
    return sorted(m.name for m in pkgutil.iter_modules([folder]) if not m.name.startswith("_") and m.name not in PRIVATE)


def test_dir_lists_every_public_submodule_and_nothing_private():
    names = dir(keras_tl)
    assert set(public_submodules()) <= set(names)
    assert not [name for name in names if name.startswith("_") or name in PRIVATE]
    assert names == sorted(keras_tl.__all__)
    for name in names:
        assert getattr(keras_tl, name) is not None  # lazy submodules too


def test_every_exported_path_imports_to_its_object():
    for name in public_submodules():
        importlib.import_module(f"keras_tl.{name}")  # every decorator has run
    assert len(EXPORTED) > 40
    for path, obj in EXPORTED.items():
        module, _, attribute = path.rpartition(".")
        assert module.split(".")[1] not in PRIVATE if "." in module else True, path
        assert getattr(importlib.import_module(module), attribute) is obj, path
        assert obj._keras_tl_public_path == path
        if isinstance(obj, type):  # a class is found by Keras' deserialization too
            assert keras.saving.get_registered_object(keras.saving.get_registered_name(obj)) is obj, path


@pytest.mark.parametrize("path", ["keras_tl.fine_tune", "keras_tl.pretrain", "keras_tl.callbacks.NaNGuard",
                                  "keras_tl.callbacks.StepTimer", "keras_tl.methods.Method", "keras_tl.methods.get"])
def test_the_units_users_call_are_exported(path):
    assert path in EXPORTED


def test_the_renamed_attention_module_is_channel_weights_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="keras_tl.channel_weights"):
        module = keras_tl.attention
    assert module is keras_tl.channel_weights
    assert "attention" not in dir(keras_tl)
    with pytest.raises(AttributeError, match="no attribute 'attentions'"):
        keras_tl.attentions  # noqa: B018
