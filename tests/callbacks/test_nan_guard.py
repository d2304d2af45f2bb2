import os

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.regularizers import L2, L2SP
from tests.conftest import compile_sgd, tiny_data


class _PoisonAt(keras.callbacks.Callback):
    """Makes regularizer `name` NaN from epoch `epoch` on, and snapshots the weights before it."""

    def __init__(self, epoch, name):
        super().__init__()
        self.epoch, self.name, self.snapshot = epoch, name, None

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.snapshot = [keras.ops.convert_to_numpy(w) for w in self.model.weights]
            next(r for r in self.model.regularizers if r.name == self.name).scale.assign(float("nan"))


def test_names_the_first_nan_term_and_keeps_the_last_good_backup(source, tmp_path):
    def make():
        return compile_sgd(keras_tl.TransferModel(source, 3, regularizers=[L2SP(0.1, 0.01), L2(0.01)]))

    model = make()
    poison = _PoisonAt(1, "l2")
    backup = str(tmp_path / "backup")
    x, y = tiny_data()
    with pytest.raises(
        FloatingPointError, match=r"epoch 2, batch 1: 'reg/l2' went NaN/inf first \(empirical_loss="
    ):
        model.fit(
            x,
            y,
            batch_size=4,
            epochs=3,
            verbose=0,
            callbacks=[poison, keras_tl.callbacks.NaNGuard(), keras.callbacks.BackupAndRestore(backup)],
        )
    # The backup still holds the weights of the last good epoch, which a fresh model resumes from.
    restored = make()
    restored.load_weights(os.path.join(backup, "latest.weights.h5"))
    for value, expected in zip(restored.weights, poison.snapshot, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(value), expected)


def test_passes_finite_training(source):
    model = compile_sgd(keras_tl.TransferModel(source, 3, regularizers=[L2(0.01)]))
    x, y = tiny_data()
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[keras_tl.callbacks.NaNGuard()])
    assert np.isfinite(history.history["loss"][0])


def _feed(guard, batches):
    """Runs `guard` over one epoch of per-batch term values, logged as Keras does: running means."""
    guard.on_train_begin()
    guard.on_epoch_begin(1)
    sums = {}
    for batch, values in enumerate(batches):
        sums = {k: sums.get(k, 0.0) + v for k, v in values.items()}
        guard.on_train_batch_end(batch, {k: s / (batch + 1) for k, s in sums.items()})


def test_names_the_regularizer_that_blew_up_when_the_data_term_goes_nan_first():
    # As DELTA in a user's run: the term grows to 1e35 while finite; then the weights are
    # inf and the data term is the first NaN in log order.
    batches = [
        {"empirical_loss": 0.7, "reg/delta": 0.01, "loss": 0.71},
        {"empirical_loss": 0.6, "reg/delta": 2.5e35, "loss": 2.5e35},
        {"empirical_loss": float("nan"), "reg/delta": 3e36, "loss": float("nan")},
    ]
    with pytest.raises(FloatingPointError) as info:
        _feed(keras_tl.callbacks.NaNGuard(), batches)
    message = str(info.value)
    assert message.startswith(
        "Training stopped at epoch 2, batch 3: 'reg/delta' diverged first: it grew to 3e+36 ("
    )
    assert message.endswith(
        "The weights of the last completed epoch's checkpoint were not overwritten; lower the learning rate "
        "or the coefficient of regularizer 'delta' and rerun to resume from it."
    )


def test_names_the_data_term_with_the_learning_rate_only():
    batches = [
        {"empirical_loss": 0.7, "reg/l2": 0.01, "loss": 0.71},
        {"empirical_loss": float("inf"), "reg/l2": 0.02, "loss": float("inf")},
    ]
    with pytest.raises(FloatingPointError) as info:
        _feed(keras_tl.callbacks.NaNGuard(), batches)
    assert "'empirical_loss' went NaN/inf first (empirical_loss=inf, reg/l2=0.02, loss=inf)" in str(
        info.value
    )
    assert str(info.value).endswith("; lower the learning rate and rerun to resume from it.")
