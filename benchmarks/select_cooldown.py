"""Would a short cool-down make `select`'s rung 1 rank candidates as its last rung does? (issue 27)

    python -m benchmarks.select_cooldown --select_dataset=caltech101 --select_seeds=1,2

The prototype of what `select(cooldown=True)` now does (`keras_tl.selection.cooldown`; it keeps
the run's optimizer and its momentum, where this script starts a fresh SGD), kept as the record of
the measurement that motivated it: for L2, KnowDist and LP-FT (the candidates of the
Caltech-101 searches' rung 1), each trained to the rung's epoch ⌊E/3⌋ of the E-epoch cosine
schedule exactly as the search does (`Recipe.fine_tune`, LP-FT restored from the search's own
checkpoint), then one more epoch whose learning rate falls linearly from the schedule's value at
that epoch to 0 (the cool-down). Prints the validation top-1 before (the rung's score) and after
the cool-down; writes `<runs_dir>/<backend>/select_cooldown.json`. Mid-schedule the rate is still
76 % of its peak at E = 40, and a strong pull to the source is steadier there, which is what rung 1
measured (docs/benchmarks/notes.md).
"""

import functools
import math
import os

import keras
from absl import app, flags, logging

import keras_tl
from benchmarks import select_runs, suite  # select_runs: the --select_dataset and --select_seeds flags too
from benchmarks.records import measured_once
from keras_tl import methods
from keras_tl.fine_tuning import classification_loss, steps_per_epoch

FLAGS = flags.FLAGS

# (candidate index in the default search, method, hyperparameters): rung 1's three at seeds 1 and 2.
CANDIDATES = ((7, "lp_ft", {}), (2, "knowdist", {"alpha": 10.0}), (0, "l2", {}))


def cooled_scores(settings, dataset, seed):
    _, recipe, _ = select_runs.search_recipe(settings, dataset, seed)
    train, validation, epochs = recipe.train, recipe.validation, recipe.epochs
    rung = epochs // 3
    rate = recipe.lr * 0.5 * (1 + math.cos(math.pi * rung / epochs))  # fine_tuning.cosine_sgd's at the rung
    scores = {}
    for index, label, hparams in CANDIDATES:
        name = f"select_cooldown_{dataset}_s{seed}_{index}"
        if label == "lp_ft":  # the search's LP-FT stopped at this rung: continue a copy of it
            folder = select_runs.candidate_copy(settings, dataset, seed, index, name)
        else:  # the search's checkpoint of L2 and KnowDist is past the rung: train them to it again
            folder = os.path.join(settings.runs_dir, keras.backend.backend(), name)
        method = methods.get(label, **hparams)
        model, _ = recipe.fine_tune(method, folder, rung)
        before = keras_tl.data.evaluate(model, validation.dataset, validation.num_classes)["top1"]
        decay = keras.optimizers.schedules.PolynomialDecay(rate, steps_per_epoch(train), end_learning_rate=0.0)
        model.compile(
            optimizer=method.optimizer(keras.optimizers.SGD(decay, momentum=recipe.momentum)),
            loss=classification_loss(train),
            metrics=["accuracy"],
        )
        # One epoch from the rung (the schedule and the shuffling are those of that epoch).
        model.fit(train.dataset, initial_epoch=rung, epochs=rung + 1, verbose=0)
        after = keras_tl.data.evaluate(model, validation.dataset, validation.num_classes)["top1"]
        scores[label] = {"rung1_val": before, "cooled_val": after}
    return scores


def main(argv):
    del argv
    settings = suite.settings_from(FLAGS)
    for seed in map(int, FLAGS.select_seeds):
        key = f"{FLAGS.select_dataset}/s{seed}"
        measure = functools.partial(cooled_scores, settings, FLAGS.select_dataset, seed)
        scores = measured_once(settings.runs_dir, "select_cooldown", key, measure)
        for label, r in scores.items():
            print(f"{key} {label}: rung 1 val {100 * r['rung1_val']:.1f} %, cooled {100 * r['cooled_val']:.1f} %")


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
