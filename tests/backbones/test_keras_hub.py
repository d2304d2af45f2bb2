"""keras-hub backbones as sources: fine_tune with feature-map methods, .keras round trips, export, presets."""


import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.backbones import hub
from keras_tl.export import FLOAT_SIGNATURE, export_serving
from tests.backbones.hub_models import BACKBONES, IMAGE_SHAPE, images, keras_hub, resnet, vit


def preprocess(images):
    return images / 255.0


@pytest.fixture(scope="module")
def train():
    """24 digits of 3 classes at 16×16: three batches of 8."""
    return keras_tl.data.load(
        "digits", "train", image_size=IMAGE_SHAPE[:2], preprocess=preprocess, batch_size=8, classes=[0, 1, 2], per_class=8, seed=0
    )


def numpy_outputs(model, x):
    return keras.ops.convert_to_numpy(model.predict(x, verbose=0))


# DELTA's measurement kept short: a one-epoch L2-FE head, one batch of channel ablation.
METHODS = {
    "l2_sp": {},
    "knowdist": {},
    "delta": {"head_epochs": 1, "num_batches": 1},
    "delta+dtnh": {"head_epochs": 1, "num_batches": 1},
}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_a_keras_hub_backbone_fine_tunes_saves_reloads_and_exports(backbone, method, train, tmp_path):
    source = BACKBONES[backbone]()
    model, history = keras_tl.fine_tune(
        keras_tl.methods.get(method, **METHODS[method]), source, train, epochs=1, cache_dir=str(tmp_path), verbose=0
    )
    assert model.taps == hub.default_taps(source)
    terms = [key for key in history.history if key.startswith("reg/")]
    assert terms and all(np.isfinite(history.history[key][0]) for key in terms)
    if method != "l2_sp":  # the feature-map term sees the taps: it is not the silent 0 of a tap-less model
        feature_term = "reg/feature_map_distillation" if method == "knowdist" else "reg/delta"
        assert history.history[feature_term][0] > 0.0
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.taps == model.taps
    x = images(seed=1)
    np.testing.assert_allclose(numpy_outputs(restored, x), numpy_outputs(model, x), rtol=1e-5, atol=1e-5)
    if method == "knowdist":  # exporting costs a SavedModel trace: once per backbone
        path = export_serving(model.inference_model(), str(tmp_path / "serving"), name=backbone, preprocess=preprocess)
        pixels = np.random.default_rng(0).uniform(0, 255, (3,) + IMAGE_SHAPE).astype("float32")
        served = tf.saved_model.load(path).signatures[FLOAT_SIGNATURE](images=tf.constant(pixels))
        np.testing.assert_allclose(served["logits"].numpy(), numpy_outputs(model, preprocess(pixels)), atol=1e-4)


# ---------------------------------------------------------------- taps and pooling


def test_resnet_taps_are_the_layers_of_its_pyramid_outputs():
    source = resnet()
    taps = keras_tl.backbones.default_taps(source)
    assert taps == ["stack0_block0_out", "stack1_block0_out"]
    for tap, level in zip(taps, ["P2", "P3"], strict=True):
        assert source.get_layer(tap).output is source.pyramid_outputs[level]


def test_a_vit_is_tapped_at_its_token_map_and_pooled_at_its_class_token():
    source = vit()
    assert keras_tl.backbones.default_taps(source) == ["vit_encoder"]
    model = keras_tl.TransferModel(source, 3, regularizers=[keras_tl.regularizers.FeatureMapDistillation()])
    assert model.taps == ["vit_encoder"]
    x = images()
    outputs = model.target_backbone(x)
    tokens = keras.ops.convert_to_numpy(source(x))
    assert tokens.shape == (4, 17, 16)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs["taps"]["vit_encoder"]), tokens, atol=1e-6)
    # keras-hub's ViTImageClassifier feeds its head x[:, 0] (pooling="token", its default).
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs["features"]), tokens[:, 0], atol=1e-6)


def test_a_vit_without_class_token_is_pooled_by_the_mean_over_tokens():
    source = vit(use_class_token=False)
    model = keras_tl.TransferModel(source, 3)
    x = images()
    tokens = keras.ops.convert_to_numpy(source(x))
    assert tokens.shape == (4, 16, 16)
    features = keras.ops.convert_to_numpy(model.target_backbone(x)["features"])
    np.testing.assert_allclose(features, tokens.mean(axis=1), atol=1e-6)


def test_delta_channel_importance_on_a_vit_zeroes_one_channel_of_every_token():
    model = keras_tl.TransferModel(vit(), 3, taps=["vit_encoder"])
    x, y = images(n=6), np.array([0, 1, 2, 0, 1, 2])
    importance = keras_tl.channel_weights.channel_importance(model, [(x, y)], chunk_size=5)["vit_encoder"]
    # Reference: the features are the class token, so zeroing channel j of the map zeroes
    # feature j; the logits lose f_j · W[j, :].
    features = keras.ops.convert_to_numpy(model.target_backbone(x)["features"]).astype("float64")
    kernel, bias = (keras.ops.convert_to_numpy(w).astype("float64") for w in model.head.weights)

    def cross_entropy(logits):
        logits = logits - logits.max(axis=-1, keepdims=True)
        return np.log(np.exp(logits).sum(axis=-1)) - logits[np.arange(len(y)), y]

    baseline = cross_entropy(features @ kernel + bias)
    expected = []
    for j in range(features.shape[1]):
        ablated = features.copy()
        ablated[:, j] = 0.0
        expected.append(np.mean(cross_entropy(ablated @ kernel + bias) - baseline))
    np.testing.assert_allclose(importance, expected, rtol=1e-4, atol=1e-6)


def test_afa_on_a_token_map_is_refused_naming_the_reason():
    with pytest.raises(ValueError, match=r"Expected a 4D channels-last feature map .* token map .* FeatureMapDistillation"):
        keras_tl.TransferModel(vit(), 3, regularizers=[keras_tl.regularizers.AST()])


def test_a_keras_hub_backbone_built_under_float32_follows_mixed_float16():
    source = resnet()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = keras_tl.TransferModel(source, 3, regularizers=[keras_tl.regularizers.FeatureMapDistillation()])
    finally:
        keras.config.set_dtype_policy(previous)
    assert source.dtype_policy.name == "float32"
    for part in (model.target_backbone, model.source_backbone):
        convs = [layer for layer in part.layers if isinstance(layer, keras.layers.Conv2D)]
        assert convs and {layer.compute_dtype for layer in convs} == {"float16"}
        assert {v.dtype for layer in convs for v in layer.weights} == {"float32"}


# ---------------------------------------------------------------- presets


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory):
    """A local preset folder (what `save_to_preset` writes and `from_preset` reads, no network)."""
    folder = str(tmp_path_factory.mktemp("preset") / "tiny_resnet")
    resnet(seed=3).save_to_preset(folder)
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32), scale=[1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)],
        offset=[-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
    )
    converter.save_to_preset(folder)
    return folder


def test_build_by_preset_loads_the_preset_weights_or_only_its_architecture(preset_dir):
    name = hub.PREFIX + preset_dir
    pretrained = keras_tl.backbones.build(name, weights="preset")
    for a, b in zip(pretrained.weights, resnet(seed=3).weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    random = keras_tl.backbones.build(name, weights=None)
    assert [tuple(w.shape) for w in random.weights] == [tuple(w.shape) for w in pretrained.weights]
    assert keras_tl.backbones.default_taps(name) == ["stack0_block0_out", "stack1_block0_out"]
    assert keras_tl.backbones.default_input_shape(name) == (32, 32, 3)
    model = keras_tl.TransferModel(name, 3, source_weights="preset", regularizers=[keras_tl.regularizers.L2SP()])
    assert model.taps == ["stack0_block0_out", "stack1_block0_out"]
    # What apps.finetune --source=keras_hub:<preset> --source_weights=preset loads.
    loaded, taps, preprocess, size = keras_tl.models.load_source(name, weights="preset")
    assert (taps, preprocess, size) == (model.taps, name, (32, 32))
    for a, b in zip(loaded.weights, pretrained.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_preprocessing_is_the_preset_image_converter_without_resizing(preset_dir):
    name = hub.PREFIX + preset_dir
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    converter = keras_hub.layers.ImageConverter.from_preset(preset_dir)
    expected = keras.ops.convert_to_numpy(converter(pixels))
    np.testing.assert_allclose(keras_tl.backbones.preprocess_input(name)(pixels), expected, rtol=1e-5, atol=1e-5)
    # The data pipeline's TensorFlow version (any backend) is the same affine map.
    tf_version = keras_tl.data.transforms.tf_preprocess(name)
    np.testing.assert_allclose(tf_version(tf.constant(pixels)).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_an_unknown_weights_value_for_a_preset_is_refused(preset_dir):
    with pytest.raises(FileNotFoundError, match=r"Expected weights to be 'preset' .* Received: weights='imagenet'"):
        keras_tl.backbones.build(hub.PREFIX + preset_dir, weights="imagenet")


def test_offline_a_preset_fails_at_once_saying_what_to_do(monkeypatch):
    import requests

    def unreachable(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'api.kaggle.com' ([Errno -2] Name or service not known)")

    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", unreachable)
    with pytest.raises(OSError, match=r"Could not fetch keras-hub preset 'resnet_18_imagenet'.*offline.*save_to_preset"):
        keras_tl.backbones.build("keras_hub:resnet_18_imagenet", weights="preset")


def test_an_empty_preset_name_is_an_error():
    with pytest.raises(ValueError, match=r"Expected a keras-hub preset after 'keras_hub:'"):
        keras_tl.backbones.build("keras_hub:")
