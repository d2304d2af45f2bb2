"""What the apps share: parsing into frozen configs, error lines, data loading (flag groups: `apps.flag_groups`).

Each app owns a `flags.FlagValues` of its own (not absl's global `FLAGS`), so that two apps
imported in one process (the tests) never collide on a flag name, while `--flagfile`,
validators and `python -m apps.<name> --help` work as usual. Each app turns its flags into a
frozen dataclass (`<App>Config.from_flags`) and `run(config)` uses only the config.
"""

import dataclasses
import functools
import os
import sys

from absl import app, flags

from keras_tl import data as tl_data

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
# The fields of `apps.flag_groups`; an app's config adds its own and restates a default it changes.


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


def jit_compile(config):
    """`compile`'s `jit_compile` from `config.jit_compile`: None is Keras' `"auto"`."""
    return "auto" if config.jit_compile is None else config.jit_compile


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
