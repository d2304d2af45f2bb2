"""LP-FT with its probe's C by 5 folds of the training split against C on the selection split.

    python benchmarks/lp_ft_folds.py [--datasets=dtd10] [--seeds=3] [--data_root=...]

Until 2026-12-05 `keras_tl.select`'s LP-FT candidate was `lp_ft(folds=5)` (`keras_tl.methods.LPFT`),
so that the split scoring the candidates did not also choose C; this measurement is why it now
chooses C on that split (docs/SELECTION.md). This script runs the folds candidate
as a full benchmark run at each seed (`benchmarks.runs.execute`: cached and resumable like the
suite's runs, same schedule, sample and source as the defaults plan's LP-FT) and prints, next to
the defaults plan's LP-FT and L2 at the same seed (and the same with C by the folds' log loss,
`scoring="log_loss"`):
- the test top-1 after fine-tuning,
- the Frobenius norm of the probed head's kernel (raw features) the fine-tuning started from
  (`head_norm`): the C each rule chose, as a size (a larger C, a weaker penalty, a larger head).
"""

import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from benchmarks import plans, suite  # noqa: E402  (the suite's flags too)
from benchmarks.runs import cached, execute, load_source, load_splits  # noqa: E402
from keras_tl import linear_probe  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["dtd10"], "Data sets.")  # --seeds (seeds 0, 1, ...) is the suite's


def head_norm(settings, run):
    """‖W‖ of the head `run` fine-tuned from: its cached `lp_head.npz`, else fitted again.

    Fitting again sees another random view of the training images (the training split is
    augmented, as the run's), so its C can differ from the run's by a step of the sweep.
    """
    path = os.path.join(settings.runs_dir, keras.backend.backend(), run.key(), "cache", "lp_head.npz")
    if os.path.isfile(path):
        with np.load(path) as saved:
            return float(np.linalg.norm(saved["kernel"])), "run"
    method = run.make_method()
    train, _, *validation = load_splits(run, FLAGS.data_root, selection=method.needs_validation)
    chosen = {"validation_data": validation[0]} if validation else {"folds": method.folds}
    (kernel, _), _ = linear_probe.fit_head(
        load_source(run.source)[0], train, num_classes=train.num_classes, scoring=method.scoring, **chosen
    )
    return float(np.linalg.norm(kernel)), "refit"


VARIANTS = (
    ("C on the selection split", {}),
    ("folds=5", {"folds": 5}),
    ("folds=5, log loss", {"folds": 5, "scoring": "log_loss"}),
)


def main(argv):
    del argv
    settings = suite.settings_from(FLAGS)
    names = [name for name, _ in VARIANTS]
    print(f"data set | seed | L2 | {' | '.join(f'LP-FT ({n})' for n in names)} | head norm: {' / '.join(names)}")
    gaps = {name: [] for name in names[1:]}
    for dataset in FLAGS.datasets:
        epochs = plans.chosen_epochs(settings, dataset)
        for seed in range(FLAGS.seeds):
            l2 = cached(plans.make_run(settings, dataset, "l2", epochs, seed=seed), settings.runs_dir)
            runs = [plans.make_run(settings, dataset, "lp_ft", epochs, seed=seed, hparams=h) for _, h in VARIANTS]
            top1 = [execute(run, FLAGS.data_root, settings.runs_dir).get("top1") for run in runs]
            for name, value in zip(names[1:], top1[1:], strict=True):
                if None not in (value, top1[0]):
                    gaps[name].append(value - top1[0])
            norms = [head_norm(settings, run) for run in runs]
            print(
                f"{dataset} | {seed} | "
                + " | ".join("—" if t is None else f"{100 * t:.1f}" for t in [l2 and l2.get("top1"), *top1])
                + " | "
                + " / ".join(f"{norm:.1f} ({where})" for norm, where in norms),
                flush=True,
            )
    for name, found in gaps.items():
        if found:
            print(f"LP-FT ({name}) − LP-FT ({names[0]}): {100 * np.mean(found):+.1f} points (mean of {len(found)})")


if __name__ == "__main__":
    app.run(main)
