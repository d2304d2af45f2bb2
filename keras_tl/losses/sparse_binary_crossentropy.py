"""One-vs-all (sigmoid) cross-entropy over all classes, from integer labels: DSD's Eq. 6."""

import keras
from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.losses.targets import sigmoid_cross_entropy_sum, sparse_labels


@keras_tl_export("keras_tl.losses.SparseBinaryCrossentropy")
class SparseBinaryCrossentropy(keras.losses.Loss):
    """Σ_m BCE(y_i[m], σ(l_i[m])) with y_i the one-hot of an integer label; logits in.

    ℓ_d = −Σ_i Σ_m ( y_i[m]·log σ(G(x_i)[m]) + (1 − y_i[m])·log(1 − σ(G(x_i)[m])) )

    The downstream loss of DSD's fine-tuning stage. The sum runs over the M classes (Keras'
    `BinaryCrossentropy` averages them instead) so that λ of Eq. 7, ℓ_o = ℓ_d + λ·ℓ̃_r, weighs
    it against `keras_tl.regularizers.DiscrepantDiffusion`, which sums over the N upstream
    classes, as the paper writes both; the batch is averaged (Keras' default reduction).

    Reference:
        Gao et al., "Discrepant Semantic Diffusion Boosts Transfer Learning Robustness",
        Electronics 2023, Sec. 3.4, Eq. 6-7.

    Args:
        name, reduction, dtype: as for any `keras.losses.Loss`.

    `y_true`: integer class ids `[batch]` (or `[batch, 1]`, or one-hot rows); `y_pred`: logits.

    Example:
    >>> model.compile(optimizer="sgd", loss=keras_tl.losses.SparseBinaryCrossentropy())
    """

    def __init__(self, name="sparse_binary_crossentropy", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        targets = ops.one_hot(sparse_labels(y_true), ops.shape(y_pred)[-1])
        return sigmoid_cross_entropy_sum(targets, y_pred)
