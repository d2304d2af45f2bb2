"""Splitting a source network into a tapped feature extractor and its upstream head.

Also what a source must be (`check_functional`) and the dtype policy its copies follow
(`follow_global_policy`).
"""

import collections
import dataclasses

import keras

from keras_tl.api_export import keras_tl_export
from keras_tl.backbones import hub


@dataclasses.dataclass
class SourceParts:
    """`extractor`: model image -> {"features": [batch, dim], "taps": {name: map}};
    `head`: the upstream classifier as a logits `Dense` (or None); `feature_dim`: dim."""

    extractor: keras.Model
    head: keras.layers.Dense | None
    feature_dim: int


@keras_tl_export("keras_tl.models.ClassToken")
class ClassToken(keras.layers.Layer):
    """`(batch, tokens, channels) → (batch, channels)`: the first token, a ViT's class token.

    What keras-hub's `ViTImageClassifier` feeds its head (`pooling="token"`, `x[:, 0]`).
    """

    def call(self, tokens):
        return tokens[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def check_taps(model, taps):
    names = [layer.name for layer in model.layers]
    unknown = [tap for tap in taps if tap not in names]
    if unknown:
        raise ValueError(
            f"Unknown tap layer(s) {unknown} in model {model.name!r}. Expected names from the "
            f"available layers: {names}"
        )
    if len(set(taps)) != len(taps):
        raise ValueError(f"Expected unique tap names. Received: taps={list(taps)}")


def check_functional(source):
    """Raises a `TypeError` unless `source` has a functional graph (inputs, outputs, layer outputs).

    `TransferModel` rebuilds the source from its config, pairs its weights layer by layer and
    taps layer outputs: a subclassed model (its graph is Python code in `call`) has none of these.
    """
    try:
        graph = bool(source.inputs) and bool(source.outputs)
    except AttributeError:
        graph = False
    if not graph:
        raise TypeError(
            "Expected a functional source: keras.Model(inputs, outputs), keras.Sequential with an input "
            "shape, a keras.applications model or a keras-hub backbone (TransferModel copies its layers "
            f"and taps their outputs). Received: source {source.name!r} of class {type(source).__name__}, "
            "a subclassed model with no graph of layers. Rebuild it functionally, e.g. "
            "inputs = keras.Input(shape); keras.Model(inputs, your_model(inputs)) (then its only tap is "
            "the whole model), or write its layers as a functional graph."
        )


def split_source(model, taps=(), feature_layer=None, logits_head_name="source_head"):
    """Builds the tapped extractor over `model`'s own layers (it shares `model`'s weights).

    The features are `feature_layer`'s output if given; else, when the last layer is a
    `Dense` classifier, its input (and that classifier becomes the upstream head, as a new
    `Dense` without activation holding its weights, so it yields logits); else the output.
    A 4D feature map is globally average-pooled. A token map `(batch, tokens, channels)`
    (a ViT) is pooled as the backbone's own classifier does (`hub.token_pooling`): the class
    token for a keras-hub ViT with one (`ViTImageClassifier`'s default `pooling="token"`),
    else the mean over tokens.
    """
    check_taps(model, taps)
    last = model.layers[-1]
    head = None
    if feature_layer is not None:
        check_taps(model, [feature_layer])
        features = model.get_layer(feature_layer).output
    elif isinstance(last, keras.layers.Dense):
        features = last.input
        head = keras.layers.Dense(last.units, name=logits_head_name)
        head.build(tuple(features.shape))
        head.set_weights(last.get_weights())
    else:
        features = model.outputs[0]
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D(name="tl_avg_pool")(features)
    elif len(features.shape) == 3 and hub.token_pooling(model) == "class_token":
        features = ClassToken(name="tl_class_token")(features)
    elif len(features.shape) == 3:
        features = keras.layers.GlobalAveragePooling1D(name="tl_avg_pool")(features)
    if len(features.shape) != 2:
        raise ValueError(
            "Expected 2D features, a 4D feature map or a 3D token map (batch, tokens, channels). "
            f"Received: features of shape {features.shape}"
        )
    outputs = {"features": features, "taps": {tap: model.get_layer(tap).output for tap in taps}}
    extractor = keras.Model(model.inputs, outputs, name=f"{model.name}_extractor")
    return SourceParts(extractor, head, int(features.shape[-1]))


# ---------------------------------------------------------------- dtype policy of the copies

_POLICY_CLASSES = ("DTypePolicy", "FloatDTypePolicy")


def _policy_dicts(config):
    """Every serialized float dtype policy inside a (nested) model config."""
    if isinstance(config, dict):
        if config.get("class_name") in _POLICY_CLASSES and isinstance(config.get("config"), dict):
            yield config
            return
        for value in config.values():
            yield from _policy_dicts(value)
    elif isinstance(config, list):
        for value in config:
            yield from _policy_dicts(value)


def follow_global_policy(config, policy=None):
    """`config` (a serialized source) with its layers' dtype policy replaced by the global one.

    A model saved (or built) under `float32` stores `float32` in every layer's config, so a
    copy deserialized under `mixed_float16` would keep computing in float32 (a ResNet-50
    `.keras` file: 143 of its 150 layers). The policy most of the source's layers hold is
    taken as the one it was built under and replaced by `policy` (default: the global
    `keras.config.dtype_policy()`); layers with another policy were given it on purpose
    (e.g. a float32 softmax in a mixed-precision model) and keep it. Variables stay float32
    under the `mixed_*` policies, so the frozen source copy holds the source's exact
    weights (L2-SP's ‖w − w*‖² is 0 at the start) and computes in the compute dtype.

    Returns:
        The config, changed in place.
    """
    policy = keras.dtype_policies.get(policy or keras.config.dtype_policy())
    found = list(_policy_dicts(config))
    if not found:
        return config
    counts = collections.Counter(entry["config"].get("name") for entry in found)
    built_under = counts.most_common(1)[0][0]
    if built_under == policy.name:
        return config
    replacement = keras.dtype_policies.serialize(policy)
    for entry in found:
        if entry["config"].get("name") == built_under:
            entry.clear()
            entry.update(replacement)
    return config
