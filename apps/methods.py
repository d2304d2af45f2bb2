"""The fine-tuning methods `apps.finetune --method` offers: one entry each, name → factory.

A factory takes the method's hyperparameters as keyword arguments (their defaults are the
papers' settings; `--hparams alpha=0.1` overrides them) and returns a `Setup`: what the
`TransferModel` needs and the callbacks the method uses. A method whose regularizer lands
later adds one function and one `METHODS` entry here; the app's flags, validation and
reports pick it up. Any method can be combined with DTNH (`l2_sp+dtnh`, or `--dtnh`).

Methods that measure something on the target data before training (DELTA's channel
attention, Co-Tuning's category relationship, DI2's diffusion sequences) return a `Setup`
whose `prepare` finishes it from a `Context` (the source, the taps, the training split and
the run's own folder for caches); `build(method, hparams, context)` calls it.
"""

import dataclasses
import inspect
import os
from collections.abc import Callable

import numpy as np
from absl import logging

import keras_tl
from keras_tl import regularizers

DTNH_SUFFIX = "+dtnh"


@dataclasses.dataclass
class Setup:
    """What a method asks of the `TransferModel` and of `fit`.

    Attributes:
        regularizers: `keras_tl.regularizers.Regularizer` instances.
        freeze_backbone: train the head only (L2-FE).
        source_head: keep the source's upstream head next to the new one (two-head methods).
        keep_source: keep the frozen source copy even if no regularizer asks for it.
        callbacks: `(epochs, steps_per_epoch) -> list of keras.callbacks.Callback`, e.g. stage
            switches or a regularization decay.
    """

    regularizers: list
    freeze_backbone: bool = False
    source_head: bool = False
    keep_source: bool = False
    callbacks: Callable = lambda epochs, steps_per_epoch: []
    prepare: Callable | None = None


@dataclasses.dataclass
class Context:
    """What data-dependent methods measure before training (see `Setup.prepare`).

    Attributes:
        source: the source network, as given to `TransferModel`.
        taps: the tapped layer names.
        train: the training split (`keras_tl.data.load`'s result: `.dataset` of
            `(images, integer labels)` batches, `.num_classes`).
        output_dir: the run's own folder (caches are written there), or None for no cache.
    """

    source: object
    taps: list
    train: object
    output_dir: str | None = None


def _delta_weights(context, normalization, temperature, num_batches, head_epochs):
    """DELTA's channel weights (Alg. 1) on the training split, cached in the run's folder."""
    cache = None
    if context.output_dir:
        os.makedirs(context.output_dir, exist_ok=True)
        cache = os.path.join(context.output_dir, "delta_channel_weights.json")
    return keras_tl.attention.delta_channel_weights(
        context.source,
        num_classes=context.train.num_classes,
        x=context.train.dataset,
        taps=list(context.taps),
        cache_path=cache,
        normalization=normalization,
        temperature=temperature,
        num_batches=num_batches,
        head_epochs=head_epochs,
    )


def _upstream_logits(context):
    """`(logits [n, N], labels [n])`: the pre-trained upstream head on one pass over the training split.

    One pass pairs each image's logits with its label (the split reshuffles every pass).
    The images are gathered in memory: the few-shot training splits these methods meet are small.
    """
    images, labels = [], []
    for x, y in context.train.dataset.as_numpy_iterator():
        images.append(x)
        labels.append(y)
    probe = keras_tl.TransferModel(context.source, num_classes=context.train.num_classes, source_head=True)
    logits = keras_tl.relationship.upstream_logits(probe, np.concatenate(images))
    return logits, np.concatenate(labels).astype("int64")


def _staged(stages, switch_at, sync_source):
    def callbacks(epochs, steps_per_epoch):
        del epochs, steps_per_epoch  # StagedRegularization reads them from `fit`.
        return [keras_tl.callbacks.StagedRegularization(stages, switch_at=switch_at, sync_source=sync_source)]

    return callbacks


def l2(beta=0.01):
    """Fine-tuning with weight decay on every variable (DELTA Sec. 2.2, Eq. 3)."""
    return Setup([regularizers.L2(beta=beta, scope="all")])


def l2_fe(beta=0.01):
    """Feature extraction: frozen backbone, a new head with weight decay (DELTA Sec. 4.2)."""
    return Setup([regularizers.L2(beta=beta, scope="head")], freeze_backbone=True)


def l2_sp(alpha=0.01, beta=0.01):
    """L2-SP: weight decay towards the source weights (Li et al., ICML 2018; DELTA Eq. 4)."""
    return Setup([regularizers.L2SP(alpha=alpha, beta=beta)])


def bss(beta=0.01, eta=0.001, k=1):
    """Fine-tuning with weight decay plus Batch Spectral Shrinkage of the k smallest singular values."""
    return Setup([regularizers.L2(beta=beta, scope="all"), regularizers.BSS(eta=eta, k=k)])


def lwf(beta=0.01, lam=1.0, temperature=2.0):
    """Learning without Forgetting: the upstream head's softened outputs stay close to the source's."""
    return Setup(
        [regularizers.L2(beta=beta, scope="all"), regularizers.LwF(lam=lam, temperature=temperature)],
        source_head=True,
    )


def knowdist(alpha=0.01, beta=0.01, reduction="sum"):
    """Knowledge distillation of the tapped feature maps plus weight decay on the new head.

    DELTA Sec. 2.2, Eq. 5 (its "feature-map based knowledge distillation" baseline, Sec. 4.2);
    α = β = 0.01 as DELTA's defaults, with the authors' `reg_fea_map` reduction (summed over
    positions and over the batch, `reduction="sum"`): the paper's α at its batch size 64 is
    the authors' term. At batch size B the same balance against the cross-entropy is
    α·64/B (`keras_tl.regularizers.feature_maps.batch_size_equivalent_alpha`; 0.02 at batch 32).
    """
    return Setup(
        [
            regularizers.FeatureMapDistillation(alpha=alpha, reduction=reduction),
            regularizers.L2(beta=beta, scope="head"),
        ]
    )


def delta(
    alpha=0.01,
    beta=0.01,
    normalization="zscore_softmax",
    temperature=5.0,
    num_batches=4,
    head_epochs=10,
    reduction="sum",
):
    """DELTA: feature-map distillation weighted by supervised channel attention (Li et al., TKDD 2021, Eq. 7-9).

    α = β = 0.01 (DELTA's defaults; Sec. 4.1 picks α per task from {1e-4, 1e-3, 0.01, 0.1, 0.2}
    at batch 64) with the authors' `reg_att_fea_map` reduction (averaged over positions,
    summed over the batch): the paper's α at batch 64 is the authors' term, and at batch
    size B the same balance is α·64/B. The channel weights come from Alg. 1 on the training
    split (`delta_channel_weights`: an L2-FE head of `head_epochs` epochs, channel ablation on
    `num_batches` batches, normalised by the released code's softmax(zscore / 5)), cached in
    the run's folder.
    """

    def prepare(context):
        weights = _delta_weights(context, normalization, temperature, num_batches, head_epochs)
        return [
            regularizers.DELTA(alpha=alpha, channel_weights=weights, reduction=reduction),
            regularizers.L2(beta=beta, scope="head"),
        ]

    return Setup([], prepare=prepare)


def l2_sp_att(
    alpha=0.01, beta=0.01, normalization="zscore_softmax", temperature=5.0, num_batches=4, head_epochs=10
):
    """L2-SP with DELTA's channel attention on the tapped filters (DELTA Sec. 4.2, "L2-SP-ATT", Table 1).

    α = β = 0.01 as L2-SP; the channel weights as `delta` (same cache file name).
    """

    def prepare(context):
        weights = _delta_weights(context, normalization, temperature, num_batches, head_epochs)
        return [regularizers.L2SPAttention(alpha=alpha, beta=beta, channel_weights=weights)]

    return Setup([], prepare=prepare)


def afa(alpha=0.01, beta=0.01, switch_at=0.5):
    """AFA: attentive feature alignment, AST for the first half of training then ACT (Xie et al., 2021).

    α = 0.01, a weight decay β = 0.01 on the new head throughout, the switch at half the
    training steps (`switch_at`: a fraction, or an int epoch) as AFA's two equal stages.
    Choice: the source copy is not re-synced at the switch; AFA aligns both stages to the
    pre-trained source (the sync is SPA→GCA's Eq. 11-12, see `spa_gca`).
    """
    return Setup(
        [
            regularizers.AST(alpha=alpha),
            regularizers.ACT(alpha=alpha),
            regularizers.L2(beta=beta, scope="head"),
        ],
        callbacks=_staged([["ast", "l2"], ["act", "l2"]], switch_at, sync_source=False),
    )


def spa_gca(alpha=0.01, reduction=4, beta=0.01, switch_at=0.5):
    """SPA then GCA, the source synced from the target at the switch (Kang & Kang 2024, Eq. 11-12).

    α = 0.01 (the paper uses 0.005 to 0.1), GCA reduction r = 4 (Table 6), half the
    iterations per stage (Table 7), a weight decay β = 0.01 on the new head throughout.
    """
    return Setup(
        [
            regularizers.SPA(alpha=alpha),
            regularizers.GCA(alpha=alpha, reduction=reduction),
            regularizers.L2(beta=beta, scope="head"),
        ],
        keep_source=True,
        callbacks=_staged([["spa", "l2"], ["gca", "l2"]], switch_at, sync_source=True),
    )


def co_tuning(lam=2.3, beta=0.01, relationship="reverse", C=1.0):
    """Co-Tuning: the upstream head learns the target labels translated to upstream classes (You et al., 2020).

    λ = 2.3 (the official code's `trade_off`), the "reverse" relationship (Sec. 3.3, the
    paper's preferred one; `relationship="direct"` for the mean source softmax) computed
    from the pre-trained upstream head's logits on the training split (no validation split
    here, so one `C` and calibration on the training images), weight decay β = 0.01.
    """

    def prepare(context):
        logits, labels = _upstream_logits(context)
        matrix = keras_tl.relationship.category_relationship(
            logits, labels, context.train.num_classes, method=relationship, C=C
        )
        return [regularizers.CoTuning(lam=lam, relationship=matrix), regularizers.L2(beta=beta, scope="all")]

    return Setup([], source_head=True, prepare=prepare)


def di2(lam=0.001, extra=1, beta=0.01):
    """DI2 / discrepant semantic diffusion (Gao et al., Electronics 2023, Eq. 5-7).

    λ = 0.001 (Sec. 4.6), k = shared + 1 (`extra=1`, Sec. 4.6's "+1"), from the mean
    pre-trained upstream logits per target class on the training split; weight decay β = 0.01.
    """

    def prepare(context):
        logits, labels = _upstream_logits(context)
        scores = keras_tl.relationship.class_means(logits, labels, context.train.num_classes)
        sequences, k = keras_tl.diffusion.granularity_sequences(scores, extra=extra)
        logging.info("DI2: granularity diffusion sequences of k=%d upstream classes (extra=%d)", k, extra)
        return [
            regularizers.DiscrepantDiffusion(lam=lam, sequences=sequences),
            regularizers.L2(beta=beta, scope="all"),
        ]

    return Setup([], source_head=True, prepare=prepare)


METHODS = {
    "l2": l2,
    "l2_fe": l2_fe,
    "l2_sp": l2_sp,
    "bss": bss,
    "lwf": lwf,
    "knowdist": knowdist,
    "delta": delta,
    "l2_sp_att": l2_sp_att,
    "afa": afa,
    "spa_gca": spa_gca,
    "co_tuning": co_tuning,
    "di2": di2,
}


def hparam_names(method):
    return list(inspect.signature(METHODS[method]).parameters)


def split_entry(entry):
    """`"l2_sp+dtnh"` → `("l2_sp", True)`."""
    if entry.endswith(DTNH_SUFFIX):
        return entry[: -len(DTNH_SUFFIX)], True
    return entry, False


def check_entries(entries):
    """Raises `ValueError` naming the allowed methods if an entry is unknown."""
    unknown = [entry for entry in entries if split_entry(entry)[0] not in METHODS]
    if unknown or not entries:
        raise ValueError(
            f"Unknown method(s) {unknown}. Expected a comma-separated list of {sorted(METHODS)}, each "
            f"optionally followed by '{DTNH_SUFFIX}'."
        )


def check_hparams(entries, hparams):
    """Raises `ValueError` if a key of `hparams` is accepted by none of the chosen methods.

    A key is `name` (every chosen method that has it) or `method.name` (that method only).
    """
    methods = {split_entry(entry)[0] for entry in entries}
    allowed = {name for method in methods for name in hparam_names(method)}
    allowed |= {f"{method}.{name}" for method in methods for name in hparam_names(method)}
    unknown = sorted(set(hparams) - allowed)
    if unknown:
        raise ValueError(
            f"Unknown hyperparameter(s) {unknown} for methods {sorted(methods)}. Expected keys from {sorted(allowed)}."
        )


def build(method, hparams, context=None):
    """The `Setup` of `method` with its keys of `hparams` (see `check_hparams`).

    A method with `prepare` needs `context` (a `Context`): its regularizers are measured
    on the training data here, and `prepare` is cleared so a `Setup` is prepared once.
    """
    names = hparam_names(method)
    kwargs = {key: value for key, value in hparams.items() if key in names}
    kwargs.update(
        {key.split(".", 1)[1]: value for key, value in hparams.items() if key.startswith(method + ".")}
    )
    setup = METHODS[method](**kwargs)
    if setup.prepare is not None:
        if context is None:
            raise ValueError(
                f"Expected a methods.Context (source, taps, training data) for method {method!r}, which "
                "measures the training data before fine-tuning. Received: context=None"
            )
        setup.regularizers = list(setup.regularizers) + list(setup.prepare(context))
        setup.prepare = None
    return setup
