"""Upstream training from scratch: the source network that fine-tuning starts from.

    python -m apps.pretrain                       # a CIFAR ResNet-20 on the digits 0-4 (offline)
    python -m apps.pretrain --dataset=tfrecord:../shared/data/tiny-imagenet-32 \\
        --backbone=cifar_resnet20 --image_size=32 --epochs=30 --output=runs/tin/source.keras

Checkpointed every epoch with `keras_tl.callbacks.AtomicBackupAndRestore` in `--backup_dir`: run the
same command again after an interruption and it resumes from the last finished epoch.
Writes the source model (`.keras`, classifier included) and its card (`.json`) beside it.
"""

import dataclasses
import os

import keras
from absl import flags, logging

import keras_tl
from apps import common, flag_groups
from keras_tl import backbones, pretraining
from keras_tl.data import tfrecord
from keras_tl.utils.policy import dtype_policy

FLAGS = flags.FlagValues()
DIGITS_CLASSES = ("0", "1", "2", "3", "4")
flag_groups.define_data_flags(FLAGS, digits_classes=DIGITS_CLASSES)
flag_groups.define_sampling_flags(FLAGS)
flag_groups.define_training_flags(FLAGS, epochs=15, lr=0.1, output_dir="runs/pretrain")
flags.DEFINE_enum(
    "backbone", "cifar_resnet20", list(backbones.NAMES), "Source architecture.", flag_values=FLAGS
)
flags.DEFINE_float(
    "weight_decay", 5e-4, "Decoupled weight decay of the kernels.", lower_bound=0.0, flag_values=FLAGS
)
flags.DEFINE_float(
    "bn_momentum",
    0.9,
    "BatchNormalization momentum of the moving statistics (PyTorch's default; Keras' 0.99 leaves "
    "them near their initial values after a few hundred steps). 0: the backbone's own.",
    lower_bound=0.0,
    upper_bound=0.999,
    flag_values=FLAGS,
)
flags.DEFINE_enum(
    "loss", "cross_entropy", sorted(pretraining.LOSSES), "Upstream loss.", flag_values=FLAGS
)
flags.DEFINE_float("pgd_tau", 100.0, "PGD's τ (DSD Sec. 4.6).", lower_bound=1.0, flag_values=FLAGS)
flags.DEFINE_integer(
    "pgd_neighbours", 5, "PGD: WordNet neighbours N(c) of each class.", lower_bound=0, flag_values=FLAGS
)
flags.DEFINE_string(
    "wnids",
    "",
    "PGD: a classes.tsv with a 'wnid' column (label order); empty: the one beside a tfrecord: data set.",
    flag_values=FLAGS,
)
flags.DEFINE_string("eval_split", "test", "Split evaluated after each epoch; empty: none.", flag_values=FLAGS)
flags.DEFINE_string(
    "output", "", "Source model path (.keras); empty: <output_dir>/source.keras.", flag_values=FLAGS
)
flags.DEFINE_string(
    "backup_dir", "", "Checkpoint folder (AtomicBackupAndRestore); empty: <output_dir>/backup.", flag_values=FLAGS
)
flag_groups.define_distribute_flag(FLAGS)
flag_groups.define_compute_flags(FLAGS)
flag_groups.validator(FLAGS, "output", lambda value: _check_keras_path("--output", value))
flag_groups.validate_finite(FLAGS)


def _check_keras_path(flag, value):
    if value and not value.endswith(".keras"):
        raise ValueError(f"Expected {flag} to end in '.keras'. Received: {value!r}")


@dataclasses.dataclass(frozen=True)
class PretrainConfig(common.TrainingConfig):
    """One `apps.pretrain` run: the flags of the same names (see `--help`), lists as tuples.

    Example:
    >>> model, history, path = apps.pretrain.run(PretrainConfig(backbone="cifar_resnet8", epochs=1))
    """

    # Defaults other than `common.TrainingConfig`'s, then the app's own fields.
    epochs: int = 15
    lr: float = 0.1
    output_dir: str = "runs/pretrain"
    backbone: str = "cifar_resnet20"
    weight_decay: float = 5e-4
    bn_momentum: float = 0.9
    loss: str = "cross_entropy"
    pgd_tau: float = 100.0
    pgd_neighbours: int = 5
    wnids: str = ""
    output: str = ""


def loss_options(config):
    """`keras_tl.pretrain`'s `loss_options`: for PGD, the WordNet ids from `wnids` (a classes.tsv)."""
    if config.loss != "pgd":
        return {}
    tsv = config.wnids
    if not tsv and config.dataset.startswith("tfrecord:"):
        _, directory = tfrecord.resolve_files(config.dataset.partition(":")[2], config.split)
        tsv = os.path.join(directory, "classes.tsv")
    if not tsv or not os.path.isfile(tsv):
        raise ValueError(f"Expected --wnids (a classes.tsv with a 'wnid' column) for --loss=pgd. Received: {tsv!r}")
    wnids = tfrecord.read_class_names(tsv, column="wnid")
    return {"wnids": wnids, "tau": config.pgd_tau, "num_neighbours": config.pgd_neighbours}


def run(config):
    """Pre-trains as `config` (a `PretrainConfig`) says; returns `(model, history, output path)`.

    Keras' global dtype policy is `config.dtype_policy` during the run, and what it was before afterwards.
    """
    with dtype_policy(config.dtype_policy):
        return _run(config)


def _run(config):
    c = config
    size = (c.image_size,) * 2 if c.image_size else backbones.default_input_shape(c.backbone)[:2]
    preprocess = c.preprocess or c.backbone
    keras.utils.set_random_seed(c.seed)  # the pipeline's shuffling and augmentation use TF's global seed
    data = {"digits_classes": DIGITS_CLASSES}
    train = common.load_split(c, c.split, size, preprocess, training=True, seed=c.seed, sampled=True, **data)
    eval_data = None
    if c.eval_split:
        eval_data = common.load_split(c, c.eval_split, size, preprocess, training=False, **data)
    output = c.output or os.path.join(c.output_dir, "source.keras")
    counts = (train.num_examples, train.num_classes)
    logging.info("Pre-training %s on %s (%d examples, %d classes) -> %s", c.backbone, c.dataset, *counts, output)
    model, history = keras_tl.pretrain(
        train,
        c.backbone,
        epochs=c.epochs,
        lr=c.lr,
        momentum=c.momentum,
        weight_decay=c.weight_decay,
        loss=c.loss,
        loss_options=loss_options(c),
        preprocess=preprocess,
        bn_momentum=c.bn_momentum or None,
        output=output,
        eval_data=eval_data,
        backup_dir=c.backup(),
        seed=c.seed,
        distribute=c.distribute,
        jit_compile=common.jit_compile(c),
    )
    return model, history, output


def main(argv):
    del argv
    _, history, output = run(PretrainConfig.from_flags(FLAGS))
    last = {key: round(values[-1], 4) for key, values in history.items()}
    print(f"Source model written to {output}; last epoch: {last}")


if __name__ == "__main__":
    common.run(main, FLAGS)
