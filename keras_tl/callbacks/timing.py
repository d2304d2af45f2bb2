"""Seconds per training step, measured without evaluation and without the first epoch's tracing."""

import time

import keras
import numpy as np

from keras_tl.api_export import keras_tl_export
from keras_tl.utils.validation import check_number


@keras_tl_export("keras_tl.callbacks.StepTimer")
class StepTimer(keras.callbacks.Callback):
    """Median seconds per training step over the epochs after the first (which includes tracing).

    Timed from `on_epoch_begin` to the last batch's end, so evaluation is not counted; the
    data pipeline is. With one epoch, that epoch is used.

    Args:
        steps_per_epoch: training steps in one epoch (`keras_tl.fine_tuning.steps_per_epoch`).

    Example:
    >>> timer = keras_tl.callbacks.StepTimer(steps_per_epoch=100)
    >>> model.fit(data, epochs=3, callbacks=[timer]); timer.step_seconds()
    """

    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = check_number("steps_per_epoch", steps_per_epoch, minimum=1, integer=True)
        self.epoch_seconds = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.steps_per_epoch - 1:
            self.epoch_seconds.append(time.perf_counter() - self._start)

    def get_config(self):
        return {"steps_per_epoch": self.steps_per_epoch}

    def step_seconds(self):
        """The median seconds per step, or None before the first full epoch."""
        timed = self.epoch_seconds[1:] or self.epoch_seconds
        return round(float(np.median(timed)) / self.steps_per_epoch, 5) if timed else None
