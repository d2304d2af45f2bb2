"""The offline transfer benchmark on the real data of ../shared/data, resumable, on the library API.

    python -m benchmarks.suite                       # every plan, in order; reruns skip finished runs
    python -m benchmarks.suite --plans=dtnh:l2_sp    # one plan
    python -m benchmarks.suite --quick               # CI: DTD-10, 3 epochs, 1 seed, every method, 2 workers
    python -m benchmarks.suite --workers=2           # two runs at a time (each on half the cores)
    python -m benchmarks.suite --report              # rewrite docs/BENCHMARKS.md from saved runs

Plans (see `benchmarks.plans`): `schedule:<dataset>` (L2's validation curve at growing epochs:
the converged schedule), `grid` (each method's coefficient around the paper's value, on
DTD-10's val split), `table:<dataset>` (every method, every seed, test split), `dtnh[:<method>]`
(X and DTNH(X) over α on DTD-10), `ablation:<dataset>` (DELTA with uniform channel weights,
next to DELTA and KnowDist). Each run is cached by the hash of its config under --runs_dir, so
a killed suite resumes where it stopped and plans share runs.
"""

import contextlib
import multiprocessing
import os
import time
from concurrent import futures

import keras
from absl import app, flags, logging

from benchmarks import plans, report, statistics
from benchmarks.runs import cached, execute, restore

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = os.path.join(PROJECT_ROOT, "saved_models", "sources")
DEFAULT_PLANS = [
    "schedule:dtd10",
    "dtnh:l2_sp",
    "grid",
    "table:dtd10",
    "schedule:caltech101",
    "table:caltech101",
    "dtnh:knowdist",
    "dtnh:delta",
    "ablation:dtd10",
    "ablation:caltech101",
]

FLAGS = flags.FLAGS
flags.DEFINE_list("plans", DEFAULT_PLANS, "Plans to run, in order.")
flags.DEFINE_list("methods", None, "Methods of the table plans; default: every registered one (plans.table_labels).")
flags.DEFINE_string(
    "data_root", os.path.join(PROJECT_ROOT, "..", "shared", "data"), "The shared data folder."
)
flags.DEFINE_string(
    "cross_entropy_source",
    os.path.join(SOURCES, "tin32_cifar_resnet20_cross_entropy_e10_b128_lr0.1_s0.keras"),
    "The cross-entropy source (.keras with its .json card).",
)
flags.DEFINE_string(
    "pgd_source",
    os.path.join(SOURCES, "tin32_cifar_resnet20_pgd_priorbias_e10_b128_lr0.1_s0.keras"),
    "The PGD source of DSD (benchmarks/sources.py --loss=pgd --head_bias=prior).",
)
flags.DEFINE_string(
    "near_cross_entropy_source",
    os.path.join(SOURCES, "tinA32_cifar_resnet20_cross_entropy_e20_b128_lr0.1_s0.keras"),
    "The cross-entropy source of the near-transfer target tin-b, pre-trained on Tiny-ImageNet's half A "
    "(benchmarks/sources.py --half=A).",
)
flags.DEFINE_string(
    "near_pgd_source",
    os.path.join(SOURCES, "tinA32_cifar_resnet20_pgd_priorbias_e20_b128_lr0.1_s0.keras"),
    "The PGD source of tin-b (benchmarks/sources.py --half=A --loss=pgd --head_bias=prior).",
)
flags.DEFINE_integer(
    "seeds", 3, "Seeds per entry (a test table in plans.Settings.table_seeds has its own).", lower_bound=1
)
flags.DEFINE_string("runs_dir", "runs/suite", "Where each run's result is cached.")
flags.DEFINE_string("results_dir", "docs/benchmarks", "Where the report's JSON and plots go.")
flags.DEFINE_string("doc", "docs/BENCHMARKS.md", "The report.")
flags.DEFINE_string(
    "selection_backend",
    "",
    "Take the schedule and coefficients from this backend's saved runs (e.g. tensorflow, for a "
    "JAX subset); empty: this backend's.",
)
flags.DEFINE_boolean("quick", False, f"CI: DTD-10, {plans.QUICK_EPOCHS} epochs, 1 seed, every method.")
flags.DEFINE_boolean("report", False, "Only rewrite the report from saved runs.")
flags.DEFINE_integer(
    "workers",
    None,
    "Processes that run a plan's runs side by side, sharing the cores; default 2 with --quick, else 1.",
    lower_bound=1,
)
flags.DEFINE_integer("verbose", 0, "Keras fit verbosity.", lower_bound=0, upper_bound=2)


def settings_from(fv):
    return plans.Settings(
        sources=(("cross_entropy", fv.cross_entropy_source), ("pgd", fv.pgd_source)),
        near_sources=(("cross_entropy", fv.near_cross_entropy_source), ("pgd", fv.near_pgd_source)),
        data_root=fv.data_root,
        runs_dir=os.path.join(fv.runs_dir, "quick") if fv.quick else fv.runs_dir,
        seeds=1 if fv.quick else fv.seeds,
        quick=fv.quick,
        selection_backend=fv.selection_backend or None,
    )


def skip_graph_optimization():
    """--quick on TensorFlow: no Grappler passes (fusions, constant folding, layout).

    They cost about 3 s of each run's first step on 2 cores, a fifth of a 3-epoch run, and
    only change float rounding: --quick checks that every method trains, not the last digit.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def _init_worker(threads, quick):
    # Before TensorFlow starts its thread pools: N workers share the cores instead of each
    # spreading over all of them.
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if quick:
        skip_graph_optimization()


def _timed_execute(run, data_root, runs_dir, verbose, backup):
    start = time.perf_counter()
    return execute(run, data_root, runs_dir, verbose=verbose, backup=backup), time.perf_counter() - start


@contextlib.contextmanager
def _executor(workers, quick):
    """None (runs in this process) for one worker, else a pool of fresh interpreters.

    A run spends a third of its time on 2 cores tracing and building in one Python thread;
    two workers overlap that with the other's steps. Spawned, not forked: a forked
    TensorFlow runtime can deadlock.
    """
    if workers <= 1:
        yield None
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(workers, context, _init_worker, (threads, quick)) as pool:
        yield pool


def run_plan(settings, name, labels, verbose=0, workers=1):
    """Runs every run of plan `name` not yet saved, until the plan asks for no more; returns its results.

    A plan grows as results arrive (a grid's winning edge, the schedule's epochs), so it is
    recomputed after each pass. With `workers` > 1 a pass's runs go to that many processes.
    """
    done = {}
    # --quick's runs last seconds: nothing to resume, so no per-epoch checkpoint.
    args = (settings.data_root, settings.runs_dir, verbose, not settings.quick)
    with _executor(workers, settings.quick) as pool:
        while True:
            todo = [r for r in plans.plan(settings, name, labels) if r.key() not in done]
            if not todo:
                return list(done.values())
            for run in todo:
                saved = cached(run, settings.runs_dir)
                if saved is not None:
                    done[run.key()] = saved
            fresh = [run for run in todo if run.key() not in done]
            if pool is None:
                finished = ((run, _timed_execute(run, *args)) for run in fresh)
            else:
                jobs = {pool.submit(_timed_execute, run, *args): run for run in fresh}
                finished = ((jobs[job], job.result()) for job in futures.as_completed(jobs))
            for index, (run, (result, seconds)) in enumerate(finished):
                done[run.key()] = result
                _log_run(name, index, len(fresh), run, result, seconds)


def _log_run(name, index, total, run, result, seconds):
    outcome = "diverged" if "diverged" in result else f"top-1 {100 * result['top1']:.1f}"
    logging.info(
        "[%s %d/%d] %s %s seed %d %s/%s, %d epochs: %s (%.0f s)",
        name,
        index + 1,
        total,
        run.dataset,
        run.label,
        run.seed,
        run.split,
        run.eval_split,
        run.epochs,
        outcome,
        seconds,
    )


def main(argv):
    del argv
    settings = settings_from(FLAGS)
    if FLAGS.quick:
        skip_graph_optimization()
    else:
        restored = restore(FLAGS.results_dir, settings.runs_dir)
        logging.info("Restored committed results into %s: %s", settings.runs_dir, restored)
    if not FLAGS.report:
        names = ["table:dtd10"] if FLAGS.quick else FLAGS.plans
        workers = FLAGS.workers or (2 if FLAGS.quick else 1)
        for name in names:
            results = run_plan(settings, name, FLAGS.methods, FLAGS.verbose, workers)
            logging.info("Plan %s: %d runs", name, len(results))
        if FLAGS.quick:
            statistics.check_beats_chance(run_plan(settings, "table:dtd10", FLAGS.methods))
            print("Every method beats chance.")
            return
    path = report.write(settings, FLAGS.doc, FLAGS.results_dir, labels=FLAGS.methods)
    print(f"Wrote {path}")


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
