"""Upstream training from scratch: the source network that fine-tuning starts from.

    python -m apps.pretrain                       # a CIFAR ResNet-20 on the digits 0-4 (offline)
    python -m apps.pretrain --dataset=tfrecord:../shared/data/tiny-imagenet-32 \\
        --backbone=cifar_resnet20 --image_size=32 --epochs=30 --output=runs/tin/source.keras

Checkpointed every epoch with `keras_tl.callbacks.AtomicBackupAndRestore` in `--backup_dir`: run the
same command again after an interruption and it resumes from the last finished epoch.
Writes the source model (`.keras`, classifier included) and its card (`.json`) beside it.
"""

import os

import keras
from absl import flags, logging

from apps import common, training
from keras_tl import backbones
from keras_tl.data import tfrecord

FLAGS = flags.FlagValues()
DIGITS_CLASSES = ("0", "1", "2", "3", "4")
common.define_data_flags(FLAGS, digits_classes=DIGITS_CLASSES)
common.define_sampling_flags(FLAGS)
common.define_training_flags(FLAGS, epochs=15, lr=0.1, output_dir="runs/pretrain")
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
    "loss", "cross_entropy", sorted(training.PRETRAIN_LOSSES), "Upstream loss.", flag_values=FLAGS
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
common.define_distribute_flag(FLAGS)
common.validator(FLAGS, "output", lambda value: _check_keras_path("--output", value))
common.validate_finite(FLAGS)


def _check_keras_path(flag, value):
    if value and not value.endswith(".keras"):
        raise ValueError(f"Expected {flag} to end in '.keras'. Received: {value!r}")


def image_size(fv):
    return (fv.image_size,) * 2 if fv.image_size else backbones.default_input_shape(fv.backbone)[:2]


def loss_options(fv):
    if fv.loss != "pgd":
        return {}
    tsv = fv.wnids
    if not tsv and fv.dataset.startswith("tfrecord:"):
        _, directory = tfrecord.resolve_files(fv.dataset.partition(":")[2], fv.split)
        tsv = os.path.join(directory, "classes.tsv")
    if not tsv or not os.path.isfile(tsv):
        raise ValueError(
            f"Expected --wnids (a classes.tsv with a 'wnid' column) for --loss=pgd. Received: {tsv!r}"
        )
    wnids = tfrecord.read_class_names(tsv, column="wnid")
    return {"wnids": wnids, "tau": fv.pgd_tau, "num_neighbours": fv.pgd_neighbours}


def run(fv):
    """Pre-trains with the parsed flags `fv`; returns `(model, history, output path)`."""
    size = image_size(fv)
    preprocess = fv.preprocess or fv.backbone
    keras.utils.set_random_seed(fv.seed)  # the pipeline's shuffling and augmentation use TF's global seed
    train = common.load_split(
        fv,
        fv.split,
        size,
        preprocess,
        training=True,
        seed=fv.seed,
        sampled=True,
        digits_classes=DIGITS_CLASSES,
    )
    eval_data = None
    if fv.eval_split:
        eval_data = common.load_split(
            fv, fv.eval_split, size, preprocess, training=False, digits_classes=DIGITS_CLASSES
        ).dataset
    output = fv.output or os.path.join(fv.output_dir, "source.keras")
    logging.info(
        "Pre-training %s on %s (%d examples, %d classes) -> %s",
        fv.backbone,
        fv.dataset,
        train.num_examples,
        train.num_classes,
        output,
    )
    model, history = training.pretrain(
        train,
        fv.backbone,
        size,
        batch_size=fv.batch_size,
        epochs=fv.epochs,
        lr=fv.lr,
        momentum=fv.momentum,
        weight_decay=fv.weight_decay,
        loss=fv.loss,
        loss_options=loss_options(fv),
        preprocess=preprocess,
        bn_momentum=fv.bn_momentum or None,
        output=output,
        backup_dir=fv.backup_dir or os.path.join(fv.output_dir, "backup"),
        eval_data=eval_data,
        seed=fv.seed,
        distribute=fv.distribute,
    )
    return model, history, output


def main(argv):
    del argv
    _, history, output = run(FLAGS)
    last = {key: round(values[-1], 4) for key, values in history.items()}
    print(f"Source model written to {output}; last epoch: {last}")


if __name__ == "__main__":
    common.run(main, FLAGS)
