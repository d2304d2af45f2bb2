"""Every registered regularizer goes through the same checks (like optax's transformation tests)."""

import importlib
import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.regularizers import ALL, L2, L2SP
from keras_tl.utils.weights import named_variables
from tests.conftest import TAPS, compile_sgd, tiny_data, tiny_source

EXAMPLES = {L2: lambda: L2(beta=0.01, scope="all"), L2SP: lambda: L2SP(alpha=0.1, beta=0.01)}
# Each method family lists its own examples beside its tests.
for module in ("contract_examples_feature", "contract_examples_output"):
    try:
        EXAMPLES.update(importlib.import_module(f"tests.regularizers.{module}").CONTRACT_EXAMPLES)
    except ModuleNotFoundError:
        pass


def test_every_registered_regularizer_has_an_example():
    assert not [cls.__name__ for cls in ALL if cls not in EXAMPLES]


def build(cls, rule=None):
    return keras_tl.TransferModel(
        tiny_source(),
        3, taps=TAPS, regularizers=[EXAMPLES[cls]()], gradient_rule=rule, source_head=True,
    )


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_config_is_json_and_round_trips(cls):
    reg = EXAMPLES[cls]()
    config = reg.get_config()
    assert json.loads(json.dumps(config)) == config
    assert cls.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(reg))))
    assert type(restored) is cls and restored.get_config() == config
    assert cls.__doc__ and "Reference:" in cls.__doc__ and "Example:" in cls.__doc__


@pytest.mark.parametrize("rule", [None, "dtnh"])
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_trains_under_fit_without_touching_the_source(cls, rule):
    model = compile_sgd(build(cls, keras_tl.gradients.DTNH() if rule else None), lr=0.05)
    reg = model.regularizers[0]
    x, y = tiny_data()
    term = model.regularization_terms(model.step_values(x, y))[reg.name]
    assert tuple(term.shape) == () and np.isfinite(float(term))
    frozen = [model.source_backbone] if model.source_backbone is not None else []
    before = [{k: keras.ops.convert_to_numpy(v) for k, v in named_variables(m).items()} for m in frozen]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history[f"reg/{reg.name}"][0]) and np.isfinite(history["loss"][0])
    for m, old in zip(frozen, before):
        for key, value in named_variables(m).items():
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(value), old[key], err_msg=key)
        assert not m.trainable_weights
    if rule:
        assert 0.0 <= history["dtnh/projected"][0] <= 1.0


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_saves_with_the_model(cls, tmp_path):
    model = build(cls)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.regularizers[0].get_config() == model.regularizers[0].get_config()
    for a, b in zip(model.regularizers[0].weights, restored.regularizers[0].weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
