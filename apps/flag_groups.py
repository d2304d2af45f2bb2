"""The apps' flag groups (data, sampling, training, devices, compute, loading) and their validators.

Each `define_*` adds one group to an app's own `flags.FlagValues`; the fields they fill are
`apps.common.DataConfig` and `TrainingConfig`. A validator raises `ValueError` with the library's
"Expected ... Received: ..." message, shown by absl as a flag error.
"""

import functools
import math

import keras
from absl import flags

from keras_tl import data as tl_data
from keras_tl import distribute
from keras_tl.models.cards import PREPROCESS_CHOICES


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
