"""The small attention networks of AFA (AST, ACT) and SPA/GCA, built for any map resolution.

Each is a Keras layer built from the shape of the map it attends to (the AFA reference code
hard-codes 224×224 inputs; these take H, W, C from the tapped map), returns softmax
attention weights in float32, and can `reinitialize()` its weights for a new training stage.
"""

import keras
from keras import ops

from keras_tl.regularizers.feature_maps import static_map_shape


def _fresh_draw(initializer, variable):
    # A Keras initializer built without a seed fixes one at construction, so calling it again
    # repeats the first draw; a copy with no seed draws a new one.
    config = initializer.get_config()
    if "seed" in config:
        config["seed"] = None
    variable.assign(type(initializer).from_config(config)(tuple(variable.shape), variable.dtype))


def _reinitialize_dense(dense):
    _fresh_draw(dense.kernel_initializer, dense.kernel)
    if dense.bias is not None:
        _fresh_draw(dense.bias_initializer, dense.bias)


class SpatialAttention(keras.layers.Layer):
    """softmax over positions of FC(HW→H)·ReLU·FC(H→HW) on a map's channel average.

    AFA's AST (Eq. 2) on the source map, and SPA (Eq. 7, Table 2) on the channel
    concatenation of source and target maps. As in the AFA code the first FC has no bias
    and the hidden width is the map's height H. Output: `[batch, H·W]`, rows sum to 1.
    """

    def __init__(self, **kwargs):
        super().__init__(dtype="float32", **kwargs)

    def build(self, input_shape):
        height, width, _ = static_map_shape(self.name, input_shape)
        self.positions = height * width
        self.hidden = keras.layers.Dense(
            height, use_bias=False, activation="relu", dtype="float32", name="fc1"
        )
        self.hidden.build((None, self.positions))
        self.scores = keras.layers.Dense(self.positions, dtype="float32", name="fc2")
        self.scores.build((None, height))

    def call(self, feature_map):
        pooled = ops.reshape(ops.mean(ops.cast(feature_map, "float32"), axis=-1), (-1, self.positions))
        return ops.softmax(self.scores(self.hidden(pooled)), axis=-1)

    def reinitialize(self):
        _reinitialize_dense(self.hidden)
        _reinitialize_dense(self.scores)


class ChannelAttention(keras.layers.Layer):
    """softmax over channels of FC(HW→H)·ReLU·FC(H→1) applied to each flattened channel, plus a bias.

    AFA's ACT (Eq. 4): `Flat(FM_S)` is `[batch, C, H·W]`; as in the AFA code both FCs have
    no bias and a learned per-channel bias is added before the softmax. Output:
    `[batch, C]`, rows sum to 1.
    """

    def __init__(self, **kwargs):
        super().__init__(dtype="float32", **kwargs)

    def build(self, input_shape):
        height, width, channels = static_map_shape(self.name, input_shape)
        self.positions, self.channels = height * width, channels
        self.hidden = keras.layers.Dense(
            height, use_bias=False, activation="relu", dtype="float32", name="fc1"
        )
        self.hidden.build((None, channels, self.positions))
        self.scores = keras.layers.Dense(1, use_bias=False, dtype="float32", name="fc2")
        self.scores.build((None, channels, height))
        self.bias = self.add_weight(shape=(channels,), initializer="zeros", name="bias")

    def call(self, feature_map):
        flat = ops.reshape(
            ops.transpose(ops.cast(feature_map, "float32"), (0, 3, 1, 2)), (-1, self.channels, self.positions)
        )
        scores = ops.squeeze(self.scores(self.hidden(flat)), axis=-1) + self.bias
        return ops.softmax(scores, axis=-1)

    def reinitialize(self):
        _reinitialize_dense(self.hidden)
        _reinitialize_dense(self.scores)
        self.bias.assign(ops.zeros(self.bias.shape, self.bias.dtype))


class GlobalChannelAttention(keras.layers.Layer):
    """softmax over all ΣC channels of FC(ΣC→ΣC/r)·ReLU·FC(ΣC/r→ΣC) on pooled source maps.

    SPA/GCA's GCA (Eq. 9, Table 2), squeeze-and-excitation style: the input is the
    concatenation of every tapped map's global average, `[batch, ΣC]`; both FCs have a
    bias (Table 2 does not say; SENet's have). The hidden width is `max(1, ΣC // r)`.
    Output: `[batch, ΣC]`, rows sum to 1 over all layers together.
    """

    def __init__(self, reduction=4, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.reduction = reduction

    def build(self, input_shape):
        total = input_shape[-1]
        self.hidden = keras.layers.Dense(
            max(1, total // self.reduction), activation="relu", dtype="float32", name="fc1"
        )
        self.hidden.build((None, total))
        self.scores = keras.layers.Dense(total, dtype="float32", name="fc2")
        self.scores.build((None, self.hidden.units))

    def call(self, pooled):
        return ops.softmax(self.scores(self.hidden(ops.cast(pooled, "float32"))), axis=-1)

    def reinitialize(self):
        _reinitialize_dense(self.hidden)
        _reinitialize_dense(self.scores)
