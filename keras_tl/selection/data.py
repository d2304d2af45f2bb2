"""The training and validation data of a search: `keras_tl.data` splits, or in-memory arrays with a held-out fraction."""

import numbers

import numpy as np

VALIDATION_HINT = (
    "pass a validation split, e.g. keras_tl.data.load(spec, 'train', per_class=k, seed=s, complement=True) "
    "(what the training sample of the same seed leaves out) or a 'val' split"
)


def is_split(data):
    return hasattr(data, "dataset") and hasattr(data, "num_classes")


def _arrays(data, name):
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError(
            f"Expected {name} to be a keras_tl.data.Split or (x, y) numpy arrays. Received: {name} of type "
            f"{type(data).__name__}"
        )
    x, y = np.asarray(data[0]), np.asarray(data[1]).reshape(-1).astype("int32")
    if x.ndim != 4 or len(x) != len(y):
        raise ValueError(
            f"Expected {name}'s images x [examples, height, width, channels] and one label per image. "
            f"Received: x.shape={x.shape}, y.shape={y.shape}"
        )
    return x, y


def splits(train, validation, batch_size=32, seed=0):
    """`(train, validation)` as `keras_tl.data.Split`s.

    Args:
        train: a training `Split` (`keras_tl.data.load(..., training=True)`) or `(x, y)` arrays.
        validation: a `Split`, `(x, y)` arrays, or a fraction in (0, 1): that fraction of each
            class of the training arrays is held out (`keras_tl.data.few_shot_indices`, `seed`).
        batch_size, seed: the arrays' batches and per-epoch shuffling.
    """
    fraction = isinstance(validation, numbers.Real) and not isinstance(validation, bool)
    if is_split(train):
        if validation is None or fraction:
            raise ValueError(
                f"Expected a validation split with a keras_tl.data.Split as train (a fraction is held out of "
                f"in-memory arrays only): {VALIDATION_HINT}. Received: validation={validation!r}"
            )
        return train, (
            validation
            if is_split(validation)
            else _split(*_arrays(validation, "validation"), batch_size, seed, False, train.num_classes)
        )
    x, y = _arrays(train, "train")
    if validation is None:
        raise ValueError(
            f"Expected validation: a fraction of train to hold out (e.g. 0.2), or {VALIDATION_HINT}. "
            "Received: validation=None"
        )
    if fraction:
        if not 0.0 < validation < 1.0:
            raise ValueError(f"Expected 0 < validation < 1 (a fraction). Received: validation={validation!r}")
        from keras_tl.data import few_shot_indices

        held = few_shot_indices(y, fraction=float(validation), seed=seed)
        kept = np.setdiff1d(np.arange(len(y)), held)
        num_classes = int(y.max()) + 1
        return (
            _split(x[kept], y[kept], batch_size, seed, True, num_classes),
            _split(x[held], y[held], batch_size, seed, False, num_classes),
        )
    if is_split(validation):
        return _split(x, y, batch_size, seed, True, validation.num_classes), validation
    vx, vy = _arrays(validation, "validation")
    num_classes = int(max(y.max(), vy.max())) + 1
    return _split(x, y, batch_size, seed, True, num_classes), _split(
        vx, vy, batch_size, seed, False, num_classes
    )


def _split(x, y, batch_size, seed, training, num_classes=None):
    """Arrays as a `Split` (`keras_tl.data.as_split`): shuffled per epoch by `(seed, epoch)` when training."""
    from keras_tl import data

    return data.as_split(
        (x, y),
        num_classes or int(y.max()) + 1,
        batch_size,
        training=training,
        seed=seed,
        drop_remainder=training and len(y) >= batch_size,
    )
