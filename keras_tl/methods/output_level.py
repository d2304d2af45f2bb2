"""Methods on the heads' outputs and pooled features: BSS, Co-Tuning, LwF, DI2 and DSD."""

import logging

import numpy as np

from keras_tl import diffusion, regularizers
from keras_tl.api_export import keras_tl_export
from keras_tl.methods.base import NEAR_TRANSFER, Claim, Method
from keras_tl.methods.registry import register
from keras_tl.relationship import category_relationship, class_means, upstream_logits

logger = logging.getLogger(__name__)


def training_upstream_logits(method, context):
    """`(logits [n, N], labels [n])`: the pre-trained upstream head on one pass over the training split.

    One pass pairs each image's logits with its label (the split reshuffles every pass).
    The images are gathered in memory: the few-shot training splits these methods meet are small.
    """
    from keras_tl.models import TransferModel

    train = context.require_train(method)
    images, labels = [], []
    for x, y in train.dataset.as_numpy_iterator():
        images.append(x)
        labels.append(y)
    probe = TransferModel(context.source, num_classes=train.num_classes, keep_source_head=True)
    logits = upstream_logits(probe, np.concatenate(images))
    return logits, np.concatenate(labels).astype("int64")


@keras_tl_export("keras_tl.methods.BSS", package="keras_tl.methods")
@register
class BSS(Method):
    """Fine-tuning with weight decay plus Batch Spectral Shrinkage of the k smallest singular values (Chen et al., 2019).

    Example:
    >>> keras_tl.fine_tune(keras_tl.methods.BSS(eta=0.001), source, train, epochs=20)
    """

    name = "bss"
    display_name = "BSS"
    reference = "Chen et al. 2019"
    rule = "η·Σ of the k smallest squared singular values of the batch's features, β/2·‖w‖²"
    coefficient = "eta"
    select_factors = (1.0,)

    beta: float = 0.01
    eta: float = 0.001
    k: int = 1

    def terms(self, context):
        return [regularizers.L2(beta=self.beta, scope="all"), regularizers.BSS(eta=self.eta, k=self.k)]


@keras_tl_export("keras_tl.methods.CoTuning", package="keras_tl.methods")
@register
class CoTuning(Method):
    """Co-Tuning: the upstream head learns the target labels translated to upstream classes (You et al., 2020).

    λ = 2.3 (the official code's `trade_off`), the "reverse" relationship (Sec. 3.3, the
    paper's preferred one; `relationship="direct"` for the mean source softmax) computed
    from the pre-trained upstream head's logits on the training split (no validation split
    here, so one `C` and calibration on the training images), weight decay β = 0.01.

    Example:
    >>> keras_tl.fine_tune(keras_tl.methods.CoTuning(lam=0.23), source, train, epochs=20)
    """

    name = "co_tuning"
    display_name = "Co-Tuning"
    reference = "DSD Eq. 2"
    rule = "λ·CE(upstream head, p(ȳ∣y)) with the category relationship from the source's outputs"
    coefficient = "lam"
    select_factors = (1.0,)
    keep_source_head = True
    # Co-Tuning Tables 1-2: ≥ fine-tuning; checked where the source's classes are near the target's.
    claims = (Claim("l2", datasets=NEAR_TRANSFER),)

    lam: float = 2.3
    beta: float = 0.01
    relationship: str = "reverse"
    C: float = 1.0

    def terms(self, context):
        logits, labels = training_upstream_logits(self, context)
        num_classes = context.train.num_classes
        matrix = category_relationship(logits, labels, num_classes, method=self.relationship, C=self.C)
        return [regularizers.CoTuning(lam=self.lam, relationship=matrix), regularizers.L2(beta=self.beta, scope="all")]


@keras_tl_export("keras_tl.methods.LwF", package="keras_tl.methods")
@register
class LwF(Method):
    """Learning without Forgetting: the upstream head's softened outputs stay close to the source's (Li & Hoiem, 2017).

    Example:
    >>> keras_tl.fine_tune(keras_tl.methods.LwF(lam=0.1), source, train, epochs=20)
    """

    name = "lwf"
    display_name = "LwF"
    reference = "Li & Hoiem 2017"
    rule = "λ·KL of the upstream head's softened outputs to the source's, β/2·‖w‖²"
    coefficient = "lam"
    select_factors = (1.0,)
    keep_source_head = True

    beta: float = 0.01
    lam: float = 1.0
    temperature: float = 2.0

    def terms(self, context):
        return [
            regularizers.L2(beta=self.beta, scope="all"),
            regularizers.LwF(lam=self.lam, temperature=self.temperature),
        ]


@keras_tl_export("keras_tl.methods.DI2", package="keras_tl.methods")
@register
class DI2(Method):
    """DI2 / discrepant semantic diffusion (Gao et al., Electronics 2023, Eq. 5-7).

    λ = 0.001 (Sec. 4.6), k = shared + 1 (`extra=1`, Sec. 4.6's "+1"), from the mean
    pre-trained upstream logits per target class on the training split; weight decay β = 0.01.
    From a cross-entropy source; `DSD` is the same fine-tuning from a PGD source.

    Example:
    >>> keras_tl.fine_tune(keras_tl.methods.DI2(lam=0.001), source, train, epochs=20)
    """

    name = "di2"
    display_name = "DI2 (CE source)"
    reference = "DSD Eq. 5-7"
    rule = "λ·diffusion of the upstream head along each class's granularity sequence, β/2·‖w‖²"
    coefficient = "lam"
    keep_source_head = True

    lam: float = 0.001
    extra: int = 1
    beta: float = 0.01

    def terms(self, context):
        logits, labels = training_upstream_logits(self, context)
        scores = class_means(logits, labels, context.train.num_classes)
        sequences, k = diffusion.granularity_sequences(scores, extra=self.extra)
        logger.info("DI2: granularity diffusion sequences of k=%d upstream classes (extra=%d)", k, self.extra)
        return [
            regularizers.DiscrepantDiffusion(lam=self.lam, sequences=sequences),
            regularizers.L2(beta=self.beta, scope="all"),
        ]


@keras_tl_export("keras_tl.methods.DSD", package="keras_tl.methods")
@register
class DSD(DI2):
    """Discrepant Semantic Diffusion in full: DI2 fine-tuning from a source pre-trained with PGD (DSD Eq. 3-7).

    The fine-tuning is `DI2`'s; what makes it DSD is the source, pre-trained with
    `keras_tl.pretrain(loss="pgd")` (DSD Eq. 3-4), which the benchmark gives it. Its λ is
    the one DI2's grid chooses.

    Example:
    >>> source, card = keras_tl.models.load_model_and_card("pgd_source.keras")  # card["loss"] == "pgd"
    >>> keras_tl.fine_tune("dsd", source, train, epochs=20)
    """

    name = "dsd"
    display_name = "DSD (PGD source + DI2)"
    reference = "DSD Eq. 3-7"
    rule = "DI2 from a source pre-trained with PGD's semantic prior"
    upstream = "pgd"
    grid_from = "di2"
    claims = (Claim("co_tuning"), Claim("l2", datasets=NEAR_TRANSFER))
