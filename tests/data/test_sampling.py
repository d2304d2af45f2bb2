import numpy as np
import pytest

from keras_tl.data import few_shot_indices

LABELS = np.repeat(np.arange(4), [10, 7, 3, 20])


def test_per_class_counts_are_exact_and_stratified():
    with pytest.warns(UserWarning, match=r"1 class\(es\) have fewer than per_class=5"):
        indices = few_shot_indices(LABELS, per_class=5, seed=3)  # class 2 has only 3
    np.testing.assert_array_equal(np.bincount(LABELS[indices]), [5, 5, 3, 5])
    assert np.all(np.diff(indices) > 0)


def test_fraction_counts_round_per_class():
    indices = few_shot_indices(LABELS, fraction=0.3, seed=0)
    # round(0.3 * n_c), at least 1: 3, 2, 1, 6
    np.testing.assert_array_equal(np.bincount(LABELS[indices]), [3, 2, 1, 6])


def test_same_seed_same_subset_other_seed_other_subset():
    a = few_shot_indices(LABELS, per_class=2, seed=7)
    np.testing.assert_array_equal(a, few_shot_indices(LABELS, per_class=2, seed=7))
    assert not np.array_equal(a, few_shot_indices(LABELS, per_class=2, seed=8))


@pytest.mark.filterwarnings("ignore:1 class")
def test_a_class_sample_does_not_depend_on_other_classes():
    full = few_shot_indices(LABELS, per_class=4, seed=1)
    only_class_3 = LABELS == 3
    offset = np.flatnonzero(only_class_3)[0]
    alone = few_shot_indices(LABELS[only_class_3], per_class=4, seed=1)
    np.testing.assert_array_equal(full[LABELS[full] == 3], alone + offset)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of per_class and fraction"),
        ({"per_class": 2, "fraction": 0.5}, "exactly one of per_class and fraction"),
        ({"per_class": 0}, "Expected per_class to be a positive int. Received: per_class=0"),
        ({"fraction": 1.5}, r"Expected 0 < fraction <= 1. Received: fraction=1.5"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        few_shot_indices(LABELS, **kwargs)
