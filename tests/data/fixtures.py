"""Small image data sets written by the tests: folders, TFRecords, corrupt files."""

import os

import numpy as np
import tensorflow as tf

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def shared(name):
    """The path of `../shared/data/<name>` beside the repository, or None when it is absent."""
    path = os.path.abspath(os.path.join(SHARED_DATA, name))
    return path if os.path.exists(path) else None


def image_bytes(rng, size=(12, 10), fmt="png"):
    pixels = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    return encode(pixels).numpy()


def make_folder(root, counts, nested=False, seed=0):
    """`root[/images]/<class>/<i>.png` with `counts[class]` images each; returns the image root."""
    rng = np.random.default_rng(seed)
    images = os.path.join(root, "images") if nested else root
    for name, count in counts.items():
        os.makedirs(os.path.join(images, name), exist_ok=True)
        for i in range(count):
            with open(os.path.join(images, name, f"{i:03d}.png"), "wb") as handle:
                handle.write(image_bytes(rng))
    return images


def write_listing(root, split, entries):
    with open(os.path.join(root, f"{split}.txt"), "w") as handle:
        handle.write("\n".join(entries) + "\n")


def make_tfrecord(path, labels, corrupt=(), seed=0):
    """ImageNet-style records: `image/encoded` (JPEG, or junk at the `corrupt` positions), `image/class/label`."""
    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(path) as writer:
        for i, label in enumerate(labels):
            encoded = b"not an image" if i in corrupt else image_bytes(rng, fmt="jpeg")
            features = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
