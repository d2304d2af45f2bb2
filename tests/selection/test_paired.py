"""`keras_tl.selection.paired.mcnemar_p` against scipy's exact binomial test."""

import numpy as np
import pytest
from scipy import stats

from keras_tl.selection.paired import mcnemar_p


@pytest.mark.parametrize("seed", range(5))
def test_mcnemar_p_is_the_one_sided_exact_binomial_test_on_the_disagreements(seed):
    rng = np.random.default_rng(seed)
    better = rng.random(200) < 0.7
    worse = rng.random(200) < 0.6
    b, c = int(np.sum(better & ~worse)), int(np.sum(worse & ~better))
    want = stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue
    np.testing.assert_allclose(mcnemar_p(better, worse), want, rtol=1e-12)


def test_agreement_is_no_evidence():
    same = np.array([True, False, True])
    assert mcnemar_p(same, same) == 1.0
    assert mcnemar_p([1, 1, 1, 0], [0, 0, 1, 0]) == 0.25  # b = 2, c = 0


def test_shapes_must_match():
    with pytest.raises(ValueError, match=r"Expected two per-example correctness vectors of one length"):
        mcnemar_p([1, 0], [1, 0, 1])
