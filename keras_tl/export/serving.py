"""SavedModel export for TensorFlow Serving: the inference graph with its preprocessing, two signatures."""

import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_tl.data import transforms

FLOAT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
_VERSION = re.compile(r"^[0-9]+$")


class _Preprocess(keras.layers.Layer):
    """Maps 0..255 RGB to the backbone's input with the backbone's own function, on the active backend."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, images):
        return self.fn(images)


def serving_model(model, preprocess):
    """A functional model: float images in 0..255 → `{"logits", "probabilities"}`.

    `model` is a `keras_tl.TransferModel` (its `inference_model()` is used: no frozen source
    copy, no regularizer, no upstream head) or any single-input Keras classifier returning
    logits. Shares `model`'s weights.
    """
    if hasattr(model, "inference_model"):
        model = model.inference_model()
    fn = _preprocess_fn(preprocess)
    inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="images", dtype="float32")
    logits = model(_Preprocess(fn, name="preprocess")(inputs), training=False)
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, {"logits": logits, "probabilities": probabilities}, name="serving")


def _preprocess_fn(preprocess):
    if preprocess == "identity":
        return lambda images: images
    if isinstance(preprocess, str):
        from keras_tl import backbones

        return backbones.preprocess_input(preprocess)
    if callable(preprocess):
        return preprocess
    from keras_tl import backbones

    raise ValueError(
        "Expected preprocess to be a backbone name from "
        f"{list(backbones.NAMES)}, a callable on 0..255 images, or 'identity'. Received: preprocess={preprocess!r}"
    )


def next_version(model_dir):
    """1 + the largest integer version folder in `model_dir` (1 when there is none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(name) for name in os.listdir(model_dir) if _VERSION.match(name)]
    return max(versions, default=0) + 1


def export_serving(
    model,
    base_dir="saved_models",
    *,
    name,
    version=None,
    preprocess,
    resize_ratio=transforms.DEFAULT_RESIZE_RATIO,
    verbose=False,
):
    """Writes `model` as a SavedModel for TF Serving at `<base_dir>/<name>/<version>/`.

    The graph is the inference model only (a `TransferModel`'s `inference_model()`), with the
    backbone's preprocessing inside, and has two signatures:

    - `serving_default`: `images`, float32 `[batch, H, W, 3]` RGB in 0..255 →
      `logits` and `probabilities`, `[batch, num_classes]`.
    - `serving_bytes`: `image_bytes`, string `[batch]` of encoded JPEG/PNG/BMP/GIF images of any
      size → the same outputs. Each image is decoded and center-cropped exactly like
      `keras_tl.data.load`'s evaluation (`resize_ratio`), so TF Serving's REST API accepts
      `{"signature_name": "serving_bytes", "instances": [{"b64": "<base64 JPEG>"}]}`.

    The version folder is written under a temporary name in `<base_dir>/<name>/` and renamed
    when complete, so TF Serving never loads a partial model. An existing version is never
    overwritten. On JAX, Keras converts the graph with jax2tf.

    Args:
        model: a `keras_tl.TransferModel` or a single-input Keras classifier returning logits.
        base_dir: the model base path TF Serving watches (`--model_base_path`'s parent).
        name: the model name (TF Serving's `--model_name`), a folder name.
        version: a positive int, or `None` for one more than the largest existing version.
        preprocess: a backbone name (`keras_tl.backbones.preprocess_input`), a callable mapping
            0..255 images to the model's input with `keras.ops`, or `"identity"`.
        resize_ratio: resize size / crop size of the bytes signature's center crop.
        verbose: print Keras' export summary.

    Returns:
        The path of the written version folder.

    Example:
    >>> path = keras_tl.export.export_serving(model, "saved_models", name="dtd10",
    ...                                       preprocess="resnet50")  # saved_models/dtd10/1
    """
    if not isinstance(name, str) or not name or os.sep in name or name.startswith("."):
        raise ValueError(f"Expected name to be a non-empty folder name. Received: name={name!r}")
    model_dir = os.path.join(base_dir, name)
    if version is None:
        version = next_version(model_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"Expected version to be a positive int or None. Received: version={version!r}")
    final = os.path.join(model_dir, str(version))
    _refuse_existing(final)

    serving = serving_model(model, preprocess)
    height, width = (int(d) for d in serving.inputs[0].shape[1:3])
    archive = keras.export.ExportArchive()
    if keras.backend.backend() != "tensorflow":
        # jax2tf needs the variables listed up front. On TensorFlow the archive finds the ones the
        # endpoints capture by itself, and tracking the model too would store every weight twice.
        archive.track(serving)
    float_endpoint = archive.add_endpoint(
        FLOAT_SIGNATURE,
        serving.__call__,
        input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32, name="images")],
    )

    def decode_one(encoded):
        image = transforms.decode(encoded)
        return transforms.eval_transform(image, (height, width), resize_ratio, "center")

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    def from_bytes(image_bytes):
        images = tf.map_fn(
            decode_one, image_bytes, fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32)
        )
        return float_endpoint(images)

    from_bytes.get_concrete_function()  # ExportArchive takes a tf.function that has been traced.
    archive.add_endpoint(BYTES_SIGNATURE, from_bytes)

    os.makedirs(model_dir, exist_ok=True)
    # A dot-name is not an integer, so TF Serving ignores the folder while it is written.
    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir)
    try:
        archive.write_out(staging, verbose=verbose)
        _refuse_existing(final)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _refuse_existing(path):
    if os.path.exists(path):
        raise FileExistsError(
            f"Version folder {path} already exists; keras_tl never overwrites an exported version. "
            "Pass version=None to write the next version, or another version number."
        )
