"""L2-SP: the starting point (the source weights) as the reference of weight decay."""

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.regularizers.base import Regularizer, check_non_negative, match_keys, sum_squares


@keras_tl_export("keras_tl.regularizers.L2SP")
class L2SP(Regularizer):
    """α/2·‖w_S − w⁰_S‖² + β/2·‖w_S̄‖²: pull shared weights to the source, decay the rest.

    Ω(w, w⁰) = α/2 · Σ_{k ∈ S} ‖w_k − w⁰_k‖² + β/2 · Σ_{k ∉ S} ‖w_k‖²

    S is the set of trainable target variables that have a counterpart in the source
    network (convolution kernels, biases, BatchNorm γ/β; moving statistics are not
    trainable and never enter), w⁰ the frozen source values. The variables the source
    does not have (the new head) get plain weight decay: DELTA Eq. 7's Ω''(ω \\ ω*).
    The ½ makes the gradient α·(w − w⁰), as in the L2-SP paper's implementation.

    Reference:
        Li et al., "DELTA", ACM TKDD 2021, Sec. 2.2, Eq. 4 (L2-SP) and Sec. 3.1, Eq. 7;
        Li, Grandvalet, Davoine, "Explicit inductive bias for transfer learning with
        convolutional networks" (L2-SP), ICML 2018.

    Args:
        alpha: non-negative coefficient α on the distance to the source weights.
        beta: non-negative coefficient β on the variables the source does not have.

    Example:
    >>> model = keras_tl.TransferModel(
    ...     source, num_classes=10,
    ...     regularizers=[keras_tl.regularizers.L2SP(alpha=0.01, beta=0.01)])
    """

    inputs = ("target_weights", "source_weights")

    def __init__(self, alpha=0.01, beta=0.01, **kwargs):
        super().__init__(**kwargs)
        self.alpha = check_non_negative("alpha", alpha)
        self.beta = check_non_negative("beta", beta)

    def call(self, target_weights, source_weights):
        shared, target_only = match_keys(target_weights, source_weights, "weight")
        distance = sum_squares(
            [ops.subtract(target_weights[key], source_weights[key]) for key in shared]
        )
        decay = sum_squares([target_weights[key] for key in target_only])
        return 0.5 * self.alpha * distance + 0.5 * self.beta * decay

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}
