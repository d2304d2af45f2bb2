"""`tfrecord:<glob>`: ImageNet-style TFRecords (`image/encoded`, `image/class/label`).

The glob names the files of one split (`.../train-*.tfrecord`); a directory instead reads
its `<split>*.tfrecord*` files. Class names come from a `classes.tsv` beside the files
(`label<TAB>wnid<TAB>name` with a header, as in `../shared/data/tiny-imagenet-32/`), its
`name` column if present, else its second column; without one they are the label numbers.
"""

import csv
import glob
import os

import tensorflow as tf

from keras_tl.data.folder import SPLIT_ALIASES
from keras_tl.data.records import Records

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
}


def resolve_files(pattern, split):
    if os.path.isdir(pattern):
        for name in SPLIT_ALIASES.get(split, (split,)):
            files = sorted(glob.glob(os.path.join(pattern, f"{name}*.tfrecord*")))
            if files:
                return files, pattern
        raise FileNotFoundError(
            f"Expected {split}*.tfrecord* files in {pattern} for split={split!r}. Received: none "
            f"(files there: {sorted(os.listdir(pattern))[:10]})"
        )
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"Expected TFRecord files matching tfrecord:{pattern}. Received: none")
    return files, os.path.dirname(files[0])


def read_class_names(directory, column="name"):
    """`column` (`name`, or e.g. `wnid`) of `<directory>/classes.tsv` ordered by label, or None if there is none."""
    path = os.path.join(directory, "classes.tsv") if os.path.isdir(directory) else directory
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t") if row]
    header = rows[0] if rows and not rows[0][0].strip().isdigit() else None
    body = rows[1:] if header else rows
    if header and column not in header and column != "name":
        raise ValueError(f"Expected a {column!r} column in {path}. Received columns: {header}")
    column = header.index(column) if header and column in header else 1
    by_label = {int(row[0]): (row[column] if len(row) > column else row[-1]) for row in body}
    if sorted(by_label) != list(range(len(by_label))):
        raise ValueError(
            f"Expected labels 0..{len(by_label) - 1} in {path}. Received: {sorted(by_label)[:10]} ..."
        )
    return [by_label[label] for label in range(len(by_label))]


def load_tfrecord(pattern, split="train"):
    files, directory = resolve_files(pattern, split)
    class_names = read_class_names(directory)

    def parse(index, serialized):
        example = tf.io.parse_single_example(serialized, FEATURES)
        return index, example["image/encoded"], example["image/class/label"]

    def indexed():
        # Files in sorted order, read sequentially: the record order (and so each index) is fixed.
        raw = tf.data.TFRecordDataset(files, num_parallel_reads=None)
        return raw.enumerate().map(parse, num_parallel_calls=tf.data.AUTOTUNE)

    def count():
        return int(tf.data.TFRecordDataset(files).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))

    return Records(
        class_names=class_names,
        indexed=indexed,
        description=f"tfrecord:{pattern} ({len(files)} file(s)"
        + (f", classes from {os.path.join(directory, 'classes.tsv')})" if class_names else ")"),
        count=count,
    )
