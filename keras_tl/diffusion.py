"""DI2's granularity diffusion sequences: top-k upstream classes per downstream class, all distinct.

Runs once before fine-tuning, in numpy, on the pre-trained model's mean upstream logits per
downstream class (`keras_tl.relationship.class_means(upstream_logits, labels, M)`);
`keras_tl.regularizers.DiscrepantDiffusion` then trains towards the sequences.
"""

import logging

import numpy as np

from keras_tl.utils.validation import check_number

logger = logging.getLogger(__name__)


def granularity_sequences(class_scores, extra=1):
    """The sequences S^m (top-k upstream classes of each downstream class m) and k.

    k = (the most top-ranked upstream classes two downstream classes share) + `extra`:
    for a pair (u, v) the shared part is the longest j with top-j(u) = top-j(v) as sets, and
    the "+1" of DSD Sec. 4.6 adds the first dissimilar class, so with `extra=1` every pair's
    sets differ — Eq. 5's constraint (S^u − S^u ∩ S^v) ≠ ∅ for u ≠ v, which for sets of one
    size k means S^u ≠ S^v. This reads Sec. 3.3's DTD example the way the paper does: the
    top four classes of "banded" and "lined" coincide, the fifth differ, so k = 5 = 4 + 1;
    and Sec. 4.6's "+0", which "cannot guarantee the semantic discrepancy", is the shared
    part alone. (It is not "the smallest separating k, plus one", which would give 6 there.)
    `extra > 1` adds further classes. Should two sets coincide again at that length (the
    same classes in swapped order further down), k grows until every pair differs.

    Ties in a row's scores go to the lower upstream class id (a stable sort), so the result
    is deterministic. Two downstream classes whose rankings agree on the first N − 1
    classes (e.g. identical rows) cannot be separated by any k < N: a `ValueError` names them.
    The chosen k (the paper's Fig. 3, per data set) is logged at INFO level on the
    `keras_tl.diffusion` logger.

    Reference:
        Gao et al., "Discrepant Semantic Diffusion Boosts Transfer Learning Robustness",
        Electronics 2023, Sec. 3.3 (Eq. 5 and its constraint), Sec. 4.6 ("+1").

    Args:
        class_scores: `[M, N]` mean upstream logits (or probabilities) of the pre-trained
            model per downstream class: p(C̄|c_m) in the paper.
        extra: dissimilar classes added to the shared part (>= 0; 0 is the paper's "+0"
            ablation, which leaves some pair of sequences equal and logs a warning).

    Returns:
        `(sequences, k)`: M lists of k upstream class ids, most similar first, and k.

    Example:
    >>> model = keras_tl.TransferModel(source, num_classes=10, keep_source_head=True)
    >>> scores = keras_tl.relationship.class_means(
    ...     keras_tl.relationship.upstream_logits(model, x_train), y_train, 10)
    >>> sequences, k = keras_tl.diffusion.granularity_sequences(scores, extra=1)
    """
    scores = np.asarray(class_scores, dtype="float64")
    if scores.ndim != 2 or scores.size == 0 or not np.all(np.isfinite(scores)):
        raise ValueError(f"Expected finite class_scores of shape [M, N]. Received shape {scores.shape}")
    check_number("extra", extra, minimum=0, integer=True)
    num_down, num_up = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    shared = _most_shared(order)
    k = shared + int(extra)
    if k == 0:
        raise ValueError(
            "Expected extra >= 1 when no two classes share their top upstream class. Received: extra=0"
        )
    if k > num_up:
        raise ValueError(
            f"Expected k = {shared} shared + {extra} extra <= {num_up} upstream classes. Received: extra={extra}"
        )
    if extra > 0:
        first = k
        while (pair := _equal_pair(order, k)) is not None:
            if k + 1 >= num_up:
                raise ValueError(
                    f"Expected some k < {num_up} to make every downstream class's sequence distinct. "
                    f"Received class_scores where classes {pair[0]} and {pair[1]} have the same top-k "
                    f"upstream classes for k = {k} (and no k in [{first}, {num_up}) separates all pairs)."
                )
            k += 1
    else:
        logger.warning(
            "DI2 with extra=0: some downstream classes share all %d classes of their sequences.", k
        )
    logger.info(
        "DI2 granularity diffusion sequences: k=%d (%d shared + %d extra) for %d downstream classes "
        "over %d upstream classes",
        k,
        shared,
        extra,
        num_down,
        num_up,
    )
    return [[int(c) for c in row] for row in order[:, :k]], k


def _most_shared(order):
    """max over pairs (u, v) of the longest j < N with top-j(u) = top-j(v) as sets."""
    num_down, num_up = order.shape
    ranks = np.empty_like(order)
    ranks[np.arange(num_down)[:, None], order] = np.arange(num_up)
    positions = np.arange(num_up - 1)
    most = 0
    for u in range(num_down - 1):
        # top-j(u) = top-j(v) iff the largest rank, in v, of u's first j classes is j - 1.
        prefix_max = np.maximum.accumulate(ranks[u + 1 :][:, order[u]], axis=1)[:, :-1]
        equal = prefix_max == positions
        inseparable = np.flatnonzero(np.all(equal, axis=1))
        if inseparable.size:
            v = u + 1 + int(inseparable[0])
            ranking = order[u].tolist()
            shown = ranking if num_up <= 8 else ranking[:8] + ["..."]
            raise ValueError(
                f"Expected every pair of downstream classes to rank the upstream classes differently. "
                f"Received classes {u} and {v} with the same ranking of all {num_up} upstream classes "
                f"({shown}, ties to the lower id; e.g. identical or tied score rows): no k < {num_up} "
                f"separates them (Eq. 5)."
            )
        if equal.size:
            most = max(most, int(np.max(np.argmin(equal, axis=1))))
    return most


def _equal_pair(order, k):
    """The first pair (u, v) of rows whose top-k sets are equal, or None."""
    seen = {}
    for row, top in enumerate(np.sort(order[:, :k], axis=1)):
        key = top.tobytes()
        if key in seen:
            return seen[key], row
        seen[key] = row
    return None
