"""Losses of deep transfer learning (used as `compile(loss=...)`, unlike regularizers)."""

from keras_tl.losses.prior_guided_diffusion import PriorGuidedDiffusion
from keras_tl.losses.sparse_binary_crossentropy import SparseBinaryCrossentropy
