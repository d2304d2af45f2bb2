"""Feature-map distillation ("KnowDist", DELTA without attention)."""

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.regularizers.feature_maps import BatchSummedRegularizer, channel_distances, matched_names


@keras_tl_export("keras_tl.regularizers.FeatureMapDistillation")
class FeatureMapDistillation(BatchSummedRegularizer):
    """α·Σ_layers ½‖FM_t − FM_s‖²: keep the target's tapped maps close to the frozen source's.

    Ω = α/2 · 1/L Σ_{l ∈ taps} Σ_i ‖FM^l(ω, x_i) − FM^l(ω*, x_i)‖² / Σ_i ‖FM^l(ω*, x_i)‖²   (relative=True, default)

    The default (since keras_tl 0.2) is scale-free: each tap's distance relative to the
    source map's energy on the batch, averaged over taps, so α means the same for any
    source, resolution and batch size (`keras_tl.regularizers.feature_maps`; default
    α = 10). `relative=False` is the authors' convention below, the paper's α = 0.01:

    Ω = α · Σ_{l ∈ taps} ½ Σ_{i=1..B} Σ_{j=1..C_l} ‖FM_j^l(ω, x_i) − FM_j^l(ω*, x_i)‖²   (reduction="sum")
    Ω = α · Σ_{l ∈ taps} ½ · 1/B Σ_{i=1..B} Σ_{j=1..C_l} ‖FM_j^l(ω, x_i) − FM_j^l(ω*, x_i)‖²   (reduction="mean")

    The maps are the tapped layers' outputs as they are (DELTA's reference code taps
    pre-BN convolutions and applies no ReLU or normalisation); ‖·‖² sums over the H·W
    positions. Convention (`reduction="sum"`, the default): summed over the batch, as the
    DELTA authors' `reg_fea_map` and tllib's `BehavioralRegularization`
    (½‖FM_t − FM_s‖² of the whole batch tensor), so the paper's α = 0.01 at its batch size
    64 gives exactly the authors' term (`tests/reference/`: constant 1). Eq. 5 prints a
    1/n Σ_i; that is `reduction="mean"`, whose α is the `"sum"` α times the batch size.
    Batch size conversion: a batch-summed term scales with B while the cross-entropy is a
    batch mean, so the paper's balance at batch B is α·64/B
    (`keras_tl.regularizers.feature_maps.batch_size_equivalent_alpha`). The ½ matches the reference code.
    On a token map `[B, T, C]` (a ViT; the paper knows only CNNs) ‖·‖² sums over the T
    tokens, which take the place of the H·W positions (`keras_tl.regularizers.feature_maps`).

    Reference:
        Li et al., "DELTA", ACM TKDD 2021, Sec. 2.2, Eq. 5 (and Eq. 8 with W_j = 1), Sec. 4.1
        (α = β = 0.01 default, batch 64); Yim et al., "A gift from knowledge distillation", CVPR 2017.

    Args:
        alpha: non-negative coefficient α (relative: default 10; the authors': the paper's 0.01).
        reduction: with `relative=False`, `"sum"` (over the batch, the authors' code) or `"mean"`.
        relative: the scale-free term (default) or the authors' convention.

    Example:
    >>> model = keras_tl.TransferModel(
    ...     source, num_classes=10, taps=keras_tl.backbones.default_taps("cifar_resnet20"),
    ...     regularizers=[keras_tl.regularizers.FeatureMapDistillation(alpha=10.0),
    ...                   keras_tl.regularizers.L2(beta=0.01, scope="head")])
    """

    def distances(self, target_features, source_features):
        return {
            name: ops.sum(channel_distances(target_features[name], source_features[name]), axis=-1)
            for name in matched_names(target_features, source_features)
        }
