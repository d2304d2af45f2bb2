"""BatchNorm statistics re-estimated for weights that were not trained with them (averaged, interpolated)."""

import keras
import numpy as np

from keras_tl.api_export import keras_tl_export
from keras_tl.utils.batches import NumpyBatches


def batchnorm_layers(model):
    """Every `keras.layers.BatchNormalization` in `model` and the models nested in it, each once."""
    found, seen, stack = [], set(), [model]
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        stack.extend(getattr(layer, "layers", None) or ())
    return found


@keras_tl_export("keras_tl.batchnorm.update_statistics")
def update_statistics(model, data, steps=None, batch_size=64):
    """Sets each BatchNorm layer's moving mean and variance to their average over `data`'s batches.

    μ_l = (1/B)·Σ_b mean_b(x_l),  σ²_l = (1/B)·Σ_b var_b(x_l), with x_l layer l's input on batch b
    in training mode (the statistics the layer normalizes with while training: Keras' biased
    batch variance) and B the batches read. Weights are not changed; no gradient is taken.

    Why: a model whose weights were not the ones trained, such as WiSE-FT's interpolation
    (1 − α)·θ_0 + α·θ_1, has no statistics of its own; interpolating the two ends' moving
    statistics does not give them (the "variance collapse" of interpolated BatchNorm networks,
    Jordan et al., "REPAIR", ICLR 2023, Sec. 3). Measured on tin-b (docs/benchmarks/notes.md,
    2026-12-06): an L2 fine-tune interpolated towards its source falls from 19.6 % validation
    top-1 at α = 1 to 2.9-5.5 % for α in [0.4, 0.9] with interpolated statistics, and reads
    19.0-20.7 % with statistics re-estimated here.

    Reference: Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
    Generalization", UAI 2018, Sec. 3.2 (one pass over the training data to compute the BatchNorm
    statistics of the averaged weights); `torch.optim.swa_utils.update_bn`, whose conventions are
    kept: statistics reset, every batch weighted equally (`momentum=None`, a cumulative average),
    the layers in training mode for the pass and as they were after it. A layer frozen with
    `trainable=False` (which Keras runs in inference mode) is updated too.

    Args:
        model: a Keras model or layer; called as `model(x, training=True)` on each batch.
        data: training images: `(x, y)` arrays, a split from `keras_tl.data.load`, or a finite
            dataset of `(x, y)` batches (its own augmentation applies, as in SWA's pass).
        steps: read at most this many batches (default: one pass).
        batch_size: for array data.

    Returns:
        The number of BatchNorm layers updated.

    Example:
    >>> keras_tl.batchnorm.update_statistics(model.target_backbone, train)
    """
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"Expected steps to be a positive integer or None. Received: steps={steps!r}")
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    saved = [(layer.momentum, layer.trainable) for layer in layers]
    before = [[keras.ops.convert_to_numpy(v) for v in (layer.moving_mean, layer.moving_variance)] for layer in layers]
    sums = [[0.0, 0.0] for _ in layers]
    batches, values = 0, before  # a failed pass leaves the statistics as they were
    try:
        for layer in layers:
            # Momentum 0: after each call the moving statistics are that batch's, read and summed below.
            layer.momentum, layer.trainable = 0.0, True
        for x, _ in NumpyBatches(data, batch_size, name="data").as_numpy_iterator():
            if steps is not None and batches >= steps:
                break
            model(x, training=True)
            for total, layer in zip(sums, layers, strict=True):
                total[0] += keras.ops.convert_to_numpy(layer.moving_mean).astype("float64")
                total[1] += keras.ops.convert_to_numpy(layer.moving_variance).astype("float64")
            batches += 1
        values = [[mean / batches, variance / batches] for mean, variance in sums]
    finally:
        for layer, (momentum, trainable), pair in zip(layers, saved, values, strict=True):
            layer.momentum, layer.trainable = momentum, trainable
            for variable, value in zip((layer.moving_mean, layer.moving_variance), pair, strict=True):
                variable.assign(np.asarray(value, dtype=variable.dtype))
    return len(layers)
