"""Tiny keras-hub backbones built from config (no weights, no network) for the tests."""

import keras
import numpy as np
import pytest

keras_hub = pytest.importorskip(
    "keras_hub",
    reason="keras-hub is not installed (CI installs it): pip install 'keras_tl[hub]' && "
    "pip install --no-deps 'keras-hub==0.32.*'",
)

IMAGE_SHAPE = (16, 16, 3)


def resnet(seed=0, **kwargs):
    """A two-stage basic-block ResNet (keras-hub requires 64 filters in the stem and first stage)."""
    keras.utils.set_random_seed(seed)
    config = dict(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=IMAGE_SHAPE,
    )
    return keras_hub.models.ResNetBackbone(**{**config, **kwargs})


def vit(seed=0, **kwargs):
    """A two-block ViT on 4×4 patches: 16 patch tokens plus the class token, 16 channels."""
    keras.utils.set_random_seed(seed)
    config = dict(image_shape=IMAGE_SHAPE, patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)
    return keras_hub.models.ViTBackbone(**{**config, **kwargs})


BACKBONES = {"resnet": resnet, "vit": vit}


def images(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + IMAGE_SHAPE).astype("float32")
