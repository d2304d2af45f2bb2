"""One deterministic training step, shared by the multi-device and multi-worker tests' subprocesses."""

import keras
import numpy as np
from keras import layers

import keras_tl


def source():
    # No BatchNorm: under MirroredStrategy its batch statistics are per replica (see the trainer's doc).
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(6, 3, padding="same", name="c2")(x)
    x = layers.GlobalAveragePooling2D()(layers.Activation("relu")(x))
    model = keras.Model(inputs, layers.Dense(5, name="predictions")(x))
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    return model


def regularizers(case):
    if case == "delta":
        weights = {"c1": [0.1, 0.2, 0.3, 0.4], "c2": [1 / 6] * 6}
        return [keras_tl.regularizers.DELTA(relative=False, alpha=0.5, channel_weights=weights)]
    return [keras_tl.regularizers.L2SP(alpha=2.0, beta=0.1)]


def data():
    rng = np.random.default_rng(2)
    return rng.uniform(-1, 1, (8, 8, 8, 3)).astype("float32"), (np.arange(8) % 3).astype("int32")


def step(case, x=None, y=None, batch_size=8):
    """Builds the model for `case`, takes one `fit` step, returns (weights as lists, first-epoch logs)."""
    model = keras_tl.TransferModel(
        source(), 3, taps=["c1", "c2"], regularizers=regularizers(case),
        gradient_rule=keras_tl.gradients.DTNH() if case == "dtnh_l2_sp" else None,
    )
    rng = np.random.default_rng(1)
    for v in model.target_backbone.trainable_weights:
        v.assign(keras.ops.convert_to_numpy(v) + rng.normal(scale=0.05, size=v.shape).astype("float32"))
    model.head.set_weights([rng.normal(scale=0.3, size=w.shape).astype("float32") for w in model.head.get_weights()])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if x is None:
        x, y = data()
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False).history
    weights = [keras.ops.convert_to_numpy(v).tolist() for v in model.trainable_variables]
    return weights, {k: float(v[0]) for k, v in history.items()}
