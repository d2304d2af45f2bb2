"""DI2: the upstream head on target features learns a distinct multi-hot sequence per class."""

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.losses.targets import class_sets, multi_hot, sigmoid_cross_entropy_sum, sparse_labels
from keras_tl.regularizers.base import Regularizer, check_non_negative


@keras_tl_export("keras_tl.regularizers.DiscrepantDiffusion")
class DiscrepantDiffusion(Regularizer):
    """λ·BCE(σ(upstream head on target features), multi-hot S^{y_i}): discrepant semantic diffusion.

    ℓ̃_r = −Σ_i Σ_n ( I(c̄_n ∈ S^{y_i})·log h_i[n] + (1 − I(c̄_n ∈ S^{y_i}))·log(1 − h_i[n]) ),
    h_i = σ(FC̄(E(x_i)))

    Each downstream class m diffuses to its granularity diffusion sequence S^m of upstream
    classes (`keras_tl.diffusion.granularity_sequences`, k chosen so that all sequences
    differ), and the target's trainable copy of the upstream head FC̄ learns to fire on
    exactly those. The term returned is λ·ℓ̃_r with the sum over the N upstream classes and
    the mean over the batch. Needs `TransferModel(..., keep_source_head=True)`.

    The total loss, Eq. 7, ℓ_o = ℓ_d + λ·ℓ̃_r, is `compile(loss=...)` plus this term: with
    `keras_tl.losses.SparseBinaryCrossentropy()` as the downstream loss ℓ_d (Eq. 6; both sum
    over classes, so λ weighs them as in the paper), or with the usual softmax
    cross-entropy (`keras.losses.SparseCategoricalCrossentropy(from_logits=True)`).

    λ = 0.001 by default. The paper states both 0.01 (Sec. 4.1, the general setting) and
    0.001 (Sec. 4.6, "we chose 0.001 as the value of λ in the model"); we follow Sec. 4.6
    because it is where λ was actually selected (Fig. 6b), and because ℓ̃_r sums N upstream
    binary terms (1000 for ImageNet) against the M of ℓ_d, so the smaller weight keeps the
    regularizer from dominating the classification loss (the paper reports that large λ
    hurts on data sets far from the upstream one, e.g. DTD).

    Reference:
        Gao et al., "Discrepant Semantic Diffusion Boosts Transfer Learning Robustness",
        Electronics 2023, Sec. 3.3, Eq. 5; Sec. 3.4, Eq. 6-7; Sec. 4.6 (λ).

    Args:
        lam: non-negative coefficient λ.
        sequences: one list of upstream class ids per downstream class (S^m); its length is
            M, the ids index the source head's outputs.

    Example:
    >>> model = keras_tl.TransferModel(source, num_classes=10, keep_source_head=True)
    >>> scores = keras_tl.relationship.class_means(
    ...     keras_tl.relationship.upstream_logits(model, x_train), y_train, 10)
    >>> sequences, k = keras_tl.diffusion.granularity_sequences(scores)  # logs k
    >>> model = keras_tl.TransferModel(source, num_classes=10, keep_source_head=True,
    ...     regularizers=[keras_tl.regularizers.DiscrepantDiffusion(0.001, sequences)])
    >>> model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
    ...               loss=keras_tl.losses.SparseBinaryCrossentropy(), metrics=["accuracy"])
    """

    inputs = ("source_head_logits", "labels")

    def __init__(self, lam=0.001, sequences=None, **kwargs):
        super().__init__(**kwargs)
        self.lam = check_non_negative("lam", lam)
        self.sequences = class_sets(sequences, "sequences")
        self._targets = None

    def build(self, source_head_logits_shape, labels_shape):
        num_upstream = source_head_logits_shape[-1]
        largest = max((max(row) for row in self.sequences if row), default=-1)
        if num_upstream is not None and largest >= num_upstream:
            raise ValueError(
                f"Expected the sequences' upstream class ids < {num_upstream} (the source head's "
                f"outputs). Received id {largest}"
            )
        self._targets = multi_hot(self.sequences, num_upstream if num_upstream is not None else largest + 1)
        self.built = True

    def call(self, source_head_logits, labels):
        targets = ops.take(ops.convert_to_tensor(self._targets), sparse_labels(labels), axis=0)
        return self.lam * ops.mean(sigmoid_cross_entropy_sum(targets, source_head_logits))

    def get_config(self):
        return {**super().get_config(), "lam": self.lam, "sequences": self.sequences}
