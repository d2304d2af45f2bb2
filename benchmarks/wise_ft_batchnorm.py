"""WiSE-FT's sweep on one fine-tuned model, BatchNorm statistics interpolated (the reference) or re-estimated.

    python -m benchmarks.wise_ft_batchnorm --select_dataset=tin-b --select_seeds=0

Why: `keras_tl.select`'s WiSE-FT step never changed a model on Caltech-101 or the tin sets; its
sweeps fell to chance for α in [0.3, 0.9]. Here an L2 run with the search's recipe (source,
schedule, seed, the selection split's validation data) is fine-tuned once (or restored from
`<runs_dir>/<backend>/wise_ft_batchnorm_<dataset>_s<seed>`) and swept both ways with
`keras_tl.wise_ft`: interpolated statistics, and statistics re-estimated on the training split
(`batchnorm_data`, `keras_tl.batchnorm.update_statistics`). Prints one line per α.

Result (docs/benchmarks/notes.md, 2026-12-06): on tin-b seed 0 the interpolated statistics give
19.6 % at α = 1 and 2.9-5.5 % for α in [0.4, 0.9]; re-estimated, 19.0-20.7 %.
"""

import os

import keras
from absl import app, flags, logging

import keras_tl
from benchmarks import select_runs, suite

FLAGS = flags.FLAGS


def sweeps(settings, dataset, seed):
    """`(interpolated, re-estimated)`: the two `keras_tl.wise_ft` tables of the seed's L2 run."""
    _, recipe, _ = select_runs.search_recipe(settings, dataset, seed)
    folder = os.path.join(settings.runs_dir, keras.backend.backend(), f"wise_ft_batchnorm_{dataset}_s{seed}")
    model, _ = recipe.fine_tune(keras_tl.methods.get("l2"), folder, recipe.epochs)
    common = dict(validation_data=recipe.validation, source=recipe.source)
    _, plain = keras_tl.wise_ft(model, **common)
    _, recomputed = keras_tl.wise_ft(model, batchnorm_data=recipe.train, **common)
    return plain["table"], recomputed["table"]


def main(argv):
    del argv
    settings = suite.settings_from(FLAGS)
    for seed in map(int, FLAGS.select_seeds):
        plain, recomputed = sweeps(settings, FLAGS.select_dataset, seed)
        for a, b in zip(plain, recomputed, strict=True):
            print(
                f"{FLAGS.select_dataset} s{seed} alpha {a['alpha']:.1f}: interpolated statistics "
                f"{100 * a['top1']:.1f} %, re-estimated {100 * b['top1']:.1f} %",
                flush=True,
            )


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
