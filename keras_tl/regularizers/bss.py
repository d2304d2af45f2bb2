"""BSS: batch spectral shrinkage of the pooled features' smallest singular values."""


from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.regularizers.base import Regularizer, check_non_negative
from keras_tl.utils.validation import check_number


@keras_tl_export("keras_tl.regularizers.BSS")
class BSS(Regularizer):
    """η·Σ_{i=1}^{k} σ²_{−i}: shrink the k smallest singular values of the batch's features.

    L_bss(F) = η · Σ_{i=1}^{k} σ²_{−i}

    F is the `[batch, dim]` matrix of pooled target features (the input of the heads), σ_{−i}
    its i-th smallest singular value among the min(batch, dim) there are. Small singular
    directions carry the source-specific, untransferable knowledge that causes negative
    transfer; penalising them suppresses it while the large ones keep training freely.

    Computed with `ops.svd(F, compute_uv=False)` in float32, not with the eigenvalues of the
    Gram matrix FᵀF: the Gram matrix squares the condition number, so in float32 its small
    eigenvalues (exactly the ones penalised) drown in round-off and can even come out
    negative. The singular values' gradient, ∂σ_i/∂F = u_i v_iᵀ, involves no division by
    gaps between singular values, and both backends return finite gradients even for
    repeated or zero singular values (rank-deficient batches). A batch with fewer than k
    rows penalises all of its min(batch, dim) singular values. (JAX on CPU runs the SVD in
    LAPACK: on an oversubscribed machine OpenBLAS's threads can make this tiny SVD cost
    tens of ms; `OPENBLAS_NUM_THREADS=1` brings it back below 1 ms.)

    Reference:
        Chen et al., "Catastrophic Forgetting Meets Negative Transfer: Batch Spectral
        Shrinkage for Safe Transfer Learning", NeurIPS 2019, Sec. 4 (the BSS term added to
        the fine-tuning loss; η = 0.001 and k = 1 as in its experiments).

    Args:
        eta: non-negative coefficient η.
        k: how many of the smallest singular values to shrink (a positive int).

    Example:
    >>> model = keras_tl.TransferModel(
    ...     source, num_classes=10, regularizers=[keras_tl.regularizers.BSS(eta=0.001, k=1)])
    """

    inputs = ("target_pooled",)

    def __init__(self, eta=0.001, k=1, **kwargs):
        super().__init__(**kwargs)
        self.eta = check_non_negative("eta", eta)
        self.k = check_number("k", k, minimum=1, integer=True)

    def call(self, target_pooled):
        features = ops.cast(target_pooled, "float32")
        singular_values = ops.svd(features, full_matrices=False, compute_uv=False)
        smallest = ops.sort(singular_values)[: self.k]
        return self.eta * ops.sum(ops.square(smallest))

    def get_config(self):
        return {**super().get_config(), "eta": self.eta, "k": self.k}
