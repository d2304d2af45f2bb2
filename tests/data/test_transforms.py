import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_tl import backbones
from keras_tl.data import transforms


def test_resize_to_aspect_center_crops_then_resizes():
    image = np.arange(4 * 8 * 3, dtype=np.float32).reshape(4, 8, 3)
    out = transforms.resize_to_aspect(tf.constant(image), (4, 4)).numpy()
    # A 4x8 image to 4x4: the central 4x4 region, unchanged (same size, no resampling).
    np.testing.assert_allclose(out, image[:, 2:6], atol=1e-4)


def test_ten_crops_are_corners_center_and_their_mirrors():
    image = np.random.default_rng(0).uniform(0, 255, (6, 7, 3)).astype(np.float32)
    crops = transforms.ten_crops(tf.constant(image), (4, 4)).numpy()
    expected = [image[0:4, 0:4], image[0:4, 3:7], image[2:6, 0:4], image[2:6, 3:7], image[1:5, 1:5]]
    expected += [crop[:, ::-1] for crop in expected]
    np.testing.assert_array_equal(crops, np.stack(expected))
    np.testing.assert_array_equal(transforms.center_crop(tf.constant(image), (4, 4)).numpy(), expected[4])


def test_decode_makes_grayscale_rgb():
    gray = np.random.default_rng(0).integers(0, 256, (5, 6, 1), dtype=np.uint8)
    decoded = transforms.decode(tf.io.encode_png(gray)).numpy()
    assert decoded.shape == (5, 6, 3) and decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, np.repeat(gray, 3, axis=-1).astype(np.float32))


@pytest.mark.parametrize("name", ["cifar_resnet20", "resnet50", "inception_v3", "mobilenet_v3_large"])
def test_tf_preprocess_equals_the_backbone_function_inside_tf_data(name):
    images = np.random.default_rng(1).uniform(0, 255, (2, 3, 3, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(backbones.preprocess_input(name)(images.copy()))
    dataset = tf.data.Dataset.from_tensor_slices(images).map(transforms.tf_preprocess(name)).batch(2)
    np.testing.assert_allclose(next(iter(dataset)).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_tf_preprocess_passes_a_non_affine_function_through():
    def clip(images):
        return tf.minimum(images, 100.0)

    assert transforms.tf_preprocess(clip) is clip


def test_keras_augmentation_keeps_the_size_varies_with_the_key_and_is_a_function_of_it():
    augment = transforms.KerasAugmentation((4, 4), flip=True, seed=0)
    image = tf.constant(np.arange(7 * 9 * 3, dtype=np.float32).reshape(7, 9, 3))
    keys = [tf.constant([1, k], tf.int64) for k in range(8)]
    outs = [augment(image, key).numpy() for key in keys]
    assert all(x.shape == (4, 4, 3) for x in outs)
    assert len({x.tobytes() for x in outs}) > 1
    again = [augment(image, key).numpy() for key in reversed(keys)][::-1]  # no state: order does not matter
    np.testing.assert_array_equal(np.stack(outs), np.stack(again))
