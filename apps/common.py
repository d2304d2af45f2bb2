"""What the apps share: flag groups, parsing into frozen configs, data loading.

Each app owns a `flags.FlagValues` of its own (not absl's global `FLAGS`), so that two apps
imported in one process (the tests) never collide on a flag name, while `--flagfile`,
validators and `python -m apps.<name> --help` work as usual. Each app turns its flags into a
frozen dataclass (`<App>Config.from_flags`) and `run(config)` uses only the config.
"""

import dataclasses
import functools
import math
import os
import sys

import keras
from absl import app, flags

from keras_tl import data as tl_data
from keras_tl import distribute
from keras_tl.models.cards import PREPROCESS_CHOICES

HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull")


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


def from_flags(cls, fv, **values):
    """`cls` (a frozen config dataclass) with each field from the flag of its name, lists as tuples;
    `values` set fields the flags do not give as they are. Use as `from_flags = classmethod(from_flags)`."""
    for field in dataclasses.fields(cls):
        if field.name not in values:
            value = fv[field.name].value
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


# ------------------------------------------------------------------------------------ configs
# The fields of the flag groups below; an app's config adds its own and restates a default it changes.


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The fields of `define_data_flags`."""

    dataset: str = "digits"
    classes: tuple = ()
    split: str = "train"
    data_dir: str | None = None
    image_size: int = 0
    batch_size: int = 32
    preprocess: str = ""

    from_flags = classmethod(from_flags)


@dataclasses.dataclass(frozen=True)
class TrainingConfig(DataConfig):
    """The fields of `define_data_flags`, `define_sampling_flags`, `define_training_flags`,
    `define_distribute_flag`, `define_compute_flags`, and `eval_split` and `backup_dir`."""

    per_class: int = 0
    fraction: float = 0.0
    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    augment: str = "keras"
    flip: bool | None = None
    seed: int = 0
    output_dir: str = "runs"
    eval_split: str = "test"
    backup_dir: str = ""
    distribute: str = "none"
    dtype_policy: str = "float32"
    jit_compile: bool | None = None

    def backup(self, *parts):
        """A checkpoint folder: `backup_dir` (default `<output_dir>/backup`) / `parts`."""
        return os.path.join(self.backup_dir or os.path.join(self.output_dir, "backup"), *parts)


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
        list(tl_data.augmentation.CHOICES),
        "Training augmentation, resume-safe: 'keras' (random crop and flip), 'none' (center crop), or the "
        "crop and flip followed by Keras' RandAugment and/or MixUp or CutMix (these mix the labels too; "
        "the loss is then categorical cross-entropy).",
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


DTYPE_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def define_compute_flags(fv):
    """--dtype_policy and --jit_compile: mixed precision and XLA (`TrainingConfig.dtype_policy`, `.jit_compile`)."""
    flags.DEFINE_enum(
        "dtype_policy",
        "float32",
        list(DTYPE_POLICIES),
        "Keras' global dtype policy, set before anything is built: mixed_float16 (GPUs; loss scaling) or "
        "mixed_bfloat16 (TPUs, recent GPUs and CPUs) compute in 16 bits and keep float32 weights.",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "jit_compile",
        None,
        "Compile the training step with XLA (--nojit_compile: not); default: Keras' 'auto'.",
        flag_values=fv,
    )


def jit_compile(config):
    """`compile`'s `jit_compile` from `config.jit_compile`: None is Keras' `"auto"`."""
    return "auto" if config.jit_compile is None else config.jit_compile


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


# ------------------------------------------------------------------------------------ data


def class_list(values, dataset, digits_classes=()):
    """--classes for `keras_tl.data.load(classes=...)`; empty: all (None), or `digits_classes` for digits."""
    if values:
        return list(values)
    return list(digits_classes) if dataset == "digits" and digits_classes else None


def export_name(dataset):
    """A SavedModel name from a data-set spec: `folder:../dtd10` → `dtd10`; `""` → `""`."""
    tail = dataset.rstrip("/").split(":")[-1]
    base = os.path.basename(tail.rstrip("/")) or tail
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in base.split("*")[0]).strip("_-")


def flip_for(dataset, flip):
    return (not dataset.startswith("digits")) if flip is None else flip


def load_split(
    config, split, image_size, preprocess, training, seed=0, crops="center", sampled=False, digits_classes=(),
    complement=False,
):
    """`keras_tl.data.load` from the data fields of an app's `config` (see `class_list` for `digits_classes`);
    with `sampled` and `complement`, what the config's few-shot sample of `seed` leaves out."""
    sampling = {}
    if sampled and getattr(config, "per_class", 0):
        sampling["per_class"] = config.per_class
    if sampled and getattr(config, "fraction", 0.0):
        sampling["fraction"] = config.fraction
    return tl_data.load(
        config.dataset,
        split,
        image_size=image_size,
        preprocess=preprocess,
        batch_size=config.batch_size,
        training=training,
        augment=getattr(config, "augment", "keras"),
        flip=flip_for(config.dataset, getattr(config, "flip", None)),
        crops=crops,
        classes=class_list(config.classes, config.dataset, digits_classes),
        seed=seed,
        data_dir=config.data_dir,
        complement=complement and bool(sampling),
        **sampling,
    )
