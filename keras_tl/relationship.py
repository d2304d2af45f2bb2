"""The category relationship p(ȳ|y) between upstream (source) and target classes (Co-Tuning).

Everything here runs once, before fine-tuning, in numpy on the source model's outputs for
the target training images; `keras_tl.regularizers.CoTuning` then uses the matrix.
"""

import keras
import numpy as np

METHODS = ("direct", "reverse")
# The inverse L2 strengths the Co-Tuning code searches (its `relationship_learning`).
CO_TUNING_C_GRID = (1e4, 3e3, 1e3, 3e2, 1e2, 3e1, 1e1, 3.0, 1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)  # fmt: skip


# The Co-Tuning code multiplies the pre-trained ImageNet logits by this constant before the
# softmax (`softmax_np(train_logits * 0.8840456604957581)` in both `relationship_learning` and
# `direct_relationship_learning`): a temperature calibrated once for its ResNet-50 head.
CO_TUNING_LOGIT_SCALE = 0.8840456604957581


def softmax(logits, axis=-1):
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=axis, keepdims=True)


def check_labels(labels, num_classes, what="training image"):
    """Integer labels `[n]` in `[0, num_classes)`, every class present at least once."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Expected integer labels of shape [n]. Received: labels of shape {labels.shape}, "
            f"dtype {labels.dtype}"
        )
    outside = sorted({int(v) for v in labels if not 0 <= v < num_classes})
    if outside:
        raise ValueError(f"Expected labels in [0, {num_classes}). Received labels {outside}")
    missing = sorted(set(range(num_classes)) - {int(v) for v in labels})
    if missing:
        raise ValueError(
            f"Expected at least one {what} of every class in [0, {num_classes}). "
            f"Received no {what} of class(es) {missing}"
        )
    return labels


def class_means(values, labels, num_classes, what="training image"):
    """`[num_classes, dim]`: the mean of `values` `[n, dim]` over the rows of each class.

    A class without rows is an error (its mean is undefined), not a silent NaN or zero row.
    """
    values = np.asarray(values, dtype="float64")
    labels = check_labels(labels, num_classes, what)
    if values.ndim != 2 or len(values) != len(labels):
        raise ValueError(
            f"Expected values of shape [n, dim] with n = len(labels) = {len(labels)}. "
            f"Received: values of shape {values.shape}"
        )
    sums = np.zeros((num_classes, values.shape[1]))
    np.add.at(sums, labels, values)
    return sums / np.bincount(labels, minlength=num_classes)[:, None]


def to_probabilities(outputs, from_logits, what, logit_scale=1.0):
    """Finite `[n, classes]` probabilities from logits (softmax(logit_scale · logits)) or validated probabilities."""
    outputs = np.asarray(outputs, dtype="float64")
    if outputs.ndim != 2 or not np.all(np.isfinite(outputs)):
        raise ValueError(
            f"Expected finite {what} of shape [n, source_classes]. Received shape {outputs.shape}"
        )
    if from_logits:
        return softmax(logit_scale * outputs)
    if np.any(outputs < 0) or not np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(
            f"Expected {what} to be probabilities (rows >= 0 summing to 1) with from_logits=False."
        )
    return outputs


def category_relationship(
    source_outputs,
    labels,
    num_classes,
    method="direct",
    from_logits=True,
    validation=None,
    C=1.0,
    max_iter=2000,
    logit_scale=CO_TUNING_LOGIT_SCALE,
):
    """p(ȳ|y) `[num_classes, source_classes]` (rows sum to 1) from source predictions on target data.

    - `"direct"`: p(ȳ|y) = mean of the source softmax f₀(x) over the images x of class y
      (Co-Tuning Sec. 3.3's direct approach; DSD Eq. 2's p(C̄|c_m)).
    - `"reverse"`: Co-Tuning's preferred approach. A multinomial logistic regression without
      intercept (L2 strength 1/C, as scikit-learn's `C`) maps source probabilities to target
      labels; its logits are calibrated by one temperature (NLL-minimising scale); feeding
      the one-hot ȳ through the calibrated map gives p(y|ȳ) = softmax(s·W[ȳ]); Bayes' rule
      with the source marginal p(ȳ) = mean of f₀(x) over all images gives
      p(ȳ|y) ∝ p(y|ȳ)·p(ȳ). As in the Co-Tuning code, only the ȳ marginal is used so that
      every row is a proper distribution.

    Logits are turned into probabilities as the Co-Tuning code does: softmax(s · logits) with
    its fixed s = `CO_TUNING_LOGIT_SCALE` = 0.884 (`logit_scale`; 1 for a plain softmax).
    The constant was calibrated for the code's ImageNet ResNet-50 head; it is kept as the
    default so that the relationship is the official one (`tests/reference/`).

    With `validation=(outputs, labels)` the reverse map picks C from a sequence by validation
    accuracy (first best in the given order) and calibrates on the validation set, and both
    methods average over training plus validation images, as the Co-Tuning code does;
    without it, C must be one float and calibration uses the training images.

    Reference:
        You et al., "Co-Tuning for Transfer Learning", NeurIPS 2020, Sec. 3.3 (direct and
        reverse approaches, calibration); the official code's `relationship_learning`.

    Args:
        source_outputs: `[n, source_classes]` source logits (or probabilities with
            `from_logits=False`) on the target training images, in inference mode.
        labels: `[n]` integer target labels; every class needs at least one image.
        num_classes: M, the number of target classes.
        method: `"direct"` or `"reverse"`.
        from_logits: whether `source_outputs` (and the validation outputs) are logits.
        validation: optional `(source_outputs, labels)` of held-out target images.
        C: inverse L2 strength of the reverse map: a float, or a sequence to search with
            `validation` (e.g. `CO_TUNING_C_GRID`).
        max_iter: iterations of the reverse map's solver (accelerated gradient descent).
        logit_scale: positive float multiplying logits before the softmax (ignored for
            probabilities); default the Co-Tuning code's 0.8840456604957581.

    Returns:
        numpy float64 `[num_classes, source_classes]`, row y = p(ȳ|y).

    Example:
    >>> model = keras_tl.TransferModel(source, num_classes=10, keep_source_head=True)
    >>> logits = keras_tl.relationship.upstream_logits(model, x_train)
    >>> relationship = keras_tl.relationship.category_relationship(
    ...     logits, y_train, 10, method="reverse")
    >>> model = keras_tl.TransferModel(source, num_classes=10, keep_source_head=True,
    ...     regularizers=[keras_tl.regularizers.CoTuning(2.3, relationship)])
    """
    if method not in METHODS:
        raise ValueError(f"Expected method to be one of {METHODS}. Received: method={method!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"Expected num_classes to be a positive int. Received: num_classes={num_classes!r}")
    if isinstance(logit_scale, bool) or not isinstance(logit_scale, (int, float)) or not logit_scale > 0:
        raise ValueError(f"Expected logit_scale > 0 (a float). Received: logit_scale={logit_scale!r}")
    probabilities = to_probabilities(source_outputs, from_logits, "source_outputs", logit_scale)
    labels = check_labels(labels, num_classes)
    if len(labels) != len(probabilities):
        raise ValueError(
            f"Expected one label per row of source_outputs. Received {len(labels)} labels "
            f"for {len(probabilities)} rows"
        )
    grid = tuple(C) if isinstance(C, (list, tuple)) else (C,)
    if not grid or any(isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0 for c in grid):
        raise ValueError(f"Expected C > 0 (a float or a sequence of them). Received: C={C!r}")
    if len(grid) > 1 and validation is None:
        raise ValueError(
            f"Expected `validation` to choose C among {len(grid)} values. Received: validation=None"
        )
    held_out = None
    if validation is not None:
        held_out = (
            to_probabilities(validation[0], from_logits, "validation outputs", logit_scale),
            check_labels(validation[1], num_classes, "validation image"),
        )
    everything = probabilities if held_out is None else np.concatenate([probabilities, held_out[0]])
    if method == "direct":
        all_labels = labels if held_out is None else np.concatenate([labels, held_out[1]])
        return class_means(everything, all_labels, num_classes)

    calibration = held_out or (probabilities, labels)
    maps = [fit_linear_map(probabilities, labels, num_classes, c, max_iter) for c in grid]
    accuracies = [np.mean(np.argmax(calibration[0] @ w, axis=1) == calibration[1]) for w in maps]
    weights = maps[int(np.argmax(accuracies))]
    scale = fit_temperature(calibration[0] @ weights, calibration[1])
    target_given_source = softmax(scale * weights, axis=1)  # [N, M]: p(y | ȳ), row ȳ
    joint = target_given_source * np.mean(everything, axis=0)[:, None]
    return (joint / np.sum(joint, axis=0, keepdims=True)).T


def fit_linear_map(inputs, labels, num_classes, C=1.0, max_iter=2000, tol=1e-7):
    """W `[dim, num_classes]` minimising Σ_i CE(softmax(x_i·W), y_i) + ‖W‖²/(2C).

    scikit-learn's multinomial `LogisticRegression(C=C, fit_intercept=False)` objective,
    solved by Nesterov's accelerated gradient for strongly convex functions (its step and
    momentum from the Lipschitz constant ‖X‖²/2 + 1/C and the strong convexity 1/C), so no
    solver dependency. Stops when the largest gradient entry, relative to n, is below `tol`.
    """
    inputs = np.asarray(inputs, dtype="float64")
    n = len(inputs)
    onehot = np.eye(num_classes)[labels]
    lipschitz = np.linalg.norm(inputs, 2) ** 2 / 2 + 1 / C
    strong = 1 / C
    momentum = (np.sqrt(lipschitz) - np.sqrt(strong)) / (np.sqrt(lipschitz) + np.sqrt(strong))

    def gradient(w):
        return inputs.T @ (softmax(inputs @ w) - onehot) + w / C

    weights = previous = np.zeros((inputs.shape[1], num_classes))
    for _ in range(max_iter):
        lookahead = weights + momentum * (weights - previous)
        step = gradient(lookahead)
        previous, weights = weights, lookahead - step / lipschitz
        if np.max(np.abs(step)) / n < tol:
            break
    return weights


def fit_temperature(logits, labels, max_iter=100):
    """The scale s > 0 minimising the mean NLL of softmax(s·logits) (temperature scaling).

    Newton's method on the convex 1-D objective, from s = 1, with step halving.
    """
    logits = np.asarray(logits, dtype="float64")
    picked = logits[np.arange(len(labels)), labels]

    def nll(s):
        z = s * logits
        top = np.max(z, axis=1)
        return np.mean(top + np.log(np.sum(np.exp(z - top[:, None]), axis=1)) - s * picked)

    scale = 1.0
    for _ in range(max_iter):
        p = softmax(scale * logits)
        mean = np.sum(p * logits, axis=1)
        first = np.mean(mean - picked)
        second = np.mean(np.sum(p * logits**2, axis=1) - mean**2)
        if second <= 1e-12 or abs(first) < 1e-10:
            break
        step = first / second
        while scale - step <= 0 or nll(scale - step) > nll(scale) + 1e-12:
            step /= 2
            if abs(step) < 1e-12:
                return scale
        scale -= step
    return scale


def upstream_logits(model, x, batch_size=256):
    """The upstream head's logits on `x` `[n, source_classes]` (numpy), in inference mode.

    `model` is a `TransferModel(..., keep_source_head=True)`: the target's copy of the upstream
    head on the target's features, i.e. before fine-tuning the pre-trained source's logits.
    `x` is anything `keras.Model.predict` takes (arrays, a `tf.data.Dataset` of images or of
    `(images, labels)`).
    """
    if getattr(model, "source_head", None) is None:
        raise ValueError("Expected a TransferModel built with keep_source_head=True.")
    inputs = keras.Input(shape=model.input_shape[1:])
    outputs = model.source_head(model.target_backbone(inputs, training=False)["features"])
    # Datasets come batched; Keras refuses a batch_size for them.
    batch_size = batch_size if hasattr(x, "shape") else None
    return keras.Model(inputs, outputs).predict(x, batch_size=batch_size, verbose=0)
