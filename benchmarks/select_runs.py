"""`keras_tl.select` on a benchmark data set, one search per seed: its choice, test top-1 and cost (issue 27).

    python -m benchmarks.select_runs --select_dataset=dtd10 --select_seeds=0,1,2
    python -m benchmarks.select_runs --select_dataset=dtd10 --select_candidates=co_tuning,lp_ft

Each seed's search sees exactly what that seed's L2 table run sees: the same source, training
sample, schedule (the data set's chosen epochs, lr, batch) and, as validation, the data set's
selection split (DTD-10's val, the held-out train images elsewhere); the test split only scores
the chosen model. Default candidates (or the shortlist `--select_candidates`) and budget. A search
runs in `<runs_dir>/<backend>/select_<dataset>_s<seed>[_<shortlist>]_<digest of its candidates>/` and
resumes there when killed; its result is added to `docs/benchmarks/select_<backend>.json` (the
committed record the report reads). A recorded search is skipped, unless the candidates it trained
are no longer the ones the seed's search would train (the registry's default list changed): it is
searched again and its record replaced (the old one stays in git's history and docs/benchmarks/notes.md).
Takes the suite's flags (`--data_root`, the sources, `--runs_dir`).
"""

import os
import shutil
import time

import keras
from absl import app, flags, logging

import keras_tl
from benchmarks import plans, suite
from benchmarks.records import (
    SELECT_BUDGET,
    planned_names,
    read_select_record,
    searched_names,
    select_record_path,
)
from benchmarks.runs import load_source, load_splits
from keras_tl import backbones
from keras_tl.selection.candidates import fingerprint
from keras_tl.selection.tuner import Recipe
from keras_tl.utils import files

flags.DEFINE_string("select_dataset", "dtd10", "The data set (benchmarks.datasets).")
flags.DEFINE_list("select_seeds", ["0", "1", "2"], "The seeds: one search each.")
flags.DEFINE_list(
    "select_candidates",
    [],
    "A shortlist (method labels) instead of the default candidates; its searches are recorded apart.",
)
FLAGS = flags.FLAGS


def search_recipe(settings, dataset, seed):
    """`(run, recipe, test)`: the seed's L2 table run, the `Recipe` its search trains and scores every
    candidate with, and the test split that only scores the chosen model."""
    epochs = plans.chosen_epochs(settings, dataset)
    if epochs is None:
        raise ValueError(f"Expected {dataset}'s schedule to be chosen first (plan schedule:{dataset}).")
    run = plans.make_run(settings, dataset, "l2", epochs, seed=seed)
    source, card = load_source(run.source)
    train, test, validation = load_splits(run, settings.data_root, selection=True)
    taps = backbones.default_taps(card["backbone"])
    return run, Recipe(source, train, validation, run.epochs, run.lr, run.momentum, taps, seed=seed), test


def candidate_copy(settings, dataset, seed, index, name):
    """The folder `<runs_dir>/<backend>/<name>`: a copy (made once) of candidate `index` of the seed's
    search, to train on from its checkpoint without touching the search: the search of the default
    list up to 2026-12-07 (FTP ninth), in the folder named without the list's digest, which the
    scripts built on this (`select_continue`, `select_cooldown`, `select_subset`) measured."""
    root = os.path.join(settings.runs_dir, keras.backend.backend())
    copy = os.path.join(root, name)
    if not os.path.isdir(copy):
        shutil.copytree(os.path.join(root, f"select_{dataset}_s{seed}", f"candidate_{index}"), copy)
    return copy


def search_key(dataset, seed, candidates=(), names=None):
    """The search's key in the record (`dtd10/s0`; a shortlist's `dtd10/s0/co_tuning,lp_ft`) and its
    folder's name, which ends in a digest of `names` (the candidates it trains, `records.planned_names`):
    a search of a changed default list starts in its own folder instead of being refused in the old one's."""
    key = f"{dataset}/s{seed}" + (f"/{','.join(candidates)}" if candidates else "")
    folder = f"select_{dataset}_s{seed}" + (f"_{'_'.join(candidates)}" if candidates else "")
    return key, folder + (f"_{fingerprint(names)[:8]}" if names is not None else "")


def search(settings, dataset, seed, candidates=(), names=None):
    """One seed's search (the default candidates, or the shortlist `candidates`); returns its JSON-safe result.
    `names`: `records.planned_names` of it, when the caller has them."""
    run, recipe, test = search_recipe(settings, dataset, seed)
    start = time.perf_counter()
    result = keras_tl.select(
        recipe.source,
        recipe.train,
        recipe.validation,
        candidates=list(candidates) or None,
        directory=os.path.join(settings.runs_dir, keras.backend.backend()),
        project_name=search_key(dataset, seed, candidates, names or planned_names(settings, dataset, candidates))[1],
        budget=SELECT_BUDGET,
        epochs=recipe.epochs,
        lr=recipe.lr,
        momentum=recipe.momentum,
        taps=recipe.taps,
        seed=seed,
        verbose=0,
    )
    summary = result.get_config()
    summary.update(
        dataset=dataset,
        seed=seed,
        **({"candidates": list(candidates)} if candidates else {}),
        l2_run=run.key(),
        test=keras_tl.data.evaluate(result.model, test.dataset, test.num_classes),
        seconds=round(time.perf_counter() - start, 1),
    )
    return summary


def main(argv):
    del argv
    settings = suite.settings_from(FLAGS)
    # Before the searches: a missing folder lost a finished one's record.
    os.makedirs(FLAGS.results_dir, exist_ok=True)
    for seed in map(int, FLAGS.select_seeds):
        key, _ = search_key(FLAGS.select_dataset, seed, FLAGS.select_candidates)
        names = planned_names(settings, FLAGS.select_dataset, FLAGS.select_candidates)
        found = read_select_record(FLAGS.results_dir).get(key)
        if found is not None and searched_names(found) == names:
            continue
        if found is not None:  # a search of another list (the registry's defaults changed): replaced
            logging.info(
                "select %s: the recorded search trained %s; searching %s", key, searched_names(found), names
            )
        summary = search(settings, FLAGS.select_dataset, seed, FLAGS.select_candidates, names)
        record = read_select_record(FLAGS.results_dir)  # re-read: another process may have added one
        record[key] = summary
        files.write_json(select_record_path(FLAGS.results_dir), record)
        logging.info(
            "select %s: %s (val %.1f %%, L2 %.1f %%), test %.1f %%, cost %.2f L2 runs",
            key,
            summary["method"],
            100 * summary["validation_top1"],
            100 * (summary["reference_top1"] or 0),
            100 * summary["test"]["top1"],
            summary["cost"]["ratio"],
        )


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
