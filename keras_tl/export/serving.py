"""SavedModel export for TensorFlow Serving: the inference graph with its preprocessing, two signatures."""

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import time

import keras
import tensorflow as tf
from absl import logging as absl_logging

from keras_tl.data import transforms

FLOAT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
_VERSION = re.compile(r"^[0-9]+$")
# `.tmp-<version>-<pid>-<token>`: the staging folder of the export process `pid`. A dot-name is not
# an integer, so TF Serving ignores it while it is written.
_STAGING = re.compile(r"^\.tmp-[0-9]+-(?:([0-9]+)-)?")
# A staging folder without a pid (written before pids were in the name) is stale after this long.
STALE_SECONDS = 3600


class _Preprocess(keras.layers.Layer):
    """Maps 0..255 RGB to the backbone's input with the backbone's own function, on the active backend."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, images):
        return self.fn(images)


def serving_model(model, preprocess, image_size=None):
    """A functional model: float images in 0..255 → `{"logits", "probabilities"}`.

    `model` is a `keras_tl.TransferModel` (its `inference_model()` is used: no frozen source
    copy, no regularizer, no upstream head) or any single-input Keras classifier returning
    logits. Shares `model`'s weights. `image_size` `(H, W)` sets the input size of a model
    whose input has none (`None` height or width); a fixed one must match it.
    """
    if hasattr(model, "inference_model"):
        model = model.inference_model()
    fn = _preprocess_fn(preprocess)
    inputs = keras.Input(shape=_input_shape(model, image_size), name="images", dtype="float32")
    logits = model(_Preprocess(fn, name="preprocess")(inputs), training=False)
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, {"logits": logits, "probabilities": probabilities}, name="serving")


def _input_shape(model, image_size):
    """`(H, W, C)` of the exported input: the model's, with `image_size` filling a size it leaves open."""
    shape = tuple(model.inputs[0].shape[1:])
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in size):
            raise ValueError(
                f"Expected image_size to be a positive int or (height, width). Received: image_size={image_size!r}"
            )
        fixed = [(got, want) for got, want in zip(shape[:2], size, strict=True) if got is not None]
        if any(got != want for got, want in fixed):
            raise ValueError(
                f"Expected image_size to match the model's fixed input size {shape[:2]}. "
                f"Received: image_size={size}"
            )
        shape = size + shape[2:]
    if None in shape[:2]:
        raise ValueError(
            f"Expected a model with a fixed input size, or image_size=(height, width) to export it at "
            f"(apps.export: --image_size). Received: a model whose input shape is (None,) + {shape}"
        )
    return shape


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
    image_size=None,
    resize_ratio=transforms.DEFAULT_RESIZE_RATIO,
    resize_images=False,
    verbose=False,
):
    """Writes `model` as a SavedModel for TF Serving at `<base_dir>/<name>/<version>/`.

    The graph is the inference model only (a `TransferModel`'s `inference_model()`), with the
    backbone's preprocessing inside, and has two signatures:

    - `serving_default`: `images`, float32 `[batch, H, W, 3]` RGB in 0..255 →
      `logits` and `probabilities`, `[batch, num_classes]`. Images of another shape fail with
      `Expected images of shape [batch, H, W, 3]` and the shape received, on both backends (the
      graph checks it: a SavedModel's signature does not, and a network that pools globally
      would return plausible logits for any size). With `resize_images=True` the signature
      takes any height and width instead and resizes to `(H, W)` (bilinear, aspect ratio not
      kept; images already `(H, W)` pass unchanged).
    - `serving_bytes`: `image_bytes`, string `[batch]` of encoded JPEG/PNG/BMP/GIF images of any
      size → the same outputs. Each image is decoded and center-cropped exactly like
      `keras_tl.data.load`'s evaluation (`resize_ratio`), so TF Serving's REST API accepts
      `{"signature_name": "serving_bytes", "instances": [{"b64": "<base64 JPEG>"}]}`.

    The version folder is written under a temporary name in `<base_dir>/<name>/` and renamed
    when complete, so TF Serving never loads a partial model. An existing version is never
    overwritten; with `version=None`, an export that another one beat to its number takes the
    next free one. Folders get the permissions of a plain `mkdir` (the umask's), so a TF Serving
    process running as another user can read them; a staging folder left by a killed export
    (its process gone) is deleted. On JAX, Keras converts the graph with jax2tf.

    Args:
        model: a `keras_tl.TransferModel` or a single-input Keras classifier returning logits.
        base_dir: the model base path TF Serving watches (`--model_base_path`'s parent).
        name: the model name (TF Serving's `--model_name`), a folder name.
        version: a positive int, or `None` for one more than the largest existing version.
        preprocess: a backbone name (`keras_tl.backbones.preprocess_input`), a callable mapping
            0..255 images to the model's input with `keras.ops`, or `"identity"`.
        image_size: `(H, W)` (or an int) to export a model whose input has no fixed size at;
            `None`: the model's own input size.
        resize_ratio: resize size / crop size of the bytes signature's center crop.
        resize_images: the float signature resizes images of another size instead of refusing them.
        verbose: print Keras' export summary and TensorFlow's INFO logs of the writing (by default
            silenced, see `quiet_tensorflow_logs`).

    Returns:
        The path of the written version folder.

    Example:
    >>> path = keras_tl.export.export_serving(model, "saved_models", name="dtd10",
    ...                                       preprocess="resnet50")  # saved_models/dtd10/1
    """
    if not isinstance(name, str) or not name or os.sep in name or name.startswith("."):
        raise ValueError(f"Expected name to be a non-empty folder name. Received: name={name!r}")
    model_dir = os.path.join(base_dir, name)
    numbered = version is None
    if numbered:
        version = next_version(model_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"Expected version to be a positive int or None. Received: version={version!r}")
    final = os.path.join(model_dir, str(version))
    _refuse_existing(final)

    serving = serving_model(model, preprocess, image_size)
    height, width = (int(d) for d in serving.inputs[0].shape[1:3])
    model_fn = _model_function(serving, (height, width))
    archive = keras.export.ExportArchive()
    spatial = (None, None) if resize_images else (height, width)

    @tf.function(input_signature=[tf.TensorSpec((None, *spatial, 3), tf.float32, name="images")])
    def from_images(images):
        return model_fn(_checked_images(images, (height, width), resize_images))

    from_images.get_concrete_function()
    archive.add_endpoint(FLOAT_SIGNATURE, from_images)

    def decode_one(encoded):
        image = transforms.decode(encoded)
        return transforms.eval_transform(image, (height, width), resize_ratio, "center")

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    def from_bytes(image_bytes):
        images = tf.map_fn(
            decode_one, image_bytes, fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32)
        )
        return model_fn(images)

    from_bytes.get_concrete_function()  # ExportArchive takes a tf.function that has been traced.
    archive.add_endpoint(BYTES_SIGNATURE, from_bytes)

    os.makedirs(model_dir, exist_ok=True)
    remove_stale_staging(model_dir)
    # Not `tempfile.mkdtemp`: its folders are mode 0700, unreadable to a server running as another user.
    staging = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(staging)
    try:
        with contextlib.nullcontext() if verbose else quiet_tensorflow_logs():
            archive.write_out(staging, verbose=verbose)
        while not _rename_to_new(staging, final):
            if not numbered:
                _refuse_existing(final)
            # Another export took this number while we wrote: take the next free one.
            final = os.path.join(model_dir, str(next_version(model_dir)))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


@contextlib.contextmanager
def quiet_tensorflow_logs():
    """TensorFlow's INFO logs (absl's and the `tensorflow` logger's) off inside the block, as before after it.

    Writing a SavedModel logs at INFO, through absl, a line per function naming every input it
    renames (one per variable: hundreds for a ResNet), plus "Sharding callback duration",
    "Assets written to" and "Writing fingerprint": what an app that logs at INFO would show.
    Warnings and errors still show.
    """
    tf_logger = tf.get_logger()
    verbosity, level = absl_logging.get_verbosity(), tf_logger.level
    absl_logging.set_verbosity(min(verbosity, absl_logging.WARNING))  # absl: higher is more verbose
    tf_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        absl_logging.set_verbosity(verbosity)
        tf_logger.setLevel(level)


def _model_function(serving, size):
    """`serving` as a `tf.function` of float images `[batch, *size, 3]`, which no signature exposes.

    A second `ExportArchive` does the backend's conversion (jax2tf on JAX): the exported
    archive keeps only the signatures that call it, and saves the variables they capture.
    """
    converter = keras.export.ExportArchive()
    if keras.backend.backend() != "tensorflow":
        # jax2tf needs the variables listed up front. On TensorFlow the archive finds the ones the
        # endpoints capture by itself, and tracking the model too would store every weight twice.
        converter.track(serving)
    return converter.add_endpoint(
        "model", serving.__call__, input_signature=[tf.TensorSpec((None, *size, 3), tf.float32, name="images")]
    )


def _checked_images(images, size, resize):
    """`images` as `[batch, *size, 3]`: a graph-time check (resizing instead, with `resize`).

    Run in the graph, not left to the signature: TensorFlow does not check a signature's
    declared shape when it is called, and a network that pools globally answers any size.
    """
    shape = tf.shape(images)
    padded = tf.concat([shape, tf.zeros([4], tf.int32)], 0)[:4]  # a rank other than 4 fails the test below
    expected = tf.constant([size[0], size[1], 3])
    if resize:
        channels = tf.logical_and(tf.equal(tf.rank(images), 4), tf.equal(padded[3], 3))
        check = tf.debugging.Assert(channels, ["Expected images of shape [batch, height, width, 3]. Received:", shape], summarize=8)
        with tf.control_dependencies([check]):
            same = tf.reduce_all(tf.equal(padded[1:], expected))
            images = tf.cond(same, lambda: tf.identity(images), lambda: tf.image.resize(images, size))
    else:
        ok = tf.logical_and(tf.equal(tf.rank(images), 4), tf.reduce_all(tf.equal(padded[1:], expected)))
        message = (
            f"Expected images of shape [batch, {size[0]}, {size[1]}, 3] (the exported size; "
            "export_serving(resize_images=True) resizes). Received:"
        )
        with tf.control_dependencies([tf.debugging.Assert(ok, [message, shape], summarize=8)]):
            images = tf.identity(images)
    return tf.ensure_shape(images, (None, size[0], size[1], 3))


def _rename_to_new(staging, final):
    """Renames `staging` to `final` unless `final` exists; returns whether it did."""
    if os.path.exists(final):  # rename() would replace an empty folder
        return False
    try:
        os.rename(staging, final)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    return True


def remove_stale_staging(model_dir):
    """Deletes the staging folders in `model_dir` that no running export writes; returns their names.

    A folder names its writer's pid (see `_STAGING`): it is stale once that process is gone.
    One without a pid is stale after `STALE_SECONDS`.
    """
    removed = []
    for name in sorted(os.listdir(model_dir)):
        match = _STAGING.match(name)
        path = os.path.join(model_dir, name)
        if not match or not os.path.isdir(path):
            continue
        if match.group(1) is not None:
            stale = not _process_alive(int(match.group(1)))
        else:
            stale = time.time() - os.path.getmtime(path) > STALE_SECONDS
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _refuse_existing(path):
    if os.path.exists(path):
        raise FileExistsError(
            f"Version folder {path} already exists; keras_tl never overwrites an exported version. "
            "Pass version=None to write the next version, or another version number."
        )
