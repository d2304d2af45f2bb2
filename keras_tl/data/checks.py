"""What `keras_tl.data.load` checks in a split once its labels are read: labels inside the class
list, no example listed twice, no class left without examples.

A duplicate entry (a split file listing an image twice) is read once; a class whose every
image is missing or unreadable stays a class (its label is an output of the model, and
labels agree across splits) but no example of this split teaches or measures it. Both are
far more often a mistake than a choice, so each is a warning naming the entries or classes,
and an error under `strict=True`.
"""

import warnings

import numpy as np


def check_labels(records, labels, class_names):
    """Raises `ValueError` if a label does not index `class_names` (e.g. a TFRecord label past
    its `classes.tsv`), naming the labels and the data set."""
    bad = labels[(labels < 0) | (labels >= len(class_names))]
    if len(bad):
        values = sorted(set(bad.tolist()))
        raise ValueError(
            f"Expected the labels of {records.description} to be in 0..{len(class_names) - 1} "
            f"(its {len(class_names)} class names). Received: label(s) {values[:10]}"
            f"{' ...' if len(values) > 10 else ''} in {len(bad)} example(s)."
        )


def drop_duplicates(records, indices, labels, strict=False):
    """`(indices, labels)` without the records whose name (`records.names`) an earlier one has.

    Only sources that name their records (folders: the split file's lines) can list one twice.
    """
    if records.names is None or len(indices) == 0:
        return indices, labels
    names = np.asarray(records.names, dtype=object)[indices]
    _, first = np.unique(names, return_index=True)
    if len(first) == len(names):
        return indices, labels
    keep = np.zeros(len(names), bool)
    keep[first] = True
    repeated = sorted(set(names[~keep].tolist()))
    _report(
        f"{len(repeated)} entr{'y is' if len(repeated) == 1 else 'ies are'} listed more than once in "
        f"{records.description} and read once: {repeated[:5]}{' ...' if len(repeated) > 5 else ''}",
        strict,
    )
    return indices[keep], labels[keep]


def check_empty_classes(records, labels, class_names, strict=False):
    """Warns (raises with `strict`) naming the classes of `class_names` without any example in `labels`."""
    counts = np.bincount(labels, minlength=len(class_names))
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if empty:
        _report(
            f"{len(empty)} class(es) have no example in {records.description}: {empty[:10]}"
            f"{' ...' if len(empty) > 10 else ''}. They stay classes of the model (an output each), but "
            "nothing in this split teaches or measures them.",
            strict,
        )


def _report(message, strict):
    if strict:
        raise ValueError(f"{message} (strict=True: an error).")
    warnings.warn(message, stacklevel=4)
