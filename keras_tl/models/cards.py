"""Model cards: a saved `.keras` model with a `.json` beside it saying what using it needs.

A card is a JSON-safe dict: `kind` (`"source"` or `"classifier"`), `backbone`, `preprocess`,
`image_size`, `class_names`, `dataset`, ... `keras_tl.pretrain` and `apps.finetune` write one;
evaluation, export and fine-tuning read it to know the model's preprocessing and input size.
"""

import json
import os

import keras

from keras_tl import backbones
from keras_tl.models.loading import load_model, load_weights

PREPROCESS_CHOICES = ("identity",) + backbones.NAMES


def card_path(model_path):
    """`runs/x/source.keras` → `runs/x/source.json`."""
    return os.path.splitext(model_path)[0] + ".json"


def save_model(model, path, card):
    """Saves `model` to `path` (`.keras`) and `card` (a JSON-safe dict) beside it (see `card_path`).

    Example:
    >>> keras_tl.models.save_model(model, "runs/source.keras", {"kind": "source", "preprocess": "cifar_resnet20"})
    """
    if not str(path).endswith(".keras"):
        raise ValueError(f"Expected path to end in '.keras'. Received: path={path!r}")
    if not isinstance(card, dict):
        raise ValueError(f"Expected card to be a dict. Received: card={card!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(path)
    with open(card_path(path), "w") as handle:
        json.dump(card, handle, indent=2)


def load_card(path):
    """The card saved beside model `path` (`{}` if there is none)."""
    if not os.path.isfile(card_path(path)):
        return {}
    with open(card_path(path)) as handle:
        return json.load(handle)


def load_model_and_card(path, unsafe_deserialization=False):
    """`(model, card)` of a `.keras` file saved by `save_model` (card `{}` if none), uncompiled.

    See `keras_tl.models.load_model` for `unsafe_deserialization`.

    Example:
    >>> model, card = keras_tl.models.load_model_and_card("runs/finetune/best_model.keras")
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Expected a saved Keras model file. Received: {path!r} (no such file)")
    model = load_model(path, unsafe_deserialization=unsafe_deserialization, compile=False)
    return model, load_card(path)


def input_size(model):
    """`(height, width)` of the model's image input (entries `None` where it has no fixed size)."""
    return tuple(None if d is None else int(d) for d in model.inputs[0].shape[1:3])


def resolve_preprocess(preprocess="", card=None, model_name=None):
    """The preprocessing: `preprocess` if given, else the card's, else the backbone's by model name.

    Raises:
        ValueError: when none of them names one.
    """
    if preprocess:
        return preprocess
    if card and card.get("preprocess"):
        return card["preprocess"]
    if model_name in backbones.NAMES:
        return model_name
    raise ValueError(
        f"Cannot tell the model's preprocessing (no card names it, and {model_name!r} is no backbone). "
        f"Expected preprocess (apps: --preprocess) to be one of {list(PREPROCESS_CHOICES)}. Received: "
        f"preprocess={preprocess!r}"
    )


def load_source(source, weights=None, image_size=None, unsafe_deserialization=False, seed=0, preprocess=""):
    """A source network with what fine-tuning it needs: `(model, taps, preprocess, image size)`.

    Args:
        source: a backbone name from `keras_tl.backbones.NAMES`, `"keras_hub:<preset>"`, or a
            `.keras` file (with its card, e.g. from `keras_tl.pretrain`).
        weights: for a backbone name: `None` (random, from `seed`), `"imagenet"`, or a weights file
            (a `.weights.h5` must fit exactly, see `keras_tl.models.load_weights`); for a keras-hub
            preset `"preset"` (its own weights), `None` or a weights file.
        image_size: `(height, width)` for a backbone name; `None`: the backbone's default.
        unsafe_deserialization: see `keras_tl.models.load_model`.
        seed: initialises a backbone without weights, so one call gives one model.
        preprocess: the preprocessing, over the card's or the backbone's (`resolve_preprocess`):
            what a `.keras` source without a card needs (apps: `--preprocess`, e.g. `"identity"`).

    Returns:
        `(model, taps, preprocess, image_size)`: taps are the backbone's default taps (`[]` for an
        unknown architecture), preprocess the card's or the backbone's.

    Example:
    >>> model, taps, preprocess, size = keras_tl.models.load_source("runs/tin/source.keras")
    """
    if backbones.hub.is_hub_name(source):  # weights: "preset", None or a file (see backbones.build)
        size = tuple(image_size) if image_size else backbones.default_input_shape(source)[:2]
        keras.utils.set_random_seed(seed)
        model = backbones.build(source, weights=weights or None, input_shape=size + (3,))
        return model, backbones.default_taps(model), source, size
    if source in backbones.NAMES:
        size = tuple(image_size) if image_size else backbones.default_input_shape(source)[:2]
        keras.utils.set_random_seed(seed)
        strict = bool(weights) and weights.endswith(".weights.h5")
        model = backbones.build(source, weights=None if strict else weights or None, input_shape=size + (3,))
        if strict:  # a mismatched file fails naming each variable
            load_weights(model, weights)
        return model, backbones.default_taps(source), preprocess or source, size
    if not str(source).endswith(".keras"):
        raise ValueError(
            f"Expected source to be a backbone name from {list(backbones.NAMES)} or a saved model file "
            f"ending in '.keras'. Received: source={source!r}"
        )
    model, card = load_model_and_card(source, unsafe_deserialization)
    name = card.get("backbone") or model.name
    taps = backbones.default_taps(name) if name in backbones.NAMES else []
    return model, taps, resolve_preprocess(preprocess, card, name), input_size(model)
