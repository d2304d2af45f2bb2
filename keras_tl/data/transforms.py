"""Image transforms in TensorFlow ops: decoding, resizing, crops, and backbone preprocessing.

Everything here runs inside `tf.data` (on every Keras backend) and inside the exported
SavedModel's bytes signature, so training, evaluation and serving see the same pixels.
Images are float32 RGB in 0..255 until `preprocess` maps them to what the backbone expects.
"""

import keras
import numpy as np
import tensorflow as tf

# Evaluation resizes to `ratio × image_size` and crops `image_size`: 256 → 224 as in the
# DELTA paper's protocol (He et al. 2016), so 10-crop has room to move.
DEFAULT_RESIZE_RATIO = 256 / 224


def decode(encoded):
    """Encoded JPEG/PNG/BMP/GIF bytes → float32 [H, W, 3] in 0..255 (grayscale made RGB)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.cast(image, tf.float32)


def resize_size(image_size, ratio=DEFAULT_RESIZE_RATIO):
    """The size images are resized to before cropping `image_size` out of them."""
    height, width = image_size
    return int(round(height * ratio)), int(round(width * ratio))


def resize_to_aspect(image, size):
    """Crops the largest centered region with `size`'s aspect ratio, then resizes it to `size`.

    For a square `size` this is "shorter side to `size`, then center crop", without ever
    stretching the image.
    """
    target_h, target_w = size
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.minimum(height / target_h, width / target_w)
    crop_h = tf.cast(tf.round(scale * target_h), tf.int32)
    crop_w = tf.cast(tf.round(scale * target_w), tf.int32)
    top = (shape[0] - crop_h) // 2
    left = (shape[1] - crop_w) // 2
    image = image[top : top + crop_h, left : left + crop_w]
    return tf.image.resize(image, size, method="bilinear", antialias=True)


def center_crop(image, image_size):
    """The central `image_size` crop of a resized image."""
    height, width = image_size
    shape = tf.shape(image)
    top, left = (shape[0] - height) // 2, (shape[1] - width) // 2
    return tf.ensure_shape(image[top : top + height, left : left + width], (height, width, 3))


def ten_crops(image, image_size):
    """[10, H, W, 3]: the four corner crops, the center crop, and their horizontal flips.

    The 10-crop evaluation of Krizhevsky et al. 2012, reported in the DELTA paper's Table 2.
    """
    height, width = image_size
    shape = tf.shape(image)
    bottom, right = shape[0] - height, shape[1] - width
    corners = [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]
    crops = tf.stack([image[top : top + height, left : left + width] for top, left in corners])
    crops = tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)
    return tf.ensure_shape(crops, (10, height, width, 3))


def eval_transform(image, image_size, ratio=DEFAULT_RESIZE_RATIO, crops="center"):
    """Resize to `ratio × image_size`, then the center crop ([H, W, 3]) or the ten crops ([10, H, W, 3])."""
    if crops not in CROPS:
        raise ValueError(f"Expected crops to be one of {CROPS}. Received: crops={crops!r}")
    image = resize_to_aspect(image, resize_size(image_size, ratio))
    return center_crop(image, image_size) if crops == "center" else ten_crops(image, image_size)


CROPS = ("center", "ten")
# The preprocessing name of a model that takes 0..255 RGB as it is (apps: --preprocess=identity).
IDENTITY = "identity"


class KerasAugmentation:
    """Training augmentation: a random `image_size` crop and an optional horizontal flip, stateless.

    Applied to images already resized to `resize_size(image_size)`, as TensorFlow ops inside
    `tf.data` (on every backend). Each draw is a function of a per-example `key`, which
    `keras_tl.data.load` derives from `(seed, epoch, position in the epoch)`; a stateful
    generator (Keras' `RandomCrop`/`RandomFlip`) would instead depend on how many images were
    augmented before in this process, so a resumed run, or one whose method first read the
    training data (DELTA's channel attention), would see other crops than an uninterrupted
    one. Keras' RandAugment, MixUp and CutMix follow it keyed the same way
    (`keras_tl.data.augmentation`); any callable `image -> image` can replace it in
    `keras_tl.data.load` (it is then called without a key, and is as reproducible as it is).
    """

    def __init__(self, image_size, flip=True, seed=None):
        self.image_size = tuple(image_size)
        self.flip = bool(flip)
        self.seed = 0 if seed is None else int(seed)

    def __call__(self, image, key=None):
        if key is None:
            key = tf.constant([self.seed, 0], tf.int64)
        crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(tf.cast(key, tf.int64), 2))
        size = tf.concat([tf.constant(self.image_size, tf.int32), tf.shape(image)[-1:]], axis=0)
        image = tf.image.stateless_random_crop(image, size, seed=crop_key)
        if self.flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_key)
        return image


def tf_preprocess(preprocess):
    """`preprocess` (0..255 RGB → backbone input) as TensorFlow ops, usable in `tf.data` on any backend.

    `keras_tl.backbones.preprocess_input(name)` runs on the active Keras backend, which cannot
    execute inside a `tf.data` graph under JAX. Every backbone's preprocessing is a per-pixel
    affine map of the three channels (scaling, mean subtraction, RGB→BGR), so it is identified
    from probe pixels with numpy and applied as `x @ A + b`. A function that is not affine is
    returned unchanged and must then accept TensorFlow tensors.

    Args:
        preprocess: `None` or `"identity"` (images stay 0..255), a backbone name, or a callable
            on 0..255 images.
    """
    if preprocess is None or preprocess == IDENTITY:
        return lambda images: images
    if isinstance(preprocess, str):
        from keras_tl import backbones

        preprocess = backbones.preprocess_input(preprocess)
    affine = _affine_map(preprocess)
    if affine is None:
        return preprocess
    matrix, offset = (tf.constant(value, tf.float32) for value in affine)
    return lambda images: tf.tensordot(images, matrix, axes=1) + offset


def _affine_map(fn):
    """(A, b) with fn(x) = x @ A + b per pixel, or None if `fn` is not such a map."""
    probe = np.zeros((4, 1, 1, 3), np.float32)
    probe[1:, 0, 0] = 100.0 * np.eye(3, dtype=np.float32)
    try:
        out = np.asarray(keras.ops.convert_to_numpy(fn(probe.copy())), np.float64).reshape(4, -1)
        check = np.random.default_rng(0).uniform(0, 255, (2, 3, 3, 3)).astype(np.float32)
        got = np.asarray(keras.ops.convert_to_numpy(fn(check.copy())), np.float64)
    except Exception:  # noqa: BLE001 - any failure just means "not a probe-able numpy function"
        return None
    if out.shape[1] != 3 or got.shape != check.shape:
        return None
    offset = out[0]
    matrix = (out[1:] - offset) / 100.0
    if not np.allclose(check @ matrix + offset, got, rtol=1e-4, atol=1e-3):
        return None
    return matrix.astype(np.float32), offset.astype(np.float32)
