"""Regularizers of deep transfer learning, each a Keras layer returning one scalar term.

See `keras_tl.regularizers.base.Regularizer` for the contract `TransferModel` relies on.
"""

import keras

from keras_tl.regularizers.afa import ACT, AST
from keras_tl.regularizers.base import Regularizer
from keras_tl.regularizers.bss import BSS
from keras_tl.regularizers.co_tuning import CoTuning
from keras_tl.regularizers.delta import DELTA
from keras_tl.regularizers.discrepant_diffusion import DiscrepantDiffusion
from keras_tl.regularizers.distillation import FeatureMapDistillation
from keras_tl.regularizers.l2 import L2
from keras_tl.regularizers.l2_sp import L2SP
from keras_tl.regularizers.l2_sp_attention import L2SPAttention
from keras_tl.regularizers.lwf import LwF
from keras_tl.regularizers.spa_gca import GCA, SPA

# Every concrete regularizer: the contract test runs each through the same checks.
ALL = (L2, L2SP, FeatureMapDistillation, DELTA, L2SPAttention, AST, ACT, SPA, GCA, BSS, CoTuning, LwF, DiscrepantDiffusion)


def get(identifier):
    """Returns a regularizer from an instance, a config dict or a class name."""
    if isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    by_name = {cls.__name__: cls for cls in ALL}
    if isinstance(identifier, str) and identifier in by_name:
        return by_name[identifier]()
    raise ValueError(
        f"Expected a Regularizer, its config or one of {sorted(by_name)}. "
        f"Received: identifier={identifier!r}"
    )
