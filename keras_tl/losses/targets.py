"""Label handling shared by the sigmoid (one-vs-all) losses and the output-level regularizers."""

import numpy as np
from keras import ops


def sparse_labels(y):
    """Integer class ids `[batch]` from `y` as `fit` gives it.

    `[batch]` and `[batch, 1]` are class ids; `[batch, classes]` with more than one column
    (one-hot or soft labels) gives the arg-max class.
    """
    if len(y.shape) == 2 and y.shape[-1] != 1:
        y = ops.argmax(y, axis=-1)
    return ops.cast(ops.reshape(y, (-1,)), "int32")


def sigmoid_cross_entropy_sum(targets, logits):
    """Σ_n BCE(targets[:, n], σ(logits[:, n])) per example: `[batch]`, float32.

    The sum over classes (not Keras' mean) is the papers' Eq. 3, 5 and 6, so that a
    coefficient λ between two of them keeps its meaning.
    """
    logits = ops.cast(logits, "float32")
    targets = ops.cast(targets, "float32")
    return ops.sum(ops.binary_crossentropy(targets, logits, from_logits=True), axis=-1)


def class_sets(rows, what, depth=None):
    """Validates `rows` (one list of class ids per class) and returns them as lists of ints.

    Args:
        rows: a sequence of sequences of non-negative ints (ragged allowed).
        what: the argument's name, for error messages.
        depth: if given, every id must be `< depth`.
    """
    if rows is None or isinstance(rows, (str, bytes)) or not hasattr(rows, "__len__") or len(rows) == 0:
        raise ValueError(
            f"Expected {what} to be a non-empty list with one list of class ids per class. "
            f"Received: {what}={rows!r}"
        )
    result = []
    for index, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
            raise ValueError(f"Expected {what}[{index}] to be a list of class ids. Received: {row!r}")
        ids = list(row)
        valid = all(isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)) for i in ids)
        valid = valid and all(0 <= i < (depth if depth is not None else np.inf) for i in ids)
        if not valid or len(set(ids)) != len(ids):
            bound = f"[0, {depth})" if depth is not None else ">= 0"
            raise ValueError(
                f"Expected {what}[{index}] to hold distinct int class ids {bound}. Received: {ids!r}"
            )
        result.append([int(i) for i in ids])
    return result


def multi_hot(rows, depth):
    """`[len(rows), depth]` float32 numpy matrix with a 1 at each listed id of each row."""
    table = np.zeros((len(rows), depth), dtype="float32")
    for index, row in enumerate(rows):
        table[index, row] = 1.0
    return table


def check_upstream_classes(owner, logits_shape, expected, what):
    """Fails at model construction when the upstream head's width and `owner`'s table disagree."""
    if logits_shape is None or logits_shape[-1] is None or logits_shape[-1] == expected:
        return
    raise ValueError(
        f"Expected {type(owner).__name__}'s {what} to have one column per upstream class "
        f"({logits_shape[-1]} source head outputs). Received {expected} columns"
    )
