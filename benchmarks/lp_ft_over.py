"""LP-FT over another method: the probe's head, then that method's fine-tuning, paired with both parts.

    python -m benchmarks.lp_ft_over --lp_ft_base=co_tuning --lp_ft_datasets=dtd10,caltech101

Why (issue 27): on Caltech-101 `select`'s default search returns LP-FT, the early leader, while
the best method there is Co-Tuning, a late one. `keras_tl.methods.get("lp_ft", base=...)`
stacks the two with no new code. For every committed run of the base method at its defaults
(test split), the same `benchmarks.runs.Run` is made with `method="lp_ft"` and
`hparams=(("base", <base>),)` into `--lp_ft_runs_dir` (cached there by its key, so a rerun only
prints), and compared per seed with the base's run and LP-FT's (read from `--runs_dir`).

Result (docs/benchmarks/notes.md, 2026-12-07): over Co-Tuning, +0.7 on Caltech-101 and −2.1 against
LP-FT on DTD-10.
"""

import glob
import json
import os

import keras
from absl import app, flags, logging

from benchmarks import cells, runs, statistics, suite

flags.DEFINE_string("lp_ft_base", "co_tuning", "The method LP-FT fine-tunes with (a registered name).")
flags.DEFINE_list("lp_ft_datasets", ["dtd10", "caltech101"], "The data sets (benchmarks.datasets).")
flags.DEFINE_string("lp_ft_runs_dir", "runs/lp_ft_over", "Where the stacked runs are cached.")
FLAGS = flags.FLAGS


def base_runs(runs_dir, base, dataset):
    """The finished runs of `base` at its defaults on `dataset`'s test split, by seed."""
    found = {}
    for path in glob.glob(os.path.join(runs_dir, keras.backend.backend(), "*.json")):
        with open(path) as handle:
            result = json.load(handle)
        run = result.get("run") if isinstance(result, dict) else None
        if run and run["method"] == base and not run["hparams"] and run["dataset"] == dataset:
            if run["eval_split"] == "test" and "top1" in result:
                found[run["seed"]] = run
    return found


def compare(settings, base, dataset, stacked_dir):
    """Runs the stacked method at each of the base's configurations; prints a line a seed and the pairs."""
    stacked, alone, lp_ft = {}, {}, {}
    name = cells.display(base)
    for seed, fields in sorted(base_runs(settings.runs_dir, base, dataset).items()):
        fields = {**fields, "hparams": ()}
        alone[seed] = runs.cached(runs.Run(**fields), settings.runs_dir)["top1"]
        found = runs.cached(runs.Run(**{**fields, "method": "lp_ft"}), settings.runs_dir)
        if found and "top1" in found:
            lp_ft[seed] = found["top1"]
        run = runs.Run(**{**fields, "method": "lp_ft", "hparams": (("base", base),)})
        result = runs.execute(run, settings.data_root, stacked_dir)
        stacked[seed] = result.get("top1")
        print(
            f"{dataset} seed {seed}: LP-FT over {name} {cells.pct(stacked[seed])} %, {name} "
            f"{cells.pct(alone[seed])} %, LP-FT {cells.pct(lp_ft.get(seed))} %",
            flush=True,
        )
    finished = {seed: top1 for seed, top1 in stacked.items() if top1 is not None}
    print(
        f"{dataset}: − {name} {cells.diff_cell(statistics.paired(finished, alone))} points, "
        f"− LP-FT {cells.diff_cell(statistics.paired(finished, lp_ft))} points",
        flush=True,
    )


def main(argv):
    del argv
    settings = suite.settings_from(FLAGS)
    for dataset in FLAGS.lp_ft_datasets:
        compare(settings, FLAGS.lp_ft_base, dataset, FLAGS.lp_ft_runs_dir)


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
