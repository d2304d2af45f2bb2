"""The benchmark's sources: a CIFAR ResNet-20 pre-trained from scratch on Tiny-ImageNet-32, resumable.

    python -m benchmarks.sources --loss=pgd --head_bias=prior     # DSD's PGD source, fair start
    python -m benchmarks.sources --loss=cross_entropy             # the cross-entropy source
    python -m benchmarks.sources --half=A --epochs=20 --loss=cross_entropy   # tin-b's source (half A)

The schedule is the committed sources' (saved_models/sources/README.md): 10 epochs, batch 128,
SGD 0.1 with cosine decay, weight decay 5e-4, BatchNormalization momentum 0.9, seed 0. Every
epoch is checkpointed (`AtomicBackupAndRestore`): rerun the same command after a kill. The
source is written with its card, and the validation curve is in the card's `history`.

`--half=A` pre-trains on the 100 classes of half A of `benchmarks/tin_split.py` (all their
500 training images each) and validates on their 50 validation images each: the source of
the near-transfer target tin-b (half B). `--epochs=20` there is the committed sources' step
budget (7,810 steps of batch 128 over half the images).
"""

import os

from absl import app, flags, logging

import keras_tl
from benchmarks import tin_split
from keras_tl.data import tfrecord

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_enum("loss", "pgd", ["cross_entropy", "pgd"], "Upstream loss.")
flags.DEFINE_string("head_bias", "", "Initial classifier bias: 'prior' (-log(N-1)), a number, or empty.")
flags.DEFINE_integer("epochs", 10, "Upstream epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Upstream batch size.", lower_bound=1)
flags.DEFINE_float("lr", 0.1, "Peak learning rate (cosine decay).", lower_bound=0.0)
flags.DEFINE_string(
    "data_root", os.path.join(PROJECT_ROOT, "..", "shared", "data"), "The shared data folder."
)
flags.DEFINE_string("output", "", "The .keras file; empty: saved_models/sources/<name>.keras.")
flags.DEFINE_string("backup_dir", "runs/sources", "Checkpoints (a subfolder per source).")
flags.DEFINE_enum("half", "", ["", *tin_split.HALVES], "Classes: all 200 (empty) or one half of tin_split.")


def source_name(fv):
    bias = {"": "", "prior": "_priorbias"}.get(fv.head_bias, f"_bias{fv.head_bias}")
    data = f"tin{fv.half}32" if fv.half else "tin32"
    return f"{data}_cifar_resnet20_{fv.loss}{bias}_e{fv.epochs}_b{fv.batch_size}_lr{fv.lr:g}_s0"


def main(argv):
    del argv
    name = source_name(FLAGS)
    output = FLAGS.output or os.path.join(PROJECT_ROOT, "saved_models", "sources", f"{name}.keras")
    root = os.path.join(FLAGS.data_root, "tiny-imagenet-32")
    common = {"image_size": 32, "preprocess": "cifar_resnet20", "batch_size": FLAGS.batch_size}
    labels = tin_split.halves()[FLAGS.half] if FLAGS.half else None
    # The committed 200-class sources kept the short last batch: keep it, so their recipe re-runs
    # as it ran; a half drops it (the library's default: the cosine counts full batches).
    train = keras_tl.data.load(
        f"tfrecord:{root}", "train", training=True, drop_remainder=None if labels else False, seed=0,
        classes=labels, **common
    )
    validation = keras_tl.data.load(f"tfrecord:{root}", "validation", training=False, classes=labels, **common)
    options = None
    if FLAGS.loss == "pgd":
        ids = tfrecord.read_class_names(os.path.join(root, "classes.tsv"), column="wnid")
        options = {"wnids": [ids[label] for label in labels] if labels else ids}
    head_bias = FLAGS.head_bias or None
    if head_bias not in (None, "prior"):
        head_bias = float(head_bias)
    logging.info("Pre-training %s -> %s", name, output)
    _, history = keras_tl.pretrain(
        train,
        "cifar_resnet20",
        epochs=FLAGS.epochs,
        lr=FLAGS.lr,
        loss=FLAGS.loss,
        loss_options=options,
        bn_momentum=0.9,
        head_bias=head_bias,
        output=output,
        eval_data=validation,
        backup_dir=os.path.join(FLAGS.backup_dir, name),
        seed=0,
        verbose=2,
    )
    print(f"Wrote {output}; val accuracy by epoch: {history.get('val_accuracy')}")


if __name__ == "__main__":
    app.run(main)
