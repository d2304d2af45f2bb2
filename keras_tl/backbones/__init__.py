"""Source networks by name: keras.applications models, small CIFAR ResNets and keras-hub presets, with their taps.

`build(name, weights=..., input_shape=...)` returns a functional Keras model; `default_taps(name)`
the papers' feature layers (the last block of each stage). `"keras_hub:<preset>"` names a
keras-hub backbone (an optional extra, see `keras_tl.backbones.hub`), tapped at its
`pyramid_outputs`. Any functional model works as a source too, with taps named by the user.
"""

import os

import keras

from keras_tl.backbones import hub
from keras_tl.backbones.cifar_resnet import DEPTHS, cifar_resnet, cifar_resnet_taps

_APPLICATIONS = {
    "resnet50": ("ResNet50", "resnet", (224, 224, 3)),
    "resnet101": ("ResNet101", "resnet", (224, 224, 3)),
    "mobilenet_v3_large": ("MobileNetV3Large", None, (224, 224, 3)),
    "inception_v3": ("InceptionV3", "inception_v3", (299, 299, 3)),
}
_APPLICATION_TAPS = {
    # ResNet: the third conv of the last block of each stage (DELTA's reference taps).
    "resnet50": ["conv2_block3_3_conv", "conv3_block4_3_conv", "conv4_block6_3_conv", "conv5_block3_3_conv"],
    "resnet101": ["conv2_block3_3_conv", "conv3_block4_3_conv", "conv4_block23_3_conv", "conv5_block3_3_conv"],
    # MobileNetV3: the projection conv of the last inverted-residual block at each resolution.
    "mobilenet_v3_large": [
        "expanded_conv_2_project",
        "expanded_conv_5_project",
        "expanded_conv_11_project",
        "expanded_conv_14_project",
    ],
    # InceptionV3: the output of the last Inception module of each grid size (35, 17, 8).
    "inception_v3": ["mixed2", "mixed7", "mixed10"],
}
CIFAR_NAMES = tuple(f"cifar_resnet{depth}" for depth in DEPTHS)
NAMES = tuple(_APPLICATIONS) + CIFAR_NAMES


def _check_name(name):
    if name not in NAMES:
        raise ValueError(
            f"Unknown backbone. Expected one of {list(NAMES)} or '{hub.PREFIX}<preset>'. Received: name={name!r}"
        )


def default_taps(name):
    """The papers' feature layers of backbone `name` (one per stage, shallow to deep).

    `name` may also be a built model: a keras-hub backbone (its `pyramid_outputs`' layers,
    see `keras_tl.backbones.hub.default_taps`) or a model named after a backbone of `NAMES`.
    A `"keras_hub:<preset>"` name builds the preset's architecture (no weights) to read them.
    """
    if isinstance(name, keras.Model):
        if hub.is_hub_backbone(name):
            return hub.default_taps(name)
        name = name.name
    if hub.is_hub_name(name):
        return hub.default_taps(hub.build(name, weights=None))
    _check_name(name)
    if name in CIFAR_NAMES:
        return cifar_resnet_taps(int(name[len("cifar_resnet") :]))
    return list(_APPLICATION_TAPS[name])


def known_taps(source):
    """`default_taps(source)` for a backbone name or model it knows, else `[]`."""
    if isinstance(source, keras.Model):
        known = hub.is_hub_backbone(source) or source.name in NAMES
    else:
        known = hub.is_hub_name(source) or source in NAMES
    return default_taps(source) if known else []


def default_input_shape(name):
    if hub.is_hub_name(name):
        return hub.default_input_shape(name)
    _check_name(name)
    return (32, 32, 3) if name in CIFAR_NAMES else _APPLICATIONS[name][2]


def preprocess_input(name):
    """The function mapping 0..255 RGB images to what backbone `name` expects.

    For `"keras_hub:<preset>"`: the affine part of the preset's image converter.
    """
    if hub.is_hub_name(name):
        return hub.preprocess_input(name)
    _check_name(name)
    if name in CIFAR_NAMES:
        return lambda images: images / 127.5 - 1.0
    module_name = _APPLICATIONS[name][1]
    if module_name is None:  # MobileNetV3 rescales inside the model.
        return lambda images: images
    return getattr(keras.applications, module_name).preprocess_input


def _offline_message(name, error):
    return (
        f"Could not fetch the ImageNet weights of backbone {name!r} ({type(error).__name__}: {error}). "
        "This machine is probably offline. Download the weights file keras.applications uses for this "
        "model on a machine with internet (e.g. run `keras.applications."
        f"{_APPLICATIONS[name][0]}(weights='imagenet', include_top=False)` there and copy the file from "
        "~/.keras/models/), then pass weights='/path/to/that_file.h5', or put it in ~/.keras/models/ here."
    )


def build(name, weights=None, input_shape=None, include_top=False, classes=1000, pooling="avg"):
    """Builds source network `name`.

    Args:
        name: one of `NAMES`, or `"keras_hub:<preset>"` (a keras-hub preset name, handle or
            local preset folder; `include_top`, `classes` and `pooling` do not apply).
        weights: `"imagenet"` (keras.applications only), `"preset"` (keras-hub presets: the
            preset's own weights), a path to a local weights file (`.weights.h5` / `.h5`), or
            `None` for random initialisation. Offline, `"imagenet"` and `"preset"` fail within
            seconds with a message saying how to pass a local file or folder.
        input_shape: `(H, W, 3)`; defaults to the backbone's native resolution.
        include_top: keep the classifier (`classes` logits for CIFAR ResNets; the 1000-way
            ImageNet head with a softmax for keras.applications).
        classes: number of classes of the top.
        pooling: `"avg"`, `"max"` or `None` when `include_top=False`.

    Returns:
        A functional `keras.Model`.

    Example:
    >>> source = keras_tl.backbones.build("resnet50", weights="imagenet", input_shape=(224, 224, 3))
    >>> taps = keras_tl.backbones.default_taps("resnet50")
    >>> hub_source = keras_tl.backbones.build("keras_hub:resnet_50_imagenet", weights="preset")
    """
    if hub.is_hub_name(name):
        return hub.build(name, weights=weights, input_shape=input_shape)
    _check_name(name)
    input_shape = tuple(input_shape or default_input_shape(name))
    if weights not in (None, "imagenet") and not os.path.isfile(str(weights)):
        raise FileNotFoundError(
            f"Expected weights to be 'imagenet', None or an existing file. Received: weights={weights!r}"
        )
    if name in CIFAR_NAMES:
        if weights == "imagenet":
            raise ValueError(
                f"Backbone {name!r} has no ImageNet weights. Expected weights=None or a local file "
                "(e.g. one written by `python -m apps.pretrain`). Received: weights='imagenet'"
            )
        model = cifar_resnet(
            int(name[len("cifar_resnet") :]), input_shape, include_top, classes, pooling
        )
        if weights is not None:
            model.load_weights(weights)
        return model
    constructor = getattr(keras.applications, _APPLICATIONS[name][0])
    try:
        return constructor(
            weights=weights,
            include_top=include_top,
            input_shape=input_shape,
            classes=classes,
            pooling=pooling,
        )
    except Exception as error:
        if weights == "imagenet" and _looks_like_fetch_failure(error):
            raise OSError(_offline_message(name, error)) from error
        raise


def _looks_like_fetch_failure(error):
    text = f"{type(error).__name__} {error}".lower()
    return any(word in text for word in ("url", "fetch", "connection", "resolve", "network", "http", "name or service"))
