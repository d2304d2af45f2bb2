"""DELTA's channel weights (Alg. 1, the paper's "supervised attention"): which channels of each tapped layer matter.

`delta_channel_weights` runs the whole algorithm (L2-FE head, batched channel ablation,
normalisation, JSON cache) and returns the `channel_weights` of
`keras_tl.regularizers.DELTA` and `L2SPAttention`; its steps are public too.
"""

from keras_tl.channel_weights.ablation import channel_importance, per_example_cross_entropy
from keras_tl.channel_weights.brute_force import channel_importance_loop
from keras_tl.channel_weights.delta import (
    NORMALIZATIONS,
    delta_channel_weights,
    l2_fe_model,
    normalize_importance,
)
