"""Few-shot subsets: stratified, seeded sampling of a fixed count or a fraction per class."""

import warnings

import numpy as np


def few_shot_indices(labels, per_class=None, fraction=None, seed=0):
    """Sorted indices of a stratified sample: `per_class` examples, or `fraction` of them, per class.

    The two protocols of the papers: a fixed count per class (DELTA's Caltech-256-30 / -60)
    and a fraction of each class (the DSD paper's 15 / 30 / 50 %). Each class is sampled with
    its own generator seeded by `(seed, class)`, so a class's sample does not change when
    other classes are added or removed, and the same seed always gives the same subset.

    Args:
        labels: int array, the label of each example.
        per_class: a positive int; classes with fewer examples keep all of them (with a warning).
        fraction: a float in (0, 1]; each class keeps `round(fraction · n_c)`, at least 1.
        seed: an int.

    Returns:
        An int64 array of indices into `labels`, sorted.

    Example:
    >>> idx = keras_tl.data.few_shot_indices(labels, per_class=30, seed=0)
    """
    if (per_class is None) == (fraction is None):
        raise ValueError(
            "Expected exactly one of per_class and fraction. "
            f"Received: per_class={per_class!r}, fraction={fraction!r}"
        )
    if per_class is not None and (
        isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1
    ):
        raise ValueError(f"Expected per_class to be a positive int. Received: per_class={per_class!r}")
    if fraction is not None and (isinstance(fraction, bool) or not 0.0 < fraction <= 1.0):
        raise ValueError(f"Expected 0 < fraction <= 1. Received: fraction={fraction!r}")
    labels = np.asarray(labels)
    chosen, short = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if per_class is not None:
            count = min(per_class, len(members))
            if count < per_class:
                short.append((int(label), len(members)))
        else:
            count = max(1, int(round(fraction * len(members))))
        order = np.random.default_rng([int(seed), int(label)]).permutation(len(members))
        chosen.append(members[np.sort(order[:count])])
    if short:
        warnings.warn(
            f"{len(short)} class(es) have fewer than per_class={per_class} examples and keep all of "
            f"them: (label, count) {short[:10]}",
            stacklevel=2,
        )
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros((0,), np.int64)
