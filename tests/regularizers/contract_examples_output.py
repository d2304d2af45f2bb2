"""Contract-test instances of the output-level regularizers, for `tiny_source()` (5 upstream
classes) fine-tuned to 3 target classes with `keep_source_head=True`."""

import numpy as np

from keras_tl.regularizers import BSS, CoTuning, DiscrepantDiffusion, LwF


def uneven_relationship():
    """p(ȳ|y) [3, 5] with distinct rows, so a wrong row or column order would show."""
    scores = np.arange(15, dtype="float64").reshape(3, 5) % 7 + 1
    return (scores / scores.sum(axis=1, keepdims=True)).tolist()


CONTRACT_EXAMPLES = {
    BSS: lambda: BSS(eta=0.001, k=1),
    CoTuning: lambda: CoTuning(lam=2.3, relationship=uneven_relationship()),
    LwF: lambda: LwF(lam=1.0, temperature=2.0),
    DiscrepantDiffusion: lambda: DiscrepantDiffusion(lam=0.001, sequences=[[0, 1], [0, 2], [3, 1]]),
}
