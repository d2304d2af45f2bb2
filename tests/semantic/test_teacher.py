import numpy as np
import pytest

from keras_tl.semantic import nearest_neighbours, teacher_similarity


def test_teacher_similarity_is_the_class_mean_softmax():
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(12, 4))
    labels = np.arange(12) % 4
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    want = np.stack([probs[labels == c].mean(axis=0) for c in range(4)])
    np.testing.assert_allclose(teacher_similarity(logits, labels), want)
    np.testing.assert_allclose(teacher_similarity(probs, labels, from_logits=False), want)
    with pytest.raises(ValueError, match=r"Received no image of class\(es\) \[3\]"):
        teacher_similarity(logits[labels != 3], labels[labels != 3])


def test_nearest_neighbours_exclude_self_and_break_ties_by_id():
    similarity = np.array(
        [[1.0, 0.5, 0.5, 0.9], [0.2, 1.0, 0.3, 0.3], [0.0, 0.0, 1.0, 0.0], [0.9, 0.1, 0.8, 1.0]]
    )
    assert nearest_neighbours(similarity, 2) == [[3, 1], [2, 3], [0, 1], [0, 2]]
    assert nearest_neighbours(similarity, 0) == [[], [], [], []]
    # A teacher's row can rate another class above the class itself; it is still excluded.
    assert nearest_neighbours([[0.1, 0.9], [0.5, 0.5]], 1) == [[1], [0]]


def test_nearest_neighbours_errors():
    with pytest.raises(ValueError, match=r"Expected 0 <= num_neighbours < N = 2. Received: num_neighbours=2"):
        nearest_neighbours(np.eye(2), 2)
    with pytest.raises(
        ValueError, match=r"Expected a finite square \[N, N\] similarity matrix. Received shape \(2, 3\)"
    ):
        nearest_neighbours(np.ones((2, 3)), 1)
