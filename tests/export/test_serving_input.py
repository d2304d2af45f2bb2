"""The float signature checks the image size in the graph (or resizes), the same on both backends;
an export that loses the race for a version number takes the next one."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl.export import FLOAT_SIGNATURE, export_serving, serving_model

SIZE = (8, 8)


def pooling_model():
    """A network that pools globally: without the check it answers images of any size."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(SIZE + (3,))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    model = pooling_model()
    base = str(tmp_path_factory.mktemp("saved_models"))
    checked = export_serving(model, base, name="checked", preprocess="identity")
    resized = export_serving(model, base, name="resized", preprocess="identity", resize_images=True)
    return model, checked, resized


def images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def keras_logits(model, x):
    return keras.ops.convert_to_numpy(serving_model(model, "identity")(x)["logits"])


@pytest.mark.parametrize(
    "shape",
    [(4, 16, 16, 3), (2, 8, 9, 3), (2, 8, 8, 1)],
    ids=["larger", "one_side", "channels"],
)
def test_the_float_signature_refuses_another_shape_naming_it(exports, shape):
    _, path, _ = exports
    signature = tf.saved_model.load(path).signatures[FLOAT_SIGNATURE]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        signature(images=tf.constant(images(shape)))
    message = str(info.value)
    assert (
        "Expected images of shape [batch, 8, 8, 3] (the exported size; export_serving(resize_images=True) "
        "resizes). Received:" in message
    )
    assert f"[{' '.join(map(str, shape))}]" in message


def test_the_exported_size_still_matches_the_keras_model(exports):
    model, path, _ = exports
    x = images((3,) + SIZE + (3,))
    outputs = tf.saved_model.load(path).signatures[FLOAT_SIGNATURE](images=tf.constant(x))
    np.testing.assert_allclose(outputs["logits"].numpy(), keras_logits(model, x), atol=1e-5)


def test_resize_images_resizes_another_size_and_keeps_the_exported_one(exports):
    model, _, path = exports
    signature = tf.saved_model.load(path).signatures[FLOAT_SIGNATURE]
    assert signature.structured_input_signature[1]["images"].shape.as_list() == [None, None, None, 3]
    large = images((2, 16, 12, 3), seed=1)
    expected = keras_logits(model, tf.image.resize(large, SIZE).numpy())
    np.testing.assert_allclose(signature(images=tf.constant(large))["logits"].numpy(), expected, atol=1e-5)
    exact = images((2,) + SIZE + (3,), seed=2)
    np.testing.assert_allclose(
        signature(images=tf.constant(exact))["logits"].numpy(), keras_logits(model, exact), atol=1e-5
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected images of shape \[batch, height, width, 3\]"):
        signature(images=tf.constant(images((1, 8, 8, 4))))


def test_an_export_beaten_to_its_version_takes_the_next_one(tmp_path, monkeypatch):
    """Two exports with version=None at once: the one that renames second must not be told to pass
    version=None (it did), but get the next number."""
    model = keras.Sequential([keras.Input(SIZE + (3,)), keras.layers.Flatten(), keras.layers.Dense(2)])
    archive_class = type(keras.export.ExportArchive())  # the backend's subclass
    write_out = archive_class.write_out

    def other_export_finishes_first(self, path, **kwargs):
        write_out(self, path, **kwargs)
        os.makedirs(os.path.join(tmp_path, "m", "1", "variables"))  # the other export's version 1

    monkeypatch.setattr(archive_class, "write_out", other_export_finishes_first)
    path = export_serving(model, str(tmp_path), name="m", preprocess="identity")
    assert path == os.path.join(tmp_path, "m", "2")
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]
    assert os.listdir(tmp_path / "m" / "1") == ["variables"]  # the other export's folder is untouched
