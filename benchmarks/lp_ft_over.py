"""LP-FT over another method: the probe's head, then that method's fine-tuning, paired with both parts.

    python -m benchmarks.lp_ft_over --lp_ft_base=co_tuning --lp_ft_datasets=dtd10,caltech101

Why (issue 27): on Caltech-101 `select`'s default search returns LP-FT, the early leader, while
the best method there is Co-Tuning, a late one. `keras_tl.methods.get("lp_ft", base=...)`
stacks the two with no new code. For every run of the base method in the data set's `defaults`
plan (its defaults, test split), the same `benchmarks.runs.Run` is made with `method="lp_ft"` and
`hparams=(("base", <base>),)` into `--lp_ft_runs_dir` (cached there by its key, so a rerun only
prints), and compared per seed with the base's run and LP-FT's (read from `--runs_dir`).

Result (docs/benchmarks/notes.md, 2026-12-07): over Co-Tuning, +0.7 on Caltech-101 and −2.1 against
LP-FT on DTD-10.
"""

import dataclasses

from absl import app, flags, logging

from benchmarks import cells, plans, records, runs, statistics, suite

flags.DEFINE_string("lp_ft_base", "co_tuning", "The method LP-FT fine-tunes with (a registered name).")
flags.DEFINE_list("lp_ft_datasets", ["dtd10", "caltech101"], "The data sets (benchmarks.datasets).")
flags.DEFINE_string("lp_ft_runs_dir", "runs/lp_ft_over", "Where the stacked runs are cached.")
FLAGS = flags.FLAGS


def compare(settings, base, dataset, stacked_dir):
    """Runs the stacked method at each of the base's defaults runs; prints a line a seed and the pairs."""
    stacked, alone, lp_ft = {}, {}, {}
    name = cells.display(base)
    found = records.collect(settings, plans.plan(settings, f"defaults:{dataset}", [base]))
    for run, result in sorted(found, key=lambda pair: pair[0].seed):
        if run.method != base or result is None or "top1" not in result:
            continue
        alone[run.seed] = result["top1"]
        probe = runs.cached(dataclasses.replace(run, method="lp_ft"), settings.runs_dir)
        if probe and "top1" in probe:
            lp_ft[run.seed] = probe["top1"]
        both = runs.execute(
            dataclasses.replace(run, method="lp_ft", hparams=(("base", base),)),
            settings.data_root,
            stacked_dir,
        )
        stacked[run.seed] = both.get("top1")
        print(
            f"{dataset} seed {run.seed}: LP-FT over {name} {cells.pct(stacked[run.seed])} %, {name} "
            f"{cells.pct(alone[run.seed])} %, LP-FT {cells.pct(lp_ft.get(run.seed))} %",
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
