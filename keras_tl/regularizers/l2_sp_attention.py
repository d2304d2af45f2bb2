"""L2-SP-ATT: L2-SP with each tapped filter's term weighted by its DELTA channel weight."""

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.regularizers.base import match_keys, sum_squares
from keras_tl.regularizers.delta import check_channel_weights, mean_one
from keras_tl.regularizers.l2_sp import L2SP

BACKBONE_PREFIX = "backbone/"


def tap_layer(key):
    """The layer name of a `backbone/[<model>/]<layer>/<variable>` key, else None."""
    if not key.startswith(BACKBONE_PREFIX):
        return None
    parts = key.split("/")
    return parts[-2] if len(parts) >= 3 else None


@keras_tl_export("keras_tl.regularizers.L2SPAttention")
class L2SPAttention(L2SP):
    """α/2·Σ_j W̃_j‖w_j − w⁰_j‖² + β/2·‖w_S̄‖²: L2-SP with DELTA's channel attention on the filters.

    Ω(w, w⁰) = α/2 · Σ_{k ∈ S} Σ_j W̃_{k,j} ‖w_{k,j} − w⁰_{k,j}‖² + β/2 · Σ_{k ∉ S} ‖w_k‖²

    S and w⁰ are as in `L2SP`; j runs over the output filters of variable k (its last
    axis: a convolution kernel `[kh, kw, in, C]`, a bias `[C]`). For the variables of a
    tapped layer (`backbone/<tap>/<variable>`, the layer whose feature map DELTA weights),
    W̃_{k,j} = C·W_j/Σ_i W_i, the tap's DELTA weights rescaled to average 1. Every other
    variable, including the filters of layers that are not taps, keeps weight 1 (the
    average of a tap's weights), so uniform channel weights give exactly `L2SP`, and only
    the tapped filters — the ones Alg. 1 measured — are re-weighted.

    Convention: a weight-space term, so no batch or position reduction is involved; the ½
    and α are those of the DELTA authors' `reg_l2sp` (½‖w − w⁰‖², α = 0.01), which it equals
    with uniform weights (`tests/reference/`). The released code has no L2-SP-ATT.

    Reference:
        Li et al., "DELTA", ACM TKDD 2021, Sec. 4.2 ("L2-SP-ATT") and Table 1; L2-SP:
        Li, Grandvalet, Davoine, ICML 2018.

    Args:
        alpha: non-negative coefficient α on the distance to the source weights.
        beta: non-negative coefficient β on the variables the source does not have.
        channel_weights: dict tap layer name -> list of non-negative per-filter weights
            (`keras_tl.channel_weights.delta_channel_weights`); each named layer must have
            trainable backbone variables whose last axis has that many filters.

    Example:
    >>> reg = keras_tl.regularizers.L2SPAttention(alpha=0.01, beta=0.01, channel_weights=weights)
    >>> model = keras_tl.TransferModel(source, num_classes=10, taps=taps, regularizers=[reg])
    """

    def __init__(self, alpha=0.01, beta=0.01, channel_weights=None, name=None, **kwargs):
        super().__init__(alpha=alpha, beta=beta, name=name or "l2_sp_attention", **kwargs)
        self.channel_weights = check_channel_weights(channel_weights)

    def call(self, target_weights, source_weights):
        shared, target_only = match_keys(target_weights, source_weights, "weight")
        plain, weighted, seen = [], ops.zeros((), "float32"), set()
        for key in shared:
            difference = ops.subtract(target_weights[key], source_weights[key])
            layer = tap_layer(key)
            if layer not in self.channel_weights:
                plain.append(difference)
                continue
            seen.add(layer)
            filters = mean_one(self.channel_weights[layer])
            if tuple(difference.shape[-1:]) != filters.shape:
                raise ValueError(
                    f"Expected {len(filters)} filters (one per channel weight of '{layer}') on the last "
                    f"axis of '{key}'. Received: shape={tuple(difference.shape)}"
                )
            squared = ops.square(ops.cast(difference, "float32"))
            per_filter = ops.sum(ops.reshape(squared, (-1, len(filters))), axis=0)
            weighted = weighted + ops.sum(per_filter * ops.convert_to_tensor(filters))
        unused = sorted(set(self.channel_weights) - seen)
        if unused:
            raise ValueError(
                "Expected each channel_weights layer to have trainable backbone variables with a "
                f"source counterpart ('backbone/<layer>/<variable>'). Received layers without: {unused}"
            )
        distance = sum_squares(plain) + weighted
        decay = sum_squares([target_weights[key] for key in target_only])
        return 0.5 * self.alpha * distance + 0.5 * self.beta * decay

    def get_config(self):
        weights = {name: list(values) for name, values in self.channel_weights.items()}
        return {**super().get_config(), "channel_weights": weights}
