"""A source saved under float32 gives a target (and a frozen copy) that follow the global dtype policy."""

import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.models.source import follow_global_policy
from keras_tl.regularizers import L2SP, FeatureMapDistillation
from tests.conftest import TAPS, compile_sgd, tiny_data, tiny_source
from tests.trainers.test_mixed_precision import policy

KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)


@pytest.fixture(scope="module")
def saved_source(tmp_path_factory):
    """`tiny_source()` saved to a `.keras` file under the float32 policy (every layer stores float32)."""
    path = str(tmp_path_factory.mktemp("source") / "source.keras")
    with policy("float32"):
        tiny_source().save(path)
    return path


def target(path, dtype_policy):
    with policy(dtype_policy):
        source = keras_tl.models.load_model(path, compile=False)
        model = keras_tl.TransferModel(
            source, 3, taps=TAPS, regularizers=[L2SP(alpha=0.1, beta=0.01), FeatureMapDistillation(alpha=1e-4)]
        )
        model.head.set_weights([np.full(w.shape, 0.05, "float32") for w in model.head.get_weights()])
        compile_sgd(model, lr=0.05)
    return source, model


def kernel_layers(part):
    return [layer for layer in part.layers if isinstance(layer, KERNEL_LAYERS)]


def test_every_conv_and_dense_of_a_float32_saved_source_computes_in_float16(saved_source):
    source, model = target(saved_source, "mixed_float16")
    # What Keras gives: the loaded source keeps the float32 policy it was saved with.
    assert {layer.dtype_policy.name for layer in kernel_layers(source)} == {"float32"}
    for part in (model.target_backbone, model.source_backbone):
        layers = kernel_layers(part)
        # Every one of the source's but its classifier, which the new head replaces.
        assert {layer.name for layer in layers} == {layer.name for layer in kernel_layers(source)} - {"predictions"}
        assert {layer.compute_dtype for layer in layers} == {"float16"}, part.name
        # Variables stay float32: the frozen copy holds the source's exact weights.
        assert {w.dtype for layer in layers for w in layer.weights} == {"float32"}
    assert model.head.compute_dtype == "float16"
    x, y = tiny_data()
    values = model.objective.step_values(x, y)
    assert {keras.backend.standardize_dtype(v.dtype) for v in values["source_features"].values()} == {"float16"}
    terms = model.objective.terms(values)
    assert {keras.backend.standardize_dtype(t.dtype) for t in terms.values()} == {"float32"}
    # Target == source at the start, exactly: L2-SP is only β/2‖head‖² (β = 0.01, head weights 0.05).
    head = sum(np.sum(keras.ops.convert_to_numpy(w).astype("float64") ** 2) for w in model.head.weights)
    np.testing.assert_allclose(float(terms["l2_sp"]), 0.5 * 0.01 * head, rtol=1e-6)


def one_step_displacement(path, dtype_policy):
    _, model = target(path, dtype_policy)
    x, y = tiny_data()
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    with policy(dtype_policy):
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    return np.sqrt(sum(np.sum((a.astype("float64") - b) ** 2) for a, b in zip(after, before, strict=True)))


def test_one_mixed_float16_step_moves_the_weights_as_far_as_float32(saved_source):
    reference = one_step_displacement(saved_source, "float32")
    mixed = one_step_displacement(saved_source, "mixed_float16")
    assert reference > 1e-3
    assert 0.9 <= mixed / reference <= 1.1, (mixed, reference)


# ---------------------------------------------------------------- follow_global_policy


def two_layer_config(first, second):
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, dtype=first, name="hidden")(inputs)
    outputs = keras.layers.Dense(2, dtype=second, name="out")(hidden)
    return keras.saving.serialize_keras_object(keras.Model(inputs, outputs))


def policies(config):
    model = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))  # it consumes its argument
    return {layer.name: layer.dtype_policy.name for layer in model.layers[1:]}


def test_a_float32_built_model_follows_mixed_bfloat16_and_back():
    config = follow_global_policy(two_layer_config("float32", "float32"), "mixed_bfloat16")
    assert policies(config) == {"hidden": "mixed_bfloat16", "out": "mixed_bfloat16"}
    assert policies(follow_global_policy(config, "float32")) == {"hidden": "float32", "out": "float32"}


def test_a_layer_given_another_policy_on_purpose_keeps_it():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, dtype="mixed_float16", name="a")(inputs)
    x = keras.layers.Dense(3, dtype="mixed_float16", name="b")(x)
    outputs = keras.layers.Dense(2, dtype="float32", name="logits")(x)
    config = keras.saving.serialize_keras_object(keras.Model(inputs, outputs))
    assert policies(follow_global_policy(config, "bfloat16")) == {"a": "bfloat16", "b": "bfloat16", "logits": "float32"}
