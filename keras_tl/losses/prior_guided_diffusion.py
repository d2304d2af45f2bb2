"""PGD: DSD's pre-training loss, BCE relaxed on the ground truth's semantic neighbours."""

import math

import keras
from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.losses.targets import class_sets, multi_hot, sigmoid_cross_entropy_sum, sparse_labels
from keras_tl.utils.validation import check_number


@keras_tl_export("keras_tl.losses.PriorGuidedDiffusion")
class PriorGuidedDiffusion(keras.losses.Loss):
    """Sigmoid BCE whose logits of the ground truth's semantic neighbours are shifted by −log τ.

    ℓ_u = −Σ_i Σ_n ( ȳ_i[n]·log σ(l_i[n] − I(c̄_n ∈ N(ȳ_i))·log τ)
                    + (1 − ȳ_i[n])·log(1 − σ(l_i[n] − I(c̄_n ∈ N(ȳ_i))·log τ)) )

    so that |∂ℓ_u/∂l_i[n]| is τ/(τ + e^l) for the ground truth, e^l/(τ + e^l) for its
    neighbours and e^l/(1 + e^l) for every other class (Eq. 4): with τ ≫ 1 the ground truth
    is pushed up harder and its semantic neighbours are barely pushed down.

    Choices where the paper is ambiguous:
    - N(ȳ) contains ȳ itself. Eq. 4's first case, τ/(τ + e^l) (instead of plain BCE's
      1/(1 + e^l)), only holds if the ground-truth logit is shifted too, and the text says
      the gradient "increases the penalty of the ground-truth class". `neighbours[c]` lists
      the *other* classes of N(c); listing c there changes nothing.
    - Sums over the N classes (Eq. 3 as written), mean over the batch (Keras' reduction).

    The semantic prior that gives the neighbours is pluggable: `keras_tl.semantic` builds a
    similarity matrix from WordNet (`wordnet_similarity`), from a teacher's predictions
    (`teacher_similarity`) or takes the user's, and `nearest_neighbours(similarity, n)`
    turns it into `neighbours`.

    Reference:
        Gao et al., "Discrepant Semantic Diffusion Boosts Transfer Learning Robustness",
        Electronics 2023, Sec. 3.2, Eq. 3-4; τ = 100 from Sec. 4.6.

    Args:
        tau: τ > 0 (τ = 1 is plain BCE); the paper's value is 100.
        neighbours: one list per upstream class c of the class ids in N(c) besides c
            (ragged lists allowed); its length is the number of classes N.
        name, reduction, dtype: as for any `keras.losses.Loss`.

    `y_true`: integer upstream class ids `[batch]`; `y_pred`: logits `[batch, N]`.

    Example:
    >>> wnids = [line.split("\\t")[1] for line in open("classes.tsv").read().splitlines()[1:]]
    >>> similarity = keras_tl.semantic.wordnet_similarity(wnids)
    >>> loss = keras_tl.losses.PriorGuidedDiffusion(
    ...     tau=100, neighbours=keras_tl.semantic.nearest_neighbours(similarity, 5))
    >>> source = keras_tl.backbones.build(  # a Dense head without softmax: logits out
    ...     "cifar_resnet20", input_shape=(32, 32, 3), include_top=True, classes=len(wnids))
    >>> source.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=loss)
    >>> source.fit(upstream_ds, epochs=100)  # the PGD pre-trained source for DI2
    """

    def __init__(
        self,
        tau=100.0,
        neighbours=None,
        name="prior_guided_diffusion",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.tau = check_number("tau", tau, minimum=0, exclusive=True)
        num_classes = len(neighbours) if hasattr(neighbours, "__len__") else None
        self.neighbours = class_sets(neighbours, "neighbours", depth=num_classes)
        # N(c) ∪ {c} as a [N, N] table; one row gathered per example.
        self._shifted = multi_hot(self.neighbours, num_classes)
        self._shifted[range(num_classes), range(num_classes)] = 1.0

    def call(self, y_true, y_pred):
        labels = sparse_labels(y_true)
        num_classes = len(self.neighbours)
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != num_classes:
            raise ValueError(
                f"Expected logits with one column per class of `neighbours` ({num_classes}). "
                f"Received: y_pred.shape={tuple(y_pred.shape)}"
            )
        shift = ops.take(ops.convert_to_tensor(self._shifted), labels, axis=0) * math.log(self.tau)
        targets = ops.one_hot(labels, num_classes)
        return sigmoid_cross_entropy_sum(targets, ops.cast(y_pred, "float32") - shift)

    def get_config(self):
        return {**super().get_config(), "tau": self.tau, "neighbours": self.neighbours}
