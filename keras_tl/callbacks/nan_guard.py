"""Stop at the first NaN term, name the term that diverged, and leave the last good checkpoint in place."""

import math

import keras
import numpy as np

from keras_tl.api_export import keras_tl_export

# A loss term this large has diverged: cross-entropy of a working network is below ~10, and
# a regularizer's coefficient is chosen to keep its term of the same order.
DIVERGED = 1e6


def _ordered_terms(logs):
    """The data term first, then the regularizers in logged order, then the total."""
    keys = [k for k in ("empirical_loss",) if k in logs]
    keys += [k for k in logs if k.startswith("reg/")]
    return keys + [k for k in ("loss",) if k in logs]


@keras_tl_export("keras_tl.callbacks.NaNGuard")
class NaNGuard(keras.callbacks.Callback):
    """Raises `FloatingPointError` at the first batch whose loss terms are not finite.

    Unlike `keras.callbacks.TerminateOnNaN`, the error names the term that diverged
    (`empirical_loss` or `reg/<name>`: the other terms of that batch are shown too), and it
    raises instead of finishing the epoch: `on_epoch_end` never runs with NaN weights, so
    the backup (`AtomicBackupAndRestore`, `BackupAndRestore`, `ModelCheckpoint`) keeps the
    last good state and a rerun resumes from it.

    Which term diverged: once the weights are NaN every term is, so the first NaN term in
    log order would blame `empirical_loss` for a regularizer that blew up. The guard keeps
    each term's last finite per-batch value (recovered from the epoch's running means) and
    names the term with the largest magnitude (inf counts as largest) when it exceeds
    `DIVERGED`; otherwise (e.g. a coefficient set to NaN) the first non-finite term.

    Example:
    >>> model.fit(ds, epochs=10, callbacks=[keras_tl.callbacks.NaNGuard(),
    ...                                     keras_tl.callbacks.AtomicBackupAndRestore("backup")])
    """

    def get_config(self):
        return {}

    def on_train_begin(self, logs=None):
        self._last_finite = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._means = {}

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        means = {k: float(np.asarray(logs[k])) for k in _ordered_terms(logs)}
        # Keras logs each term's running mean over the epoch's batches: undo it to get this batch's value.
        previous = getattr(self, "_means", {})
        current = {
            k: m if k not in previous else (batch + 1) * m - batch * previous[k] for k, m in means.items()
        }
        self._means = means
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if not bad:
            last = getattr(self, "_last_finite", {})
            last.update(current)
            self._last_finite = last
            return
        culprit, size = self._culprit(current, bad)
        shown = ", ".join(f"{k}={v:.6g}" for k, v in current.items())
        how = "went NaN/inf first" if culprit in bad else f"diverged first: it grew to {size:.3g}"
        hint = (
            "lower the learning rate"
            if culprit in ("empirical_loss", "loss")
            else f"lower the learning rate or the coefficient of regularizer '{culprit[len('reg/') :]}'"
        )
        raise FloatingPointError(
            f"Training stopped at epoch {getattr(self, '_epoch', 0) + 1}, batch {batch + 1}: "
            f"'{culprit}' {how} ({shown}). The weights of the last completed epoch's "
            f"checkpoint were not overwritten; {hint} and rerun to resume from it."
        )

    def _culprit(self, current, bad):
        terms = [k for k in current if k != "loss"] or list(current)
        last = getattr(self, "_last_finite", {})

        def size(key):
            value = current[key]
            if math.isinf(value):
                return math.inf
            # NaN is the consequence of inf or NaN weights: the term's size is its last finite value.
            return abs(value) if math.isfinite(value) else abs(last.get(key, 0.0))

        largest = max(terms, key=size)
        if size(largest) > DIVERGED:
            return largest, size(largest)
        return next((k for k in bad if k in terms), bad[0]), None
