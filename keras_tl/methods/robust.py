"""Methods that control the distance to the source with a learned or selective constraint.

LP-FT fits the head before fine-tuning, WiSE-FT interpolates after it; the methods that
constrain each variable during it (TPGM, FTP, SPD, surgical fine-tuning) are in
`keras_tl.methods.projection`.
Each constrains a base method, `L2` (fine-tuning with weight decay) unless `base` names another
registered method, whose terms, callbacks and preparation it keeps: `get("tpgm", base="l2_sp")`.
"""

import dataclasses
import logging
import os

import numpy as np

from keras_tl.api_export import keras_tl_export
from keras_tl.methods.base import Claim, Method
from keras_tl.methods.registry import get, names, register
from keras_tl.utils.validation import check_number

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class Constrained(Method):
    """A method that constrains `base` (a registered method's label): its terms, callbacks, preparation."""

    claims = (Claim("l2"),)
    base: str = "l2"

    def __post_init__(self):
        super().__post_init__()
        if self.base not in names() or self.base == self.name:
            raise ValueError(
                f"Expected base to be another registered method from {names()}. Received: base={self.base!r}"
            )

    def base_method(self):
        return get(self.base)

    def terms(self, context):
        return self.base_method().terms(context)

    def head_weights(self, context):
        return self.base_method().head_weights(context)

    def setup(self, source=None, train=None, taps=(), cache_dir=None, validation=None):
        setup = super().setup(source, train, taps, cache_dir, validation)
        base = self.base_method()
        setup.freeze_backbone = base.freeze_backbone
        setup.keep_source_head = base.keep_source_head
        setup.keep_source = base.keep_source or self.keep_source
        return setup

    def callbacks(self, epochs, steps_per_epoch, setup=None):
        return self.base_method().callbacks(epochs, steps_per_epoch, setup)

    def optimizer(self, optimizer):
        return self.base_method().optimizer(optimizer)


@keras_tl_export("keras_tl.methods.LPFT", package="keras_tl.methods")
@register
class LPFT(Constrained):
    """LP-FT: a linear probe on the frozen backbone first, then everything fine-tuned from that head.

    The head starts from `keras_tl.linear_probe.fit_head` on the training data (features of
    the frozen backbone in inference mode, multinomial L2 logistic regression, its C the best
    validation top-1 of the reference's sweep), cached in `cache_dir` as `lp_head.npz`; then
    the base method (L2) fine-tunes all weights. Reference: Kumar et al., "Fine-Tuning can
    Distort Pretrained Features and Underperform Out-of-Distribution", ICLR 2022, Sec. 3;
    AnanyaKumar/transfer_learning.

    Without validation data: `C > 0` fixes C, or `folds=k` chooses it by k-fold
    cross-validation of the training features (our addition, not the reference's). `scoring`
    is what chooses C (`fit_head`'s): `"top1"` (the reference's) or `"log_loss"`. As a
    candidate of `keras_tl.select` it chooses C on the search's validation split, as the
    search chooses among its candidates on it (`selects_on_validation`); C by folds of the
    training split instead tested 0.4-1.7 points lower on DTD-10 (docs/SELECTION.md).

    `select`'s default candidates take it twice (`select_variants`): as it is, and over
    Co-Tuning (`base="co_tuning"`): the probe's head gives it LP-FT's lead on the short first
    rungs, where Co-Tuning alone ranks low, and Co-Tuning's late gain on Caltech-101
    (docs/SELECTION.md, "What the rungs cannot see").

    Example:
    >>> keras_tl.fine_tune("lp_ft", source, train, epochs=20, validation_data=val)
    >>> keras_tl.fine_tune(keras_tl.methods.get("lp_ft", folds=5), source, train, epochs=20)
    """

    name = "lp_ft"
    display_name = "LP-FT"
    reference = "Kumar et al. ICLR 2022, Sec. 3"
    rule = "the head fitted on frozen features (logistic regression, C on validation), then all fine-tuned"
    select_factors = (1.0,)
    select_variants = ({}, {"base": "co_tuning"})
    selects_on_validation = True

    C: float = 0.0
    folds: int = 0
    scoring: str = "top1"

    def __post_init__(self):
        super().__post_init__()
        check_number("C", self.C, minimum=0)
        from keras_tl.linear_probe import SCORINGS

        if self.scoring not in SCORINGS:
            raise ValueError(
                f"Expected scoring to be {' or '.join(map(repr, SCORINGS))}. Received: scoring={self.scoring!r}"
            )
        if self.folds == 1 or self.folds < 0:
            raise ValueError(
                f"Expected folds to be 0 (C on validation data) or >= 2. Received: folds={self.folds!r}"
            )

    @property
    def needs_validation(self):
        return self.C <= 0 and self.folds == 0

    def head_weights(self, context):
        from keras_tl import linear_probe

        train = context.require_train(self)
        cache = os.path.join(context.cache_dir, "lp_head.npz") if context.cache_dir else None
        if cache and os.path.isfile(cache):
            with np.load(cache) as saved:
                return saved["kernel"], saved["bias"]
        if self.C > 0:
            kwargs = {"Cs": (self.C,)}
        elif self.folds:
            kwargs = {"folds": self.folds}
        else:
            kwargs = {"validation_data": context.require_validation(self)}
        (kernel, bias), selection = linear_probe.fit_head(
            context.source, train, num_classes=train.num_classes, scoring=self.scoring, **kwargs
        )
        logger.info(
            "LP-FT: linear probe with C=%g, %s top-1 %s",
            selection["C"],
            f"{self.folds}-fold" if self.folds and self.C <= 0 else "validation",
            selection["top1"],
        )
        if cache:
            os.makedirs(context.cache_dir, exist_ok=True)
            np.savez(cache, kernel=kernel, bias=bias)
        return kernel, bias


@keras_tl_export("keras_tl.methods.WiSEFT", package="keras_tl.methods")
@register
class WiSEFT(Constrained):
    """WiSE-FT: fine-tune, then θ = (1 − α)·θ_source + α·θ_ft with α the best of a validation sweep.

    `keras_tl.wise_ft` after the base method's run: every backbone variable interpolated
    towards the source network; α swept over {0, 0.1, ..., 1} on the validation data (ties to
    the smaller α), or `alpha` fixed. (`keras_tl.select`'s sweep on its choice is stricter: it
    keeps an interpolation only on an edge significant by McNemar's test.)

    Convention chosen: each interpolation's BatchNorm statistics are re-estimated on pass 0 of
    the training split (`batchnorm="recompute"`, `keras_tl.batchnorm.update_statistics`: one
    forward pass, no training step). The reference (mlfoundations/wise-ft `src/wise_ft.py`)
    interpolates every state-dict tensor, the moving statistics too: `batchnorm="interpolate"`,
    the papers' setting (`authors_hparams`). Why not the reference's: its models (CLIP) have no
    BatchNorm, and after a long fine-tune of a BatchNorm network the interpolated statistics are
    not the interpolated network's: on tin-b an L2 run's α in [0.4, 0.9] read 2.9-5.5 %
    validation top-1 against 19.6 % at α = 1 (re-estimated 19.0-20.7 %), and the sweep kept
    α = 1, the plain fine-tune, in 14 of 14 benchmark runs; re-estimated, WiSE-FT is +0.4 points
    over L2 on tin-b (5/5 seeds) and ties it on DTD-10 and Caltech-101 (docs/BENCHMARKS.md).
    No training beyond the base method's. Reference: Wortsman et al., "Robust fine-tuning of
    zero-shot models", CVPR 2022, Sec. 2.

    Example:
    >>> model, history = keras_tl.fine_tune("wise_ft", source, train, epochs=20, validation_data=val)
    >>> history.history["wise_ft/alpha"]
    """

    name = "wise_ft"
    display_name = "WiSE-FT"
    reference = "Wortsman et al. CVPR 2022, Sec. 2"
    rule = "fine-tune, then θ = (1 − α)·θ_source + α·θ_ft, α chosen on validation"
    needs_validation = True

    # The reference interpolates the moving statistics too (see the docstring).
    authors_hparams = {"batchnorm": "interpolate"}

    alpha: float = None
    batchnorm: str = "recompute"

    def __post_init__(self):
        super().__post_init__()
        if self.alpha is not None and not (isinstance(self.alpha, (int, float)) and 0.0 <= self.alpha <= 1.0):
            raise ValueError(f"Expected alpha in [0, 1] or None (a sweep). Received: alpha={self.alpha!r}")
        if self.batchnorm not in ("interpolate", "recompute"):
            raise ValueError(
                f"Expected batchnorm to be 'interpolate' or 'recompute'. Received: batchnorm={self.batchnorm!r}"
            )

    def finish(self, model, setup):
        from keras_tl import interpolation

        context = setup.context
        if self.alpha is None:
            alphas, validation = interpolation.DEFAULT_ALPHAS, context.require_validation(self)
        else:
            alphas, validation = (self.alpha,), None
        recompute = None
        if self.batchnorm == "recompute":
            from keras_tl import data

            # Pass 0, as select's WiSE-FT step reads it: fit moved the split's pass counter on, and a
            # resumed run must sweep the same models.
            recompute = data.first_pass(context.require_train(self), name="train")
        model, selection = interpolation.wise_ft(
            model, alphas, validation_data=validation, source=context.source, inplace=True, batchnorm_data=recompute
        )
        logger.info("WiSE-FT: alpha=%s (validation top-1 %s)", selection["alpha"], selection["top1"])
        return model, {"wise_ft/alpha": selection["alpha"], "wise_ft/top1": selection["top1"]}
