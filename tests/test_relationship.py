import numpy as np
import pytest

import keras_tl
from keras_tl import relationship
from keras_tl.relationship import (
    CO_TUNING_LOGIT_SCALE,
    category_relationship,
    class_means,
    fit_linear_map,
    fit_temperature,
)
from tests.conftest import tiny_data, tiny_source

RNG = np.random.default_rng(3)
M, N = 3, 6


def make_data(n=60, seed=0):
    """Source logits whose upstream classes 2m, 2m+1 are likely under target class m."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % M
    logits = rng.normal(size=(n, N))
    logits[np.arange(n), 2 * labels] += 2.0
    logits[np.arange(n), 2 * labels + 1] += 1.0
    return logits, labels


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_direct_is_the_class_mean_of_the_source_softmax():
    logits, labels = make_data()
    result = category_relationship(logits, labels, M, method="direct")
    # Logits are scaled by the Co-Tuning code's 0.884 before the softmax.
    scaled = softmax(CO_TUNING_LOGIT_SCALE * logits)
    want = np.stack([scaled[labels == m].mean(axis=0) for m in range(M)])
    np.testing.assert_allclose(result, want, rtol=1e-12)
    np.testing.assert_allclose(result.sum(axis=1), 1.0)
    probs = category_relationship(scaled, labels, M, method="direct", from_logits=False)
    np.testing.assert_allclose(probs, want, rtol=1e-12)


def test_direct_with_validation_averages_both_sets():
    logits, labels = make_data()
    val_logits, val_labels = make_data(seed=1)
    result = category_relationship(logits, labels, M, validation=(val_logits, val_labels))
    both, both_labels = np.concatenate([logits, val_logits]), np.concatenate([labels, val_labels])
    np.testing.assert_allclose(result, class_means(softmax(CO_TUNING_LOGIT_SCALE * both), both_labels, M))


def test_linear_map_matches_scikit_learn():
    linear_model = pytest.importorskip("sklearn.linear_model")
    logits, labels = make_data()
    inputs = softmax(logits)
    ours = fit_linear_map(inputs, labels, M, C=3.0, max_iter=20000, tol=1e-10)
    theirs = linear_model.LogisticRegression(C=3.0, fit_intercept=False, tol=1e-10, max_iter=10000)
    theirs.fit(inputs, labels)
    np.testing.assert_allclose(ours, theirs.coef_.T, atol=2e-4)


def test_temperature_minimises_the_nll():
    logits, labels = make_data()
    logits = 3.0 * logits

    def nll(s):
        return -np.mean(np.log(softmax(s * logits)[np.arange(len(labels)), labels]))

    scale = fit_temperature(logits, labels)
    grid = np.linspace(0.01, 2.0, 2000)
    best = grid[np.argmin([nll(s) for s in grid])]
    assert scale == pytest.approx(best, abs=2e-3)
    assert nll(scale) <= min(nll(s) for s in grid) + 1e-9


def test_reverse_is_the_bayes_inverted_calibrated_map():
    logits, labels = make_data()
    result = category_relationship(logits, labels, M, method="reverse", C=1.0)
    probs = softmax(CO_TUNING_LOGIT_SCALE * logits)
    weights = fit_linear_map(probs, labels, M, C=1.0)
    scale = fit_temperature(probs @ weights, labels)
    target_given_source = softmax(scale * weights)  # row ȳ: p(y | ȳ)
    joint = target_given_source * probs.mean(axis=0)[:, None]
    want = (joint / joint.sum(axis=0)).T
    np.testing.assert_allclose(result, want, rtol=1e-10)
    np.testing.assert_allclose(result.sum(axis=1), 1.0)
    assert np.all(result >= 0)
    # The planted structure: target class m puts its mass on upstream classes 2m, 2m+1.
    for m in range(M):
        assert set(np.argsort(-result[m])[:2]) == {2 * m, 2 * m + 1}


def test_reverse_chooses_C_on_validation():
    logits, labels = make_data()
    validation = make_data(seed=1)
    grid = (1e2, 1.0, 1e-4)
    chosen = category_relationship(logits, labels, M, method="reverse", validation=validation, C=grid)
    single = [
        category_relationship(logits, labels, M, method="reverse", validation=validation, C=c) for c in grid
    ]
    accuracies = [
        np.mean(
            np.argmax(
                softmax(CO_TUNING_LOGIT_SCALE * validation[0])
                @ fit_linear_map(softmax(CO_TUNING_LOGIT_SCALE * logits), labels, M, c),
                1,
            )
            == validation[1]
        )
        for c in grid
    ]
    np.testing.assert_allclose(chosen, single[int(np.argmax(accuracies))])
    np.testing.assert_allclose(chosen.sum(axis=1), 1.0)


@pytest.mark.parametrize("method", ["direct", "reverse"])
def test_a_class_without_images_is_an_error(method):
    logits, labels = make_data()
    labels = np.where(labels == 1, 0, labels)
    with pytest.raises(
        ValueError,
        match=r"Expected at least one training image of every class in \[0, 3\). "
        r"Received no training image of class\(es\) \[1\]",
    ):
        category_relationship(logits, labels, M, method=method)


def test_argument_errors():
    logits, labels = make_data()
    with pytest.raises(
        ValueError, match=r"Expected method to be one of \('direct', 'reverse'\). Received: method='x'"
    ):
        category_relationship(logits, labels, M, method="x")
    with pytest.raises(ValueError, match=r"Expected labels in \[0, 2\). Received labels \[2\]"):
        category_relationship(logits, labels, 2)
    with pytest.raises(ValueError, match=r"Expected `validation` to choose C among 3 values"):
        category_relationship(logits, labels, M, method="reverse", C=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match=r"Expected C > 0"):
        category_relationship(logits, labels, M, method="reverse", C=0.0)
    with pytest.raises(ValueError, match=r"with from_logits=False"):
        category_relationship(logits, labels, M, from_logits=False)
    with pytest.raises(ValueError, match=r"one label per row"):
        category_relationship(logits, labels[:-3], M)


def test_upstream_logits_are_the_source_classifier_logits():
    source = tiny_source()
    model = keras_tl.TransferModel(source, 3, keep_source_head=True)
    x, _ = tiny_data()
    np.testing.assert_allclose(
        relationship.upstream_logits(model, x, batch_size=3),
        source.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-4,
    )
    with pytest.raises(ValueError, match="keep_source_head=True"):
        relationship.upstream_logits(keras_tl.TransferModel(source, 3), x)
