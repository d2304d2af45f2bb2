"""Stop at the first NaN term, name it, and leave the last good checkpoint in place."""

import math

import keras
import numpy as np


def _ordered_terms(logs):
    """The data term first, then the regularizers in logged order, then the total."""
    keys = [k for k in ("empirical_loss",) if k in logs]
    keys += [k for k in logs if k.startswith("reg/")]
    return keys + [k for k in ("loss",) if k in logs]


class NaNGuard(keras.callbacks.Callback):
    """Raises `FloatingPointError` at the first batch whose loss terms are not finite.

    Unlike `keras.callbacks.TerminateOnNaN`, the error names which term went NaN first
    (`empirical_loss` or `reg/<name>`: the other terms of that batch are shown too), and it
    raises instead of finishing the epoch: `on_epoch_end` never runs with NaN weights, so
    `BackupAndRestore` and `ModelCheckpoint` keep the last good state and a rerun resumes
    from it.

    Example:
    >>> model.fit(ds, epochs=10, callbacks=[keras_tl.callbacks.NaNGuard(),
    ...                                     keras.callbacks.BackupAndRestore("backup")])
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        values = {k: float(np.asarray(logs[k])) for k in _ordered_terms(logs)}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            shown = ", ".join(f"{k}={v:.6g}" for k, v in values.items())
            raise FloatingPointError(
                f"Training stopped at epoch {getattr(self, '_epoch', 0) + 1}, batch {batch + 1}: "
                f"'{bad[0]}' went NaN/inf first ({shown}). The weights of the last completed epoch's "
                "checkpoint (BackupAndRestore / ModelCheckpoint) were not overwritten; lower the learning "
                f"rate or the coefficient of '{bad[0]}' and rerun to resume from it."
            )
