"""The embedded demo's source: `apps.finetune` pre-trains one when --source is empty.

Its flags (`--source_dataset`, `--source_classes`, `--source_backbone`, `--source_epochs`,
`--source_batch_size`, `--source_lr`) are the `source_*` fields of `apps.finetune.FinetuneConfig`;
by default a CIFAR ResNet-20 on scikit-learn's digits 0-4, so the demo needs no download.
"""

import dataclasses
import os

import keras
from absl import flags, logging

import keras_tl
from apps import common, flag_groups
from keras_tl import backbones
from keras_tl.data import parse_spec


def define(fv):
    """The demo source's flags, on the app's `fv`."""
    flags.DEFINE_string("source_dataset", "digits", "Data set the demo source is pre-trained on.", flag_values=fv)
    flags.DEFINE_list("source_classes", ["0", "1", "2", "3", "4"], "Classes of --source_dataset.", flag_values=fv)
    flags.DEFINE_enum(
        "source_backbone", "cifar_resnet20", list(backbones.CIFAR_NAMES), "Demo source architecture.", flag_values=fv
    )
    flags.DEFINE_integer("source_epochs", 10, "Demo source pre-training epochs.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer(
        "source_batch_size", 64, "Demo source pre-training batch size.", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_float("source_lr", 0.1, "Demo source pre-training learning rate.", lower_bound=0.0, flag_values=fv)
    flag_groups.validator(fv, "source_dataset", parse_spec)


def pretrain(config, size):
    """Pre-trains the demo source (`config`'s `source_*` fields, at `size`) and returns its path."""
    c = config
    demo = dataclasses.replace(c, dataset=c.source_dataset, classes=c.source_classes, batch_size=c.source_batch_size)
    keras.utils.set_random_seed(c.seed)
    train = common.load_split(demo, "train", size, c.source_backbone, training=True, seed=c.seed)
    output = os.path.join(c.output_dir, "source", "source.keras")
    logging.info("Pre-training the demo source %s on %s %s", c.source_backbone, c.source_dataset, c.source_classes)
    keras_tl.pretrain(
        train,
        c.source_backbone,
        epochs=c.source_epochs,
        lr=c.source_lr,
        output=output,
        seed=c.seed,
        verbose=c.verbose,
        bn_momentum=0.9,  # a few hundred steps: the moving statistics must converge within them
        distribute=c.distribute,
        backup_dir=c.backup("source"),
        jit_compile=common.jit_compile(c),
    )
    return output
