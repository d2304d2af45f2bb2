"""Refreshes Auto-RGN's per-variable learning-rate scales from a few batches at the start of every epoch."""

import itertools

import keras
import numpy as np
from keras import ops

from keras_tl import trainers
from keras_tl.api_export import keras_tl_export
from keras_tl.optimizers.auto_rgn import AutoRGN
from keras_tl.utils.validation import check_number


def _find_auto_rgn(optimizer):
    """The `AutoRGN` in `optimizer`'s chain of inner optimizers (a `LossScaleOptimizer` wraps it under mixed precision)."""
    while optimizer is not None:
        if isinstance(optimizer, AutoRGN):
            return optimizer
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return None


def _is_arrays(data):
    return isinstance(data, tuple) and len(data) in (2, 3) and all(hasattr(part, "shape") for part in data)


def _norm(value):
    return float(ops.convert_to_numpy(ops.sqrt(ops.sum(ops.square(ops.cast(value, "float32"))))))


@keras_tl_export("keras_tl.callbacks.AutoRGNScales")
class AutoRGNScales(keras.callbacks.Callback):
    """Sets the model's `keras_tl.optimizers.AutoRGN` scales at the start of every epoch.

    For each of the first `num_batches` batches of `data`, the gradient of the compiled loss
    (training mode, at the weights the epoch starts from; no step is taken) gives ‖g_l‖ per
    variable; with ‖θ_l‖ these give the scales (`keras_tl.optimizers.auto_rgn_scales`). As in
    the official code (`get_lr_weights` in anniesch/surgical-finetuning `main.py`): 5 batches,
    drawn anew from the training data each epoch (a shuffled dataset gives other batches), the
    refresh before the epoch's first step. The last scales are in `scales`, `{path: scale}`.

    Args:
        data: the batches: a `tf.data.Dataset` or any re-iterable of `(x, y)` / `(x, y,
            sample_weight)` batches, or a tuple of arrays `(x, y[, sample_weight])` cut into
            `batch_size` batches.
        num_batches: how many batches (the official 5).
        batch_size: the batch size for a tuple of arrays.

    Example:
    >>> model.compile(optimizer=keras_tl.optimizers.AutoRGN(keras.optimizers.Adam(1e-3)), loss=...)
    >>> model.fit(train_ds, epochs=10, callbacks=[keras_tl.callbacks.AutoRGNScales(train_ds)])
    """

    def __init__(self, data, num_batches=5, batch_size=None):
        super().__init__()
        self.num_batches = check_number("num_batches", num_batches, minimum=1, integer=True)
        if _is_arrays(data):
            self.batch_size = check_number("batch_size", batch_size, minimum=1, integer=True)
        elif batch_size is not None:
            raise ValueError(
                f"Expected batch_size only with a tuple of arrays (x, y). Received: batch_size={batch_size!r}"
            )
        elif isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
            raise ValueError(
                "Expected data to be a re-iterable of (x, y) batches (e.g. a tf.data.Dataset) or a tuple of "
                f"arrays (x, y) with batch_size. Received: data={data!r}"
            )
        else:
            self.batch_size = None
        self.data = data
        self.scales = {}

    def _batches(self):
        if self.batch_size is None:
            batches = iter(self.data)
        else:
            count = len(self.data[0])
            batches = (
                tuple(part[start : start + self.batch_size] for part in self.data)
                for start in range(0, count, self.batch_size)
            )
        return itertools.islice(batches, self.num_batches)

    def _optimizer(self):
        optimizer = _find_auto_rgn(getattr(self.model, "optimizer", None))
        if optimizer is None:
            raise ValueError(
                "Expected the model to be compiled with a keras_tl.optimizers.AutoRGN (possibly inside a "
                f"LossScaleOptimizer). Received: optimizer={getattr(self.model, 'optimizer', None)!r}"
            )
        return optimizer

    def on_train_begin(self, logs=None):
        self._optimizer()  # fail before the first epoch

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self._optimizer()
        variables = self.model.trainable_variables
        if not optimizer.built:
            self.model.optimizer.build(variables)  # its scales must exist to be set
        gradient_norms = []
        for batch in self._batches():
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
                keras.tree.map_structure(np.asarray, batch)
            )
            gradients = trainers.loss_gradients(self.model, x, y, sample_weight)
            gradient_norms.append([_norm(g) for g in gradients])
        if not gradient_norms:
            raise ValueError("Expected data with at least one batch. Received: an empty data")
        weight_norms = [_norm(v) for v in variables]
        scales = optimizer.set_scales(variables, np.asarray(gradient_norms), np.asarray(weight_norms))
        self.scales = {v.path: float(s) for v, s in zip(variables, scales, strict=True)}

    def get_config(self):
        return {"num_batches": self.num_batches, "batch_size": self.batch_size}
