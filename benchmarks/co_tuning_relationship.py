"""How much does Co-Tuning's category relationship know about the target? (issue: Co-Tuning loses to L2)

    python benchmarks/co_tuning_relationship.py [--datasets=dtd10,caltech101,tin-b] [--data_root=...]

Co-Tuning trains the source head towards p(ȳ|y), the relationship row of each image's target
class. That target helps only if the rows differ between target classes. This script computes
the relationship from the source's head (200-way; 100-way for tin-b's half-A source) on each
data set's few-shot training images (seed 0, the benchmark's Co-Tuning run's source and splits)
and prints, per method ("reverse", the default, and "direct"):
- the rows' mean entropy against log(source classes) (a uniform row carries nothing),
- the mean total-variation distance between two classes' rows,
- the top-1 on the test split of the classifier the relationship implies,
  argmax_y Σ_ȳ p(ȳ|x) log p(ȳ|y) (the row closest to the image's source prediction),
and the source head's own top-1 when it is linear-probed (a ceiling for what the source
probabilities can say about the target).
"""

import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_tl  # noqa: E402
from benchmarks import datasets, plans, suite  # noqa: E402  (the suite's flags too)
from benchmarks.datasets import DATASETS  # noqa: E402
from benchmarks.runs import load_source  # noqa: E402
from keras_tl import relationship  # noqa: E402

# The sources and --data_root are the suite's flags.
FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", list(DATASETS), "Data sets.")


def logits_and_labels(model, split):
    images, labels = zip(*split.dataset.as_numpy_iterator(), strict=True)
    return model.predict(np.concatenate(images), verbose=0), np.concatenate(labels)


def describe(matrix, test_logits, test_labels):
    entropy = -(matrix * np.log(np.clip(matrix, 1e-12, None))).sum(1)
    pairs = [0.5 * np.abs(a - b).sum() for i, a in enumerate(matrix) for b in matrix[i + 1 :]]
    probabilities = relationship.softmax(relationship.CO_TUNING_LOGIT_SCALE * test_logits)
    scores = probabilities @ np.log(np.clip(matrix, 1e-12, None)).T
    return {
        "row_entropy": float(entropy.mean()),
        "row_max": float(matrix.max(1).mean()),
        "tv_between_rows": float(np.mean(pairs)),
        "implied_top1": float((scores.argmax(1) == test_labels).mean()),
    }


def main(argv):
    del argv
    settings = suite.settings_from(FLAGS)
    for dataset in FLAGS.datasets:
        run = plans.make_run(settings, dataset, "co_tuning", epochs=1, seed=0)
        model, card = load_source(run.source)
        spec = datasets.spec(dataset, FLAGS.data_root)
        common = {
            "image_size": 32,
            "preprocess": card["preprocess"],
            "training": False,
            "classes": datasets.classes(dataset),
        }
        sample = {"per_class": run.per_class, "seed": 0} if run.per_class else {}
        train = keras_tl.data.load(spec, run.split, **common, **sample)
        test = keras_tl.data.load(spec, DATASETS[dataset]["test_split"], **common)
        train_logits, train_labels = logits_and_labels(model, train)
        test_logits, test_labels = logits_and_labels(model, test)
        classes, upstream = train.num_classes, train_logits.shape[-1]
        print(
            f"\n{dataset}: {classes} classes, {len(train_labels)} training images; "
            f"log {upstream} = {np.log(upstream):.2f}"
        )
        print(f"  chance top-1 {1 / classes:.3f}")
        for method in ("reverse", "direct"):
            matrix = relationship.category_relationship(train_logits, train_labels, classes, method=method)
            stats = describe(matrix, test_logits, test_labels)
            print(f"  {method:8s} " + ", ".join(f"{k} {v:.3f}" for k, v in stats.items()))
        probe = relationship.fit_linear_map(
            relationship.softmax(relationship.CO_TUNING_LOGIT_SCALE * train_logits), train_labels, classes
        )
        test_probabilities = relationship.softmax(relationship.CO_TUNING_LOGIT_SCALE * test_logits)
        top1 = float(((test_probabilities @ probe).argmax(1) == test_labels).mean())
        print(f"  linear probe on the {upstream} source probabilities: top-1 {top1:.3f}")


if __name__ == "__main__":
    app.run(main)
