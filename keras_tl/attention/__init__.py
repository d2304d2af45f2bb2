"""DELTA's supervised channel attention (Alg. 1): which channels of each tapped layer matter.

`delta_channel_weights` runs the whole algorithm (L2-FE head, batched channel ablation,
normalisation, JSON cache) and returns the `channel_weights` of
`keras_tl.regularizers.DELTA` and `L2SPAttention`; its steps are public too.
"""

from keras_tl.attention.ablation import channel_importance, per_example_cross_entropy
from keras_tl.attention.brute_force import channel_importance_loop
from keras_tl.attention.delta import NORMALIZATIONS, delta_channel_weights, l2_fe_model, normalize_importance
