"""SPA (self-pixel attention) and GCA (global channel attention) attentive regularization."""

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.regularizers.attention_layers import GlobalChannelAttention, SpatialAttention
from keras_tl.regularizers.feature_maps import (
    RELATIVE_ALPHA,
    AttentiveRegularizer,
    attended_position_distances,
    channel_distances,
    checked_static_names,
    matched_names,
)
from keras_tl.utils.validation import check_number


@keras_tl_export("keras_tl.regularizers.SPA")
class SPA(AttentiveRegularizer):
    """α·Σ_i ½‖SPA^i(FM_S^i − FM_T^i)‖²_F, the attention over positions seeing source and target maps.

    SPA^i = Softmax(FC_SPA^i(AvgPool(Flat(Concat(FM_S^i, FM_T^i)))))          (Eq. 7)
    L_SPA = Σ_{i ∈ taps} ½ · 1/B Σ_b Σ_p (H_i W_i · SPA^i_{b,p})² ‖FM_S^i[b,p] − FM_T^i[b,p]‖²   (Eq. 8)

    FC_SPA^i is FC(HW→H)·ReLU·FC(H→HW) (Table 2), built for the tapped map's own H×W; as in
    AST (which SPA extends) the first FC has no bias and the attention is scaled by H·W so
    uniform attention gives exactly `FeatureMapDistillation(reduction="mean")`. Convention:
    summed over channels and positions, averaged over the batch, as AFA's term which SPA
    extends (the paper has no released code; its α ∈ [0.005, 0.1] at batch 64, Sec. 4, is
    used as it is: a batch mean needs no batch-size conversion).

    Choice: the target map enters the attention through a stop-gradient. The paper does
    not say; letting it through would reward the target for moving its features so that
    the attention lands where the two maps already agree, which is not the penalty of
    Eq. 8. The attention layers still learn (jointly, by the model's optimizer), and the
    target is regularized only through the attended difference.

    Reference:
        Kang & Kang, "Deep Transfer Learning Method Using Self-Pixel and Global Channel
        Attentive Regularization", 2024, Sec. 3.1, Eq. 7-8, Table 2; stage 1 of Eq. 11.

    Args:
        alpha: non-negative coefficient α (relative: default 10; the authors': the paper uses 0.005 to 0.1).
        relative: the scale-free term (default since keras_tl 0.2: each tap's attended distance
            relative to the source map's energy on the batch, averaged over taps; see
            `keras_tl.regularizers.feature_maps`) or the authors' convention above.

    Example:
    >>> spa, gca = keras_tl.regularizers.SPA(alpha=0.01), keras_tl.regularizers.GCA(alpha=0.01)
    >>> model = keras_tl.TransferModel(source, num_classes=10, taps=taps, regularizers=[spa, gca])
    >>> model.fit(ds, epochs=20, callbacks=[keras_tl.callbacks.StagedRegularization(
    ...     [["spa"], ["gca"]], switch_at=0.5, sync_source=True)])
    """

    def build(self, target_features_shape, source_features_shape):
        self._build_per_tap(SpatialAttention, target_features_shape, source_features_shape)

    def attention_weights(self, target_features, source_features):
        """`{tap: [batch, H·W]}`: the attention over positions (rows sum to 1)."""
        return {name: self._attend(name, target_features, source_features) for name in self.attention}

    def _attend(self, name, target_features, source_features):
        source = ops.cast(source_features[name], "float32")
        target = ops.stop_gradient(ops.cast(target_features[name], "float32"))
        return self.attention[name](ops.concatenate([source, target], axis=-1))

    def distances(self, target_features, source_features):
        return attended_position_distances(
            lambda name: self._attend(name, target_features, source_features), target_features, source_features
        )


@keras_tl_export("keras_tl.regularizers.GCA")
class GCA(AttentiveRegularizer):
    """α·Σ_i ½ GCA^i‖FM_S^i − FM_T^i‖², one channel attention over all tapped layers together.

    GCA = Softmax(FC_GCA(Concat(GAP(FM_S^1), …, GAP(FM_S^n))))              (Eq. 9)
    L_GCA = Σ_{i ∈ taps} ½ · 1/B Σ_b Σ_c ΣC · GCA^i_{b,c} ‖FM_S^i[b,c] − FM_T^i[b,c]‖²   (Eq. 10)

    FC_GCA is FC(ΣC→ΣC/r)·ReLU·FC(ΣC/r→ΣC) (Table 2) over the concatenated global averages
    of the source maps (taps in sorted name order); one softmax runs over all ΣC channels,
    so layers compete for attention. GCA^i is layer i's slice. The weights are scaled by
    ΣC, so uniform attention gives exactly `FeatureMapDistillation(reduction="mean")`. Reduction: summed over
    channels and positions, averaged over the batch. Only the frozen source maps enter the
    attention; its layers are trained jointly with the target.

    Reference:
        Kang & Kang 2024, Sec. 3.2, Eq. 9-10, Table 2, Table 6 (r); stage 2 of Eq. 12.

    Args:
        alpha: non-negative coefficient α (relative: default 10; the authors': the paper's 0.01).
        relative: the scale-free term (default since keras_tl 0.2: each tap's attended distance
            relative to the source map's energy on the batch, averaged over taps; see
            `keras_tl.regularizers.feature_maps`) or the authors' convention above.
        reduction: positive int r, the bottleneck ratio of FC_GCA (the paper uses 4).

    Example:
    >>> gca = keras_tl.regularizers.GCA(alpha=0.01, reduction=4)
    """

    def __init__(self, alpha=RELATIVE_ALPHA, reduction=4, relative=True, **kwargs):
        super().__init__(alpha=alpha, relative=relative, **kwargs)
        self.reduction = check_number("reduction", reduction, minimum=1, integer=True)

    def build(self, target_features_shape, source_features_shape):
        names = checked_static_names(target_features_shape, source_features_shape)
        self.channels = [int(source_features_shape[name][-1]) for name in names]
        self.attention = {"global": GlobalChannelAttention(self.reduction, name="gca_attention")}
        self.attention["global"].build((None, sum(self.channels)))
        super().build()

    def attention_weights(self, source_features):
        """`{tap: [batch, C_i]}`: each layer's slice of the one attention over all channels."""
        names = sorted(source_features)
        pooled = [ops.mean(ops.cast(source_features[name], "float32"), axis=(1, 2)) for name in names]
        attention = self.attention["global"](ops.concatenate(pooled, axis=-1))
        bounds = [sum(self.channels[:i]) for i in range(len(names) + 1)]
        return {name: attention[:, bounds[i] : bounds[i + 1]] for i, name in enumerate(names)}

    def distances(self, target_features, source_features):
        names = matched_names(target_features, source_features)
        attention = self.attention_weights({name: source_features[name] for name in names})
        total_channels = sum(self.channels)
        return {
            name: ops.sum(
                total_channels * attention[name] * channel_distances(target_features[name], source_features[name]),
                axis=-1,
            )
            for name in names
        }

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}
