"""Optimizer-style fine-tuning methods: Keras optimizer wrappers around the optimizer that fine-tunes.

Each wraps an inner `keras.optimizers.Optimizer` (the one the model would otherwise use) and
acts on the result of its step; its state (anchors, learned radii, scales) is optimizer
variables, which `.keras` files and `model.save_weights` checkpoints carry. One line each:

>>> model.compile(optimizer=keras_tl.optimizers.FTP(keras.optimizers.SGD(0.01, momentum=0.9)), ...)
"""

from keras_tl.optimizers.auto_rgn import AutoRGN, auto_rgn_scales
from keras_tl.optimizers.base import AnchoredWrapper, OptimizerWrapper
from keras_tl.optimizers.ftp import FTP, mars_norm
from keras_tl.optimizers.spd import SPD, spd_step
