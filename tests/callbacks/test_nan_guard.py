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
