"""keras_tl: regularization-based deep transfer learning for Keras 3 (TensorFlow and JAX)."""

from keras_tl import (
    attention,
    backbones,
    callbacks,
    diffusion,
    gradients,
    losses,
    regularizers,
    relationship,
    semantic,
)
from keras_tl.models import TransferModel

__version__ = "0.1.0"
