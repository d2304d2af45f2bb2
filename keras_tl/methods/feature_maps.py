"""Methods that regularize the tapped feature maps: KnowDist, DELTA, L2-SP-ATT, AFA and SPA→GCA."""

import dataclasses
import os

from keras_tl import regularizers
from keras_tl.api_export import keras_tl_export
from keras_tl.callbacks import StagedRegularization
from keras_tl.methods.base import NEAR_TRANSFER, Claim, Method
from keras_tl.methods.registry import register
from keras_tl.regularizers.delta import UNIFORM as UNIFORM_CHANNELS
from keras_tl.regularizers.feature_maps import RELATIVE_ALPHA

# The papers' settings of the feature-map terms: α = 0.01 in the authors' reduction.
AUTHORS = {"alpha": 0.01, "relative": False}

# DELTA's paper α was tuned at batch 64 for a term summed over the batch (its authors' code).
DELTA_PAPER_BATCH_SIZE = 64


def delta_weights(method, context):
    """DELTA's channel weights (Alg. 1) on the training split, cached in `context.cache_dir`."""
    from keras_tl import channel_weights

    train = context.require_train(method)
    cache = None
    if context.cache_dir:
        os.makedirs(context.cache_dir, exist_ok=True)
        cache = os.path.join(context.cache_dir, "delta_channel_weights.json")
    return channel_weights.delta_channel_weights(
        context.source,
        num_classes=train.num_classes,
        x=train.dataset,
        taps=list(context.taps),
        cache_path=cache,
        normalization=method.normalization,
        temperature=method.temperature,
        num_batches=method.num_batches,
        head_epochs=method.head_epochs,
    )


@keras_tl_export("keras_tl.methods.KnowDist", package="keras_tl.methods")
@register
class KnowDist(Method):
    """Knowledge distillation of the tapped feature maps plus weight decay on the new head.

    DELTA Sec. 2.2, Eq. 5 (its "feature-map based knowledge distillation" baseline, Sec. 4.2),
    `keras_tl.regularizers.FeatureMapDistillation`: α = β = 0.01 as DELTA's defaults, with the
    authors' `reg_fea_map` reduction (summed over positions and over the batch,
    `reduction="sum"`): the paper's α at its batch size 64 is the authors' term. At batch size
    B the same balance against the cross-entropy is α·64/B
    (`keras_tl.regularizers.feature_maps.batch_size_equivalent_alpha`; 0.02 at batch 32).

    Example:
    >>> keras_tl.fine_tune(keras_tl.methods.KnowDist(alpha=2e-5), source, train, epochs=20)
    """

    name = "knowdist"
    display_name = "KnowDist"
    reference = "DELTA Eq. 5"
    rule = "α/2·Σ‖FM_t − FM_s‖² over the tapped maps, β/2·‖w_head‖²"
    coefficient = "alpha"
    select_factors = (1.0,)
    coefficient_batch_size = DELTA_PAPER_BATCH_SIZE
    claims = (Claim("l2", datasets=("caltech101",)),)
    benchmark_dtnh = True
    # From the grid's choice (2e-5) in half-decades to where it diverges (6e-4 on).
    dtnh_sweep = (0.00002, 0.00006, 0.0002, 0.0006, 0.002)
    # --quick has no grid: the largest α that stayed finite on DTD-10 (docs/REGULARIZATION_STRENGTH.md).
    authors_hparams = AUTHORS

    alpha: float = RELATIVE_ALPHA
    beta: float = 0.01
    reduction: str = "sum"
    relative: bool = True

    def terms(self, context):
        return [
            regularizers.FeatureMapDistillation(alpha=self.alpha, reduction=self.reduction, relative=self.relative),
            regularizers.L2(beta=self.beta, scope="head"),
        ]


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class _ChannelWeighted(Method):
    """The hyperparameters of DELTA's channel-weight measurement (Alg. 1), shared by DELTA and L2-SP-ATT."""

    # --quick: Alg. 1's head and ablation passes shortened.
    quick_hparams = {"head_epochs": 2, "num_batches": 1}

    normalization: str = "zscore_softmax"
    temperature: float = 5.0
    num_batches: int = 4
    head_epochs: int = 10


@keras_tl_export("keras_tl.methods.DELTA", package="keras_tl.methods")
@register
class DELTA(_ChannelWeighted):
    """DELTA: feature-map distillation weighted by supervised channel attention (Li et al., TKDD 2021, Eq. 7-9).

    α = β = 0.01 (DELTA's defaults; Sec. 4.1 picks α per task from {1e-4, 1e-3, 0.01, 0.1, 0.2}
    at batch 64) with the authors' `reg_att_fea_map` reduction (averaged over positions,
    summed over the batch): the paper's α at batch 64 is the authors' term, and at batch
    size B the same balance is α·64/B. The channel weights come from Alg. 1 on the training
    split (`keras_tl.channel_weights.delta_channel_weights`: an L2-FE head of `head_epochs` epochs,
    channel ablation on `num_batches` batches, normalised by the released code's
    softmax(zscore / 5)), cached in the run's folder. `attention=False` is the paper's
    "DELTA (w/o ATT)" (Table 1): every channel weighs 1 and nothing is measured
    (`normalization` ... `head_epochs` are then unused).

    Example:
    >>> keras_tl.fine_tune(keras_tl.methods.DELTA(alpha=0.02), source, train, epochs=20, cache_dir="runs/delta")
    """

    name = "delta"
    display_name = "DELTA"
    reference = "DELTA Alg. 1, Eq. 8-9"
    rule = "α/2·Σ_j W_j‖FM_j,t − FM_j,s‖²/(H·W), W from channel ablation; β/2·‖w_head‖²"
    coefficient = "alpha"
    select_factors = (1.0,)
    coefficient_batch_size = DELTA_PAPER_BATCH_SIZE
    # DELTA Table 1: DELTA ≥ KnowDist everywhere; ≥ L2-SP in the few-shot near-transfer regime (issue 29).
    claims = (Claim("knowdist"), Claim("l2_sp", datasets=NEAR_TRANSFER))
    benchmark_dtnh = True
    # From the grid's choice (2e-3) in half-decades to where it collapses.
    dtnh_sweep = (0.002, 0.006, 0.02, 0.06)
    cross_backend = (False,)  # the benchmark's TensorFlow vs JAX comparison

    authors_hparams = AUTHORS

    alpha: float = RELATIVE_ALPHA
    beta: float = 0.01
    reduction: str = "sum"
    attention: bool = True
    relative: bool = True

    def terms(self, context):
        weights = delta_weights(self, context) if self.attention else UNIFORM_CHANNELS
        return [
            regularizers.DELTA(
                alpha=self.alpha, channel_weights=weights, reduction=self.reduction, relative=self.relative
            ),
            regularizers.L2(beta=self.beta, scope="head"),
        ]


@keras_tl_export("keras_tl.methods.L2SPAtt", package="keras_tl.methods")
@register
class L2SPAtt(_ChannelWeighted):
    """L2-SP with DELTA's channel attention on the tapped filters (DELTA Sec. 4.2, "L2-SP-ATT", Table 1).

    α = β = 0.01 as L2-SP; the channel weights as `DELTA` (same cache file name).

    Example:
    >>> keras_tl.fine_tune("l2_sp_att", source, train, epochs=20, cache_dir="runs/l2_sp_att")
    """

    name = "l2_sp_att"
    display_name = "L2-SP-ATT"
    reference = "DELTA Sec. 4"
    rule = "L2-SP with DELTA's channel weights on the tapped filters"
    coefficient = "alpha"

    alpha: float = 0.01
    beta: float = 0.01

    def terms(self, context):
        weights = delta_weights(self, context)
        return [regularizers.L2SPAttention(alpha=self.alpha, beta=self.beta, channel_weights=weights)]


def _staged(first, second, switch_at, sync_source):
    return [StagedRegularization([[first, "l2"], [second, "l2"]], switch_at=switch_at, sync_source=sync_source)]


@keras_tl_export("keras_tl.methods.AFA", package="keras_tl.methods")
@register
class AFA(Method):
    """AFA: attentive feature alignment, AST for the first half of training then ACT (Xie et al., 2021).

    α = 0.01, a weight decay β = 0.01 on the new head throughout, the switch at half the
    training steps (`switch_at`: a fraction, or an int epoch) as AFA's two equal stages.
    Choice: the source copy is not re-synced at the switch; AFA aligns both stages to the
    pre-trained source (the sync is SPA→GCA's Eq. 11-12, see `SPAGCA`).

    Example:
    >>> keras_tl.fine_tune(keras_tl.methods.AFA(alpha=0.001), source, train, epochs=20)
    """

    name = "afa"
    display_name = "AFA"
    reference = "Kang & Kang Eq. 1-6"
    rule = "AST (learned spatial attention) then ACT (learned channel attention) on the tapped maps"
    coefficient = "alpha"
    authors_hparams = AUTHORS

    alpha: float = RELATIVE_ALPHA
    beta: float = 0.01
    switch_at: float = 0.5
    relative: bool = True

    def terms(self, context):
        return [
            regularizers.AST(alpha=self.alpha, relative=self.relative),
            regularizers.ACT(alpha=self.alpha, relative=self.relative),
            regularizers.L2(beta=self.beta, scope="head"),
        ]

    def callbacks(self, epochs, steps_per_epoch, setup=None):
        return _staged("ast", "act", self.switch_at, sync_source=False)


@keras_tl_export("keras_tl.methods.SPAGCA", package="keras_tl.methods")
@register
class SPAGCA(Method):
    """SPA then GCA, the source synced from the target at the switch (Kang & Kang 2024, Eq. 11-12).

    α = 0.01 (the paper uses 0.005 to 0.1), GCA reduction r = 4 (Table 6), half the
    iterations per stage (Table 7), a weight decay β = 0.01 on the new head throughout.

    Example:
    >>> keras_tl.fine_tune(keras_tl.methods.SPAGCA(alpha=0.001), source, train, epochs=20)
    """

    name = "spa_gca"
    display_name = "SPA→GCA"
    reference = "Kang & Kang Eq. 7-12"
    rule = "SPA (self-pixel attention) then GCA (global channel attention), source synced at the switch"
    coefficient = "alpha"
    authors_hparams = AUTHORS
    keep_source = True

    alpha: float = RELATIVE_ALPHA
    reduction: int = 4
    beta: float = 0.01
    switch_at: float = 0.5
    relative: bool = True

    def terms(self, context):
        return [
            regularizers.SPA(alpha=self.alpha, relative=self.relative),
            regularizers.GCA(alpha=self.alpha, reduction=self.reduction, relative=self.relative),
            regularizers.L2(beta=self.beta, scope="head"),
        ]

    def callbacks(self, epochs, steps_per_epoch, setup=None):
        return _staged("spa", "gca", self.switch_at, sync_source=True)
