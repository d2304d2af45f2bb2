"""Evaluation: logits over a data set (center crop or 10-crop), top-1 and mean per-class accuracy."""

import numpy as np


def predict_logits(model, dataset):
    """`(logits, labels)` as numpy over a `keras_tl.data.load` dataset.

    With ten crops (images `[batch, 10, H, W, 3]`), the model sees every crop and an
    example's logits are the mean of its 10 crops' logits. A short last batch is padded to
    the first batch's size (its padding's logits dropped): one batch shape, one trace of the
    predict function under TensorFlow, one compilation under JAX.
    """
    outputs, labels = [], []
    full = None
    for images, batch_labels in dataset.as_numpy_iterator():
        crops = images.ndim == 5
        if crops:
            images = images.reshape((-1,) + images.shape[2:])
        size = len(images)
        full = full or size
        if size < full:
            images = np.concatenate([images, np.zeros((full - size,) + images.shape[1:], images.dtype)])
        batch_logits = np.asarray(model.predict_on_batch(images))[:size]
        if crops:
            batch_logits = batch_logits.reshape(-1, 10, batch_logits.shape[-1]).mean(axis=1)
        outputs.append(batch_logits)
        labels.append(batch_labels)
    if not outputs:
        raise ValueError("Expected a non-empty dataset to evaluate.")
    logits, labels = np.concatenate(outputs), np.concatenate(labels)
    return logits, labels


def accuracies(logits, labels, num_classes=None):
    """`{"top1": ..., "mean_per_class": ...}` (fractions); classes absent from `labels` are not averaged."""
    logits, labels = np.asarray(logits), np.asarray(labels).astype(np.int64)
    if len(labels) != len(logits):
        raise ValueError(
            f"Expected one label per row of logits. Received: {len(labels)} labels, {len(logits)} rows"
        )
    correct = np.argmax(logits, axis=-1) == labels
    num_classes = num_classes or logits.shape[-1]
    per_class = [correct[labels == c].mean() for c in range(num_classes) if np.any(labels == c)]
    return {"top1": float(correct.mean()), "mean_per_class": float(np.mean(per_class))}


def evaluate(model, dataset, num_classes=None):
    """Top-1 and mean per-class accuracy of `model` on `dataset` (see `predict_logits`)."""
    logits, labels = predict_logits(model, dataset)
    return accuracies(logits, labels, num_classes)
