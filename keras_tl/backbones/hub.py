"""keras-hub backbones as sources: by preset name, their default taps and their preprocessing.

keras-hub is an optional extra, imported only when a `"keras_hub:<preset>"` name or a
keras-hub model is met. Install it without the full `tensorflow` it would pull next to
`tensorflow-cpu` (keras-hub 0.32 requires `tensorflow-text`, which requires `tensorflow`):

    pip install "keras_tl[hub]"                  # keras-hub's other requirements
    pip install --no-deps "keras-hub==0.32.*"    # keras-hub itself

A preset is anything `keras_hub.models.Backbone.from_preset` takes: a built-in name
(`"resnet_50_imagenet"`), a `kaggle://` or `hf://` handle, or a local preset folder
(written by `backbone.save_to_preset(folder)`).
"""

import os
import sys

import keras
import numpy as np

PREFIX = "keras_hub:"
INSTALL_HINT = (
    "Install it as keras_tl's README says: pip install 'keras_tl[hub]' && "
    "pip install --no-deps 'keras-hub==0.32.*' (keras-hub's own requirements would pull the full "
    "tensorflow next to tensorflow-cpu)."
)


def is_hub_name(name):
    return isinstance(name, str) and name.startswith(PREFIX)


def preset_of(name):
    """`"keras_hub:resnet_50_imagenet"` → `"resnet_50_imagenet"` (an error for an empty preset)."""
    preset = name[len(PREFIX) :]
    if not preset:
        raise ValueError(
            f"Expected a keras-hub preset after {PREFIX!r}, e.g. 'keras_hub:resnet_50_imagenet' or "
            f"'keras_hub:/path/to/preset_folder'. Received: name={name!r}"
        )
    return preset


def import_keras_hub():
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(f"keras-hub backbones need the keras-hub package. {INSTALL_HINT}") from error
    return keras_hub


def is_hub_backbone(model):
    """Whether `model` is a `keras_hub.models.Backbone` (never imports keras-hub: a user's model made it so)."""
    keras_hub = sys.modules.get("keras_hub")
    return keras_hub is not None and isinstance(model, keras_hub.models.Backbone)


def _looks_like_fetch_failure(error):
    text = f"{type(error).__name__} {error}".lower()
    words = ("url", "fetch", "connection", "resolve", "network", "http", "name or service", "kaggle")
    return any(word in text for word in words)


def _offline_message(preset, error):
    return (
        f"Could not fetch keras-hub preset {preset!r} ({type(error).__name__}: {str(error)[:300]}). "
        "This machine is probably offline. On a machine with internet, save the preset to a folder: "
        f"keras_hub.models.Backbone.from_preset({preset!r}).save_to_preset('{preset}') and "
        f"keras_hub.layers.ImageConverter.from_preset({preset!r}).save_to_preset('{preset}'); copy "
        f"that folder here and pass 'keras_hub:/path/to/{preset}'. (Or copy kagglehub's cache, "
        "~/.cache/kagglehub/, which from_preset reads before the network.)"
    )


def _from_preset(cls, preset, **kwargs):
    try:
        return cls.from_preset(preset, **kwargs)
    except Exception as error:
        if _looks_like_fetch_failure(error):
            raise OSError(_offline_message(preset, error)) from error
        raise


def build(name, weights=None, input_shape=None):
    """The `keras_hub.models.Backbone` of preset `name` (`"keras_hub:<preset>"`).

    Args:
        name: `"keras_hub:<preset>"`.
        weights: `"preset"` (the preset's own pretrained weights), `None` (the preset's
            architecture, randomly initialised; only its config is fetched) or a local
            weights file (`.weights.h5`, as `backbone.save_weights` writes).
        input_shape: `(H, W, 3)`, passed as the backbone's `image_shape` when given.
    """
    keras_hub = import_keras_hub()
    preset = preset_of(name)
    if weights not in (None, "preset") and not os.path.isfile(str(weights)):
        raise FileNotFoundError(
            "Expected weights to be 'preset' (the preset's own weights), None (random initialisation) "
            f"or an existing weights file for keras-hub preset {preset!r}. Received: weights={weights!r}"
        )
    kwargs = {"image_shape": tuple(input_shape)} if input_shape is not None else {}
    backbone = _from_preset(keras_hub.models.Backbone, preset, load_weights=weights == "preset", **kwargs)
    if weights not in (None, "preset"):
        backbone.load_weights(weights)
    return backbone


def image_converter(name):
    """The preset's `keras_hub.layers.ImageConverter` (an error saying so when the preset has none)."""
    keras_hub = import_keras_hub()
    preset = preset_of(name)
    try:
        return _from_preset(keras_hub.layers.ImageConverter, preset)
    except (ValueError, FileNotFoundError) as error:
        raise ValueError(
            f"keras-hub preset {preset!r} has no image converter, so its preprocessing is unknown. "
            "Pass preprocess= a callable on 0..255 RGB images (or 'identity'). "
            f"(keras-hub said: {error})"
        ) from error


def preprocess_input(name):
    """`images → images · scale + offset`: the preset's image converter without its resizing.

    keras-hub's `ImageConverter` resizes to its `image_size`, then multiplies by `scale` and
    adds `offset` (per channel or scalar); the data pipeline resizes on its own, so only the
    affine part is kept, as a function of numpy or backend tensors of 0..255 RGB images.
    """
    converter = image_converter(name)
    scale = np.float32(1.0) if converter.scale is None else np.asarray(converter.scale, "float32")
    offset = np.float32(0.0) if converter.offset is None else np.asarray(converter.offset, "float32")

    def preprocess(images):
        return images * scale + offset

    return preprocess


def default_input_shape(name):
    """`(H, W, 3)`: the preset's image converter's size, else its backbone's `image_shape`."""
    keras_hub = import_keras_hub()
    try:
        size = image_converter(name).image_size
    except ValueError:
        size = None
    if size:
        return (int(size[0]), int(size[1]), 3)
    backbone = _from_preset(keras_hub.models.Backbone, preset_of(name), load_weights=False)
    return tuple(backbone.image_shape)


def default_taps(model):
    """Tap names of a keras-hub backbone: the layers producing its `pyramid_outputs`, else its output layer.

    keras-hub's image backbones (ResNet, CSPNet, EfficientNet, ...) expose their stages as
    `backbone.pyramid_outputs = {"P2": tensor, ..., "P5": tensor}`; each tensor is the output
    of one layer of the functional graph, whose name the tap machinery uses (shallow to
    deep, in `P` order). A backbone without a pyramid (ViT: patch embedding, then one
    `ViTEncoder` layer holding every transformer block) is tapped at its output layer, the
    token map `(batch, tokens, channels)` its classifier pools.
    """
    pyramid = getattr(model, "pyramid_outputs", None) or {}
    owners = {}
    for layer in model.layers:
        for tensor in keras.tree.flatten(_output_or_none(layer)):
            owners[id(tensor)] = layer.name
    taps = []
    for level in sorted(pyramid, key=_level_number):
        if id(pyramid[level]) not in owners:
            raise ValueError(
                f"Expected each of {type(model).__name__}.pyramid_outputs to be a layer's output. "
                f"Received: {level} is no layer's output"
            )
        taps.append(owners[id(pyramid[level])])
    if taps:
        return taps
    output = model.outputs[0]
    return [owners[id(output)]] if id(output) in owners else []


def _output_or_none(layer):
    try:
        return layer.output
    except (AttributeError, ValueError):  # a layer called more than once has no single output
        return None


def _level_number(level):
    digits = "".join(ch for ch in str(level) if ch.isdigit())
    return (int(digits) if digits else 0, str(level))


def token_pooling(model):
    """`"class_token"` or `"mean"`: how the backbone's own image classifier pools a token map.

    keras-hub's `ViTImageClassifier` takes the class token (`pooling="token"`, `x[:, 0]`,
    its default); a ViT built with `use_class_token=False` has no class token, and then the
    mean over tokens (`pooling="gap"`) is the classifier's choice. Any other model with
    token features: the mean over tokens (`GlobalAveragePooling1D`), the pooling that needs
    no knowledge of a class token.
    """
    if is_hub_backbone(model) and getattr(model, "use_class_token", False):
        return "class_token"
    return "mean"
