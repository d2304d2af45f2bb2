"""Callbacks that change a `TransferModel`'s regularization or weights during `fit`, and keep training safe."""

from keras_tl.callbacks.auto_rgn import AutoRGNScales
from keras_tl.callbacks.backup import AtomicBackupAndRestore
from keras_tl.callbacks.decay import RegularizationDecay
from keras_tl.callbacks.nan_guard import NaNGuard
from keras_tl.callbacks.staged import StagedRegularization
from keras_tl.callbacks.timing import StepTimer
from keras_tl.callbacks.tpgm import TPGM
