"""The fine-tuning methods as library objects: `keras_tl.methods.get(name, **hparams)`.

Each method is a factory taking its hyperparameters as keyword arguments (their defaults
are the papers' settings) and returning a `Setup`: what the `TransferModel` needs and the
callbacks the method uses. `get` wraps one in a `Method`, which builds the model — doing the
data-dependent preparation first (DELTA's channel attention, Co-Tuning's category
relationship, DI2's diffusion sequences, measured on the training split and cached in
`cache_dir`) — and gives its callbacks; `keras_tl.fine_tune` runs the whole recipe. Any
method combines with DTNH: `get("l2_sp+dtnh")` or `get("l2_sp", dtnh=True)`.

Example:
>>> method = keras_tl.methods.get("delta", alpha=0.01)
>>> model = method.build(source, train, cache_dir="runs/delta")  # measures the channel weights
>>> model.compile(...); model.fit(train.dataset, callbacks=method.callbacks(epochs, steps))
>>> keras_tl.methods.names()  # ['l2', 'l2_fe', 'l2_sp', 'bss', 'lwf', 'knowdist', 'delta', ...]
"""

import dataclasses
import inspect
import math
import numbers
import os
from collections.abc import Callable

import numpy as np
from absl import logging

from keras_tl import attention, backbones, diffusion, gradients, regularizers
from keras_tl.callbacks import StagedRegularization
from keras_tl.models import TransferModel
from keras_tl.models.taps import check_taps_argument
from keras_tl.regularizers.delta import UNIFORM as UNIFORM_CHANNELS
from keras_tl.relationship import category_relationship, class_means, upstream_logits

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
    return attention.delta_channel_weights(
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
    probe = TransferModel(context.source, num_classes=context.train.num_classes, source_head=True)
    logits = upstream_logits(probe, np.concatenate(images))
    return logits, np.concatenate(labels).astype("int64")


def _staged(stages, switch_at, sync_source):
    def callbacks(epochs, steps_per_epoch):
        del epochs, steps_per_epoch  # StagedRegularization reads them from `fit`.
        return [StagedRegularization(stages, switch_at=switch_at, sync_source=sync_source)]

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
    attention=True,
):
    """DELTA: feature-map distillation weighted by supervised channel attention (Li et al., TKDD 2021, Eq. 7-9).

    α = β = 0.01 (DELTA's defaults; Sec. 4.1 picks α per task from {1e-4, 1e-3, 0.01, 0.1, 0.2}
    at batch 64) with the authors' `reg_att_fea_map` reduction (averaged over positions,
    summed over the batch): the paper's α at batch 64 is the authors' term, and at batch
    size B the same balance is α·64/B. The channel weights come from Alg. 1 on the training
    split (`delta_channel_weights`: an L2-FE head of `head_epochs` epochs, channel ablation on
    `num_batches` batches, normalised by the released code's softmax(zscore / 5)), cached in
    the run's folder. `attention=False` is the paper's "DELTA (w/o ATT)" (Table 1): every
    channel weighs 1 and nothing is measured (`normalization` ... `head_epochs` are then unused).
    """

    def terms(weights):
        return [
            regularizers.DELTA(alpha=alpha, channel_weights=weights, reduction=reduction),
            regularizers.L2(beta=beta, scope="head"),
        ]

    def prepare(context):
        return terms(_delta_weights(context, normalization, temperature, num_batches, head_epochs))

    return Setup(terms(UNIFORM_CHANNELS)) if not attention else Setup([], prepare=prepare)


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
        matrix = category_relationship(
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
        scores = class_means(logits, labels, context.train.num_classes)
        sequences, k = diffusion.granularity_sequences(scores, extra=extra)
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
    """Raises `ValueError` if a key of `hparams` is accepted by none of the chosen methods, or a value
    does not fit a method that takes it (see `check_hparam`).

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
    for key, value in hparams.items():
        owner, _, name = key.rpartition(".")
        for method in [owner] if owner else [split_entry(entry)[0] for entry in entries]:
            if name in hparam_names(method):
                check_hparam(method, key, value)


def build(method, hparams, context=None):
    """The `Setup` of `method` with its keys of `hparams` (see `check_hparams`).

    A method with `prepare` needs `context` (a `Context`): its regularizers are measured
    on the training data here, and `prepare` is cleared so a `Setup` is prepared once.
    """
    setup = METHODS[method](**select_hparams(method, hparams))
    if setup.prepare is not None:
        if context is None:
            raise ValueError(
                f"Expected a methods.Context (source, taps, training data) for method {method!r}, which "
                "measures the training data before fine-tuning. Received: context=None"
            )
        setup.regularizers = list(setup.regularizers) + list(setup.prepare(context))
        setup.prepare = None
    return setup


def names():
    """The method names `get` accepts (each also with the `+dtnh` suffix)."""
    return list(METHODS)


def default_hparams(method):
    """`{name: default}` of `method`'s hyperparameters: the papers' settings."""
    return {name: p.default for name, p in inspect.signature(METHODS[method]).parameters.items()}


def check_hparam(method, key, value):
    """Raises `ValueError` unless `value` fits the hyperparameter `key` (`name` or `method.name`) of `method`.

    A bool where the default is one; a number where the default is one, finite, and an
    integer where the default is an int.
    """
    name = key.rpartition(".")[2]
    parameter = inspect.signature(METHODS[method]).parameters.get(name)
    if parameter is None:
        raise ValueError(
            f"Expected hyperparameters of {method!r} from {sorted(default_hparams(method))}. Received: {key}={value!r}"
        )
    default = parameter.default
    example = f"e.g. the default {default!r} of {method}"
    if isinstance(default, bool):
        if not isinstance(value, bool):  # 0/1 or "false" would pass a truth test unnoticed
            raise ValueError(f"Expected {key} to be True or False ({example}). Received: {key}={value!r}")
        return
    if not isinstance(default, (int, float)):
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"Expected {key} to be a finite number ({example}). Received: {key}={value!r}")
    if isinstance(default, int) and not float(value).is_integer():
        raise ValueError(f"Expected {key} to be an integer ({example}). Received: {key}={value!r}")


def select_hparams(method, hparams):
    """The keys of `hparams` that apply to `method`: `name` (if it has one) and `method.name`, unprefixed."""
    names = hparam_names(method)
    selected = {key: value for key, value in hparams.items() if key in names}
    selected.update({key.split(".", 1)[1]: v for key, v in hparams.items() if key.startswith(method + ".")})
    return selected


def resolve_taps(source, taps=None):
    """`taps` as a list (a string is an error); `None`: `keras_tl.backbones.known_taps(source)`."""
    taps = check_taps_argument(taps)
    return backbones.known_taps(source) if taps is None else taps


@dataclasses.dataclass(frozen=True)
class Method:
    """One method with its hyperparameters: builds the `TransferModel` and gives the callbacks.

    Attributes:
        name: a name from `names()`.
        hparams: the hyperparameters that differ from the defaults (see `default_hparams`).
        dtnh: combine with `keras_tl.gradients.DTNH()`.
    """

    name: str
    hparams: dict = dataclasses.field(default_factory=dict)
    dtnh: bool = False

    @property
    def label(self):
        """`"l2_sp+dtnh"`: the name `apps.finetune --method` and the reports use."""
        return self.name + (DTNH_SUFFIX if self.dtnh else "")

    def setup(self, source=None, train=None, taps=(), cache_dir=None):
        """The method's `Setup`, its data-dependent regularizers measured on `train` (see `Context`)."""
        return build(self.name, self.hparams, Context(source, list(taps), train, cache_dir))

    def build(self, source, train, taps=None, cache_dir=None, dropout=0.0, setup=None):
        """The `TransferModel` of this method from `source`, for the classes of `train`.

        Args:
            source: the source `keras.Model` (or a backbone name).
            train: the training split (`keras_tl.data.load`'s result); data-dependent methods
                measure it, and its `num_classes` sizes the head.
            taps: tapped layers; default `keras_tl.backbones.default_taps` of the source's name.
            cache_dir: where DELTA's channel weights are cached (a rerun reads them back).
            dropout: dropout before the new head.
            setup: a `Setup` already made by `setup()` (then nothing is measured again).
        """
        taps = resolve_taps(source, taps)
        setup = setup or self.setup(source, train, taps, cache_dir)
        return TransferModel(
            source,
            num_classes=train.num_classes,
            taps=taps,
            regularizers=setup.regularizers,
            gradient_rule=gradients.DTNH() if self.dtnh else None,
            freeze_backbone=setup.freeze_backbone,
            source_head=setup.source_head or None,
            keep_source=setup.keep_source,
            dropout=dropout,
        )

    def callbacks(self, epochs, steps_per_epoch, setup=None):
        """The method's own `fit` callbacks (stage switches), for a run of `epochs` × `steps_per_epoch`."""
        setup = setup or METHODS[self.name](**self.hparams)
        return list(setup.callbacks(epochs, steps_per_epoch))


def get(name, dtnh=False, **hparams):
    """The method `name` (from `names()`, optionally `"<name>+dtnh"`) with `hparams` over its defaults.

    Example:
    >>> keras_tl.methods.get("l2_sp+dtnh", alpha=0.1)
    Method(name='l2_sp', hparams={'alpha': 0.1}, dtnh=True)
    """
    if isinstance(name, Method):
        return name
    method, with_dtnh = split_entry(name) if isinstance(name, str) else (name, False)
    if method not in METHODS:
        raise ValueError(
            f"Expected a method from {names()}, optionally followed by '{DTNH_SUFFIX}'. Received: name={name!r}"
        )
    for key, value in hparams.items():
        check_hparam(method, key, value)
    return Method(method, dict(hparams), dtnh=bool(dtnh or with_dtnh))
