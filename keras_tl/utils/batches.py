"""One reader for the held-out and training data that functions outside `fit` take: arrays or batches."""

import numpy as np


class NumpyBatches:
    """`(x, y)` numpy batches of `data`, re-iterable through `as_numpy_iterator()` like a `tf.data.Dataset`.

    `data` is `(x, y)` arrays (cut into `batch_size` batches, reshuffled on every pass when
    `seed` is given), a split from `keras_tl.data.load` (its `dataset`), a `tf.data.Dataset`
    of `(x, y)` batches, or any re-iterable of `(x, y)` batches (a list). So
    `keras_tl.data.predict_logits` reads all of them.

    Example:
    >>> for x, y in NumpyBatches((x_val, y_val), batch_size=64).as_numpy_iterator(): ...
    """

    def __init__(self, data, batch_size=64, seed=None, name="data"):
        if data is None:
            raise ValueError(
                f"Expected {name}: (x, y) arrays or a dataset of (x, y) batches. Received: {name}=None"
            )
        self.data = getattr(data, "dataset", data)
        self.batch_size = batch_size
        self.name = name
        self._arrays = (
            isinstance(self.data, (tuple, list)) and len(self.data) == 2 and hasattr(self.data[0], "shape")
        )
        if self._arrays and len(self.data[0]) != len(self.data[1]):
            raise ValueError(
                f"Expected as many labels as images in {name}. Received: {len(self.data[0])} images, "
                f"{len(self.data[1])} labels"
            )
        self._rng = None if seed is None else np.random.default_rng(seed)

    def as_numpy_iterator(self):
        empty = True
        for x, y in self._iterate():
            empty = False
            yield np.asarray(x), np.asarray(y)
        if empty:
            raise ValueError(f"Expected a non-empty {self.name}. Received one that yields no batch.")

    def _iterate(self):
        if self._arrays:
            x, y = self.data
            order = np.arange(len(x)) if self._rng is None else self._rng.permutation(len(x))
            for start in range(0, len(x), self.batch_size):
                index = order[start : start + self.batch_size]
                yield np.asarray(x)[index], np.asarray(y)[index]
        elif hasattr(self.data, "as_numpy_iterator"):
            yield from self.data.as_numpy_iterator()
        else:
            for batch in self.data:
                yield batch[0], batch[1]


def forever(batches):
    """The batches of a `NumpyBatches` without end: a new pass (reshuffled) whenever one ends."""
    while True:
        yield from batches.as_numpy_iterator()
