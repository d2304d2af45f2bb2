"""Gradient rules: pure functions combining the empirical-loss and regularizer gradients."""

from keras_tl.gradients.base import GradientRule
from keras_tl.gradients.dtnh import DTNH, angle_degrees, dtnh
