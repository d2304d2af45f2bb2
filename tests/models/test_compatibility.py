"""`.keras` files written by keras_tl 0.1 load with every weight in place (tests/models/data, made by 0.1)."""

import os

import keras
import numpy as np
import pytest

import keras_tl

DATA = os.path.join(os.path.dirname(__file__), "data")
OLD = os.path.join(DATA, "transfer_model_0.1.keras")


def check(model):
    expected = np.load(os.path.join(DATA, "transfer_model_0.1_expected.npz"))
    assert isinstance(model, keras_tl.TransferModel) and model.source_head is not None
    assert [r.name for r in model.regularizers] == ["l2_sp", "lwf", "feature_map_distillation"]
    assert model.gradient_rule.name == "dtnh" and model.get_config()["keep_source_head"] is True
    # Paths repeat (the target and the frozen source share layer names), and the order of `weights`
    # changed with the regularizers' place: compare the (path, sum) pairs as sorted lists.
    loaded = sorted((v.path, float(np.sum(keras.ops.convert_to_numpy(v), dtype="float64"))) for v in model.weights)
    saved = sorted(zip(expected["paths"].tolist(), expected["sums"].tolist(), strict=True))
    assert [path for path, _ in loaded] == [path for path, _ in saved]
    np.testing.assert_allclose([s for _, s in loaded], [s for _, s in saved], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(expected["x"])), expected["logits"], rtol=1e-5, atol=1e-5)
    assert int(keras.ops.convert_to_numpy(model.regularization_stage)) == 1


def test_keras_tl_load_model_converts_a_0_1_file_in_memory_and_says_how_to_rewrite_it():
    assert keras_tl.models.legacy.is_legacy(OLD)
    with pytest.warns(UserWarning, match=r"written by keras_tl 0.1; .* keras_tl.models.convert_legacy"):
        check(keras_tl.models.load_model(OLD, compile=False))


def test_a_converted_0_1_file_loads_with_keras_and_keeps_its_layout_on_save(tmp_path):
    converted = keras_tl.models.convert_legacy(OLD, str(tmp_path / "converted.keras"))
    assert not keras_tl.models.legacy.is_legacy(converted)
    model = keras.models.load_model(converted, compile=False)
    check(model)
    model.save(tmp_path / "again.keras")
    check(keras.models.load_model(tmp_path / "again.keras", compile=False))
    with pytest.raises(ValueError, match=r"Expected a .keras file of keras_tl 0.1"):
        keras_tl.models.convert_legacy(converted, str(tmp_path / "twice.keras"))
