"""Feature-map distillation ("KnowDist", DELTA without attention)."""

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.regularizers.feature_maps import (
    FeatureMapRegularizer,
    batch_mean_of_sums,
    channel_distances,
    matched_names,
)


@keras_tl_export("keras_tl.regularizers.FeatureMapDistillation")
class FeatureMapDistillation(FeatureMapRegularizer):
    """α·Σ_layers ½‖FM_t − FM_s‖²: keep the target's tapped maps close to the frozen source's.

    Ω = α · Σ_{l ∈ taps} ½ · 1/B Σ_{i=1..B} Σ_{j=1..C_l} ‖FM_j^l(ω, x_i) − FM_j^l(ω*, x_i)‖²

    The maps are the tapped layers' outputs as they are (DELTA's reference code taps
    pre-BN convolutions and applies no ReLU or normalisation). Reduction: the squared
    differences are summed over channels and positions and averaged over the batch, as
    Eq. 5's 1/n Σ_i; the reference code (`reg_fea_map`) sums over the batch instead, so
    its α equals this α divided by the batch size. The ½ matches the reference code.

    Reference:
        Li et al., "DELTA", ACM TKDD 2021, Sec. 2.2, Eq. 5 (and Eq. 8 with W_j = 1);
        Yim et al., "A gift from knowledge distillation", CVPR 2017.

    Args:
        alpha: non-negative coefficient α.

    Example:
    >>> model = keras_tl.TransferModel(
    ...     source, num_classes=10, taps=keras_tl.backbones.default_taps("cifar_resnet20"),
    ...     regularizers=[keras_tl.regularizers.FeatureMapDistillation(alpha=0.01),
    ...                   keras_tl.regularizers.L2(beta=0.01, scope="head")])
    """

    def call(self, target_features, source_features):
        total = ops.zeros((), "float32")
        for name in matched_names(target_features, source_features):
            total = total + batch_mean_of_sums(
                channel_distances(target_features[name], source_features[name])
            )
        return 0.5 * self.alpha * total
