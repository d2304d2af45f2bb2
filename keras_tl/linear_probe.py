"""LP-FT's first stage: the head as an L2-regularized logistic regression on frozen features."""

import numbers

import keras
import numpy as np

from keras_tl.api_export import keras_tl_export
from keras_tl.models.source import split_source
from keras_tl.utils.batches import NumpyBatches
from keras_tl.utils.validation import check_number

# The reference sweep: `np.logspace(start_c=-7, end_c=2, num_cs)` with `num_reg_values=50`.
DEFAULT_CS = tuple(float(c) for c in np.logspace(-7, 2, 50))


def _log_norm(logits):
    """log Σ_k exp(logits_k) per row, shifted by the row's maximum so that exp cannot overflow."""
    top = logits.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))


def _softmax(z):
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


# scipy's L-BFGS-B `factr` as scikit-learn sets it (`ftol = 64 * eps`): a relative decrease this
# small is round-off, the solve cannot get closer.
_FTOL = 64 * np.finfo(float).eps


def _lbfgs(objective, x, scale, max_iter, tol, memory=10):
    """Minimises a smooth convex `objective(x) -> (value, gradient)` by L-BFGS with Armijo backtracking.

    Works on u = x / scale (a diagonal preconditioner: `scale` ≈ 1/sqrt(the Hessian's
    diagonal)); stops when the largest entry of the gradient in x is below `tol`, or the
    relative decrease is round-off.
    """
    u = x / scale
    value, gradient = objective(x)
    steps, changes = [], []
    for _ in range(max_iter):
        if np.max(np.abs(gradient)) < tol:
            break
        g = gradient * scale
        direction = -g
        weights = []
        for s, y in reversed(list(zip(steps, changes, strict=True))):
            a = (s @ direction) / (y @ s)
            direction = direction - a * y
            weights.append(a)
        if steps:
            direction = direction * (steps[-1] @ changes[-1]) / (changes[-1] @ changes[-1])
        for (s, y), a in zip(zip(steps, changes, strict=True), reversed(weights), strict=True):
            direction = direction + s * (a - (y @ direction) / (y @ s))
        slope = g @ direction
        if slope >= 0:  # not a descent direction (round-off): restart from the gradient
            direction, slope, steps, changes = -g, -(g @ g), [], []
        step = 1.0
        while True:
            candidate = u + step * direction
            new_value, new_gradient = objective(candidate * scale)
            if new_value <= value + 1e-4 * step * slope or step < 1e-12:
                break
            step /= 2
        s, y = candidate - u, (new_gradient - gradient) * scale
        if s @ y > 1e-12 * (s @ s):
            steps, changes = (steps + [s])[-memory:], (changes + [y])[-memory:]
        decrease = value - new_value
        u, value, gradient = candidate, new_value, new_gradient
        if decrease <= _FTOL * max(abs(value), abs(value + decrease), 1.0):
            break
    return u * scale


@keras_tl_export("keras_tl.linear_probe.logistic_regression")
def logistic_regression(features, labels, num_classes, C=1.0, initial=None, max_iter=1000, tol=1e-6):
    """`(kernel [dim, classes], bias [classes])` minimising C·Σ_i CE(x_i·W + b, y_i) + ½‖W‖².

    scikit-learn's multinomial `LogisticRegression(C=C)` objective (the bias not penalised),
    divided by C·n, solved to convergence (largest gradient entry below `tol`) by L-BFGS in
    numpy: a convex problem, so no solver dependency and the same answer as the reference's
    `lbfgs`. With two classes scikit-learn fits one binary logistic instead; the softmax
    form here matches it at C_sklearn = 2·C.

    Args:
        features: `[n, dim]` array.
        labels: `[n]` ints in [0, num_classes).
        num_classes: classes of the head.
        C: inverse regularization strength (> 0).
        initial: `(kernel, bias)` to start from (a warm start), or None for zeros.
        max_iter, tol: of L-BFGS.

    Example:
    >>> kernel, bias = keras_tl.linear_probe.logistic_regression(features, labels, 10, C=0.1)
    """
    x = np.asarray(features, dtype="float64")
    labels = np.asarray(labels).astype(np.int64)
    n, dim = x.shape
    onehot = np.eye(num_classes)[labels]
    strength = 1.0 / (check_number("C", C, minimum=0, exclusive=True) * n)

    def objective(theta):
        kernel, bias = theta[: dim * num_classes].reshape(dim, num_classes), theta[dim * num_classes :]
        logits = x @ kernel + bias
        value = np.mean(_log_norm(logits) - np.sum(logits * onehot, axis=1)) + 0.5 * strength * np.sum(kernel**2)
        error = (_softmax(logits) - onehot) / n
        return value, np.concatenate([(x.T @ error + strength * kernel).ravel(), error.sum(axis=0)])

    start = np.zeros(dim * num_classes + num_classes)
    if initial is not None:
        start = np.concatenate([np.ravel(initial[0]), np.ravel(initial[1])]).astype("float64")
    # The Hessian's diagonal at uniform predictions: E[x_d²]·q + 1/(C·n) for the kernel, q for the
    # bias, q = (K − 1)/K² the softmax's. At small C the two differ by orders of magnitude, which
    # plain L-BFGS crawls through.
    q = (num_classes - 1) / num_classes**2
    diagonal = np.concatenate(
        [
            (np.mean(x**2, axis=0)[:, None] * q + strength).repeat(num_classes, axis=1).ravel(),
            np.full(num_classes, q),
        ]
    )
    theta = _lbfgs(objective, start, 1.0 / np.sqrt(diagonal), max_iter, tol)
    return theta[: dim * num_classes].reshape(dim, num_classes), theta[dim * num_classes :]


@keras_tl_export("keras_tl.linear_probe.extract_features")
def extract_features(model, data, batch_size=64, feature_layer=None):
    """`(features [n, dim], labels [n])` (numpy) of the frozen backbone, in inference mode.

    `model` is a `keras_tl.TransferModel` (the features its head reads, before dropout)
    or a source network (split as `TransferModel` does, at `feature_layer` if given).
    BatchNorm uses its moving statistics; ten-crop batches are averaged per example.
    """
    extractor = model.target_backbone if hasattr(model, "target_backbone") else None
    if extractor is None:
        if not isinstance(model, keras.Model):
            raise TypeError(f"Expected a TransferModel or a keras.Model. Received: model={model!r}")
        extractor = split_source(model, feature_layer=feature_layer).extractor
    inputs = keras.Input(shape=tuple(extractor.inputs[0].shape[1:]))
    features = keras.Model(inputs, extractor(inputs, training=False)["features"])
    from keras_tl.data.evaluation import predict_logits  # imports tf.data: on first use only

    return predict_logits(features, NumpyBatches(data, batch_size, name="data"))


SCORINGS = ("top1", "log_loss")


def _check_cs(Cs, validation_data, folds, scoring="top1"):
    if scoring not in SCORINGS:
        raise ValueError(f"Expected scoring to be one of {SCORINGS}. Received: scoring={scoring!r}")
    grid = list(Cs) if isinstance(Cs, (list, tuple, np.ndarray)) else [Cs]
    if not grid or not all(isinstance(c, numbers.Real) and not isinstance(c, bool) and c > 0 for c in grid):
        raise ValueError(f"Expected Cs > 0 (a float or a sequence of them). Received: Cs={Cs!r}")
    if folds is not None and (
        isinstance(folds, bool) or not isinstance(folds, numbers.Integral) or folds < 2
    ):
        raise ValueError(f"Expected folds to be an integer >= 2 or None. Received: folds={folds!r}")
    if folds is not None and validation_data is not None:
        raise ValueError(
            "Expected either validation_data or folds to choose C, not both. "
            f"Received: folds={folds!r} and validation_data"
        )
    if len(grid) > 1 and validation_data is None and folds is None:
        raise ValueError(
            f"Expected validation_data (or folds) to choose C among {len(grid)} values. "
            "Received: validation_data=None"
        )
    return [float(c) for c in grid]


def fold_indices(labels, folds):
    """Each example's fold: within each class, in order of appearance, folds 0, 1, ..., k−1, 0, ...

    Stratified like scikit-learn's `StratifiedKFold(shuffle=False)` (every fold holds each class
    in proportion), but round-robin, so the assignment is a plain rule a test can restate.
    """
    labels = np.asarray(labels)
    found = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        found[where] = np.arange(len(where)) % folds
    return found


def _path(features, labels, num_classes, Cs, max_iter, tol):
    solutions, solution = [], None
    for C in Cs:
        solution = logistic_regression(features, labels, num_classes, C, solution, max_iter, tol)
        solutions.append(solution)
    return solutions


def _accuracy(features, labels, solution):
    return float(np.mean(np.argmax(features @ solution[0] + solution[1], axis=1) == labels))


def _log_loss(features, labels, solution):
    logits = features @ solution[0] + solution[1]
    return float(np.mean(_log_norm(logits) - logits[np.arange(len(labels)), labels]))


def _scores(features, labels, solution):
    return {"top1": _accuracy(features, labels, solution), "log_loss": _log_loss(features, labels, solution)}


def _best_index(table, scoring):
    """The first best row's index: the highest top-1 or the lowest log loss."""
    values = [row[scoring] for row in table]
    return int(np.argmin(values) if scoring == "log_loss" else np.argmax(values))


def _cross_validated(normalized, labels, num_classes, Cs, folds, max_iter, tol):
    """`[{"C", "top1", "log_loss"}]`: each C's means over the held-out folds (`fold_indices`),
    each fold's path warm-started along `Cs`."""
    assigned = fold_indices(labels, folds)
    sums = [{"top1": 0.0, "log_loss": 0.0} for _ in Cs]
    for fold in range(folds):
        inside = assigned != fold
        path = _path(normalized[inside], labels[inside], num_classes, Cs, max_iter, tol)
        for total, solution in zip(sums, path, strict=True):
            for name, score in _scores(normalized[~inside], labels[~inside], solution).items():
                total[name] += score
    return [
        {"C": C, **{name: score / folds for name, score in total.items()}} for C, total in zip(Cs, sums, strict=True)
    ]


@keras_tl_export("keras_tl.linear_probe.fit_head")
def fit_head(
    model,
    train,
    validation_data=None,
    Cs=DEFAULT_CS,
    num_classes=None,
    batch_size=64,
    feature_layer=None,
    max_iter=1000,
    tol=1e-6,
    folds=None,
    scoring="top1",
):
    """The linear probe of LP-FT: a head fitted on frozen features, for a `TransferModel`'s `head`.

    1. Features of `train` (and `validation_data`) extracted once by the frozen backbone
       in inference mode (BatchNorm on its moving statistics), `extract_features`.
    2. Normalised by one scalar mean and standard deviation over all entries of the
       training features.
    3. For each C in `Cs` (each solve warm-started from the previous one), the multinomial
       L2 logistic regression `logistic_regression`; the C with the best validation top-1
       is kept (the first one on a tie), or with `scoring="log_loss"` the lowest validation
       cross-entropy. Without a validation split, `folds=k` chooses it by k-fold
       cross-validation of the training features instead (`fold_indices`: the mean score
       of the held-out folds, as scikit-learn's `LogisticRegressionCV` with
       `scoring="accuracy"` or `"neg_log_loss"`), then refits on all of them.
    4. The weights mapped back to raw features: W = W̃/σ, b = b̃ − (μ/σ)·Σ_d W̃_d.

    Reference:
        Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
        Out-of-Distribution", ICLR 2022, Sec. 3 (LP-FT: linear probing, then full
        fine-tuning from the probed head) and App. (L2-regularized logistic regression
        with the regularization strength swept on validation data).

    Conventions (AnanyaKumar/transfer_learning):
    - `unlabeled_extrapolation/log_reg_sk.py`: sklearn `LogisticRegression(warm_start=True,
      max_iter=20)` over `Cs = np.logspace(-7, 2, num_reg_values)`; best C by validation
      accuracy (strictly greater replaces: the first best wins); `normalize_features` and
      `inv_normalize_weights` (the scalar μ, σ above). We solve each C to convergence
      instead of 20 warm-started iterations: the paper's linear probe is trained to
      convergence, and a convex solve makes the head independent of the solver's path.
    - `scripts/run_adaptation_experiments.py`: `num_reg_values=50`; the features are
      extracted once, in eval mode (`extract_features.py`, `train_mode=False`). Its default
      extracts the training features through the training transform (`aug=True`): one
      random view per image. We take the data as given and recommend center crops (the
      evaluation pipeline of the training split): a single random view only adds noise
      to a convex fit that sees each image once.
    - DELTA's L2-FE head (`keras_tl.channel_weights.delta.l2_fe_model`) is a different rule
      (SGD for a fixed number of epochs with weight decay 1e-4, DELTA's reference code),
      kept there.

    Args:
        model: a `keras_tl.TransferModel` (its backbone's features) or a source network.
        train: the training data: `(x, y)` arrays, a split from `keras_tl.data.load` or a
            dataset of `(x, y)` batches (preferably without augmentation).
        validation_data: held-out data of the same kinds to choose C; None with one C or `folds`.
        Cs: inverse regularization strengths, tried in this order (warm starts).
        num_classes: the head's classes (default: the `TransferModel`'s; required for a
            source network).
        batch_size: for array data.
        feature_layer: where a source network's features are (as for `TransferModel`).
        max_iter, tol: of each L-BFGS solve.
        folds: choose C by this many folds of the training data (no `validation_data`):
            for a caller whose held-out data scores something else, as `keras_tl.select`'s.
        scoring: what chooses C: `"top1"` (the reference's) or `"log_loss"` (the held-out
            cross-entropy, a proper score: on a few held-out images per class top-1 is flat
            over a decade of C and its argmax is noise, while the cross-entropy rises as soon
            as the head grows overconfident; docs/SELECTION.md for what it changes).

    Returns:
        `((kernel, bias), selection)`: float32 arrays of shapes `[dim, num_classes]` and
        `[num_classes]`, and a JSON-safe `{"C", "top1", "log_loss", "table"}` (the table a
        list of `{"C", "top1", "log_loss"}` in the order of `Cs`; the validation or mean
        held-out-fold scores, None with neither).

    Example:
    >>> model = keras_tl.TransferModel(source, num_classes=10)
    >>> (kernel, bias), selection = keras_tl.linear_probe.fit_head(model, train_eval, val)
    >>> model.head.set_weights([kernel, bias])  # then fine-tune everything: LP-FT
    """
    Cs = _check_cs(Cs, validation_data, folds, scoring)
    if num_classes is None:
        num_classes = getattr(model, "num_classes", None)
        if num_classes is None:
            raise ValueError("Expected num_classes for a source network. Received: num_classes=None")
    features, labels = extract_features(model, train, batch_size, feature_layer)
    mean, std = float(np.mean(features)), float(np.std(features))
    std = std if std > 0 else 1.0
    normalized = (features - mean) / std
    labels = np.asarray(labels).astype(np.int64)
    if folds is not None:
        table = _cross_validated(normalized, labels, num_classes, Cs, folds, max_iter, tol)
        row = table[_best_index(table, scoring)]  # the first best, as the validation rule
        path = _path(normalized, labels, num_classes, Cs[: Cs.index(row["C"]) + 1], max_iter, tol)
        best = (row, path[-1])
    else:
        held_out = None
        if validation_data is not None:
            val_features, val_labels = extract_features(model, validation_data, batch_size, feature_layer)
            held_out = ((val_features - mean) / std, np.asarray(val_labels).astype(np.int64))
        best, table = _validated(normalized, labels, num_classes, Cs, held_out, max_iter, tol, scoring)
    (row, (kernel, bias)) = best
    raw_kernel = kernel / std
    raw_bias = bias - (mean / std) * kernel.sum(axis=0)
    return (raw_kernel.astype("float32"), raw_bias.astype("float32")), {
        "C": row["C"],
        "top1": row["top1"],
        "log_loss": row["log_loss"],
        "table": table,
    }


def _validated(normalized, labels, num_classes, Cs, held_out, max_iter, tol, scoring):
    """The best C on `held_out` (normalized features, labels), the first on a tie; None scores without it."""
    table, solutions = [], []
    for C, solution in zip(Cs, _path(normalized, labels, num_classes, Cs, max_iter, tol), strict=True):
        scores = {"top1": None, "log_loss": None} if held_out is None else _scores(*held_out, solution)
        table.append({"C": C, **scores})
        solutions.append(solution)
    index = 0 if held_out is None else _best_index(table, scoring)
    return (table[index], solutions[index]), table
