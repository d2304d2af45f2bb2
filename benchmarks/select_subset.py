"""Prototype (issue 27): rank `select`'s candidates by full-schedule runs on a small sample of the training split.

    python -m benchmarks.select_subset --select_dataset=caltech101 --select_seeds=1 --subset_per_class=3

Why: the halving rungs score runs stopped at a ninth and a third of their schedule, and
Co-Tuning's gain on Caltech-101 appears only late in it (docs/BENCHMARKS.md, `select`). A run
on `per_class` k of the n training images per class, with the full schedule (the same epochs,
so as many passes over its data), costs k/n of a full run and sees a whole schedule, late
phase included. With the 9 default candidates at k/n ≤ 1/9 the screen costs one L2 run, and
L2 and the screen's best other then run in full: at most 3 L2 runs. Each candidate is trained
with the search's recipe (`benchmarks.select_runs.search_recipe`: source, schedule, seed) on the
seed's sample restricted to k per class (a subset of it: `few_shot_indices` takes a prefix of
each class's permutation), and scored on the search's validation split. Writes
`<runs_dir>/<backend>/select_subset.json` (resumable: one key per candidate, by its name, so a
screen of today's default list reuses the rows of the candidates it shares with an earlier list
and measures the others; the Caltech-101 measurements, of the earlier list (2026-12-06) and of LP-FT
over Co-Tuning, which took FTP's place (2026-12-07), are committed as
docs/benchmarks/select_subset_tensorflow.json).

Result (docs/benchmarks/notes.md, 2026-12-06): LP-FT first at 3 of 3 Caltech-101 seeds, Co-Tuning
second at two and last at one; with LP-FT as the finalist the search would test 1.2 points below
Co-Tuning there, so the screen was not built into `keras_tl.select`. With the current list
(2026-12-07) LP-FT over Co-Tuning leads it at seeds 1 and 2 and is 8th of 9 at seed 0, while the
default search chooses it at 3 of 3: the screen stays a prototype.
"""

import dataclasses
import functools
import os

import keras
from absl import app, flags, logging

import keras_tl

# select_runs also defines the --select_dataset and --select_seeds flags.
from benchmarks import select_runs, suite
from benchmarks.records import measured_once, planned_candidates
from benchmarks.runs import load_splits
from keras_tl.selection.candidates import fingerprint

flags.DEFINE_integer("subset_per_class", 3, "Training images per class of the screen's runs.")
FLAGS = flags.FLAGS


def screen_data(settings, dataset, seed, per_class):
    """`(recipe, small)`: the search's recipe and its training sample cut to `per_class`."""
    run, recipe, _ = select_runs.search_recipe(settings, dataset, seed)
    small, _ = load_splits(dataclasses.replace(run, per_class=per_class), settings.data_root)
    return recipe, small


def screen_candidate(data, folder, candidate):
    recipe, small = data()
    model, history = dataclasses.replace(recipe, train=small).fine_tune(candidate.method(), folder, recipe.epochs)
    validation = recipe.validation
    return {
        "candidate": candidate.name,
        "label": candidate.label,
        "hparams": candidate.hparams,
        "train_examples": int(small.num_examples),
        "full_examples": int(recipe.train.num_examples),
        "val_top1": keras_tl.data.evaluate(model, validation.dataset, validation.num_classes)["top1"],
        "last_loss": float(history.history["loss"][-1]) if history is not None else None,
    }


def main(argv):
    del argv
    settings = suite.settings_from(FLAGS)
    dataset, k = FLAGS.select_dataset, FLAGS.subset_per_class
    for seed in map(int, FLAGS.select_seeds):
        # The source and splits are loaded once a seed, and only when a candidate is not in the record yet.
        data = functools.cache(functools.partial(screen_data, settings, dataset, seed, k))
        root = os.path.join(settings.runs_dir, keras.backend.backend(), f"select_subset_{dataset}_s{seed}_k{k}")
        rows = []
        for candidate in planned_candidates(settings, dataset):
            key = f"{dataset}/s{seed}/k{k}/{candidate.name}"
            folder = os.path.join(root, fingerprint(candidate.get_config())[:8])
            measure = functools.partial(screen_candidate, data, folder, candidate)
            rows.append(measured_once(settings.runs_dir, "select_subset", key, measure))
            print(f"{key}: {rows[-1]['candidate']}: val {100 * rows[-1]['val_top1']:.2f} %", flush=True)
        ranked = sorted(rows, key=lambda r: -r["val_top1"])
        print(f"{dataset} s{seed} k={k}: " + ", ".join(
            f"{r['candidate']} {100 * r['val_top1']:.1f}" for r in ranked
        ), flush=True)


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
