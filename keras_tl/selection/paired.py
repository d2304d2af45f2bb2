"""McNemar's exact test: is one classifier's edge over another on the same examples more than chance?"""

import math

import numpy as np

from keras_tl.utils.batches import NumpyBatches


def mcnemar_p(better, worse):
    """One-sided exact McNemar p-value for "`better` is right more often than `worse`".

    b = #{better right, worse wrong}, c = #{worse right, better wrong}; with equal accuracy b is
    Binomial(b + c, 1/2), and p = P(X ≥ b) = 2^−(b+c)·Σ_{k ≥ b} C(b + c, k). Only the examples on
    which the two disagree count, so a gain of a few examples out of thousands is not significant
    when the two models disagree on hundreds.

    Reference: McNemar, Psychometrika 12(2), 1947; recommended for two classifiers scored on one
    held-out set by Dietterich, "Approximate Statistical Tests for Comparing Supervised
    Classification Learning Algorithms", Neural Computation 10(7), 1998 (the exact binomial form,
    not the χ² approximation, since b + c can be small).

    Args:
        better, worse: per-example correctness (booleans) of the two models on the same examples.

    Returns:
        The p-value, 1.0 when they never disagree.

    Example:
    >>> mcnemar_p([1, 1, 1, 0], [0, 0, 1, 0])  # b = 2, c = 0: 0.25
    """
    better, worse = np.asarray(better, dtype=bool), np.asarray(worse, dtype=bool)
    if better.shape != worse.shape or better.ndim != 1:
        raise ValueError(
            f"Expected two per-example correctness vectors of one length. Received shapes {better.shape}, {worse.shape}"
        )
    b, c = int(np.sum(better & ~worse)), int(np.sum(worse & ~better))
    n = b + c
    return sum(math.comb(n, k) for k in range(b, n + 1)) / 2**n


def correct(model, data, batch_size=256):
    """Per-example correctness of `model`'s inference classifier on `data` (as `keras_tl.wise_ft` reads it)."""
    from keras_tl.data.evaluation import predict_logits  # tf.data: on first use only

    logits, labels = predict_logits(model.inference_model(), NumpyBatches(data, batch_size, name="validation"))
    return np.argmax(logits, axis=-1) == labels
