"""`keras_tl.linear_probe` against AnanyaKumar/transfer_learning's `log_reg_sk.py`, restated with scikit-learn."""

import keras
import numpy as np
import pytest

sklearn_linear = pytest.importorskip("sklearn.linear_model")

import keras_tl  # noqa: E402
from keras_tl.linear_probe import extract_features, fit_head, logistic_regression  # noqa: E402
from tests.conftest import tiny_data, tiny_source  # noqa: E402


def sklearn_fit(features, labels, C, **kwargs):
    """The reference's solver (`LogisticRegression`, lbfgs, multinomial for 3+ classes), run to convergence."""
    clf = sklearn_linear.LogisticRegression(C=C, tol=1e-10, max_iter=100000, **kwargs)
    # float64 like our solver (scikit-learn would solve float32 features in float32).
    return clf.fit(np.asarray(features, dtype="float64"), labels)


def blobs(n, seed, dim=5, classes=3):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centers = rng.normal(0, 1.0, (classes, dim))
    return (centers[labels] + rng.normal(0, 1.0, (n, dim))).astype("float32"), labels


@pytest.mark.parametrize("C", [1e-3, 0.1, 10.0])
def test_logistic_regression_matches_sklearn(C):
    x, y = blobs(60, seed=0)
    kernel, bias = logistic_regression(x, y, 3, C=C, tol=1e-9)
    clf = sklearn_fit(x, y, C)
    # Both solvers keep Σ_k b_k = 0 (the softmax ignores a shift shared by all classes). scikit-learn's
    # lbfgs stops on its relative-decrease test with gradient entries near 1e-8 (ours: < 1e-9), hence 1e-3.
    np.testing.assert_allclose(kernel, clf.coef_.T, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(bias, clf.intercept_, rtol=1e-3, atol=1e-5)


def test_warm_start_reaches_the_same_solution():
    x, y = blobs(60, seed=1)
    cold = logistic_regression(x, y, 3, C=1.0, tol=1e-9)
    warm = logistic_regression(x, y, 3, C=1.0, initial=logistic_regression(x, y, 3, C=0.01), tol=1e-9)
    for a, b in zip(cold, warm, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def reference_linear_probe(train, val, Cs):
    """`log_reg_sk.py::main` with `test_log_reg_warm_starting`, each C run to convergence."""
    (features, labels), (val_features, val_labels) = train, val
    mean, stddev = np.mean(features), np.std(features)  # normalize_features
    normalized, val_normalized = (features - mean) / stddev, (val_features - mean) / stddev
    best_acc, best, accs = -1.0, None, []
    for C in Cs:
        clf = sklearn_fit(normalized, labels, C)
        acc = np.mean(clf.predict(val_normalized) == val_labels)
        accs.append(acc)
        if acc > best_acc:
            best_acc, best = acc, (C, clf.coef_, clf.intercept_)
    C, coef, intercept = best
    new_weights = coef / stddev  # inv_normalize_weights
    new_intercept = intercept - np.matmul(coef, mean / stddev * np.ones(coef.shape[1]))
    return new_weights, new_intercept, C, accs


def test_fit_head_matches_reference_pipeline():
    keras.utils.set_random_seed(0)
    model = keras_tl.TransferModel(tiny_source(), 3)
    x, y = tiny_data(n=24, seed=1)
    x_val, y_val = tiny_data(n=12, seed=2)
    Cs = [1e-3, 1e-2, 0.1, 1.0, 10.0]

    def features(images):  # independently: the backbone called directly, BatchNorm in inference mode
        return keras.ops.convert_to_numpy(model.target_backbone(images, training=False)["features"]).astype(
            "float64"
        )

    coef, intercept, C, accs = reference_linear_probe((features(x), y), (features(x_val), y_val), Cs)
    (kernel, bias), selection = fit_head(model, (x, y), (x_val, y_val), Cs=Cs, batch_size=5, tol=1e-9)
    np.testing.assert_allclose([row["top1"] for row in selection["table"]], accs)
    assert selection["C"] == C and selection["top1"] == max(accs)
    assert kernel.shape == (64, 3) and bias.shape == (3,) and kernel.dtype == np.float32
    np.testing.assert_allclose(
        features(x) @ kernel + bias, features(x) @ coef.T + intercept, rtol=1e-3, atol=1e-4
    )

    model.head.set_weights([kernel, bias])  # LP-FT's starting head
    logits = keras.ops.convert_to_numpy(model(x_val, training=False))
    assert np.mean(np.argmax(logits, axis=1) == y_val) == selection["top1"]


def test_fit_head_on_a_source_network_and_a_dataset_of_batches():
    source = tiny_source()
    x, y = tiny_data(n=12, seed=1)
    batches = [(x[:5], y[:5]), (x[5:], y[5:])]
    (kernel, bias), selection = fit_head(source, batches, Cs=0.5, num_classes=3)
    features, labels = extract_features(source, (x, y))
    np.testing.assert_array_equal(labels, y)
    mean, std = features.mean(), features.std()
    clf = sklearn_fit((features - mean) / std, y, 0.5)
    np.testing.assert_allclose(
        features @ kernel + bias,
        features @ (clf.coef_.T / std) + clf.intercept_ - (mean / std) * clf.coef_.sum(axis=1),
        rtol=1e-3,
        atol=1e-4,
    )
    assert selection == {
        "C": 0.5,
        "top1": None,
        "log_loss": None,
        "table": [{"C": 0.5, "top1": None, "log_loss": None}],
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"Cs": [0.1, 1.0]},
            r"Expected validation_data \(or folds\) to choose C among 2 values. Received: validation_data=None",
        ),
        ({"Cs": [0.1, 1.0], "folds": 1}, r"Expected folds to be an integer >= 2 or None. Received: folds=1"),
        ({"Cs": -1.0}, r"Expected Cs > 0 \(a float or a sequence of them\). Received: Cs=-1.0"),
        ({"Cs": 1.0, "scoring": "auc"}, r"Expected scoring to be one of \('top1', 'log_loss'\). Received: scoring='auc'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_head(keras_tl.TransferModel(tiny_source(), 3), tiny_data(), **kwargs)


@pytest.mark.parametrize("scoring, sklearn_scoring, sign", [("top1", "accuracy", 1), ("log_loss", "neg_log_loss", -1)])
def test_fit_head_chooses_c_by_folds_as_sklearns_logistic_regression_cv(scoring, sklearn_scoring, sign):
    model_selection = pytest.importorskip("sklearn.model_selection")
    keras.utils.set_random_seed(0)
    model = keras_tl.TransferModel(tiny_source(), 3)
    x, y = tiny_data(n=30, seed=3)
    Cs = [1e-4, 1e-2, 1.0, 100.0]
    features = keras.ops.convert_to_numpy(model.target_backbone(x, training=False)["features"]).astype(
        "float64"
    )
    normalized = (features - features.mean()) / features.std()
    # The documented rule, restated: the i-th example of each class is held out in fold i mod 3.
    rank = np.array([np.sum(y[:i] == y[i]) for i in range(len(y))])
    reference = sklearn_linear.LogisticRegressionCV(
        Cs=Cs, cv=model_selection.PredefinedSplit(rank % 3), scoring=sklearn_scoring, tol=1e-10, max_iter=100000
    ).fit(normalized, y)
    (kernel, bias), selection = fit_head(model, (x, y), Cs=Cs, folds=3, scoring=scoring, batch_size=7, tol=1e-9)
    np.testing.assert_allclose(
        [row[scoring] for row in selection["table"]], sign * reference.scores_[0].mean(axis=0), rtol=1e-4
    )
    assert selection["C"] == reference.C_[0]
    refit = sklearn_fit(normalized, y, reference.C_[0])
    np.testing.assert_allclose(
        features @ kernel + bias, normalized @ refit.coef_.T + refit.intercept_, rtol=1e-3, atol=1e-4
    )


def test_fit_head_chooses_c_by_the_validation_log_loss():
    metrics = pytest.importorskip("sklearn.metrics")
    keras.utils.set_random_seed(0)
    model = keras_tl.TransferModel(tiny_source(), 3)
    x, y = tiny_data(n=24, seed=1)
    x_val, y_val = tiny_data(n=12, seed=2)
    Cs = [1e-3, 1e-2, 0.1, 1.0, 10.0]
    features = lambda images: keras.ops.convert_to_numpy(  # noqa: E731
        model.target_backbone(images, training=False)["features"]
    ).astype("float64")
    train, val = features(x), features(x_val)
    mean, std = train.mean(), train.std()
    losses = []
    for C in Cs:
        clf = sklearn_fit((train - mean) / std, y, C)
        losses.append(metrics.log_loss(y_val, clf.predict_proba((val - mean) / std), labels=[0, 1, 2]))
    _, selection = fit_head(model, (x, y), (x_val, y_val), Cs=Cs, scoring="log_loss", batch_size=5, tol=1e-9)
    np.testing.assert_allclose([row["log_loss"] for row in selection["table"]], losses, rtol=1e-3)
    assert selection["C"] == Cs[int(np.argmin(losses))]


def test_source_network_needs_num_classes():
    with pytest.raises(
        ValueError, match=r"Expected num_classes for a source network. Received: num_classes=None"
    ):
        fit_head(tiny_source(), tiny_data(), Cs=1.0)
