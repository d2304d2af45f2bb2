"""What the feature-map regularizers share: matching tapped maps by name, and their reductions.

Feature maps are channels-last (`[batch, H, W, C]`, the Keras default) or token maps
`[batch, T, C]` (a ViT's encoder output: T tokens, the class token included, each a
C-channel vector). The convention on token maps: a token is a position and a channel is a
channel, so every formula written over the H·W positions of a map reads with T in place
of H·W (`channel_distances` sums over the tokens, `position_distances` has one entry per
token, DELTA averages over T where it averages over H·W). This is what a transformer's
feature map is: keras-hub's `ViTBackbone` outputs `[batch, 1 + (H/p)·(W/p), hidden]` and
its image classifier pools it over the token axis. KnowDist and DELTA are defined on token
maps; AST/ACT and SPA/GCA are not (their attention networks are sized by H and W, AFA Eq. 2-5
and Kang & Kang Table 2) and refuse them when built.

How a term is reduced decides whether a paper's α works, so each method states its
convention, chosen so that the paper's α at the paper's batch size gives the authors'
released term (see each class's docstring and `tests/reference/`):

| method | positions | batch (`reduction`) | authors' code |
| --- | --- | --- | --- |
| `FeatureMapDistillation` (KnowDist) | sum | `"sum"` | DELTA's `reg_fea_map`, tllib's `BehavioralRegularization` |
| `DELTA` | mean (1/(H·W) per layer) | `"sum"` | DELTA's `reg_att_fea_map`, tllib's `AttentionBehavioralRegularization` |
| `AST`, `ACT`, `SPA`, `GCA` | sum | mean | AFA's code (SPA/GCA extend AFA, no released code) |

A term summed over the batch grows with the batch size B while the cross-entropy is a
batch mean, so the paper's balance (DELTA: batch 64) at another batch size B needs
α·64/B (`batch_size_equivalent_alpha`); `reduction="mean"` divides the term by B (its
α is the `"sum"` α times B) for a strength independent of the batch size.
"""

import math

from keras import ops

from keras_tl.regularizers.base import Regularizer, check_non_negative


def matched_names(target, source, what="feature map"):
    """The tap names of two dicts (maps or their shapes), sorted; different keys or shapes are an error."""
    target_only = sorted(set(target) - set(source))
    source_only = sorted(set(source) - set(target))
    if target_only or source_only:
        raise ValueError(
            f"Expected the same tap layers in the target and source {what}s. Received: "
            f"target-only={target_only}, source-only={source_only}"
        )
    names = sorted(target)
    for name in names:
        target_shape, source_shape = _shape(target[name]), _shape(source[name])
        if target_shape[1:] != source_shape[1:]:
            raise ValueError(
                f"Expected matching shapes for {what} '{name}'. Received: "
                f"target shape={target_shape}, source shape={source_shape}"
            )
    return names


def _shape(value):
    return tuple(value) if isinstance(value, (tuple, list)) else tuple(value.shape)


def static_map_shape(name, shape):
    """`(H, W, C)` of a tapped map's shape; the attention layers need them known when built."""
    shape = tuple(shape)
    if len(shape) == 3:
        raise ValueError(
            f"Expected a 4D channels-last feature map (batch, H, W, C) for '{name}': the attention "
            "networks of AST/ACT (AFA Eq. 2-5) and SPA/GCA (Kang & Kang Table 2) are sized by H and W. "
            f"Received: shape={shape}, a token map (batch, tokens, channels). Tap 4D layers, or use "
            "FeatureMapDistillation (knowdist) or DELTA, which are defined on token maps."
        )
    if len(shape) != 4 or any(dim is None for dim in shape[1:]):
        raise ValueError(
            f"Expected a 4D channels-last feature map with static height, width and channels for "
            f"tap '{name}'. Received: shape={shape}"
        )
    return shape[1], shape[2], shape[3]


def num_positions(feature_map):
    """H·W of a `[batch, H, W, C]` map, T of a `[batch, T, C]` token map (static)."""
    return math.prod(feature_map.shape[1:-1])


def checked_static_names(target_shapes, source_shapes):
    """`matched_names` of two dicts of shapes, each a 4D map of static H, W, C (to build attention layers)."""
    names = matched_names(target_shapes, source_shapes)
    for name in names:
        static_map_shape(name, source_shapes[name])
    return names


def channel_distances(target_map, source_map):
    """`[batch, C]`: ‖FM_t[c] − FM_s[c]‖² per example and channel (summed over positions or tokens), float32."""
    difference = ops.cast(target_map, "float32") - ops.cast(source_map, "float32")
    spatial_axes = tuple(range(1, len(difference.shape) - 1))
    squared = ops.square(difference)
    return ops.sum(squared, axis=spatial_axes) if spatial_axes else squared


def position_distances(target_map, source_map):
    """`[batch, H·W]` (`[batch, T]` for tokens): ‖FM_t[p] − FM_s[p]‖² per example and position (summed over channels), float32."""
    difference = ops.cast(target_map, "float32") - ops.cast(source_map, "float32")
    return ops.reshape(ops.sum(ops.square(difference), axis=-1), (-1, num_positions(difference)))


BATCH_REDUCTIONS = ("sum", "mean")


def check_reduction(reduction):
    if reduction not in BATCH_REDUCTIONS:
        raise ValueError(
            f"Expected reduction to be one of {BATCH_REDUCTIONS}. Received: reduction={reduction!r}"
        )
    return reduction


def batch_reduce(per_example_terms, reduction="mean"):
    """Σ over every axis but the first, then the sum (`"sum"`) or the mean (`"mean"`) over the batch."""
    axes = tuple(range(1, len(per_example_terms.shape)))
    totals = ops.sum(per_example_terms, axis=axes) if axes else per_example_terms
    return ops.sum(totals) if reduction == "sum" else ops.mean(totals)


def batch_mean_of_sums(per_example_terms):
    """Σ over every axis but the first, then the mean over the batch."""
    return batch_reduce(per_example_terms, "mean")


def batch_size_equivalent_alpha(alpha, batch_size, paper_batch_size=64):
    """α·paper_batch_size/batch_size: a batch-summed term's coefficient giving the paper's balance at `batch_size`.

    A term summed over the batch (`reduction="sum"`, as the DELTA authors' code) is about
    B times one example's term while the cross-entropy is a batch mean; the paper's α was
    tuned at `paper_batch_size` (DELTA: 64). At batch size B the same balance between the
    two needs α·64/B. Example: DELTA's α = 0.01 at batch 64 is α = 0.02 at batch 32.
    """
    alpha = check_non_negative("alpha", alpha)
    for name, value in (("batch_size", batch_size), ("paper_batch_size", paper_batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected {name} to be a positive int. Received: {name}={value!r}")
    return alpha * paper_batch_size / batch_size


def attended_position_loss(alpha, attend, target_features, source_features):
    """α/2 · Σ_taps mean_b Σ_p (H·W·a_p)² ‖FM_t[p] − FM_s[p]‖², with `attend(tap)` giving a: [batch, H·W].

    The spatial term shared by AST (AFA Eq. 3) and SPA (Eq. 8); they differ only in what
    their attention network sees.
    """
    total = ops.zeros((), "float32")
    for name in matched_names(target_features, source_features):
        attention = attend(name)
        positions = attention.shape[-1]
        distances = position_distances(target_features[name], source_features[name])
        total = total + batch_mean_of_sums(ops.square(positions * attention) * distances)
    return 0.5 * alpha * total


class FeatureMapRegularizer(Regularizer):
    """Base of the terms on tapped feature maps: `inputs`, the coefficient α and its config."""

    inputs = ("target_features", "source_features")

    def __init__(self, alpha=0.01, **kwargs):
        super().__init__(**kwargs)
        self.alpha = check_non_negative("alpha", alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class BatchSummedRegularizer(FeatureMapRegularizer):
    """A feature-map term of the DELTA authors' code: summed over the batch by default, `reduction="mean"` divides by B."""

    def __init__(self, alpha=0.01, reduction="sum", **kwargs):
        super().__init__(alpha=alpha, **kwargs)
        self.reduction = check_reduction(reduction)

    @property
    def sums_over_batch(self):
        return self.reduction == "sum"

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}


class AttentiveRegularizer(FeatureMapRegularizer):
    """A feature-map term whose attention is a small network trained jointly with the target.

    The attention layers are built from the tapped maps' shapes (any input resolution),
    live in `self.attention` (a dict), are trained by the model's optimizer like the AFA
    code does, and are saved with the model. `reinitialize()` draws them afresh (the stage
    switch of `keras_tl.callbacks.StagedRegularization`).
    """

    def _build_per_tap(self, attention_class, target_features_shape, source_features_shape):
        """One `attention_class` network per tap, built from that tap's source map shape."""
        names = checked_static_names(target_features_shape, source_features_shape)
        self.attention = {name: attention_class(name=f"{name}_{self.name}") for name in names}
        for name in names:
            self.attention[name].build(source_features_shape[name])
        self.built = True

    def reinitialize(self):
        """Re-draws every attention weight from its initializer."""
        for layer in self.attention.values():
            layer.reinitialize()
