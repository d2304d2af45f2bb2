import logging

import numpy as np
import pytest

from keras_tl.diffusion import granularity_sequences


def scores_from_rankings(rankings, num_up):
    """Score rows whose descending order is each given ranking (listed classes first)."""
    scores = np.zeros((len(rankings), num_up))
    for row, ranking in enumerate(rankings):
        scores[row, ranking] = np.arange(len(ranking), 0, -1)
    return scores


def test_distinct_top_classes_need_one():
    scores = scores_from_rankings([[0, 1], [1, 2], [2, 0]], 4)
    assert granularity_sequences(scores) == ([[0], [1], [2]], 1)
    sequences, k = granularity_sequences(scores, extra=2)
    assert k == 2 and sequences == [[0, 1], [1, 2], [2, 0]]


def test_dtd_example_four_shared_plus_one(caplog):
    # "banded" and "lined" share their top four upstream classes and differ at the fifth (Sec. 3.3).
    scores = scores_from_rankings([[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 6, 5], [7, 8, 0]], 10)
    with caplog.at_level(logging.INFO, logger="keras_tl.diffusion"):
        sequences, k = granularity_sequences(scores, extra=1)
    assert k == 5
    assert sequences[0] == [0, 1, 2, 3, 4] and sequences[1] == [0, 1, 2, 3, 6]
    assert "k=5 (4 shared + 1 extra) for 3 downstream classes over 10 upstream classes" in caplog.text
    # Eq. 5's constraint: every sequence has a class the others lack.
    for u in range(3):
        for v in range(3):
            assert u == v or set(sequences[u]) - set(sequences[v])
    assert granularity_sequences(scores, extra=2)[1] == 6


def test_plus_zero_keeps_the_shared_part_and_warns(caplog):
    scores = scores_from_rankings([[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 6, 5], [7, 8, 0]], 10)
    with caplog.at_level(logging.WARNING, logger="keras_tl.diffusion"):
        sequences, k = granularity_sequences(scores, extra=0)
    assert k == 4 and set(sequences[0]) == set(sequences[1])
    assert "extra=0" in caplog.text


def test_sets_that_coincide_again_grow_k():
    # (A, B) share class 0 then differ; (A, C) differ at once but have equal top-2 sets.
    scores = scores_from_rankings([[0, 1, 2, 3], [0, 2, 4, 5], [1, 0, 3, 2]], 6)
    sequences, k = granularity_sequences(scores)
    assert k == 3 and sequences == [[0, 1, 2], [0, 2, 4], [1, 0, 3]]


def test_ties_go_to_the_lower_upstream_class():
    scores = np.array([[1.0, 1.0, 0.0, 2.0], [0.0, 1.0, 1.0, 2.0]])
    sequences, k = granularity_sequences(scores)
    # Row 0 ranks 3, 0, 1, 2 and row 1 ranks 3, 1, 2, 0: they share class 3, differ next.
    assert k == 2 and sequences == [[3, 0], [3, 1]]
    assert granularity_sequences(scores[::-1]) == ([[3, 1], [3, 0]], 2)


def test_identical_or_tied_rows_cannot_be_separated():
    with pytest.raises(
        ValueError, match=r"Received classes 0 and 2 with the same ranking of all 3 upstream classes"
    ):
        granularity_sequences([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    # Different scores, same ranking once ties go to the lower id.
    with pytest.raises(ValueError, match=r"Received classes 0 and 1 with the same ranking"):
        granularity_sequences([[1.0, 1.0, 1.0], [5.0, 4.0, 4.0]])
    # The pair named is the tied pair, wherever it is (rows 1 and 3 here, not the first rows).
    with pytest.raises(
        ValueError,
        match=r"Received classes 1 and 3 with the same ranking of all 4 upstream classes \(\[2, 0, 1, 3\]",
    ):
        granularity_sequences(
            [[4.0, 3.0, 2.0, 1.0], [1.0, 1.0, 2.0, 0.0], [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 3.0, 1.0]]
        )


def test_impossible_when_every_k_leaves_a_pair_equal():
    # Each k < N leaves some pair with the same set: k=1 (A, B), k=2 (A, C), k=3 and up all.
    scores = scores_from_rankings([[0, 1, 2, 3, 4], [0, 2, 1, 3, 4], [1, 0, 2, 3, 4]], 5)
    with pytest.raises(
        ValueError, match=r"Expected some k < 5 to make every downstream class's sequence distinct"
    ):
        granularity_sequences(scores)


def test_single_class_and_argument_errors():
    assert granularity_sequences([[0.0, 2.0, 1.0]], extra=2) == ([[1, 2]], 2)
    with pytest.raises(ValueError, match=r"Expected extra >= 0 \(an int\). Received: extra=-1"):
        granularity_sequences([[0.0, 1.0]], extra=-1)
    with pytest.raises(
        ValueError, match=r"Expected extra >= 1 when no two classes share their top upstream class"
    ):
        granularity_sequences([[0.0, 1.0], [1.0, 0.0]], extra=0)
    with pytest.raises(
        ValueError, match=r"Expected finite class_scores of shape \[M, N\]. Received shape \(3,\)"
    ):
        granularity_sequences([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"Expected finite class_scores"):
        granularity_sequences([[0.0, np.nan]])
    with pytest.raises(ValueError, match=r"Expected k = 0 shared \+ 3 extra <= 2 upstream classes"):
        granularity_sequences([[0.0, 1.0]], extra=3)
