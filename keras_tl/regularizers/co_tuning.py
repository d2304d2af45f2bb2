"""Co-Tuning: the upstream head keeps training on targets translated into source classes."""

import keras
import numpy as np
from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.losses.targets import check_upstream_classes, sparse_labels
from keras_tl.regularizers.base import Regularizer, check_non_negative


@keras_tl_export("keras_tl.regularizers.CoTuning")
class CoTuning(Regularizer):
    """λ·CE(softmax(upstream head on target features), p(ȳ|y_i)): the source head keeps learning.

    Ω = λ · (1/B) Σ_i −Σ_ȳ p(ȳ|y_i) · log softmax(FC̄(E(x_i)))[ȳ]

    The target label y_i is translated into a distribution over the N upstream classes by
    the category relationship p(ȳ|y) (`keras_tl.relationship.category_relationship`), and the
    target's trainable copy of the upstream head FC̄ is trained towards it; the whole loss is
    CE(new head, y) + Ω. Needs `TransferModel(..., keep_source_head=True)`. The term is the
    official code's `CoTuningLoss` (tllib: mean over the batch of −Σ p(ȳ|y)·log_softmax)
    times λ (`tests/reference/`); the relationship from `category_relationship` applies the
    official code's 0.884 scaling of the source logits before the softmax.

    The M×N relationship is the definition of the term, not learned state: `get_config`
    carries it as nested lists (JSON-safe) so a config alone rebuilds the regularizer; in
    the step it is a non-trainable variable `relationship` (saved with the model), so a
    callback may refresh it, e.g. recomputed from the fine-tuned model, without retracing.

    Reference:
        You et al., "Co-Tuning for Transfer Learning", NeurIPS 2020, Sec. 3 (the loss,
        λ = 2.3 as the official code's default `trade_off`); Gao et al., DSD, Electronics
        2023, Eq. 2.

    Args:
        lam: non-negative coefficient λ.
        relationship: `[M, N]` p(ȳ|y): M target classes (the labels), N upstream classes
            (the source head's outputs); non-negative rows summing to 1; nested lists or an
            array.

    Example:
    >>> model = keras_tl.TransferModel(source, num_classes=10, keep_source_head=True)
    >>> relationship = keras_tl.relationship.category_relationship(
    ...     keras_tl.relationship.upstream_logits(model, x_train), y_train, 10, method="direct")
    >>> model = keras_tl.TransferModel(source, num_classes=10, keep_source_head=True,
    ...     regularizers=[keras_tl.regularizers.CoTuning(lam=2.3, relationship=relationship)])
    """

    inputs = ("source_head_logits", "labels")

    def __init__(self, lam=2.3, relationship=None, **kwargs):
        super().__init__(**kwargs)
        self.lam = check_non_negative("lam", lam)
        matrix = np.asarray(relationship if relationship is not None else [], dtype="float32")
        rows_are_distributions = (
            matrix.ndim == 2 and np.all(matrix >= 0) and np.allclose(matrix.sum(1), 1, atol=1e-3)
        )
        if matrix.size == 0 or not rows_are_distributions:
            raise ValueError(
                "Expected relationship to be an [M, N] matrix p(ȳ|y) of non-negative rows summing to 1. "
                f"Received: relationship of shape {matrix.shape}"
                + ("" if matrix.ndim != 2 or matrix.size == 0 else f" with row sums {matrix.sum(1)[:5]}")
            )
        self.relationship = self.add_weight(
            shape=matrix.shape, initializer="zeros", trainable=False, name="relationship", autocast=False
        )
        self.relationship.assign(matrix)

    def build(self, source_head_logits_shape, labels_shape):
        check_upstream_classes(self, source_head_logits_shape, self.relationship.shape[1], "relationship")
        self.built = True

    def call(self, source_head_logits, labels):
        targets = ops.take(self.relationship, sparse_labels(labels), axis=0)
        log_probabilities = ops.log_softmax(ops.cast(source_head_logits, "float32"), axis=-1)
        return self.lam * ops.mean(-ops.sum(targets * log_probabilities, axis=-1))

    def get_config(self):
        relationship = keras.ops.convert_to_numpy(self.relationship).tolist()
        return {**super().get_config(), "lam": self.lam, "relationship": relationship}
