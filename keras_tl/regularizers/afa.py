"""AFA's attentive feature alignment: spatial (AST) and channel (ACT) attention on the source maps."""

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.regularizers.attention_layers import ChannelAttention, SpatialAttention
from keras_tl.regularizers.feature_maps import (
    AttentiveRegularizer,
    attended_position_distances,
    channel_distances,
    matched_names,
)


class SourceAttentiveRegularizer(AttentiveRegularizer):
    """AFA's terms: one attention network per tap, fed the frozen source map only."""

    def attention_weights(self, source_features):
        """`{tap: [batch, n]}`: each tap's attention (over positions for AST, channels for ACT; rows sum to 1)."""
        return {name: layer(source_features[name]) for name, layer in self.attention.items()}


@keras_tl_export("keras_tl.regularizers.AST")
class AST(SourceAttentiveRegularizer):
    """α·Σ_i ½‖AST^i·(FM_S^i − FM_T^i)‖²_F with learned attention over positions (AFA stage 1).

    AST^i = Softmax(FC_AST^i(AvgPool(Flat(FM_S^i))))            (Eq. 2)
    L_AST = Σ_{i ∈ taps} ½ · 1/B Σ_b Σ_p (H_i W_i · AST^i_{b,p})² ‖FM_S^i[b,p] − FM_T^i[b,p]‖²   (Eq. 3)

    FC_AST^i is FC(HW→H, no bias)·ReLU·FC(H→HW), built for the tapped map's own H×W (the
    reference code hard-codes 224×224 inputs). The attention multiplies the difference
    before squaring, as Eq. 3 and the AFA code do; like the AFA code it is scaled by the
    number of positions H·W, so uniform attention gives exactly `FeatureMapDistillation(reduction="mean")`.
    Convention: summed over channels and positions, averaged over the batch (as the AFA code,
    whose 1/B makes the paper's α independent of the batch size; its experiments use batch
    64 like DELTA's), so the paper's α is used as it is, with no batch-size conversion.
    The attention sees only the frozen source map, so its gradient never reaches the
    source; its FC layers are trained jointly with the target by the model's optimizer,
    as in the AFA code. AFA trains AST for the first half of the epochs and ACT for the
    second: see `keras_tl.callbacks.StagedRegularization`.

    Reference:
        Xie et al., "Towards effective deep transfer via attentive feature alignment",
        Neural Networks 2021; as summarised in Kang & Kang, "Deep Transfer Learning Method
        Using Self-Pixel and Global Channel Attentive Regularization", 2024, Sec. 2, Eq. 2-3, 6.

    Args:
        alpha: non-negative coefficient α (relative: default 10; the authors': the paper's 0.01).
        relative: the scale-free term (default since keras_tl 0.2: each tap's attended distance
            relative to the source map's energy on the batch, averaged over taps; see
            `keras_tl.regularizers.feature_maps`) or the authors' convention above.

    Example:
    >>> model = keras_tl.TransferModel(
    ...     source, num_classes=10, taps=taps,
    ...     regularizers=[keras_tl.regularizers.AST(alpha=0.01), keras_tl.regularizers.ACT(alpha=0.01)])
    """

    def build(self, target_features_shape, source_features_shape):
        self._build_per_tap(SpatialAttention, target_features_shape, source_features_shape)

    def distances(self, target_features, source_features):
        return attended_position_distances(
            lambda name: self.attention[name](source_features[name]), target_features, source_features
        )


@keras_tl_export("keras_tl.regularizers.ACT")
class ACT(SourceAttentiveRegularizer):
    """α·Σ_i ½ ACT^i·‖FM_S^i − FM_T^i‖² with learned attention over channels (AFA stage 2).

    ACT^i = Softmax(FC_ACT^i(Flat(FM_S^i)))                                 (Eq. 4)
    L_ACT = Σ_{i ∈ taps} ½ · 1/B Σ_b Σ_c C_i · ACT^i_{b,c} ‖FM_S^i[b,c] − FM_T^i[b,c]‖²   (Eq. 5)

    FC_ACT^i maps each flattened channel (H·W values) through FC(HW→H)·ReLU·FC(H→1), both
    without bias, then adds a learned per-channel bias (the AFA code); the softmax runs
    over the C channels. As in the AFA code the weights are scaled by C, so uniform
    attention gives exactly `FeatureMapDistillation(reduction="mean")`. Reduction: summed over channels and
    positions, averaged over the batch. Only the frozen source map enters the attention;
    its layers are trained jointly with the target.

    Reference:
        Xie et al., "Towards effective deep transfer via attentive feature alignment",
        Neural Networks 2021; Kang & Kang 2024, Sec. 2, Eq. 4-6.

    Args:
        alpha: non-negative coefficient α (relative: default 10; the authors': the paper's 0.01).
        relative: the scale-free term (default since keras_tl 0.2: each tap's attended distance
            relative to the source map's energy on the batch, averaged over taps; see
            `keras_tl.regularizers.feature_maps`) or the authors' convention above.

    Example:
    >>> act = keras_tl.regularizers.ACT(alpha=0.01)
    """

    def build(self, target_features_shape, source_features_shape):
        self._build_per_tap(ChannelAttention, target_features_shape, source_features_shape)

    def distances(self, target_features, source_features):
        per_tap = {}
        for name in matched_names(target_features, source_features):
            attention = self.attention[name](source_features[name])
            squared = channel_distances(target_features[name], source_features[name])
            per_tap[name] = ops.sum(attention.shape[-1] * attention * squared, axis=-1)
        return per_tap
