"""DELTA's supervised channel attention (Alg. 1): L2-FE head, channel ablation, normalisation, cache."""

import itertools
import json
import os
import tempfile

import keras
import numpy as np

from keras_tl import backbones
from keras_tl.attention.ablation import channel_importance
from keras_tl.models import TransferModel
from keras_tl.regularizers import L2

NORMALIZATIONS = ("zscore_softmax", "softmax")


def _check_normalization(normalization, temperature):
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"Expected normalization to be one of {NORMALIZATIONS}. Received: normalization={normalization!r}"
        )
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ValueError(f"Expected temperature > 0 (a float). Received: temperature={temperature!r}")


def normalize_importance(importance, normalization="zscore_softmax", temperature=5.0):
    """Per-layer attention weights (non-negative, summing to 1) from raw loss increases.

    - `"softmax"`: W = softmax(W_raw), Alg. 1's last line.
    - `"zscore_softmax"`: W = softmax(z / temperature), z the layer's z-scored raw
      increases: what DELTA's released code does (with temperature 5) before training.

    The default is `"zscore_softmax"`: raw increases are mean losses (typically 1e-4 to
    1e-1), so their plain softmax is nearly uniform and DELTA would collapse to plain
    distillation; the z-score makes the contrast independent of the loss scale, and it is
    the released code's choice. A layer whose increases are all equal gets uniform weights.

    Args:
        importance: `{layer: [float]}` raw loss increases (`channel_importance`).
        normalization: one of `NORMALIZATIONS`.
        temperature: positive float dividing the z-scores (`"zscore_softmax"` only).

    Returns:
        `{layer: [float]}`, each list summing to 1.
    """
    _check_normalization(normalization, temperature)
    weights = {}
    for name, values in importance.items():
        scores = np.asarray(values, dtype="float64")
        if normalization == "zscore_softmax":
            spread = scores.std()
            scores = (scores - scores.mean()) / spread / temperature if spread > 0 else np.zeros_like(scores)
        scores = np.exp(scores - scores.max())
        weights[name] = (scores / scores.sum()).tolist()
    return weights


def _batches(x, y, batch_size, num_batches):
    """The first `num_batches` `(x, y)` batches of arrays `x, y` or of an iterable of batches `x`."""
    if y is not None:
        x, y = np.asarray(x), np.asarray(y)
        starts = range(0, len(x), batch_size)
        return [(x[s : s + batch_size], y[s : s + batch_size]) for s in itertools.islice(starts, num_batches)]
    return [(batch[0], batch[1]) for batch in itertools.islice(iter(x), num_batches)]


def l2_fe_model(
    source, num_classes, x, y=None, taps=None, epochs=10, batch_size=64, optimizer=None, **model_kwargs
):
    """Alg. 1's first loop: a `TransferModel` with the frozen source backbone and a new head trained on the target.

    L2-FE (DELTA Sec. 3.4): `freeze_backbone=True`, so BatchNorm keeps the source's
    statistics; the head gets the reference code's coupled weight decay 1e-4
    (`keras_tl.regularizers.L2(1e-4, scope="head")`) and, by default, SGD(0.01, momentum 0.9).

    Args:
        source, num_classes, taps, **model_kwargs: as for `keras_tl.TransferModel`.
        x, y: the target training data: arrays `x, y`, or a dataset yielding `(x, y)`
            batches in `x` (then `y` is None).
        epochs, batch_size: of the head training (`batch_size` only for arrays).
        optimizer: a Keras optimizer (default: SGD with learning rate 0.01, momentum 0.9).
    """
    model = TransferModel(
        source,
        num_classes,
        taps=taps,
        freeze_backbone=True,
        regularizers=[L2(beta=1e-4, scope="head")],
        **model_kwargs,
    )
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    if y is not None:
        model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    else:
        model.fit(x, epochs=epochs, verbose=0)
    return model


def _read_cache(path, taps):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        cached = json.load(f)
    if all(isinstance(cached.get(tap), list) and cached[tap] for tap in taps):
        return {tap: cached[tap] for tap in taps}
    return None


def _write_cache(path, importance):
    existing = {}
    if os.path.exists(path):
        with open(path) as f:
            existing = json.load(f)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # Written to a temporary file and renamed: a crash never leaves a truncated cache behind.
    with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".json", delete=False) as f:
        json.dump({**existing, **importance}, f, indent=1)
    os.replace(f.name, path)


def delta_channel_weights(
    source,
    num_classes=None,
    x=None,
    y=None,
    taps=None,
    *,
    cache_path=None,
    normalization="zscore_softmax",
    temperature=5.0,
    num_batches=4,
    batch_size=64,
    chunk_size=32,
    head_epochs=10,
    optimizer=None,
    loss=None,
):
    """DELTA's per-channel attention weights for each tapped layer (Alg. 1, Eq. 9), batched and cached.

    1. Train an L2-FE model: the source's frozen feature extractor with a new head
       (`l2_fe_model`; skipped when `source` already is a `TransferModel`).
    2. For every tap and channel j, the mean loss increase when channel j is zeroed, over
       the examples of the first `num_batches` training batches (the reference code uses
       4; Alg. 1 sums over the whole set, which only rescales the softmax input), batched
       (`keras_tl.attention.channel_importance`).
    3. Normalise per layer (`normalize_importance`; default `"zscore_softmax"`).

    The raw increases of step 2 are cached in `cache_path` (JSON, `{layer: [float]}`):
    when it holds every tap, steps 1-2 are skipped, so a rerun (or another normalisation)
    costs nothing. The cache does not know which data or model produced it: one file per
    (source, target data) pair.

    Args:
        source: the source network (as for `keras_tl.TransferModel`), or a trained
            `TransferModel` used as the L2-FE model as it is.
        num_classes: target classes (not needed when `source` is a `TransferModel`).
        x, y: target training data, as for `l2_fe_model`.
        taps: tap layer names (default: `source.taps` of a `TransferModel`, or the
            backbone's `default_taps` for a backbone name).
        cache_path: JSON file of raw increases, read if complete, else written.
        normalization, temperature: see `normalize_importance`.
        num_batches: training batches aggregated in step 2.
        batch_size: batch size of arrays `x, y` (head training and step 2).
        chunk_size: channels ablated per suffix pass (see `channel_importance`).
        head_epochs, optimizer: of the L2-FE head training.
        loss: per-example loss `loss(y, logits) -> [batch]` (default: sparse categorical
            cross-entropy on logits).

    Returns:
        `{tap: [float] * channels}`, each summing to 1: `channel_weights` for
        `keras_tl.regularizers.DELTA` and `L2SPAttention`.

    Example:
    >>> weights = keras_tl.attention.delta_channel_weights(
    ...     "cifar_resnet20", num_classes=10, x=x_train, y=y_train,
    ...     cache_path="runs/delta_weights.json")
    >>> reg = keras_tl.regularizers.DELTA(alpha=0.01, channel_weights=weights)
    """
    _check_normalization(normalization, temperature)  # before any training
    if taps is None:
        if isinstance(source, TransferModel):
            taps = source.taps
        elif isinstance(source, str):
            taps = backbones.default_taps(source)
    if not taps:
        raise ValueError(f"Expected at least one tap layer name. Received: taps={taps!r}")
    taps = list(taps)
    importance = _read_cache(cache_path, taps)
    if importance is None:
        if x is None:
            raise ValueError("Expected target training data `x` (and `y` for arrays). Received: x=None")
        if isinstance(source, TransferModel):
            model = source
        else:
            if num_classes is None:
                raise ValueError(
                    "Expected num_classes for a source that is not a TransferModel. Received: None"
                )
            model = l2_fe_model(source, num_classes, x, y, taps, head_epochs, batch_size, optimizer)
        batches = _batches(x, y, batch_size, num_batches)
        importance = channel_importance(model, batches, taps=taps, chunk_size=chunk_size, loss=loss)
        if cache_path:
            _write_cache(cache_path, importance)
    return normalize_importance(importance, normalization, temperature)
