"""What `keras_tl.fine_tune` refuses before it trains: each a one-line error naming the argument.

A negative learning rate is gradient ascent; a split loaded with `training=False` is neither
shuffled nor augmented; evaluation classes that differ from the training classes (by name or
by order) give a plausible accuracy against the wrong labels. Each would train to the end
and report a number, so each is refused up front.
"""

from keras_tl.utils.validation import check_number


def check_arguments(train, eval_data=None, *, epochs, lr, momentum, dropout, validation_freq=1):
    """Raises `ValueError` on a schedule, a training split or evaluation classes `fine_tune` cannot use.

    Example:
    >>> check_arguments(train, test, epochs=10, lr=-0.1, momentum=0.9, dropout=0.0)
    ValueError: Expected lr >= 0 (a float). Received: lr=-0.1
    """
    check_number("epochs", epochs, minimum=1, integer=True)
    check_number("lr", lr, minimum=0)
    if check_number("momentum", momentum, minimum=0) > 1:
        raise ValueError(f"Expected momentum in [0, 1]. Received: momentum={momentum!r}")
    if check_number("dropout", dropout, minimum=0) >= 1:
        raise ValueError(f"Expected dropout in [0, 1). Received: dropout={dropout!r}")
    check_number("validation_freq", validation_freq, minimum=0, integer=True)
    check_training_split(train)
    if eval_data is not None:
        check_evaluation_split(train, eval_data, "eval_data")


def check_training_split(train):
    """Refuses a split that `keras_tl.data.load` made with `training=False` (no shuffle, no augmentation)."""
    selection = getattr(train, "selection", None) or {}
    if selection.get("training") is False:
        raise ValueError(
            "Expected train to be a training split, keras_tl.data.load(..., training=True): shuffled and "
            f"augmented every epoch. Received: a split loaded with training=False (split={selection.get('split')!r})"
        )


def check_evaluation_split(train, evaluation, what):
    """Refuses an evaluation split whose classes are not `train`'s, in the same order (naming both)."""
    from keras_tl.data.classes import check_same_classes  # keras_tl.data imports TensorFlow: on use

    check_same_classes(train.class_names, evaluation.class_names, what)
