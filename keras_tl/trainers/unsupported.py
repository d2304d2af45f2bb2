"""Backends keras_tl does not train on yet (torch, numpy, openvino)."""

import keras


class UnsupportedTransferTrainer:
    def _unsupported(self, *args, **kwargs):
        raise NotImplementedError(
            f"keras_tl's TransferModel trains on the 'tensorflow' and 'jax' backends. Received: "
            f"KERAS_BACKEND={keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow or jax."
        )

    train_step = _unsupported
    test_step = _unsupported


def compile_function(fn):
    return fn


def loss_gradients(model, x, y, sample_weight=None):
    UnsupportedTransferTrainer()._unsupported()
