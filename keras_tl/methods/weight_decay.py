"""Methods that regularize the weights alone: L2, L2-FE and L2-SP (DELTA Sec. 2.2, Eq. 3-4)."""

from keras_tl import regularizers
from keras_tl.api_export import keras_tl_export
from keras_tl.methods.base import NEAR_TRANSFER, Claim, Method
from keras_tl.methods.registry import register


@keras_tl_export("keras_tl.methods.L2", package="keras_tl.methods")
@register
class L2(Method):
    """Fine-tuning with weight decay on every variable: Ω = β/2·‖w‖² (DELTA Sec. 2.2, Eq. 3).

    Example:
    >>> keras_tl.fine_tune(keras_tl.methods.L2(beta=0.01), source, train, epochs=20)
    """

    name = "l2"
    display_name = "L2"
    reference = "DELTA Eq. 3"
    rule = "β/2·‖w‖² on every weight (fine-tuning with weight decay)"
    cross_backend = (False,)  # the benchmark's TensorFlow vs JAX comparison

    beta: float = 0.01

    def terms(self, context):
        return [regularizers.L2(beta=self.beta, scope="all")]


@keras_tl_export("keras_tl.methods.L2FE", package="keras_tl.methods")
@register
class L2FE(Method):
    """Feature extraction: a frozen backbone (inference mode) and a new head with weight decay (DELTA Sec. 4.2).

    Example:
    >>> keras_tl.fine_tune("l2_fe", source, train, epochs=20)
    """

    name = "l2_fe"
    display_name = "L2-FE"
    reference = "DELTA Sec. 4.2"
    rule = "frozen backbone, new head with β/2·‖w_head‖²"
    freeze_backbone = True

    beta: float = 0.01

    def terms(self, context):
        return [regularizers.L2(beta=self.beta, scope="head")]


@keras_tl_export("keras_tl.methods.L2SP", package="keras_tl.methods")
@register
class L2SP(Method):
    """L2-SP: weight decay towards the source weights (Li et al., ICML 2018; DELTA Eq. 4, 7).

    Ω = α/2·‖w_S − w⁰_S‖² + β/2·‖w_S̄‖², α = β = 0.01 (DELTA Sec. 4.1).

    Example:
    >>> keras_tl.fine_tune(keras_tl.methods.L2SP(alpha=0.1), source, train, epochs=20)
    """

    name = "l2_sp"
    display_name = "L2-SP"
    reference = "DELTA Eq. 4, 7"
    rule = "α/2·‖w − w⁰‖² on the source's weights, β/2·‖w‖² on the new head"
    coefficient = "alpha"
    select_factors = (1.0,)
    # The papers' regime (few shots, a source whose features fit the target; issue 29): L2-SP ≥ L2.
    claims = (Claim("l2", datasets=NEAR_TRANSFER),)
    benchmark_dtnh = True
    # From the paper's α up to where L2-SP falls clearly below L2 on DTD-10.
    dtnh_sweep = (0.01, 0.1, 1.0, 10.0)
    cross_backend = (False, True)  # the benchmark's TensorFlow vs JAX comparison

    alpha: float = 0.01
    beta: float = 0.01

    def terms(self, context):
        return [regularizers.L2SP(alpha=self.alpha, beta=self.beta)]
