"""`Records`: the examples of one split in a fixed order, whatever the source format.

Each source (`folder`, `tfrecord`, `tfds`, `digits`) produces `Records`; the pipeline then
scans, selects and transforms them the same way. An element is `(index, encoded, label)`:
the index travels with the example, so skipping one never shifts the others.
"""

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from keras_tl.data import transforms


@dataclasses.dataclass
class Records:
    """One split of a data set, in a fixed order.

    Attributes:
        class_names: the name of each label (label `i` is `class_names[i]`).
        indexed: `() -> tf.data.Dataset` of `(index, encoded image bytes, label)`, every record,
            in order. Reading or decoding one record may fail; that failure must not shift
            the indices of the others.
        labels: int array, one per record, if known without reading the images (else None).
        names: a readable identifier per record (e.g. a file path) for warnings, or None.
        select: optional `(indices) -> tf.data.Dataset` of `(index, encoded, label)` reading
            only the given records (folders and in-memory data); others filter `indexed()`.
        description: the spec, for messages.
        count: `() -> int`, the number of records (needed when `labels` is None).
    """

    class_names: list
    indexed: Callable
    labels: np.ndarray | None = None
    names: list | None = None
    select: Callable | None = None
    description: str = ""
    count: Callable | None = None

    def size(self):
        return len(self.labels) if self.labels is not None else int(self.count())

    def subset(self, indices):
        """`(index, encoded, label)` of the records in `indices` (sorted ints), in order."""
        if indices is None:
            return self.indexed()
        if self.select is not None:
            return self.select(np.asarray(indices, np.int64))
        keep = np.zeros(int(np.max(indices)) + 1 if len(indices) else 1, bool)
        keep[np.asarray(indices, np.int64)] = True
        keep = tf.constant(keep)
        size = tf.shape(keep, out_type=tf.int64)[0]
        return self.indexed().filter(
            lambda index, encoded, label: tf.logical_and(
                index < size, tf.gather(keep, tf.minimum(index, size - 1))
            )
        )


def scan(records, check_images=True):
    """`(readable indices, labels)`: one pass that decodes every image (if `check_images`).

    An unreadable or corrupt image is skipped and counted in one warning naming a few of
    them; it never stops the run. Without `check_images` only the labels are read (when
    `records.labels` is unknown), and nothing is skipped.
    """
    if not check_images and records.labels is not None:
        return np.arange(len(records.labels)), np.asarray(records.labels)

    def probe(index, encoded, label):
        if check_images:
            # Reduce the image to a scalar so the scan keeps nothing but (index, label).
            tf.debugging.assert_positive(tf.size(transforms.decode(encoded)))
        return index, label

    dataset = records.indexed().map(probe, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.ignore_errors().batch(4096)
    indices, labels = [], []
    for index, label in dataset.as_numpy_iterator():
        indices.append(index)
        labels.append(label)
    indices = np.concatenate(indices) if indices else np.zeros((0,), np.int64)
    labels = np.concatenate(labels).astype(np.int64) if labels else np.zeros((0,), np.int64)
    total = records.size()
    if len(indices) < total:
        _warn_skipped(records, np.setdiff1d(np.arange(total), indices), total)
    return indices, labels


def _warn_skipped(records, skipped, total):
    named = (
        [records.names[i] for i in skipped[:5]]
        if records.names is not None
        else [int(i) for i in skipped[:5]]
    )
    warnings.warn(
        f"Skipped {len(skipped)} unreadable or corrupt image(s) of {total} in {records.description}: "
        f"{named}{' ...' if len(skipped) > 5 else ''}",
        stacklevel=3,
    )
