"""`digits`: scikit-learn's handwritten digits, real and offline, for demos and tests.

1,797 grayscale 8×8 images of the digits 0-9 (the UCI optical digits test set) that ship
with scikit-learn. They are turned into 0..255 PNGs in memory, so they go through the same
decoding and transforms as any image folder. The fixed split keeps 2/3 of each class for
"train" (a stratified sample with seed 0) and the rest for "test".
"""

import numpy as np
import tensorflow as tf

from keras_tl.data.records import Records
from keras_tl.data.sampling import few_shot_indices

SPLITS = ("train", "test", "all")
TRAIN_FRACTION = 2 / 3


def load_digits(split="train"):
    if split not in SPLITS:
        raise ValueError(f"Expected split to be one of {SPLITS} for digits. Received: split={split!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError("The digits data set needs scikit-learn: pip install 'keras_tl[apps]'") from error
    data = sklearn_digits()
    images = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = data.target.astype(np.int64)
    train = few_shot_indices(labels, fraction=TRAIN_FRACTION, seed=0)
    chosen = {
        "train": train,
        "test": np.setdiff1d(np.arange(len(labels)), train),
        "all": np.arange(len(labels)),
    }[split]
    encoded = np.array([tf.io.encode_png(image).numpy() for image in images[chosen]], dtype=object)
    labels = labels[chosen]

    def rows(indices):
        return tf.data.Dataset.from_tensor_slices((indices, encoded[indices], labels[indices]))

    return Records(
        class_names=[str(d) for d in range(10)],
        indexed=lambda: rows(np.arange(len(labels), dtype=np.int64)),
        labels=labels,
        select=rows,
        description=f"digits (split={split})",
    )
