"""CIFAR-style ResNets (He et al. 2016, Sec. 4.2): small sources for CPU-scale transfer."""

import keras
from keras import layers

DEPTHS = (8, 14, 20, 32, 44, 56, 110)
STAGE_FILTERS = (16, 32, 64)


def _basic_block(x, filters, stride, name):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_0_bn")(shortcut)
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_2_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def blocks_per_stage(depth):
    if depth not in DEPTHS:
        raise ValueError(f"Expected depth to be one of {DEPTHS}. Received: depth={depth}")
    return (depth - 2) // 6


def cifar_resnet(depth=20, input_shape=(32, 32, 3), include_top=False, classes=10, pooling="avg", name=None):
    """A CIFAR ResNet-`depth`: 3×3 stem, three stages of (depth−2)/6 basic blocks (16/32/64).

    Layer names follow `keras.applications.ResNet50` (`conv1_conv`, `conv{stage}_block{b}_{i}_conv`,
    stages numbered 2..4) so taps and L2-SP keys read the same across backbones.
    """
    n = blocks_per_stage(depth)
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1_conv")(inputs)
    x = layers.BatchNormalization(epsilon=1.001e-5, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    for stage, filters in enumerate(STAGE_FILTERS, start=2):
        for block in range(1, n + 1):
            stride = 2 if (block == 1 and stage > 2) else 1
            x = _basic_block(x, filters, stride, name=f"conv{stage}_block{block}")
    if include_top or pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    if include_top:
        x = layers.Dense(classes, name="predictions")(x)
    return keras.Model(inputs, x, name=name or f"cifar_resnet{depth}")


def cifar_resnet_taps(depth):
    """The last block's second conv of each stage (pre-BN, as DELTA's reference code taps)."""
    n = blocks_per_stage(depth)
    return [f"conv{stage}_block{n}_2_conv" for stage in (2, 3, 4)]
