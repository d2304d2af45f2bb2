"""What the apps share: flag groups and parsing, data and source loading, model cards.

Each app owns a `flags.FlagValues` of its own (not absl's global `FLAGS`), so that two apps
imported in one process (the tests) never collide on a flag name, while `--flagfile`,
validators and `python -m apps.<name> --help` work as usual.
"""

import functools
import json
import math
import os
import sys

import keras
import numpy as np
from absl import app, flags

import keras_tl.callbacks
import keras_tl.models
from keras_tl import backbones, distribute
from keras_tl import data as tl_data

HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull")
PREPROCESS_CHOICES = ("identity",) + backbones.NAMES


# ------------------------------------------------------------------------------------ parsing


def run(main, flag_values):
    """`absl.app.run(main)` with the app's own flags; an error ends the app with one line (see `report_errors`)."""
    define_debug_flag(flag_values)
    app.run(
        functools.partial(report_errors, main, flag_values),
        flags_parser=functools.partial(parse_command_line, flag_values),
    )


def define_debug_flag(fv):
    if "debug" not in fv:
        flags.DEFINE_boolean(
            "debug",
            False,
            "On an error, show Python's full traceback (default: one line 'error: <message>').",
            flag_values=fv,
        )


def report_errors(main, flag_values, argv):
    """Runs `main(argv)`; an exception becomes one line `error: <message>` on stderr and exit status 1.

    Every message of keras_tl and the apps says what was expected and what was received, so
    the traceback is noise to a user; `--debug` shows it.
    """
    try:
        return main(argv)
    except Exception as error:
        if flag_values["debug"].value:
            raise
        sys.stderr.write(f"error: {error_line(error)}\n")
        sys.exit(1)


def error_line(error):
    """The message of `error` (its type when it has none); a `KeyError`'s without its repr quotes."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return message or type(error).__name__


def parse_command_line(flag_values, argv):
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(flag_values.get_help())
        sys.exit(0)
    try:
        remaining = parse(flag_values, argv)
        if len(remaining) > 1:
            raise flags.Error(f"Expected flags only. Received positional arguments: {remaining[1:]}")
    except flags.Error as error:
        sys.stderr.write(f"FATAL Flags parsing error: {error}\nPass --help to see the flags.\n")
        sys.exit(1)
    # absl's own flags (logging) keep their defaults but must count as parsed.
    flags.FLAGS(argv[:1], known_only=True)
    return remaining


def parse(flag_values, argv):
    """Parses `argv` (program name first) from the defaults; raises `flags.Error` on a bad flag."""
    flag_values.unparse_flags()
    return flag_values(list(argv))


def validator(flag_values, name, check):
    """Registers `check(value)` (raises `ValueError` with the message) as the validator of `--name`."""

    def checker(value):
        try:
            check(value)
        except ValueError as error:
            raise flags.ValidationError(str(error)) from error
        return True

    flags.register_validator(name, checker, flag_values=flag_values)


def validate_finite(fv):
    """Registers, for every float flag of `fv`, a check that it is finite: absl's bounds let nan pass."""
    for name in list(fv):
        if isinstance(fv[name].parser, flags.FloatParser):
            validator(fv, name, functools.partial(check_finite, name))


def check_finite(name, value):
    if value is not None and not math.isfinite(value):
        raise ValueError(f"Expected --{name} to be a finite number. Received: {value}")


# ------------------------------------------------------------------------------------ flag groups


def define_data_flags(fv, dataset="digits", digits_classes=(), split="train"):
    """--dataset, --classes, ...; `digits_classes` are the classes the digits demo uses when --classes is empty."""
    flags.DEFINE_string(
        "dataset",
        dataset,
        "Data-set spec: 'tfds:<name>', 'folder:<path>', 'tfrecord:<glob or dir>' or 'digits' "
        "(scikit-learn's handwritten digits, offline).",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "classes",
        [],
        "Classes to keep (names or label numbers, in order); empty: all"
        + (f" (for --dataset=digits: the demo's {','.join(digits_classes)})." if digits_classes else "."),
        flag_values=fv,
    )
    flags.DEFINE_string("split", split, "Split to read (train, test, val, ... or 'all').", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "Where tfds data sets are prepared (tfds: only).", flag_values=fv)
    flags.DEFINE_integer(
        "image_size",
        0,
        "Network input size; 0: the source's (or backbone's) size.",
        lower_bound=0,
        flag_values=fv,
    )
    flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1, flag_values=fv)
    flags.DEFINE_string(
        "preprocess",
        "",
        f"Input preprocessing; empty: the backbone's. One of {list(PREPROCESS_CHOICES)}.",
        flag_values=fv,
    )
    # An empty default means "from elsewhere" (e.g. a model card); an explicit value must parse.
    validator(fv, "dataset", lambda spec: (spec or dataset) and tl_data.parse_spec(spec))
    validator(fv, "preprocess", check_preprocess)


def define_sampling_flags(fv):
    flags.DEFINE_integer(
        "per_class", 0, "Few-shot: examples per class (0: all).", lower_bound=0, flag_values=fv
    )
    flags.DEFINE_float(
        "fraction",
        0.0,
        "Few-shot: fraction of each class in (0, 1] (0: all).",
        lower_bound=0.0,
        upper_bound=1.0,
        flag_values=fv,
    )
    flags.register_multi_flags_validator(
        ["per_class", "fraction"],
        lambda values: not (values["per_class"] and values["fraction"]),
        message="Expected at most one of --per_class and --fraction.",
        flag_values=fv,
    )


def define_training_flags(fv, epochs, lr, output_dir):
    flags.DEFINE_integer("epochs", epochs, "Training epochs.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float(
        "lr",
        lr,
        "Initial learning rate of SGD with momentum (cosine decay to 0).",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_float("momentum", 0.9, "SGD momentum.", lower_bound=0.0, upper_bound=1.0, flag_values=fv)
    flags.DEFINE_enum(
        "augment",
        "keras",
        ["keras", "none"],
        "Training augmentation (Keras layers, or none).",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "flip",
        None,
        "Random horizontal flips; default on, off for 'digits' (a mirrored digit is another shape).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "seed", 0, "Random seed (runs use seed, seed+1, ...).", lower_bound=0, flag_values=fv
    )
    flags.DEFINE_string("output_dir", output_dir, "Where results, logs and models go.", flag_values=fv)


def define_distribute_flag(fv):
    """--distribute: how training is spread over devices (see `keras_tl.distribute`)."""
    allowed = distribute.STRATEGIES.get(keras.backend.backend(), ("none",))
    flags.DEFINE_string(
        "distribute",
        "none",
        f"Devices/machines to train on; on the {keras.backend.backend()} backend one of {list(allowed)} "
        "(multi_worker: see docs/APPS.md for the cluster set-up).",
        flag_values=fv,
    )
    validator(fv, "distribute", check_distribute)


def check_distribute(value):
    allowed = distribute.STRATEGIES.get(keras.backend.backend(), ("none",))
    if value not in allowed:
        raise ValueError(
            f"Expected --distribute to be one of {list(allowed)} on the {keras.backend.backend()} backend. "
            f"Received: {value!r}"
        )


def define_loading_flag(fv):
    flags.DEFINE_boolean(
        "unsafe_deserialization",
        False,
        "Allow .keras files that need unsafe deserialization (e.g. Lambda layers: arbitrary Python code). "
        "Only for files you trust.",
        flag_values=fv,
    )


def check_preprocess(value):
    if value and value not in PREPROCESS_CHOICES:
        raise ValueError(
            f"Expected --preprocess to be empty or one of {list(PREPROCESS_CHOICES)}. Received: {value!r}"
        )


# ------------------------------------------------------------------------------------ data & models


def class_list(values, dataset, digits_classes=()):
    """--classes for `keras_tl.data.load(classes=...)`; empty: all (None), or `digits_classes` for digits."""
    if values:
        return list(values)
    return list(digits_classes) if dataset == "digits" and digits_classes else None


def check_spec(spec):
    tl_data.parse_spec(spec)


class FlagView:
    """Attribute access to keyword values, standing in for parsed flags (e.g. a second data set)."""

    def __init__(self, **values):
        self.__dict__.update(values)


def export_name(dataset):
    """A SavedModel name from a data-set spec: `folder:../dtd10` → `dtd10`; `""` → `""`."""
    tail = dataset.rstrip("/").split(":")[-1]
    base = os.path.basename(tail.rstrip("/")) or tail
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in base.split("*")[0]).strip("_-")


def flip_for(dataset, flip):
    return (not dataset.startswith("digits")) if flip is None else flip


def load_split(
    fv, split, image_size, preprocess, training, seed=0, crops="center", sampled=False, digits_classes=()
):
    """`keras_tl.data.load` from the data flags of `fv` (see `class_list` for `digits_classes`)."""
    sampling = {}
    if sampled and getattr(fv, "per_class", 0):
        sampling["per_class"] = fv.per_class
    if sampled and getattr(fv, "fraction", 0.0):
        sampling["fraction"] = fv.fraction
    return tl_data.load(
        fv.dataset,
        split,
        image_size=image_size,
        preprocess=preprocess,
        batch_size=fv.batch_size,
        training=training,
        augment=getattr(fv, "augment", "keras"),
        flip=flip_for(fv.dataset, getattr(fv, "flip", None)),
        crops=crops,
        classes=class_list(fv.classes, fv.dataset, digits_classes),
        seed=seed,
        data_dir=fv.data_dir,
        # One batch shape in training: JAX compiles the train step once.
        drop_remainder=training,
        **sampling,
    )


def describe_counts(split):
    """`"150 training images in 5 classes, 30 per class (5: 30, 6: 30, ...)"`: what a run trains on."""
    counts = np.bincount(split.labels, minlength=split.num_classes)
    spread = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    shown = ", ".join(
        f"{name}: {count}" for name, count in zip(split.class_names[:20], counts[:20], strict=True)
    )
    more = ", ..." if split.num_classes > 20 else ""
    return (
        f"{split.num_examples} training images in {split.num_classes} classes, {spread} per class "
        f"({shown}{more})"
    )


def cross_entropy():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def input_size(model):
    return tuple(int(d) for d in model.inputs[0].shape[1:3])


# ------------------------------------------------------------------------------------ model cards


def card_path(model_path):
    return os.path.splitext(model_path)[0] + ".json"


def save_model(model, path, card):
    """Saves `model` (`.keras`) and, beside it, its card: what evaluation and export need to know."""
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


def resolve_preprocess(flag_value, card=None, model_name=None):
    """The preprocessing: the flag, else the card's, else the backbone's by model name, else an error."""
    if flag_value:
        return flag_value
    if card and card.get("preprocess"):
        return card["preprocess"]
    if model_name in backbones.NAMES:
        return model_name
    raise ValueError(
        f"Cannot tell the model's preprocessing. Expected --preprocess to be one of {list(PREPROCESS_CHOICES)}."
    )


def load_keras_model(path, unsafe_deserialization=False):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Expected a saved Keras model file. Received: {path!r} (no such file)")
    return keras_tl.models.load_model(path, unsafe_deserialization=unsafe_deserialization, compile=False)
