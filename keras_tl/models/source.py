"""Splitting a source network into a tapped feature extractor and its upstream head."""

import dataclasses

import keras


@dataclasses.dataclass
class SourceParts:
    """`extractor`: model image -> {"features": [batch, dim], "taps": {name: map}};
    `head`: the upstream classifier as a logits `Dense` (or None); `feature_dim`: dim."""

    extractor: keras.Model
    head: keras.layers.Dense | None
    feature_dim: int


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


def split_source(model, taps=(), feature_layer=None, logits_head_name="source_head"):
    """Builds the tapped extractor over `model`'s own layers (it shares `model`'s weights).

    The features are `feature_layer`'s output if given; else, when the last layer is a
    `Dense` classifier, its input (and that classifier becomes the upstream head, as a new
    `Dense` without activation holding its weights, so it yields logits); else the output.
    A 4D feature map is globally average-pooled.
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
    if len(features.shape) != 2:
        raise ValueError(
            f"Expected 2D features or a 4D feature map. Received: features of shape {features.shape}"
        )
    outputs = {"features": features, "taps": {tap: model.get_layer(tap).output for tap in taps}}
    extractor = keras.Model(model.inputs, outputs, name=f"{model.name}_extractor")
    return SourceParts(extractor, head, int(features.shape[-1]))
