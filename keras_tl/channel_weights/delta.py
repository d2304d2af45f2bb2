"""DELTA's supervised channel attention (Alg. 1): L2-FE head, channel ablation, normalisation, cache."""

import itertools
import json
import os
import tempfile

import keras
import numpy as np

from keras_tl import backbones
from keras_tl.channel_weights.ablation import channel_importance
from keras_tl.models import TransferModel
from keras_tl.models.taps import check_taps_argument, map_layers
from keras_tl.regularizers import L2
from keras_tl.utils.validation import check_number

NORMALIZATIONS = ("zscore_softmax", "sum_softmax", "mean_softmax")
# The cache's entry holding how many examples the mean increases were taken over (for "sum_softmax").
EXAMPLES_KEY = "__examples__"


def _check_normalization(normalization, temperature):
    if normalization not in NORMALIZATIONS:
        renamed = (
            " ('softmax' was the softmax of the mean increase, now 'mean_softmax'; Alg. 1's softmax of the "
            "sum over the data is 'sum_softmax')"
            if normalization == "softmax"
            else ""
        )
        raise ValueError(
            f"Expected normalization to be one of {NORMALIZATIONS}{renamed}. "
            f"Received: normalization={normalization!r}"
        )
    check_number("temperature", temperature, minimum=0, exclusive=True)


def normalize_importance(importance, normalization="zscore_softmax", temperature=5.0, num_examples=None):
    """Per-layer attention weights (non-negative, summing to 1) from mean loss increases.

    `importance` holds each channel's *mean* loss increase over n examples
    (`channel_importance`), W̄_j = 1/n Σ_i W_j(x_i).

    - `"zscore_softmax"` (default): W = softmax(z / temperature), z the layer's z-scored
      increases: what DELTA's released code does (temperature 5) before training
      (`js = (js - mean) / std; softmax(js / 5)`). The z-score makes the contrast
      independent of the loss scale and of n.
    - `"sum_softmax"`: W = softmax(Σ_i W_j(x_i)) = softmax(n · W̄), Alg. 1's last line as
      printed (the sum over the data). Needs `num_examples` = n. With n in the hundreds
      it is nearly one-hot: one channel per layer takes almost all the weight.
    - `"mean_softmax"`: W = softmax(W̄), the softmax of the *mean* increase. This is not
      Alg. 1: mean increases are typically 1e-4 to 1e-1, so it is nearly uniform and
      DELTA becomes plain distillation (per position). Kept for comparison.

    A layer whose increases are all equal gets uniform weights.

    Args:
        importance: `{layer: [float]}` mean loss increases (`channel_importance`).
        normalization: one of `NORMALIZATIONS`.
        temperature: positive float dividing the z-scores (`"zscore_softmax"` only).
        num_examples: n, the examples the means were taken over (`"sum_softmax"` only).

    Returns:
        `{layer: [float]}`, each list summing to 1.
    """
    _check_normalization(normalization, temperature)
    if normalization == "sum_softmax" and (
        isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 1
    ):
        raise ValueError(
            "Expected num_examples (a positive int, the examples the mean increases were taken over) "
            f"for normalization='sum_softmax'. Received: num_examples={num_examples!r}"
        )
    weights = {}
    for name, values in importance.items():
        scores = np.asarray(values, dtype="float64")
        if normalization == "sum_softmax":
            scores = scores * num_examples
        elif normalization == "zscore_softmax":
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


def _plain_data(x, y, num_classes, batch_size):
    """`(x, y, num_classes)` as `l2_fe_model` and `_batches` take them: a `tf.data.Dataset` or
    `keras_tl.data.Split` as batches of int labels, arrays with one-hot labels as ids (both via
    `keras_tl.data`'s adapters, which infer `num_classes`); lists of batches as they are."""
    import tensorflow as tf  # imported on first use, as keras_tl.data

    from keras_tl import data

    if y is not None:
        return data.as_arrays(x, y, num_classes, name="x, y")
    if isinstance(x, (data.Split, tf.data.Dataset)):
        split = data.plain_split(x, num_classes=num_classes, batch_size=batch_size, name="x")
        return split.dataset, None, num_classes or split.num_classes
    return x, y, num_classes


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
    """`(importance, examples)` from the cache if it holds every tap, else `(None, None)`."""
    if not path or not os.path.exists(path):
        return None, None
    with open(path) as f:
        cached = json.load(f)
    if all(isinstance(cached.get(tap), list) and cached[tap] for tap in taps):
        return {tap: cached[tap] for tap in taps}, cached.get(EXAMPLES_KEY)
    return None, None


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
    max_pass_mb=512,
    head_epochs=10,
    optimizer=None,
    loss=None,
    verbose=1,
):
    """DELTA's per-channel attention weights for each tapped layer (Alg. 1, Eq. 9), batched and cached.

    1. Train an L2-FE model: the source's frozen feature extractor with a new head
       (`l2_fe_model`; skipped when `source` already is a `TransferModel`).
    2. For every tap and channel j, the mean loss increase when channel j is zeroed, over
       the examples of the first `num_batches` training batches (the reference code uses
       4; Alg. 1 sums over the whole set, which only rescales the softmax input), batched
       (`keras_tl.channel_weights.channel_importance`).
    3. Normalise per layer (`normalize_importance`; default `"zscore_softmax"`).

    Step 2 runs in bounded memory (at most `max_pass_mb` MB of ablated copies per pass),
    shows a progress bar (`verbose=1`) and logs its cost (passes, seconds per tap) at INFO
    level: at ResNet-50 224 with the default taps it is the expensive step
    (`benchmarks/delta_attention_cost.py`).

    The raw increases of step 2 are cached in `cache_path` (JSON, `{layer: [float]}`, plus
    the example count under `"__examples__"` for `"sum_softmax"`):
    when it holds every tap, steps 1-2 are skipped, so a rerun (or another normalisation)
    costs nothing. The cache does not know which data or model produced it: one file per
    (source, target data) pair.

    Args:
        source: the source network (as for `keras_tl.TransferModel`), or a trained
            `TransferModel` used as the L2-FE model as it is.
        num_classes: target classes (not needed when `source` is a `TransferModel`; None: the
            largest label + 1 of `x, y` arrays or of a dataset).
        x, y: target training data: arrays `x, y` (int or one-hot labels), a
            `keras_tl.data.Split`, a `tf.data.Dataset` of `(images, labels)` (batched, or single
            examples batched by `batch_size`; see `keras_tl.data.as_split`), or a list of
            `(x, y)` batches (then `y` is None).
        taps: tap layer names (default: `source.taps` of a `TransferModel`, or
            `keras_tl.backbones.known_taps(source)`: a backbone name's or a keras-hub
            backbone's default taps).
        cache_path: JSON file of raw increases, read if complete, else written.
        normalization, temperature: see `normalize_importance`.
        num_batches: training batches aggregated in step 2.
        batch_size: batch size of arrays `x, y` and of an unbatched dataset (head training and step 2).
        chunk_size, max_pass_mb: at most this many channels, and megabytes of ablated
            copies, per suffix pass (see `channel_importance`).
        verbose: 1 shows a progress bar over the ablation passes, 0 is silent.
        head_epochs, optimizer: of the L2-FE head training.
        loss: per-example loss `loss(y, logits) -> [batch]` (default: sparse categorical
            cross-entropy on logits).

    Returns:
        `{tap: [float] * channels}`, each summing to 1: `channel_weights` for
        `keras_tl.regularizers.DELTA` and `L2SPAttention`.

    Example:
    >>> weights = keras_tl.channel_weights.delta_channel_weights(
    ...     "cifar_resnet20", num_classes=10, x=x_train, y=y_train,
    ...     cache_path="runs/delta_weights.json")
    >>> reg = keras_tl.regularizers.DELTA(alpha=0.01, channel_weights=weights)
    """
    _check_normalization(normalization, temperature)  # before any training
    if taps is None:
        if isinstance(source, TransferModel):
            taps = source.taps
        else:
            taps = backbones.known_taps(source)
    taps = check_taps_argument(taps)
    if not taps:
        where = f" of source {source.name!r}" if isinstance(source, keras.Model) else ""
        candidates = f" Layers with feature maps: {map_layers(source)}." if isinstance(source, keras.Model) else ""
        raise ValueError(
            "DELTA's channel attention (keras_tl.channel_weights.delta_channel_weights) weighs the channels of "
            f"tapped layers, but there are none. Received: taps={taps!r}. Pass taps=[layer names{where}] "
            "(keras_tl.fine_tune(..., taps=[...]) or Method.build(..., taps=[...])), e.g. the last layer "
            f"of each stage.{candidates}"
        )
    importance, examples = _read_cache(cache_path, taps)
    if importance is None:
        if x is None:
            raise ValueError("Expected target training data `x` (and `y` for arrays). Received: x=None")
        x, y, num_classes = _plain_data(x, y, num_classes, batch_size)
        if isinstance(source, TransferModel):
            model = source
        else:
            if num_classes is None:
                raise ValueError(
                    "Expected num_classes for a source that is not a TransferModel. Received: None"
                )
            model = l2_fe_model(source, num_classes, x, y, taps, head_epochs, batch_size, optimizer)
        batches = _batches(x, y, batch_size, num_batches)
        importance, stats = channel_importance(
            model,
            batches,
            taps=taps,
            chunk_size=chunk_size,
            loss=loss,
            return_stats=True,
            max_pass_mb=max_pass_mb,
            verbose=verbose,
        )
        examples = stats["examples"]
        if cache_path:
            _write_cache(cache_path, {**importance, EXAMPLES_KEY: examples})
    return normalize_importance(importance, normalization, temperature, examples)
