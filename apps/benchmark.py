"""The offline benchmark: the papers' transfer protocol at CPU scale on the real data in ../shared/data.

    python -m apps.benchmark            # pre-train the two sources (cached), then every method
    python -m apps.benchmark --quick    # CI: tiny subsets, one seed; every method must beat chance
    python -m apps.benchmark --report   # rewrite docs/BENCHMARKS.md from the saved results only

1. Upstream: a CIFAR ResNet-20 pre-trained on Tiny-ImageNet-200 at 32×32, once with
   cross-entropy and once with DSD's PGD loss (WordNet prior), by `apps.pretrain`. A source
   is looked up in `--sources_dir` (the committed `saved_models/sources/<name>.keras`), then
   in `--cache_dir`, and only then trained (resumable, into the cache), under a name made
   of its configuration.
2. Downstream: `apps.finetune` on Caltech-101 (30 training images per class) and DTD-10, every
   method of `METHODS` with the same schedule, `--seeds` seeds each. `dsd` is DI2 from the PGD
   source; every other method starts from the cross-entropy source. Each (data set, method)
   writes its own `results.json` and is skipped when rerun with the same configuration, so an
   interrupted benchmark resumes where it stopped.
3. Report: `docs/BENCHMARKS.md` (tables, gains over L2 and L2-SP, step-time ratios against
   plain fine-tuning, DI2's k, the papers' expected directions checked, wall times), PNG plots
   and every run's JSON under `docs/benchmarks/`.

Hyper-parameters are the methods' defaults (the papers' settings, see `keras_tl.methods`); nothing
is tuned, so no split is used for selection. The results on the test splits are reported once.
"""

import importlib.metadata
import json
import math
import os
import platform
import sys
import time

import keras
from absl import flags, logging

import keras_tl.data
from apps import benchmark_report, common, finetune, pretrain
from keras_tl import methods

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_ROOT = os.path.normpath(os.path.join(PROJECT_ROOT, "..", "shared", "data"))
SOURCES_DIR = os.path.join(PROJECT_ROOT, "saved_models", "sources")

# label → (apps.finetune method entry, source loss). `dsd` is the full DSD: PGD source + DI2.
METHODS = {
    "l2": ("l2", "cross_entropy"),
    "l2_fe": ("l2_fe", "cross_entropy"),
    "l2_sp": ("l2_sp", "cross_entropy"),
    "knowdist": ("knowdist", "cross_entropy"),
    "delta": ("delta", "cross_entropy"),
    "l2_sp_att": ("l2_sp_att", "cross_entropy"),
    "afa": ("afa", "cross_entropy"),
    "spa_gca": ("spa_gca", "cross_entropy"),
    "bss": ("bss", "cross_entropy"),
    "co_tuning": ("co_tuning", "cross_entropy"),
    "lwf": ("lwf", "cross_entropy"),
    "di2": ("di2", "cross_entropy"),
    "dsd": ("di2", "pgd"),
    "l2_sp+dtnh": ("l2_sp+dtnh", "cross_entropy"),
    "knowdist+dtnh": ("knowdist+dtnh", "cross_entropy"),
    "delta+dtnh": ("delta+dtnh", "cross_entropy"),
}

# The downstream protocol per data set: split files of ../shared/data, few-shot sampling, schedule.
DATASETS = {
    "caltech101": {"split": "train", "eval_split": "test", "per_class": 30, "epochs": 4},
    "dtd10": {"split": "train", "eval_split": "test", "per_class": 0, "epochs": 15},
}
QUICK = {"datasets": ["dtd10"], "per_class": 0, "epochs": 3, "seeds": 1}
# --quick also shortens DELTA's attention measurement (Alg. 1): its head and ablation passes.
# Chosen on DTD-10's val split (never a test split), seed 0, DTD-10's schedule: the coefficient of
# the regularizers whose scale depends on the network and input size (feature maps summed over
# positions, attention), and L2-SP's, on which DTNH is compared. Every other coefficient is the
# paper's. Grids: the paper's value and ten and a hundred times less (feature maps) or more (L2-SP).
SELECTION_DATASET = "dtd10"
SELECTION = {
    "l2_sp": ("alpha", (0.01, 0.1, 1.0)),
    "l2_sp_att": ("alpha", (0.01, 0.1, 1.0)),
    "knowdist": ("alpha", (0.01, 0.001, 0.0001)),
    "delta": ("alpha", (0.01, 0.001, 0.0001)),
    "afa": ("alpha", (0.01, 0.001, 0.0001)),
    "spa_gca": ("alpha", (0.01, 0.001, 0.0001)),
}
QUICK_HPARAMS = {"delta": "head_epochs=2,num_batches=1", "l2_sp_att": "head_epochs=2,num_batches=1"}
# Without a committed or cached source, --quick pre-trains a stand-in on 10 images per class.
QUICK_PRETRAIN = {"per_class": 10, "epochs": 1}

FLAGS = flags.FlagValues()
flags.DEFINE_boolean(
    "quick", False, "CI mode: DTD-10 only, 3 epochs, 1 seed, shorter DELTA attention.", flag_values=FLAGS
)
flags.DEFINE_boolean(
    "report", False, "Only rewrite --doc from the results saved in --results_dir.", flag_values=FLAGS
)
flags.DEFINE_string("data_root", DATA_ROOT, "The shared data folder (see its README).", flag_values=FLAGS)
flags.DEFINE_list(
    "datasets", list(DATASETS), f"Downstream data sets from {list(DATASETS)}.", flag_values=FLAGS
)
flags.DEFINE_list("methods", list(METHODS), f"Methods from {list(METHODS)}.", flag_values=FLAGS)
flags.DEFINE_integer("seeds", 3, "Runs per method (seeds 0..N-1).", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_boolean(
    "reuse_selection",
    False,
    "Take the coefficients the last full run chose (its results JSON in --results_dir) instead of "
    "selecting them again on DTD-10's val split (e.g. for a second backend).",
    flag_values=FLAGS,
)
flags.DEFINE_boolean(
    "cached_only",
    False,
    "Only collect the runs already finished (in --runs_dir) into the results and the report; "
    "the others are listed as not run.",
    flag_values=FLAGS,
)
flags.DEFINE_integer("batch_size", 32, "Fine-tuning batch size.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_float(
    "lr", 0.01, "Fine-tuning learning rate (cosine decay).", lower_bound=0.0, flag_values=FLAGS
)
flags.DEFINE_string("backbone", "cifar_resnet20", "Source architecture.", flag_values=FLAGS)
flags.DEFINE_integer("pretrain_epochs", 10, "Upstream epochs.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("pretrain_batch_size", 128, "Upstream batch size.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_float(
    "pretrain_lr", 0.1, "Upstream learning rate (cosine decay).", lower_bound=0.0, flag_values=FLAGS
)
flags.DEFINE_string("sources_dir", SOURCES_DIR, "Committed source models (<name>.keras).", flag_values=FLAGS)
flags.DEFINE_string(
    "cache_dir",
    os.path.join("~", ".cache", "keras_tl"),
    "Where sources are trained and kept.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "results_dir", "docs/benchmarks", "Where each backend's results JSON and the plots go.", flag_values=FLAGS
)
flags.DEFINE_string("runs_dir", "runs/benchmark", "Per-run outputs (resumable).", flag_values=FLAGS)
flags.DEFINE_string("doc", "docs/BENCHMARKS.md", "The report written after a full run.", flag_values=FLAGS)
flags.DEFINE_integer(
    "verbose", 2, "Keras fit verbosity (0, 1 or 2).", lower_bound=0, upper_bound=2, flag_values=FLAGS
)
common.validator(FLAGS, "datasets", lambda names: _check_names("--datasets", names, DATASETS))
common.validator(FLAGS, "methods", lambda names: _check_names("--methods", names, METHODS))

IMAGE_SIZE = 32  # Tiny-ImageNet-32's resolution: the sources' input


def _check_names(flag, names, allowed):
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise ValueError(f"Expected {flag} from {list(allowed)}. Received: {unknown or names}")


# ------------------------------------------------------------------------------------ upstream


def source_name(fv, loss):
    return (
        f"tin32_{fv.backbone}_{loss}_e{fv.pretrain_epochs}_b{fv.pretrain_batch_size}_lr{fv.pretrain_lr:g}_s0"
    )


def pretrain_argv(fv, loss, output_dir, quick=False):
    epochs = QUICK_PRETRAIN["epochs"] if quick else fv.pretrain_epochs
    quick_flags = [f"--per_class={QUICK_PRETRAIN['per_class']}", "--eval_split="] if quick else []
    return [
        f"--dataset=tfrecord:{os.path.join(fv.data_root, 'tiny-imagenet-32')}",
        f"--backbone={fv.backbone}",
        f"--image_size={IMAGE_SIZE}",
        f"--epochs={epochs}",
        f"--batch_size={fv.pretrain_batch_size}",
        f"--lr={fv.pretrain_lr}",
        "--seed=0",
        "--eval_split=validation",
        f"--loss={loss}",
        f"--output_dir={output_dir}",
        f"--output={os.path.join(output_dir, 'source.keras')}",
        f"--backup_dir={os.path.join(output_dir, 'backup')}",
    ] + quick_flags


def source_path(fv, loss):
    """The source for `loss`: committed, cached, or pre-trained now with `apps.pretrain` (resumable).

    With --quick and no full source, a stand-in pre-trained for one epoch on 10 images per class.
    """
    name = source_name(fv, loss)
    committed = os.path.join(fv.sources_dir, f"{name}.keras")
    if os.path.isfile(committed):
        return committed
    cache = os.path.join(os.path.expanduser(fv.cache_dir), "sources")
    if os.path.isfile(os.path.join(cache, name, "source.keras")):
        return os.path.join(cache, name, "source.keras")
    if fv.quick:
        name += "_quick"
    output_dir = os.path.join(cache, name)
    cached = os.path.join(output_dir, "source.keras")
    if os.path.isfile(cached):
        return cached
    argv = pretrain_argv(fv, loss, output_dir, quick=fv.quick)
    logging.warning(
        "No source %s yet: pre-training it with\n  python -m apps.pretrain %s", name, " ".join(argv)
    )
    common.parse(pretrain.FLAGS, ["pretrain"] + argv)
    pretrain.run(pretrain.FLAGS)
    return cached


def evaluate_source(fv, path):
    """Top-1 and mean per-class accuracy of a source's upstream head on Tiny-ImageNet's validation split."""
    model = common.load_keras_model(path)
    card = common.load_card(path)
    data = keras_tl.data.load(
        f"tfrecord:{os.path.join(fv.data_root, 'tiny-imagenet-32')}",
        "validation",
        image_size=(IMAGE_SIZE, IMAGE_SIZE),
        preprocess=card.get("preprocess", fv.backbone),
        batch_size=256,
        training=False,
    )
    return keras_tl.data.evaluate(model, data.dataset, data.num_classes)


# ------------------------------------------------------------------------------------ downstream


def protocol(fv, dataset):
    """The schedule of `dataset` (the `--quick` one with --quick)."""
    settings = {**DATASETS[dataset], "batch_size": fv.batch_size, "lr": fv.lr, "seeds": fv.seeds}
    if fv.quick:
        settings.update(per_class=QUICK["per_class"], epochs=QUICK["epochs"], seeds=QUICK["seeds"])
    return settings


def finetune_argv(fv, dataset, method, source, output_dir, hparams="", eval_split=None, seeds=None):
    settings = protocol(fv, dataset)
    if fv.quick:
        hparams = ",".join(filter(None, [hparams, QUICK_HPARAMS.get(methods.split_entry(method)[0])]))
    return ([f"--hparams={hparams}"] if hparams else []) + [
        f"--source={source}",
        f"--dataset=folder:{os.path.join(fv.data_root, dataset)}",
        f"--split={settings['split']}",
        f"--eval_split={eval_split or settings['eval_split']}",
        f"--per_class={settings['per_class']}",
        f"--epochs={settings['epochs']}",
        f"--image_size={IMAGE_SIZE}",
        f"--batch_size={settings['batch_size']}",
        f"--lr={settings['lr']}",
        f"--method={method}",
        f"--repeats={seeds or settings['seeds']}",
        "--seed=0",
        "--validation_freq=0",
        "--noten_crop",
        "--noexport",
        f"--verbose={fv.verbose}",
        f"--output_dir={output_dir}",
    ]


def finetune_once(argv, source, cached_only=False):
    """`apps.finetune` with `argv` (all seeds of one method); reuses the saved result of the same argv.

    With `cached_only`, returns None instead of running.
    """
    output_dir = next(arg.split("=", 1)[1] for arg in argv if arg.startswith("--output_dir="))
    saved = os.path.join(output_dir, "results.json")
    if os.path.isfile(saved):
        with open(saved) as handle:
            report = json.load(handle)
        if report.get("argv") == argv:
            logging.info("Reusing %s", saved)
            return report
    if cached_only:
        return None
    logging.info("python -m apps.finetune %s", " ".join(argv))
    common.parse(finetune.FLAGS, ["finetune"] + argv)
    try:
        report = finetune.run(finetune.FLAGS)
    except FloatingPointError as error:  # NaNGuard: one diverged method must not stop the benchmark
        logging.warning("Diverged: %s", error)
        report = {"argv": argv, "source": source, "diverged": str(error)}
        with open(saved, "w") as handle:
            json.dump(report, handle, indent=2)
        return report
    report = {
        "argv": argv,
        "source": source,
        "eval_examples": report["eval_examples"],
        "num_classes": len(report["class_names"]),
        "result": next(iter(report["results"].values())),
        "wall_seconds": report["wall_seconds"],
    }
    with open(saved, "w") as handle:
        json.dump(report, handle, indent=2)
    return report


def run_dir(fv, *parts):
    return os.path.join(fv.runs_dir, keras.backend.backend(), "quick" if fv.quick else "full", *parts)


def select_hparams(fv, sources):
    """The coefficient of each `SELECTION` method with the best top-1 on DTD-10's val split (seed 0).

    Returns `{method: {"chosen": "alpha=...", "val_top1": {value: top-1}}}`; the chosen value
    is used for the method (and its +dtnh variant) on every data set. Ties go to the first value.
    """
    chosen = {}
    wanted = {methods.split_entry(METHODS[label][0])[0] for label in fv.methods}
    for method, (name, values) in SELECTION.items():
        if method not in wanted:
            continue
        scores, seconds = {}, 0.0
        for value in values:
            argv = finetune_argv(
                fv,
                SELECTION_DATASET,
                method,
                sources["cross_entropy"],
                run_dir(fv, "selection", f"{method}_{name}{value:g}"),
                hparams=f"{name}={value:g}",
                eval_split="val",
                seeds=1,
            )
            report = finetune_once(argv, sources["cross_entropy"])
            scores[f"{value:g}"] = None if "diverged" in report else report["result"]["runs"][0]["top1"]
            seconds += report.get("wall_seconds", 0.0)
        # max keeps the first of equal scores; a diverged value (None) is never chosen.
        best = max(scores, key=lambda value: -1.0 if scores[value] is None else scores[value])
        chosen[method] = {"chosen": f"{name}={best}", "val_top1": scores, "wall_seconds": round(seconds, 1)}
        logging.info("Selected %s %s=%s on %s/val: %s", method, name, best, SELECTION_DATASET, scores)
    return chosen


def saved_selection(fv):
    """The coefficients the last full run on TensorFlow (else this backend) chose, or none.

    Looked up in --results_dir, then in the committed `docs/benchmarks/`.
    """
    for directory in (fv.results_dir, os.path.join(PROJECT_ROOT, "docs", "benchmarks")):
        for backend in ("tensorflow", keras.backend.backend()):
            path = os.path.join(directory, f"results_full_{backend}.json")
            if os.path.isfile(path):
                with open(path) as handle:
                    return json.load(handle).get("selection", {}).get("methods", {})
    return {}


def run_method(fv, dataset, label, sources, selected):
    """One (data set, method) with all seeds, with the coefficient chosen by `select_hparams`."""
    method, loss = METHODS[label]
    hparams = selected.get(methods.split_entry(method)[0], {}).get("chosen", "")
    argv = finetune_argv(fv, dataset, method, sources[loss], run_dir(fv, dataset, label), hparams=hparams)
    return finetune_once(argv, sources[loss], cached_only=fv.cached_only)


def chance_threshold(num_classes, num_examples, z=3.09):
    """The top-1 above which guessing is rejected at p < 0.001 (one-sided, normal approximation)."""
    chance = 1.0 / num_classes
    return chance + z * math.sqrt(chance * (1 - chance) / num_examples)


def environment():
    import tensorflow as tf  # the data pipeline's engine, present on every backend

    try:
        jax_version = importlib.metadata.version("jax")
    except importlib.metadata.PackageNotFoundError:
        jax_version = None
    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "jax": jax_version,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m apps.benchmark " + " ".join(sys.argv[1:]),
    }


def run(fv):
    """Runs the benchmark with the parsed flags `fv`; returns the results dict (also saved as JSON)."""
    start = time.perf_counter()
    datasets = QUICK["datasets"] if fv.quick else fv.datasets
    losses = sorted({METHODS[label][1] for label in fv.methods})
    sources, upstream = {}, {}
    for loss in losses:
        sources[loss] = source_path(fv, loss)
        upstream[loss] = {"path": sources[loss], "card": common.load_card(sources[loss])}
        if not fv.quick:
            upstream[loss]["validation"] = evaluate_source(fv, sources[loss])
    results = {"environment": environment(), "upstream": upstream, "datasets": {}, "quick": fv.quick}
    selection_start = time.perf_counter()
    selected = saved_selection(fv) if fv.quick or fv.reuse_selection else select_hparams(fv, sources)
    results["selection"] = {
        "methods": selected,
        "wall_seconds": round(time.perf_counter() - selection_start, 1),
    }
    for dataset in datasets:
        dataset_start = time.perf_counter()
        runs = {label: run_method(fv, dataset, label, sources, selected) for label in fv.methods}
        results["datasets"][dataset] = {
            "protocol": protocol(fv, dataset),
            "methods": {label: report for label, report in runs.items() if report is not None},
            "not_run": [label for label, report in runs.items() if report is None],
            "wall_seconds": round(time.perf_counter() - dataset_start, 1),
        }
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    os.makedirs(fv.results_dir, exist_ok=True)
    mode = "quick" if fv.quick else "full"
    path = os.path.join(fv.results_dir, f"results_{mode}_{keras.backend.backend()}.json")
    with open(path, "w") as handle:
        json.dump(results, handle, indent=2)
    results["path"] = path
    return results


def check_beats_chance(results):
    """Raises `AssertionError` naming every (data set, method) whose top-1 is not above chance."""
    failures = []
    for dataset, entry in results["datasets"].items():
        for label, report in entry["methods"].items():
            if "diverged" in report:
                failures.append(f"{dataset}/{label}: diverged")
                continue
            threshold = chance_threshold(report["num_classes"], report["eval_examples"])
            top1 = min(run["top1"] for run in report["result"]["runs"])
            if not top1 > threshold:
                failures.append(f"{dataset}/{label}: top-1 {top1:.3f} <= {threshold:.3f}")
    if failures:
        raise AssertionError(
            "Expected every method to beat chance (p < 0.001). Received: " + "; ".join(failures)
        )


def main(argv):
    del argv
    if not FLAGS.report:
        results = run(FLAGS)
        print(benchmark_report.summary_table(results))
        print(f"Results: {results['path']}; wall time {results['wall_seconds']} s")
        if FLAGS.quick:
            check_beats_chance(results)
            print("Every method beats chance.")
            return
    benchmark_report.write_doc(FLAGS.results_dir, FLAGS.doc)
    print(f"Wrote {FLAGS.doc}")


if __name__ == "__main__":
    common.run(main, FLAGS)
