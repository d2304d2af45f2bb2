"""`as_split`: plain data (a `tf.data.Dataset` or `(x, y)` arrays, as `fit` takes) as a `Split`.

`keras_tl.fine_tune`, the methods and their data-dependent preparations call it once where the
data comes in, so everything after sees a `Split` (dataset, class names, labels, batches per epoch).
"""

import numpy as np
import tensorflow as tf

from keras_tl.data.shuffling import shuffled_per_epoch
from keras_tl.data.split import Split


def as_split(
    data,
    num_classes=None,
    batch_size=32,
    *,
    class_names=None,
    training=True,
    seed=0,
    shuffle_buffer=10_000,
    drop_remainder=None,
    name="data",
):
    """`data` as a `keras_tl.data.Split`; a `Split` (or an object with a `dataset`, as one) is returned as it is.

    Accepted, as Keras' `fit` takes them:

    - `(x, y)` numpy arrays: images `x` `[examples, H, W, C]`, labels `y`. Batched by
      `batch_size`; with `training`, shuffled per epoch by `(seed, epoch)` exactly as
      `keras_tl.data.load`'s training splits (resume-safe) and the short last batch dropped
      (`drop_remainder`, default `training`), so the same arrays in the same order give the
      same batches as the `load` split they came from.
    - A finite `tf.data.Dataset` of `(images, labels)`: batches (`[batch, H, W, C]`), used as
      they are, or single examples (`[H, W, C]`), batched by `batch_size`. Its order is its own
      (shuffle it yourself, as for `fit`). It is read once here (labels only) to count its
      examples and batches, which gives the cosine schedule's length even when its
      cardinality is unknown, to infer `num_classes` and to check the labels.

    Labels are int class ids (`[n]` or `[n, 1]`) or one-hot rows `[n, classes]`, which become
    ids; other rows (soft labels) are refused: mix with `load(augment="mixup")` instead.
    Images are used as they are: preprocess them for the source first, as for `fit`.

    Args:
        data: a `Split`, `(x, y)` arrays or a `tf.data.Dataset`.
        num_classes: the number of classes; None: the largest label + 1.
        batch_size: for arrays and unbatched datasets.
        class_names: one name per class; None: `"0"`, `"1"`, ...
        training: shuffle arrays per epoch and drop their short last batch.
        seed, shuffle_buffer: of the arrays' shuffling (as `keras_tl.data.load`).
        drop_remainder: for arrays; default `training`.
        name: the argument's name in error messages (`fine_tune` passes `"train"`).

    Returns:
        A `Split`.

    Example:
    >>> train = keras_tl.data.as_split((x_train, y_train), batch_size=64, seed=0)
    >>> model, history = keras_tl.fine_tune("l2_sp", source, (x_train, y_train))  # the same, inside
    """
    if isinstance(data, Split) or hasattr(data, "dataset"):
        return data
    _check_positive_int("batch_size", batch_size)
    epoch = None
    if isinstance(data, tf.data.Dataset):
        dataset, labels, per_batch = _from_dataset(data, batch_size, name)
        num_classes = _check_labels(labels, num_classes, name)
        batch_size, batches = max(len(ids) for ids in per_batch), len(per_batch)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, labels, num_classes = as_arrays(*data, num_classes=num_classes, name=name)
        dataset, batches = tf.data.Dataset.from_tensor_slices((x, labels)), None
        if training:
            dataset, epoch = shuffled_per_epoch(dataset, max(1, min(len(labels), shuffle_buffer)), seed)
            dataset = dataset.map(lambda image, label, key: (image, label))
        drop = training if drop_remainder is None else bool(drop_remainder)
        # Fewer examples than one batch: the one short batch, as `keras_tl.data.load`.
        dataset = dataset.batch(batch_size, drop_remainder=drop and len(labels) >= batch_size)
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    else:
        raise ValueError(
            f"Expected {name} to be a keras_tl.data.Split, a tf.data.Dataset of (images, labels) or (x, y) "
            f"numpy arrays. Received: {name} of type {type(data).__name__}"
        )
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    elif len(class_names) != num_classes:
        raise ValueError(
            f"Expected one class name per class ({num_classes}). Received: class_names of length {len(class_names)}"
        )
    image_size = tuple(dataset.element_spec[0].shape[-3:-1])
    return Split(dataset, list(class_names), labels, image_size, epoch, int(batch_size), batches)


def plain_split(data, **kwargs):
    """`as_split(data, **kwargs)` before MixUp/CutMix (int labels): what data-dependent preparations
    measure. `None` stays `None` (a method without preparation needs no data)."""
    split = None if data is None else as_split(data, **kwargs)
    return split.unmixed() if isinstance(split, Split) else split


def first_pass(data, **kwargs):
    """`plain_split(data, **kwargs)` set to read its pass 0, as a fresh process does.

    A split's shuffling and augmentation are keyed by its pass counter, which every `fit` on it
    moves on; what is measured on it outside training (a method's preparation, WiSE-FT's
    BatchNorm statistics in `keras_tl.select`) reads pass 0, so it does not depend on what
    trained on the split before it or on whether the process resumed.

    Example:
    >>> batchnorm.update_statistics(model.target_backbone, keras_tl.data.first_pass(train))
    """
    split = plain_split(data, **kwargs)
    if getattr(split, "epoch", None) is not None:
        split.epoch.assign(0)
    return split


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Expected {name} to be a positive int. Received: {name}={value!r}")


def as_arrays(x, y, num_classes=None, name="data"):
    """`(x, int32 label ids, num_classes)` of image and label arrays, checked as `as_split` checks them."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4:
        raise ValueError(
            f"Expected {name}'s images x of rank 4 [examples, height, width, channels]. Received: x.shape={x.shape}"
        )
    if len(y) != len(x):
        raise ValueError(
            f"Expected {name}'s x and y to hold the same number of examples. Received: x.shape={x.shape}, "
            f"y.shape={y.shape}"
        )
    labels = _label_ids(y, f"{name}'s labels y")
    return x, labels, _check_labels(labels, num_classes, name)


def _label_ids(y, what):
    """int32 ids of labels `[n]`, `[n, 1]` or one-hot `[n, classes]` (numpy), or a one-line ValueError."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] != 1:
        one_hot = np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()
        if not one_hot:
            raise ValueError(
                f"Expected {what} to be int class ids or one-hot rows (soft labels are not accepted; mix with "
                f"keras_tl.data.load(augment='mixup')). Received: rows of shape {y.shape} that are not one-hot"
            )
        return np.argmax(y, axis=1).astype("int32")
    if y.ndim not in (1, 2) or y.size and not np.all(np.mod(y, 1) == 0):
        raise ValueError(
            f"Expected {what} to be int class ids [n] (or [n, 1]) or one-hot rows [n, classes]. "
            f"Received: labels of shape {y.shape} and dtype {y.dtype}"
        )
    return y.reshape(-1).astype("int32")


def _check_labels(labels, num_classes, name):
    """`num_classes` (inferred when None) after checking every label is in `[0, num_classes)`."""
    if num_classes is not None:
        _check_positive_int("num_classes", num_classes)
    if len(labels) == 0:
        raise ValueError(f"Expected {name} to hold at least one example. Received: an empty {name}")
    low, high = int(labels.min()), int(labels.max())
    if num_classes is None:
        num_classes = high + 1
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"Expected {name}'s labels in [0, {num_classes}) (num_classes={num_classes}). "
            f"Received: labels from {low} to {high}"
        )
    return int(num_classes)


def _from_dataset(dataset, batch_size, name):
    """`(batched dataset of (images, int32 ids), ids of every example, the ids per batch)`."""
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(s, tf.TensorSpec) for s in spec)):
        raise ValueError(f"Expected {name} to yield (images, labels) pairs. Received: element_spec={spec}")
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"Expected {name} to be a finite dataset (each pass is one epoch; drop its repeat()). "
            f"Received: {name} with infinite cardinality"
        )
    images, labels = spec
    if images.shape.rank == 3:
        dataset = dataset.batch(batch_size)
    elif images.shape.rank != 4:
        raise ValueError(
            f"Expected {name}'s images to be batches [batch, height, width, channels] or single images "
            f"[height, width, channels]. Received: images of shape {images.shape}"
        )
    if dataset.element_spec[1].shape.rank not in (1, 2):
        raise ValueError(
            f"Expected {name}'s labels to be int class ids or one-hot rows per example. Received: labels of "
            f"shape {labels.shape} for images of shape {images.shape}"
        )
    what = f"{name}'s labels"
    per_batch = [_label_ids(y, what) for y in dataset.map(lambda x, y: y).as_numpy_iterator()]
    dataset = dataset.map(lambda x, y: (x, _to_ids(y)), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE), np.concatenate(per_batch or [np.zeros(0, "int32")]), per_batch


def _to_ids(y):
    """A batch's labels as int32 ids `[batch]` (one-hot rows: their 1's index), inside tf.data."""
    if y.shape.rank == 2 and y.shape[-1] != 1:
        return tf.argmax(y, axis=-1, output_type=tf.int32)
    return tf.cast(tf.reshape(y, [-1]), tf.int32)
