"""Regularization decay: the regularizers' coefficients multiplied by a factor after every epoch."""

import keras
from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.utils.validation import check_number


@keras_tl_export("keras_tl.callbacks.RegularizationDecay")
class RegularizationDecay(keras.callbacks.Callback):
    """Multiplies each regularizer's `scale` by `factor` at the end of every epoch.

    After epoch e (0-based) a term weighs `factor^(e+1)` times its coefficients: epoch 0
    trains with the coefficients as given. Every keras_tl regularizer multiplies its value
    by its `scale` variable, so the compiled step sees the change without retracing, on
    both backends (under JAX the variables are in sync with the training state at the end
    of an epoch). DTNH's experiments decay the regularization coefficient this way.

    Reference:
        Wan et al., "Towards Making Deep Transfer Learning Never Hurt", Sec. V-A ("the
        regularization coefficient decays at certain ratio, ranging from 0 to 1, per epoch").

    Args:
        factor: positive float multiplying the scale each epoch (e.g. 0.9).
        regularizers: names of the regularizers to decay (default: all of the model's).

    Example:
    >>> model.fit(ds, epochs=30, callbacks=[keras_tl.callbacks.RegularizationDecay(0.9)])
    """

    def __init__(self, factor, regularizers=None):
        super().__init__()
        factor = check_number("factor", factor, minimum=0, exclusive=True)
        if regularizers is not None and (
            isinstance(regularizers, str) or not all(isinstance(n, str) for n in regularizers)
        ):
            raise ValueError(
                f"Expected regularizers to be a list of regularizer names. Received: regularizers={regularizers!r}"
            )
        self.factor = float(factor)
        self.regularizers = None if regularizers is None else list(regularizers)

    def _selected(self):
        regs = getattr(self.model, "regularizers", None)
        if regs is None:
            raise TypeError(
                f"Expected a keras_tl.TransferModel. Received: model of type {type(self.model).__name__}"
            )
        if self.regularizers is None:
            return list(regs)
        by_name = {r.name: r for r in regs}
        unknown = [n for n in self.regularizers if n not in by_name]
        if unknown:
            raise ValueError(
                f"Expected names of the model's regularizers {sorted(by_name)}. Received unknown: {unknown}"
            )
        return [by_name[n] for n in self.regularizers]

    def on_train_begin(self, logs=None):
        self._selected()  # fail before the first epoch on unknown names

    def on_epoch_end(self, epoch, logs=None):
        for reg in self._selected():
            reg.scale.assign(float(ops.convert_to_numpy(reg.scale)) * self.factor)

    def get_config(self):
        return {"factor": self.factor, "regularizers": self.regularizers}
