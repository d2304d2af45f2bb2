"""The backend's `train_step`/`test_step` for `TransferModel`, chosen once at import.

Like Keras' own `backend/<name>/trainer.py`: each backend has one module; the forward pass,
the loss terms and the metrics are backend-agnostic methods of `TransferModel`.
"""

import keras

_BACKEND = keras.backend.backend()
if _BACKEND == "tensorflow":
    from keras_tl.trainers.tensorflow import TensorFlowTransferTrainer as TransferTrainer
    from keras_tl.trainers.tensorflow import compile_function, loss_gradients
elif _BACKEND == "jax":
    from keras_tl.trainers.jax import JAXTransferTrainer as TransferTrainer
    from keras_tl.trainers.jax import compile_function, loss_gradients
else:
    from keras_tl.trainers.unsupported import UnsupportedTransferTrainer as TransferTrainer
    from keras_tl.trainers.unsupported import compile_function, loss_gradients
