"""keras_tl: regularization-based deep transfer learning for Keras 3 (TensorFlow and JAX)."""

from keras_tl import (
    backbones,
    batchnorm,
    callbacks,
    channel_weights,
    diffusion,
    fine_tuning,
    gradients,
    interpolation,
    linear_probe,
    losses,
    methods,
    models,
    optimizers,
    pretraining,
    projection,
    regularizers,
    relationship,
    selection,
    semantic,
)
from keras_tl.api_export import public_names
from keras_tl.fine_tuning import fine_tune
from keras_tl.interpolation import wise_ft
from keras_tl.models import TransferModel
from keras_tl.pretraining import pretrain
from keras_tl.selection import select

__version__ = "0.2.0"

# Imported on first use: they build tf.data pipelines and SavedModels, which plain `model.fit`
# users (and the JAX backend) do not need at import time; `dir(keras_tl)` lists them all the same.
_LAZY_SUBMODULES = ("data", "distribute", "export", "testing")
_SUBMODULES = (
    "backbones",
    "batchnorm",
    "callbacks",
    "channel_weights",
    "diffusion",
    "fine_tuning",
    "gradients",
    "interpolation",
    "linear_probe",
    "losses",
    "methods",
    "models",
    "optimizers",
    "pretraining",
    "projection",
    "regularizers",
    "relationship",
    "selection",
    "semantic",
    *_LAZY_SUBMODULES,
)
# The public namespace: the submodules and what `keras_tl_export` put at `keras_tl.<name>`.
__all__ = sorted({*_SUBMODULES, *public_names("keras_tl")})


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"keras_tl.{name}")
    if name == "attention":
        # 0.2 renamed DELTA's channel weights so that "attention" means only the learned attention
        # layers of AFA and SPA/GCA; the old name keeps working for one release.
        import warnings

        warnings.warn(
            "keras_tl.attention is renamed keras_tl.channel_weights; the old name will be removed in 0.3.",
            DeprecationWarning,
            stacklevel=2,
        )
        return channel_weights
    raise AttributeError(f"module 'keras_tl' has no attribute {name!r}")


def __dir__():
    return list(__all__)
