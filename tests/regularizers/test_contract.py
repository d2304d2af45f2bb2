"""Every registered regularizer goes through the same checks (like optax's transformation tests)."""

import importlib

import keras
import numpy as np
import pytest
from keras import ops

import keras_tl
from keras_tl.regularizers import ALL, L2, L2SP, FunctionRegularizer
from keras_tl.testing import check_regularizer


@keras.saving.register_keras_serializable(package="keras_tl_tests")
def l1_sp(target_weights, source_weights, alpha=0.01):
    return alpha * sum(ops.sum(ops.abs(target_weights[k] - source_weights[k])) for k in source_weights)


EXAMPLES = {
    L2: lambda: L2(beta=0.01, scope="all"),
    L2SP: lambda: L2SP(alpha=0.1, beta=0.01),
    FunctionRegularizer: lambda: keras_tl.regularizers.from_function(l1_sp, alpha=0.1),
}
# Each method family lists its own examples beside its tests.
for module in ("contract_examples_feature", "contract_examples_output"):
    try:
        EXAMPLES.update(importlib.import_module(f"tests.regularizers.{module}").CONTRACT_EXAMPLES)
    except ModuleNotFoundError:
        pass


def test_the_registry_holds_every_built_in_and_each_has_an_example():
    assert {cls.__name__ for cls in ALL} >= {"L2", "L2SP", "DELTA", "BSS", "CoTuning", "LwF", "FunctionRegularizer"}
    assert not [cls.__name__ for cls in ALL if cls not in EXAMPLES]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_meets_the_contract(cls):
    check_regularizer(EXAMPLES[cls])
    assert cls.__doc__ and "Reference:" in cls.__doc__ and "Example:" in cls.__doc__


@keras.saving.register_keras_serializable(package="keras_tl_tests")
def no_gradient(target_weights, alpha=1.0):
    return alpha * ops.stop_gradient(sum(ops.sum(w) for w in target_weights.values()))


def test_the_contract_catches_a_term_without_gradient():
    with pytest.raises(AssertionError, match="did not move any weight: the term has no gradient"):
        check_regularizer(lambda: keras_tl.regularizers.from_function(no_gradient))


def test_a_custom_term_in_five_lines_trains_under_dtnh_and_round_trips(tmp_path):
    from tests.conftest import compile_sgd, tiny_data, tiny_source

    @keras.saving.register_keras_serializable(package="user")
    def l1_to_source(target_weights, source_weights, alpha=0.01):
        return alpha * sum(ops.sum(ops.abs(target_weights[k] - source_weights[k])) for k in source_weights)
    term = keras_tl.regularizers.from_function(l1_to_source, alpha=0.5)

    model = keras_tl.TransferModel(tiny_source(), 3, regularizers=[term], gradient_rule=keras_tl.gradients.DTNH())
    compile_sgd(model, lr=0.05)
    x, y = tiny_data()
    assert float(model.objective.terms(model.objective.weight_values())["l1_to_source"]) == 0.0  # at the source
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0).history
    assert history["reg/l1_to_source"][0] > 0.0 and history["reg/l1_to_source"][1] > 0.0  # it moved off the source
    values = model.objective.weight_values()
    expected = 0.5 * sum(
        np.sum(np.abs(ops.convert_to_numpy(values["target_weights"][k]) - ops.convert_to_numpy(v)))
        for k, v in values["source_weights"].items()
    )
    np.testing.assert_allclose(float(model.objective.terms(values)["l1_to_source"]), expected, rtol=1e-5)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.regularizers[0].get_config()["hparams"] == {"alpha": 0.5}
    np.testing.assert_allclose(float(restored.objective.terms(restored.objective.weight_values())["l1_to_source"]), expected, rtol=1e-5)


def test_function_terms_name_what_is_wrong():
    def bad(target_weights, strength):
        return strength

    with pytest.raises(ValueError, match=r"Received: parameters \['strength'\]"):
        keras_tl.regularizers.from_function(bad)
    with pytest.raises(ValueError, match=r"Expected hyperparameters of l1_sp from \['alpha'\]. Received: \['beta'\]"):
        keras_tl.regularizers.from_function(l1_sp, beta=1.0)


def test_source_head_is_inferred_from_the_terms_or_refused_by_name():
    from tests.conftest import tiny_source
    from tests.regularizers.contract_examples_output import CONTRACT_EXAMPLES

    lwf = CONTRACT_EXAMPLES[keras_tl.regularizers.LwF]
    assert keras_tl.TransferModel(tiny_source(), 3, regularizers=[lwf()]).source_head is not None
    assert keras_tl.TransferModel(tiny_source(), 3, regularizers=[L2SP()]).source_head is None
    with pytest.raises(ValueError, match=r"Expected keep_source_head=True \(or None\) for the regularizers \['lwf'\]"):
        keras_tl.TransferModel(tiny_source(), 3, regularizers=[lwf()], keep_source_head=False)


def test_one_numeric_validator_accepts_numpy_scalars_and_rejects_bools():
    assert L2SP(alpha=np.float32(0.5)).alpha == 0.5
    with pytest.raises(ValueError, match=r"Expected alpha >= 0 \(a float\). Received: alpha=True"):
        L2SP(alpha=True)
