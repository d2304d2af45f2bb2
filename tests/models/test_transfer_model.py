import json
import warnings

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.regularizers import L2, L2SP
from keras_tl.utils.weights import named_variables
from tests.conftest import TAPS, compile_sgd, tiny_data, tiny_source


def numpy_weights(model):
    return {k: keras.ops.convert_to_numpy(v) for k, v in named_variables(model).items()}


def test_target_starts_from_the_source_and_source_copy_is_frozen(source):
    model = keras_tl.TransferModel(source, 3, taps=TAPS, regularizers=[L2SP()])
    source_weights = numpy_weights(source)
    for extractor in (model.target_backbone, model.source_backbone):
        for key, value in numpy_weights(extractor).items():
            np.testing.assert_array_equal(value, source_weights[key])
    assert not model.source_backbone.trainable
    assert all(not v.trainable for v in model.source_backbone.weights)
    trainable_ids = {id(v) for v in model.trainable_variables}
    assert not trainable_ids & {id(v) for v in model.source_backbone.weights}
    # The user's source model is not shared with either copy.
    assert not {id(v) for v in source.weights} & {id(v) for v in model.weights}


def test_no_source_copy_unless_a_regularizer_needs_it(source):
    assert keras_tl.TransferModel(source, 3, regularizers=[L2()]).source_backbone is None
    assert keras_tl.TransferModel(source, 3, keep_source=True).source_backbone is not None


def test_taps_from_one_forward_pass_each(source):
    model = keras_tl.TransferModel(source, 3, taps=TAPS, regularizers=[L2SP()])
    x, _ = tiny_data()
    values = model.objective.step_values(x, names={"target_features", "source_features"})
    assert sorted(values["target_features"]) == sorted(TAPS) == sorted(values["source_features"])
    probe = keras.Model(source.inputs, [source.get_layer(t).output for t in TAPS])
    for tap, expected in zip(TAPS, probe(x, training=False), strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(values["source_features"][tap]), keras.ops.convert_to_numpy(expected), atol=1e-5
        )


def test_unknown_tap_lists_the_available_layers(source):
    with pytest.raises(ValueError, match=r"Unknown tap layer\(s\) \['conv9'\].*available layers: \['image', 'conv1_conv'"):
        keras_tl.TransferModel(source, 3, taps=["conv9"])


def test_fit_logs_every_term_separately(source):
    model = compile_sgd(keras_tl.TransferModel(source, 3, taps=TAPS, regularizers=[L2SP(0.5, 0.1), L2(0.2)]))
    x, y = tiny_data()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert set(history) == {"loss", "empirical_loss", "reg/l2_sp", "reg/l2", "accuracy"}
    total = history["empirical_loss"][0] + history["reg/l2_sp"][0] + history["reg/l2"][0]
    assert history["loss"][0] == pytest.approx(total, rel=1e-5)
    # Before the step the target equals the source: L2-SP is the head's decay only.
    head = [keras.ops.convert_to_numpy(v) for v in model.head.weights]
    assert history["reg/l2_sp"][0] > 0 and np.all(np.isfinite(head[0]))
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "empirical_loss", "reg/l2_sp", "reg/l2", "accuracy"}


def test_l2_sp_value_under_the_model_matches_numpy(source):
    model = keras_tl.TransferModel(source, 3, regularizers=[L2SP(alpha=0.3, beta=0.2)])
    rng = np.random.default_rng(0)
    for v in model.target_backbone.trainable_weights:
        v.assign(keras.ops.convert_to_numpy(v) + rng.normal(scale=0.05, size=v.shape).astype("float32"))
    terms = model.objective.terms(model.objective.weight_values())
    target, source_now = numpy_weights(model.target_backbone), numpy_weights(model.source_backbone)
    trainable = {f"{layer.name}/{w.name}" for layer in model.target_backbone.layers for w in layer.trainable_weights}
    distance = sum(np.sum((target[k] - source_now[k]) ** 2) for k in trainable)
    decay = sum(np.sum(keras.ops.convert_to_numpy(w) ** 2) for w in model.head.weights)
    assert float(terms["l2_sp"]) == pytest.approx(0.15 * distance + 0.1 * decay, rel=1e-4)
    assert not any("moving" in k for k in model.objective.weight_values()["source_weights"])


def test_save_and_load_round_trip(source, tmp_path):
    model = compile_sgd(
        keras_tl.TransferModel(
            source, 3, taps=TAPS, regularizers=[L2SP(0.1, 0.01), L2(0.01)],
            gradient_rule=keras_tl.gradients.DTNH(granularity="per_variable"), keep_source_head=True, dropout=0.1,
        )
    )
    x, y = tiny_data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, keras_tl.TransferModel)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(model.get_config(), sort_keys=True)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    for a, b in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    restored.fit(x, y, batch_size=4, epochs=1, verbose=0)  # the restored model trains


def test_inference_model_is_backbone_and_head_only(source):
    model = keras_tl.TransferModel(source, 3, taps=TAPS, regularizers=[L2SP()], keep_source_head=True)
    x, _ = tiny_data()
    plain = model.inference_model()
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    plain_ids = {id(v) for v in plain.weights}
    assert plain_ids == {id(v) for v in model.target_backbone.weights + model.head.weights}


def test_l2_fe_trains_only_the_head_with_batchnorm_in_inference_mode(source):
    model = compile_sgd(keras_tl.TransferModel(source, 3, freeze_backbone=True, regularizers=[L2(0.01)]))
    before = numpy_weights(model.target_backbone)
    head_before = keras.ops.convert_to_numpy(model.head.kernel)
    x, y = tiny_data()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    for key, value in numpy_weights(model.target_backbone).items():  # moving statistics included
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    assert not np.allclose(keras.ops.convert_to_numpy(model.head.kernel), head_before)
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in model.head.weights}


def test_source_head_gives_the_upstream_logits(source):
    model = keras_tl.TransferModel(source, 3, keep_source_head=True, keep_source=True)
    x, _ = tiny_data()
    values = model.objective.step_values(x, names={"source_logits"})
    expected = source(x, training=False)
    for key in ("source_head_logits", "source_logits"):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(values[key]), keras.ops.convert_to_numpy(expected), atol=1e-5)


def test_source_head_needs_a_dense_classifier():
    headless = tiny_source(include_top=False)
    with pytest.raises(ValueError, match="Expected a source whose last layer is a Dense classifier"):
        keras_tl.TransferModel(headless, 3, keep_source_head=True)


def test_training_leaves_the_source_copy_untouched(source):
    model = compile_sgd(keras_tl.TransferModel(source, 3, taps=TAPS, regularizers=[L2SP(1.0, 0.1)], keep_source_head=True,
                                               gradient_rule=keras_tl.gradients.DTNH()))
    before = numpy_weights(model.source_backbone)
    x, y = tiny_data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for key, value in numpy_weights(model.source_backbone).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    changed = [k for k, v in numpy_weights(model.target_backbone).items() if not np.array_equal(v, before[k])]
    assert changed


def test_backbone_name_builds_the_source(tmp_path):
    model = keras_tl.TransferModel("cifar_resnet20", 4, input_shape=(16, 16, 3), regularizers=[L2SP()])
    assert model.taps == keras_tl.backbones.default_taps("cifar_resnet20")
    assert model.input_shape == (None, 16, 16, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 0}, r"Expected num_classes >= 1 \(an int\). Received: num_classes=0"),
        ({"dropout": 1.5}, r"Expected dropout >= 0 and < 1 \(a float\). Received: dropout=1.5"),
        ({"regularizers": [L2(), L2()]}, r"Expected unique regularizer names. Received: names=\['l2', 'l2'\]"),
        ({"regularizers": ["Nope"]}, r"Expected a Regularizer, its config or one of"),
    ],
)
def test_bad_arguments(source, kwargs, message):
    kwargs = {"num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        keras_tl.TransferModel(source, **kwargs)


def test_bad_source_type():
    with pytest.raises(TypeError, match="Expected source to be a keras.Model, a backbone name"):
        keras_tl.TransferModel(42, 3)
    with pytest.raises(ValueError, match=r"Unknown backbone. Expected one of \[.*'resnet50'"):
        keras_tl.TransferModel("resnet5", 3)


def _ours(caught):
    """The warnings' messages, less NumPy 2's `__array__` deprecation notes that TensorFlow triggers."""
    return [str(w.message) for w in caught if "__array__" not in str(w.message)]


def test_dtnh_without_regularizers_warns_that_it_does_nothing(source):
    with pytest.warns(UserWarning) as caught:
        keras_tl.TransferModel(source, 3, gradient_rule=keras_tl.gradients.DTNH())
    assert _ours(caught) == [
        "gradient_rule=DTNH combines the gradients of the data term and of the regularizers, but regularizers "
        "is empty: every dtnh/* metric stays 0 and the step is plain fine-tuning. Add a regularizer (e.g. "
        "keras_tl.regularizers.L2SP()) or pass gradient_rule=None."
    ]


def test_l2_sp_on_a_frozen_backbone_warns_that_its_distance_stays_zero(source):
    with pytest.warns(UserWarning) as caught:
        keras_tl.TransferModel(source, 3, regularizers=[L2SP(), L2(scope="head")], freeze_backbone=True)
    assert _ours(caught) == [
        "Regularizer 'l2_sp' pulls the backbone towards the source, but freeze_backbone=True keeps the backbone "
        "equal to the source: that part of reg/l2_sp stays 0. Pass freeze_backbone=False to fine-tune the "
        "backbone, or use keras_tl.regularizers.L2(scope='head') to regularize the head of a frozen backbone."
    ]


def test_settings_that_all_act_warn_about_nothing(source):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_tl.TransferModel(source, 3, regularizers=[L2SP()], gradient_rule=keras_tl.gradients.DTNH())
        keras_tl.TransferModel(source, 3, regularizers=[L2(scope="head")], freeze_backbone=True)
    assert _ours(caught) == []
