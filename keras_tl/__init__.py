"""keras_tl: regularization-based deep transfer learning for Keras 3 (TensorFlow and JAX)."""

from keras_tl import (
    attention,
    backbones,
    callbacks,
    diffusion,
    gradients,
    losses,
    methods,
    optimizers,
    regularizers,
    relationship,
    semantic,
)
from keras_tl.fine_tuning import fine_tune
from keras_tl.models import TransferModel
from keras_tl.pretraining import pretrain

__version__ = "0.1.0"

# Imported on first use: they build tf.data pipelines and SavedModels, which plain
# `model.fit` users (and the JAX backend) do not need at import time.
_LAZY_SUBMODULES = ("data", "export", "distribute", "testing")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"keras_tl.{name}")
    raise AttributeError(f"module 'keras_tl' has no attribute {name!r}")
