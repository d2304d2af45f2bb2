"""L2: coupled weight decay on a chosen part of the target network."""

from keras_tl.api_export import keras_tl_export
from keras_tl.regularizers.base import Regularizer, check_non_negative, sum_squares

SCOPES = ("head", "backbone", "all")


@keras_tl_export("keras_tl.regularizers.L2")
class L2(Regularizer):
    """½·β·‖w‖² over the target variables in `scope`, added to the loss.

    Ω(w) = β/2 · Σ_{w ∈ scope} ‖w‖²

    This is the coupled weight decay of the papers (its gradient β·w goes through the
    optimizer, momentum and DTNH included), not Keras' decoupled `weight_decay`. With
    `scope="all"` and the target started from the source weights it is "fine-tuning with
    weight decay", the L2 baseline of DELTA Sec. 2.2, Eq. 3.

    Reference:
        Li et al., "DELTA", ACM TKDD 2021, Sec. 2.2, Eq. 3.

    Args:
        beta: non-negative coefficient β.
        scope: which trainable variables: `"head"` (the new head, default), `"backbone"`,
            or `"all"` (every trainable target variable).

    Example:
    >>> reg = keras_tl.regularizers.L2(beta=0.01, scope="all")
    >>> model = keras_tl.TransferModel(source, num_classes=10, regularizers=[reg])
    """

    inputs = ("target_weights",)

    def __init__(self, beta=0.01, scope="head", **kwargs):
        super().__init__(**kwargs)
        self.beta = check_non_negative("beta", beta)
        if scope not in SCOPES:
            raise ValueError(f"Expected scope to be one of {SCOPES}. Received: scope={scope!r}")
        self.scope = scope

    def call(self, target_weights):
        if self.scope == "all":
            selected = list(target_weights.values())
        else:
            prefix = self.scope + "/"
            selected = [value for key, value in target_weights.items() if key.startswith(prefix)]
        return 0.5 * self.beta * sum_squares(selected)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "scope": self.scope}
