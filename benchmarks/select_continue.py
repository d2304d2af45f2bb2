"""What a candidate that a `select` rung stopped would have scored at the last rung (issue 27).

    python -m benchmarks.select_continue --select_dataset=caltech101 --select_seeds=1,2 --candidate=7

A counterfactual for the rungs' fidelity: a copy of the search's candidate folder
(`<runs_dir>/<backend>/select_<dataset>_s<seed>/candidate_<i>`, its checkpoint at the rung where it
stopped) is continued to the run's last epoch with the search's own recipe (same source, sample,
schedule and validation split as `benchmarks.select_runs`), then scored on the validation split
and the test split. The search's folder is not touched. Prints one line per seed next to the
search's L2 on its last rung, and writes `<runs_dir>/<backend>/select_continue.json`.
"""

import functools

from absl import app, flags, logging

import keras_tl
from benchmarks import select_runs, suite  # select_runs: the --select_dataset and --select_seeds flags too
from benchmarks.records import measured_once, read_select_record
from keras_tl import methods

flags.DEFINE_integer("candidate", 7, "The candidate's index in the search (7: LP-FT among the defaults).")
FLAGS = flags.FLAGS


def continue_candidate(settings, dataset, seed, index):
    """The candidate's validation and test top-1 at the run's last epoch (a copy continued)."""
    _, recipe, test = select_runs.search_recipe(settings, dataset, seed)
    validation = recipe.validation
    search = read_select_record(FLAGS.results_dir)[f"{dataset}/s{seed}"]
    row = next(r for r in search["table"] if r["index"] == index)
    copy = select_runs.candidate_copy(settings, dataset, seed, index, f"select_continue_{dataset}_s{seed}_{index}")
    model, _ = recipe.fine_tune(methods.get(row["method"], **row["hparams"]), copy, recipe.epochs)
    last = [r for r in search["table"] if r["rung"] == max(t["rung"] for t in search["table"])]
    return {
        "candidate": row["candidate"],
        "val_top1": keras_tl.data.evaluate(model, validation.dataset, validation.num_classes)["top1"],
        "test_top1": keras_tl.data.evaluate(model, test.dataset, test.num_classes)["top1"],
        "l2_last_rung_val_top1": next(r["val_top1"] for r in last if r["method"] == "l2"),
        "chosen": search["method"],
        "chosen_test_top1": search["test"]["top1"],
    }


def main(argv):
    del argv
    settings = suite.settings_from(FLAGS)
    for seed in map(int, FLAGS.select_seeds):
        key = f"{FLAGS.select_dataset}/s{seed}/candidate_{FLAGS.candidate}"
        measure = functools.partial(continue_candidate, settings, FLAGS.select_dataset, seed, FLAGS.candidate)
        r = measured_once(settings.runs_dir, "select_continue", key, measure)
        print(
            f"{key}: {r['candidate']} continued to the last epoch: val {100 * r['val_top1']:.2f} % "
            f"(L2 {100 * r['l2_last_rung_val_top1']:.2f} %), test {100 * r['test_top1']:.1f} %; "
            f"the search chose {r['chosen']} (test {100 * r['chosen_test_top1']:.1f} %)"
        )


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
