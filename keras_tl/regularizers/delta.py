"""DELTA: feature-map distillation weighted by supervised channel attention."""

import math

import numpy as np
from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.regularizers.feature_maps import (
    RELATIVE_ALPHA,
    BatchSummedRegularizer,
    batch_reduce,
    channel_distances,
    matched_names,
    num_positions,
)

# DELTA's `channel_weights` for "DELTA (w/o ATT)" (Table 1): every channel of every tap weighs 1.
UNIFORM = "uniform"


def check_channel_weights(channel_weights):
    """`{layer: [float, ...]}` from a dict of non-negative weights per channel; anything else is an error."""
    if not isinstance(channel_weights, dict) or not channel_weights:
        raise ValueError(
            "Expected channel_weights to be a non-empty dict mapping tap layer names to lists of "
            f"non-negative floats (e.g. from keras_tl.channel_weights.delta_channel_weights). "
            f"Received: channel_weights={channel_weights!r:.200}"
        )
    checked = {}
    for name, values in channel_weights.items():
        try:
            floats = [float(v) for v in values]
        except (TypeError, ValueError):
            floats = None
        if (
            not isinstance(name, str)
            or not floats
            or not all(math.isfinite(v) and v >= 0 for v in floats)
            or sum(floats) <= 0
        ):
            raise ValueError(
                "Expected channel_weights[layer] to be a non-empty list of finite, non-negative floats "
                f"with a positive sum. Received: channel_weights[{name!r}]={values!r:.200}"
            )
        checked[name] = floats
    return checked


def mean_one(weights):
    """`C·W / ΣW` as float32: a layer's weights rescaled to average 1 (uniform weights become ones)."""
    weights = np.asarray(weights, dtype="float64")
    return (weights * (len(weights) / weights.sum())).astype("float32")


def check_channel_counts(channel_weights, channels):
    """Every tap has weights and one weight per channel; `channels` maps tap name -> C."""
    taps = sorted(channels)
    if sorted(channel_weights) != taps:
        raise ValueError(
            "Expected channel_weights for exactly the tapped layers. Received: "
            f"channel_weights layers={sorted(channel_weights)}, taps={taps}"
        )
    for name in taps:
        if len(channel_weights[name]) != channels[name]:
            raise ValueError(
                f"Expected one channel weight per channel of tap '{name}' ({channels[name]}). "
                f"Received: {len(channel_weights[name])} weights"
            )


@keras_tl_export("keras_tl.regularizers.DELTA")
class DELTA(BatchSummedRegularizer):
    """α·Σ_layers ½ Σ_j W_j‖FM_j(ω) − FM_j(ω*)‖²/(H·W): distillation weighted by supervised channel attention.

    Ω' = Σ_{l ∈ taps} ½ Σ_{i=1..B} Σ_{j=1..C_l} W̃_j^l · 1/(H_l W_l) ‖FM_j^l(ω, x_i) − FM_j^l(ω*, x_i)‖²,
    Ω = α · Ω' (reduction="sum"; `"mean"` divides by B),    W̃_j^l = C_l · W_j^l / Σ_k W_k^l

    With `relative=True` (the default since keras_tl 0.2) the weighted distance of each tap
    is divided by the source map's energy on the batch and averaged over taps instead
    (Ω = α/2 · 1/L Σ_l Σ_i Σ_j W̃_j‖FM_j^l(ω, x_i) − FM_j^l(ω*, x_i)‖² / Σ_i ‖FM^l(ω*, x_i)‖²; the 1/(H·W)
    and the batch reduction cancel): a scale-free α, default 10
    (`keras_tl.regularizers.feature_maps`). The convention below is `relative=False`.

    W^l are the per-channel weights of Alg. 1 (`keras_tl.channel_weights.delta_channel_weights`:
    a channel weighs more when zeroing it raises the L2-FE model's loss more).

    Convention: the DELTA authors' `reg_att_fea_map` (also tllib's
    `AttentionBehavioralRegularization`), term for term, so the paper's α = 0.01 at its
    batch size 64 is the authors' term (`tests/reference/`: constant 1):

    - positions: the squared distance of each channel is **averaged over the H_l·W_l
      positions** (the code's `/ (h * w)`). This keeps the layers balanced: summing would
      make a 56×56 tap 64× heavier than a 7×7 one, which the paper's α was not tuned for.
    - batch: **summed** over the B examples (the code's `torch.sum`). The cross-entropy is a
      batch mean, so at batch size B the paper's balance needs α·64/B
      (`keras_tl.regularizers.feature_maps.batch_size_equivalent_alpha`); `reduction="mean"` takes
      α_mean = α_sum·B and is then independent of B.
    - weights: rescaled to average 1 per layer (W̃). The code multiplies its softmax
      weights (summing to 1) by C_l, which is W̃; only the ratios within a layer matter,
      and uniform weights give Σ_l `FeatureMapDistillation`_l / (H_l·W_l).
    - Eq. 8 as printed has neither the C_l nor the 1/(H·W); with them α is the code's α.
    - token maps `[B, T, C]` (a ViT's encoder output; the paper and the code know only
      CNNs): positions are tokens, so the 1/(H·W) is 1/T, and W_j weighs channel j of every
      token, the channel that `delta_channel_weights` zeroes in all tokens at once (see
      `keras_tl.regularizers.feature_maps`).
    - Eq. 7's β·Ω''(ω \\ ω*) on the new head is a separate term:
      `keras_tl.regularizers.L2(beta, scope="head")` (the code's `reg_classifier`).

    The weights are fixed before training (Alg. 1), not learned, so they are kept in the
    config as JSON lists (a 4-tap ResNet-101 has 3,840 floats) and `get_config` →
    `from_config` rebuilds the same term.

    Reference:
        Li et al., "DELTA", ACM TKDD 2021, Sec. 3.2, Eq. 7-8, Sec. 3.4, Eq. 9, Alg. 1,
        Sec. 4.1 (α = β = 0.01 default, α chosen per task from {1e-4, 1e-3, 0.01, 0.1, 0.2},
        batch 64).

    Args:
        alpha: non-negative coefficient α (relative: default 10; the authors': the paper's 0.01).
        channel_weights: dict tap layer name -> list of non-negative per-channel weights
            (one per channel of that tapped map); every tap needs an entry.
            `"uniform"`: every channel weighs 1, with nothing measured: the paper's
            "DELTA (w/o ATT)" (Table 1, Fig. 6), the per-position distillation above.
        reduction: with `relative=False`, `"sum"` (over the batch, the authors' code) or `"mean"`.
        relative: the scale-free term (default) or the authors' convention.

    Example:
    >>> weights = keras_tl.channel_weights.delta_channel_weights(
    ...     source, num_classes=10, x=train_ds, taps=taps, cache_path="delta_weights.json")
    >>> model = keras_tl.TransferModel(
    ...     source, num_classes=10, taps=taps,
    ...     regularizers=[keras_tl.regularizers.DELTA(alpha=10.0, channel_weights=weights),
    ...                   keras_tl.regularizers.L2(beta=0.01, scope="head")])
    """

    def __init__(self, alpha=RELATIVE_ALPHA, channel_weights=None, reduction="sum", relative=True, **kwargs):
        super().__init__(alpha=alpha, reduction=reduction, relative=relative, **kwargs)
        self.uniform = isinstance(channel_weights, str)
        if self.uniform and channel_weights != UNIFORM:
            raise ValueError(
                f"Expected channel_weights to be a dict of per-channel weights or {UNIFORM!r}. "
                f"Received: channel_weights={channel_weights!r}"
            )
        self.channel_weights = None if self.uniform else check_channel_weights(channel_weights)

    def _check_channels(self, channels):
        if not self.uniform:
            check_channel_counts(self.channel_weights, channels)

    def build(self, target_features_shape, source_features_shape):
        names = matched_names(target_features_shape, source_features_shape)
        self._check_channels({n: target_features_shape[n][-1] for n in names})
        super().build()

    def distances(self, target_features, source_features):
        names = matched_names(target_features, source_features)
        self._check_channels({n: target_features[n].shape[-1] for n in names})
        per_tap = {}
        for name in names:
            distances = channel_distances(target_features[name], source_features[name])
            if not self.uniform:
                distances = distances * ops.convert_to_tensor(mean_one(self.channel_weights[name]))
            per_tap[name] = ops.sum(distances, axis=-1)
        return per_tap

    def authors_reduce(self, name, distances, target_map):
        # The authors' code averages each channel's distance over the H·W positions (the T tokens of a token map).
        return batch_reduce(distances, self.reduction) / num_positions(target_map)

    def get_config(self):
        weights = UNIFORM if self.uniform else {n: list(v) for n, v in self.channel_weights.items()}
        return {**super().get_config(), "channel_weights": weights}
