"""What the feature-map regularizers share: matching tapped maps by name, and how a term is reduced.

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

How a term is reduced decides what its α means. Every feature-map term computes, per tap l
and example b, its (attention-weighted) squared distance d_l(b) between the target's and the
frozen source's map, and then:

- `relative=True` (the default since keras_tl 0.2): Ω = α/2 · 1/L Σ_l mean_b d_l(b) / mean_b ‖FM_s,l(b)‖²,
  each tap's distance relative to the source map's own energy on the same batch (summed over
  positions and channels), averaged over the batch and over the L taps. α is then scale-free:
  the same at 32 and 224 pixels, for any batch size, number of channels or taps, and for any
  source (ResNet-20 or ResNet-50, pre- or post-BN taps). α/2·r is the price of a relative
  squared drift r of the source's features (α = 10: a 10 % drift of every tap costs 0.05 nats).
- `relative=False`: the authors' convention, so that the paper's α at the paper's batch
  size gives the authors' released term (see each class's docstring and `tests/reference/`):

| method | positions | batch (`reduction`) | taps | authors' code |
| --- | --- | --- | --- | --- |
| `FeatureMapDistillation` (KnowDist) | sum | `"sum"` | sum | DELTA's `reg_fea_map`, tllib's `BehavioralRegularization` |
| `DELTA` | mean (1/(H·W) per layer) | `"sum"` | sum | DELTA's `reg_att_fea_map`, tllib's `AttentionBehavioralRegularization` |
| `AST`, `ACT`, `SPA`, `GCA` | sum | mean | sum | AFA's code (SPA/GCA extend AFA, no released code) |

The mapping between the two: a tap of energy E_l = mean_b ‖FM_s,l‖² contributes
α_rel/(2L·E_l)·Σ_b d_l(b)/B; the authors' `"sum"` term α_sum/2·Σ_b d_l(b) has the same
gradient at α_sum = α_rel/(L·B·E_l) (DELTA's, averaged over H_l·W_l positions: α_sum =
α_rel·H_l·W_l/(L·B·E_l)), the batch-mean terms at α_mean = α_rel/(L·E_l). The ratio depends on
the tap, the source, the resolution and the data, which is why the authors' α diverges on
one set-up and does nothing on another (docs/REGULARIZATION_STRENGTH.md gives the numbers of
the benchmark's CIFAR ResNet-20 at 32×32).

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


def attended_position_distances(attend, target_features, source_features):
    """`{tap: [batch]}`: Σ_p (H·W·a_p)² ‖FM_t[p] − FM_s[p]‖² per example, with `attend(tap)` giving a: [batch, H·W].

    The spatial distance shared by AST (AFA Eq. 3) and SPA (Eq. 8); they differ only in what
    their attention network sees.
    """
    distances = {}
    for name in matched_names(target_features, source_features):
        attention = attend(name)
        positions = attention.shape[-1]
        squared = position_distances(target_features[name], source_features[name])
        distances[name] = ops.sum(ops.square(positions * attention) * squared, axis=-1)
    return distances


def source_energy(source_map):
    """`[batch]`: ‖FM_s(b)‖², summed over positions and channels, float32."""
    squared = ops.square(ops.cast(source_map, "float32"))
    return ops.sum(squared, axis=tuple(range(1, len(squared.shape))))


# Guards the relative distance of a tap whose source map is all zeros (dead units) on a batch.
MIN_ENERGY = 1e-12
# The default α of the relative terms (docs/REGULARIZATION_STRENGTH.md says how it was chosen).
RELATIVE_ALPHA = 10.0


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"Expected {name} to be True or False. Received: {name}={value!r}")
    return value


class FeatureMapRegularizer(Regularizer):
    """Base of the terms on tapped feature maps: `inputs`, α, and the reduction over taps and the batch.

    A subclass gives `distances` (per tap, per example) and, for `relative=False`, its
    authors' reduction of one tap (`authors_reduce`); see the module docstring.
    """

    inputs = ("target_features", "source_features")

    def __init__(self, alpha=RELATIVE_ALPHA, relative=True, **kwargs):
        super().__init__(**kwargs)
        self.alpha = check_non_negative("alpha", alpha)
        self.relative = check_bool("relative", relative)

    def distances(self, target_features, source_features):
        """`{tap: [batch]}`: each tap's (weighted) squared distance per example."""
        raise NotImplementedError

    def authors_reduce(self, name, distances, target_map):
        """One tap's term in the authors' convention (`relative=False`): the mean over the batch."""
        return ops.mean(distances)

    def call(self, target_features, source_features):
        distances = self.distances(target_features, source_features)
        if self.relative:
            ratios = [
                ops.mean(d) / ops.maximum(ops.mean(source_energy(source_features[name])), MIN_ENERGY)
                for name, d in distances.items()
            ]
            return 0.5 * self.alpha * ops.mean(ops.stack(ratios))
        total = ops.zeros((), "float32")
        for name, d in distances.items():
            total = total + self.authors_reduce(name, d, target_features[name])
        return 0.5 * self.alpha * total

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "relative": self.relative}

    @classmethod
    def from_config(cls, config):
        # A config written before `relative` existed (keras_tl 0.1) meant the authors' convention.
        return cls(**{"relative": False, **config})


class BatchSummedRegularizer(FeatureMapRegularizer):
    """A feature-map term of the DELTA authors' code: with `relative=False`, summed over the batch
    by default; `reduction="mean"` divides by B."""

    def __init__(self, alpha=RELATIVE_ALPHA, reduction="sum", relative=True, **kwargs):
        super().__init__(alpha=alpha, relative=relative, **kwargs)
        self.reduction = check_reduction(reduction)

    @property
    def sums_over_batch(self):
        return not self.relative and self.reduction == "sum"

    def authors_reduce(self, name, distances, target_map):
        return batch_reduce(distances, self.reduction)

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
