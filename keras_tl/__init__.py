"""keras_tl: regularization-based deep transfer learning for Keras 3 (TensorFlow and JAX)."""

from keras_tl import backbones, gradients, regularizers
from keras_tl.models import TransferModel

__version__ = "0.1.0"
