"""Classes of a split: choosing them by name or label, and checking that two splits agree.

A model's output k means class k of its training split. Evaluating it on a split whose classes
differ, by name or only by order, scores it against the wrong labels: the accuracy is a
plausible number, not an error (a permuted order gave 0.5 instead of the true top-1). So
`check_same_classes` compares the lists before any evaluation.
"""

import numpy as np


def class_mapping(classes, class_names):
    """old label → new label (-1: dropped), and the kept class names in the order given."""
    mapping = np.full(len(class_names), -1, np.int64)
    kept = []
    for new, wanted in enumerate(classes):
        if wanted in class_names:
            old = class_names.index(wanted)
        elif is_label(wanted) and 0 <= int(wanted) < len(class_names):
            old = int(wanted)
        else:
            raise ValueError(
                f"Unknown class {wanted!r}. Expected names from {class_names[:20]}"
                f"{' ...' if len(class_names) > 20 else ''} or label ints. Received: classes={classes!r}"
            )
        if mapping[old] >= 0:
            raise ValueError(f"Expected unique classes. Received: classes={classes!r}")
        mapping[old] = new
        kept.append(class_names[old])
    return mapping, kept


def is_label(value):
    if isinstance(value, str):
        return value.isdigit()
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_same_classes(trained, evaluated, what="the evaluation split"):
    """Raises `ValueError` unless the two lists of class names are equal (names and order), naming both.

    Args:
        trained: the class names the model was trained on (its outputs, in order).
        evaluated: the class names of the split to evaluate.
        what: how the message names the second list.

    Example:
    >>> check_same_classes(train.class_names, test.class_names, "eval_data")
    """
    trained, evaluated = [str(name) for name in trained], [str(name) for name in evaluated]
    if trained == evaluated:
        return
    reason = "the same classes in another order" if sorted(trained) == sorted(evaluated) else "other classes"
    raise ValueError(
        f"Expected the classes of {what} to be the model's training classes, in the same order. "
        f"Received: {reason}: trained on {_show(trained)}, {what} has {_show(evaluated)}. Select the same "
        "classes in the same order (keras_tl.data.load's classes=[...]; apps: --classes)."
    )


def _show(names):
    return f"{names[:20]}{' ...' if len(names) > 20 else ''} ({len(names)})"
