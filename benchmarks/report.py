"""docs/BENCHMARKS.md from the saved runs: schedule, grids, tables with paired statistics, the DTNH sweep.

Only saved results are read (nothing is trained here); a run not finished yet is listed as
pending. Paired statistics: seed s draws the same few-shot sample and the same initial head
for every method, so a method's difference to L2 (or L2-SP) is taken per seed and summarised
as mean ± std with a 95 % t-interval and a sign count.
"""

import contextlib
import json
import math
import os

import keras
import numpy as np

from benchmarks import plans
from benchmarks.runs import cached, file_digest, load_source, save_json
from keras_tl.models.cards import card_path, load_card
from keras_tl.utils import files

NAMES = {
    "l2": "L2",
    "l2_fe": "L2-FE",
    "l2_sp": "L2-SP",
    "knowdist": "KnowDist",
    "delta": "DELTA",
    "l2_sp_att": "L2-SP-ATT",
    "afa": "AFA",
    "spa_gca": "SPA→GCA",
    "bss": "BSS",
    "co_tuning": "Co-Tuning",
    "lwf": "LwF",
    "di2": "DI2 (CE source)",
    "dsd": "DSD (PGD source + DI2)",
    "l2_sp+dtnh": "DTNH(L2-SP)",
    "knowdist+dtnh": "DTNH(KnowDist)",
    "delta+dtnh": "DTNH(DELTA)",
}
# The papers' expected directions: (dataset, better, worse), in table order of the better method,
# then data-set order.
DIRECTIONS = [
    ("caltech101", "knowdist", "l2"),
    ("dtd10", "delta", "knowdist"),
    ("caltech101", "delta", "knowdist"),
    ("dtd10", "dsd", "co_tuning"),
    ("caltech101", "dsd", "co_tuning"),
    ("dtd10", "l2_sp+dtnh", "l2_sp"),
    ("caltech101", "l2_sp+dtnh", "l2_sp"),
    ("dtd10", "knowdist+dtnh", "knowdist"),
    ("caltech101", "knowdist+dtnh", "knowdist"),
    ("dtd10", "delta+dtnh", "delta"),
    ("caltech101", "delta+dtnh", "delta"),
]
# Table label -> the `benchmarks/step_overhead.py` case that times its training step (DSD's step is
# DI2's; AFA and SPA→GCA are timed in their first stage).
STEP_CASES = {
    "l2": "plain",
    "l2_sp": "l2_sp",
    "knowdist": "distillation",
    "delta": "delta",
    "l2_sp_att": "l2_sp_attention",
    "afa": "ast",
    "spa_gca": "spa",
    "bss": "bss",
    "co_tuning": "co_tuning",
    "lwf": "lwf",
    "di2": "di2",
    "dsd": "di2",
    "l2_sp+dtnh": "dtnh_l2_sp",
    "knowdist+dtnh": "dtnh_distillation",
    "delta+dtnh": "dtnh_delta",
}
# Two-sided 95 % Student t quantiles by degrees of freedom (scipy is not a dependency).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def chance_threshold(num_classes, num_examples, z=3.09):
    """The top-1 above which guessing is rejected at p < 0.001 (one-sided, normal approximation)."""
    chance = 1.0 / num_classes
    return chance + z * math.sqrt(chance * (1 - chance) / num_examples)


def check_beats_chance(results):
    """Raises `AssertionError` naming every run that diverged or is not above chance."""
    failures = []
    for result in results:
        run = result["run"]
        name = f"{run['dataset']}/{run['method']} seed {run['seed']}"
        if "diverged" in result:
            failures.append(f"{name}: diverged")
            continue
        threshold = chance_threshold(result["num_classes"], result["eval_examples"])
        if not result["top1"] > threshold:
            failures.append(f"{name}: top-1 {result['top1']:.3f} <= {threshold:.3f}")
    if failures:
        raise AssertionError(
            "Expected every method to beat chance (p < 0.001). Received: " + "; ".join(failures)
        )


# ------------------------------------------------------------------------------------ statistics


def paired(values, reference):
    """`{"n", "mean", "std", "low", "high", "wins", "losses"}` of the per-seed differences, or None.

    `values`, `reference`: `{seed: top-1}`; only seeds both have are paired. The interval is
    the 95 % t-interval of the mean difference (None with fewer than 2 pairs).
    """
    seeds = sorted(set(values) & set(reference))
    if not seeds:
        return None
    diffs = np.array([values[s] - reference[s] for s in seeds])
    stats = {"n": len(seeds), "mean": float(diffs.mean()), "wins": int((diffs > 0).sum())}
    stats["losses"] = int((diffs < 0).sum())
    stats["std"] = float(diffs.std(ddof=1)) if len(seeds) > 1 else 0.0
    half = T95.get(len(seeds) - 1, 1.96) * stats["std"] / math.sqrt(len(seeds)) if len(seeds) > 1 else None
    stats["low"] = None if half is None else stats["mean"] - half
    stats["high"] = None if half is None else stats["mean"] + half
    return stats


def sign_test(wins, losses):
    """Two-sided exact sign-test p-value (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def verdict(stats):
    """'holds' / 'reversed' when the t-interval excludes 0, else 'not resolved' (within noise)."""
    if stats is None:
        return "not run"
    if stats["low"] is not None and stats["low"] > 0:
        return "holds"
    if stats["high"] is not None and stats["high"] < 0:
        return "reversed"
    return "holds (≥ 0, not significant)" if stats["mean"] >= 0 else "not resolved (< 0, not significant)"


def _pct(value, sign=False):
    return "—" if value is None else (f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}")


def _diff_cell(stats):
    if stats is None:
        return "—"
    interval = "" if stats["low"] is None else f" [{_pct(stats['low'], True)}, {_pct(stats['high'], True)}]"
    return f"{_pct(stats['mean'], True)} ± {100 * stats['std']:.1f}{interval} ({stats['wins']}/{stats['n']})"


# ------------------------------------------------------------------------------------ collecting


def by_seed(results):
    """`{seed: top-1}` of the finished, non-diverged results."""
    return {r["run"]["seed"]: r["top1"] for r in results if r is not None and "diverged" not in r}


def collect(settings, runs):
    """`[(run, result or None)]`."""
    return [(run, cached(run, settings.runs_dir)) for run in runs]


def table_entries(settings, dataset, labels):
    """`{label: [results]}` of the table plan (finished runs only)."""
    entries = {}
    for label in labels:
        runs = plans.table_runs(settings, dataset, [label])
        entries[label] = [result for _, result in collect(settings, runs) if result is not None]
    return entries


# ------------------------------------------------------------------------------------ sections


def upstream_accuracy(settings, loss):
    """Top-1 of a source's 200-way head on Tiny-ImageNet-32's validation split (cached by file digest)."""
    path = settings.source(loss)
    saved = os.path.join(
        settings.runs_dir, keras.backend.backend(), f"upstream_{file_digest(path)[:16]}.json"
    )
    if os.path.isfile(saved):
        with open(saved) as handle:
            return json.load(handle)
    import keras_tl.data

    model, card = load_source(path)
    data = keras_tl.data.load(
        f"tfrecord:{os.path.join(settings.data_root, 'tiny-imagenet-32')}",
        "validation",
        image_size=settings.image_size,
        preprocess=card.get("preprocess"),
        batch_size=256,
        training=False,
    )
    result = {"path": os.path.basename(path), "card": {k: v for k, v in card.items() if k != "class_names"}}
    result.update(keras_tl.data.evaluate(model, data.dataset, data.num_classes))
    save_json(saved, result)
    return result


# A source trained before cards recorded `history` takes its curve from a re-run of the same recipe,
# whose card is kept beside it as `<name>.rerun.json` (the card of `<name>.rerun.keras`).
RERUN_SUFFIX = ".rerun"


def upstream_section(settings):
    lines = [
        "| source | upstream loss | Tiny-ImageNet-32 val top-1 (%) | val top-1 by epoch (Keras' log) |",
        "|---|---|---|---|",
    ]
    for loss, path in settings.sources:
        result = upstream_accuracy(settings, loss)
        curve = load_source(path)[1].get("history", {}).get("val_accuracy", [])
        origin = ""
        if not curve:
            rerun = os.path.splitext(path)[0] + RERUN_SUFFIX + ".keras"
            curve = load_card(rerun).get("history", {}).get("val_accuracy", [])
            origin = f"not recorded in its card; the same recipe re-run (`{os.path.basename(card_path(rerun))}`): "
        points = origin + ", ".join(_pct(v) for v in curve) if curve else "not recorded"
        lines.append(f"| `{result['path']}` | {loss} | {_pct(result['top1'])} | {points} |")
    return "\n".join(lines)


def schedule_section(settings, dataset):
    runs = collect(settings, plans.schedule_runs(settings, dataset))
    chosen = plans.chosen_epochs(settings, dataset)
    what = (
        "its val split"
        if plans.DATASETS[dataset]["selection_split"] == "val"
        else ("the train images its 30-per-class sample leaves out")
    )
    lines = [
        f"**{dataset}** — L2, seed 0, validated on {what}; chosen: "
        + (f"**{chosen} epochs**" if chosen else "pending"),
        "",
        "| epochs | steps | val top-1 (%) | val top-1 by epoch (every 5th) |",
        "|---|---|---|---|",
    ]
    for run, result in runs:
        if result is None or "diverged" in result:
            lines.append(f"| {run.epochs} | | {'pending' if result is None else 'diverged'} | |")
            continue
        steps = run.epochs * (result["train_examples"] // run.batch_size)
        curve = result["history"].get("val_accuracy", [])
        points = ", ".join(_pct(v) for v in curve[4::5])
        lines.append(f"| {run.epochs} | {steps} | {_pct(result['top1'])} | {points} |")
    return "\n".join(lines)


def grid_section(settings):
    epochs = plans.chosen_epochs(settings, "dtd10")
    if epochs is None:
        return "Pending (needs DTD-10's schedule)."
    lines = [
        "| method | coefficient | paper value (at batch 32) | val top-1 (%) by value | chosen |",
        "|---|---|---|---|---|",
    ]
    for method, (name, _, _) in plans.GRIDS.items():
        values = plans.grid_values(settings, method, epochs)
        cells = []
        for value in values:
            score = plans.grid_score(settings, method, value, epochs)
            cells.append(
                f"{value:g}: " + ("pending" if score is None else "NaN" if score < 0 else _pct(score))
            )
        chosen = plans.chosen_hparams(settings, method)
        chosen_text = "pending" if chosen is None else f"{chosen[0][1]:g}"
        paper = plans.paper_value(method, settings.batch_size)
        lines.append(f"| {NAMES[method]} | {name} | {paper:g} | {'; '.join(cells)} | {chosen_text} |")
    return "\n".join(lines)


def table_section(settings, dataset, labels):
    entries = table_entries(settings, dataset, labels)
    lines = [
        "| method | coefficient | top-1 (%) | mean per-class (%) | Δ vs L2 (paired, 95 % CI, wins/n) "
        "| Δ vs L2-SP | train CE, last epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        results = entries.get(label, [])
        finished = [r for r in results if "diverged" not in r]
        hparams = plans.chosen_hparams(settings, plans.METHODS[label][0])
        coefficient = "" if not hparams else ", ".join(f"{k}={v:g}" for k, v in hparams)
        di2_k = sorted({r["di2_k"] for r in results if "di2_k" in r})
        if di2_k:  # DI2's k: shared upstream classes + 1, from the source's mean logits per target class
            coefficient += ", k=" + "/".join(map(str, di2_k))
        if not results:
            lines.append(f"| {NAMES[label]} | {coefficient} | pending | | | | |")
            continue
        diverged = [r["run"]["seed"] for r in results if "diverged" in r]
        top1 = [r["top1"] for r in finished]
        mpc = [r["mean_per_class"] for r in finished]
        cell = _mean_std(top1) + (f" (diverged: seeds {diverged})" if diverged else "")
        lines.append(
            f"| {NAMES[label]} | {coefficient} | {cell} | {_mean_std(mpc)} "
            f"| {_diff_cell(paired(by_seed(finished), by_seed(entries.get('l2', []))))} "
            f"| {_diff_cell(paired(by_seed(finished), by_seed(entries.get('l2_sp', []))))} "
            f"| {_final_train_loss(finished)} |"
        )
    return "\n".join(lines)


def _final_train_loss(results):
    """Mean over seeds of the last epoch's empirical (cross-entropy) training loss.

    How far a term holds the network back from fitting the target: next to top-1 it tells
    whether a method loses accuracy by under-fitting (a pull too strong for what the source holds).
    """
    values = [r["history"]["empirical_loss"][-1] for r in results if r.get("history", {}).get("empirical_loss")]
    return f"{np.mean(values):.3f}" if values else "—"


def directions_section(settings, labels):
    tables = {d: table_entries(settings, d, labels) for d in plans.DATASETS}
    lines = ["| data set | claim | paired Δ (points) | sign test p | verdict |", "|---|---|---|---|---|"]
    for dataset, better, worse in DIRECTIONS:
        if better not in labels or worse not in labels:
            continue
        stats = paired(by_seed(tables[dataset].get(better, [])), by_seed(tables[dataset].get(worse, [])))
        p = "—" if stats is None else f"{sign_test(stats['wins'], stats['losses']):.2f}"
        lines.append(
            f"| {dataset} | {NAMES[better]} ≥ {NAMES[worse]} | {_diff_cell(stats)} | {p} | {verdict(stats)} |"
        )
    return "\n".join(lines)


def dtnh_section(settings, results_dir):
    epochs = plans.chosen_epochs(settings, "dtd10")
    if epochs is None:
        return "Pending (needs DTD-10's schedule)."
    l2 = by_seed([r for _, r in collect(settings, plans.dtnh_runs(settings, ())) if r is not None])
    lines = [
        f"DTD-10 test split, {epochs} epochs, seeds 0-{settings.seeds - 1}. L2 (no pull to the source): "
        f"{_mean_std(list(l2.values()))} %.",
        "",
        "| X | α | X top-1 (%) | DTNH(X) top-1 (%) | DTNH(X) − X (paired) | X − L2 | DTNH(X) − L2 "
        "| ∠(∇J+∇Ω, ∇J) | projected steps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    curves = {}
    for method, alphas in plans.DTNH_SWEEP.items():
        for alpha in alphas:
            row = {}
            for label in (method, method + "+dtnh"):
                runs = [
                    plans.make_run(settings, "dtd10", label, epochs, seed=s, hparams=(("alpha", alpha),))
                    for s in range(settings.seeds)
                ]
                row[label] = [r for _, r in collect(settings, runs) if r is not None]
            x, d = (by_seed([r for r in row[k] if "diverged" not in r]) for k in (method, method + "+dtnh"))
            angles = [
                r["history"].get("dtnh/angle_sum_loss", [None])[-1]
                for r in row[method + "+dtnh"]
                if "history" in r
            ]
            projected = [
                r["history"].get("dtnh/projected", [None])[-1]
                for r in row[method + "+dtnh"]
                if "history" in r
            ]
            curves.setdefault(method, []).append((alpha, x, d))
            lines.append(
                f"| {NAMES[method]} | {alpha:g} | {_cell(row[method])} | {_cell(row[method + '+dtnh'])} "
                f"| {_diff_cell(paired(d, x))} | {_diff_cell(paired(x, l2))} | {_diff_cell(paired(d, l2))} "
                f"| {_mean_deg(angles)} | {_mean_frac(projected)} |"
            )
    _plot_dtnh(curves, l2, os.path.join(results_dir, "dtnh_sweep.png"))
    return "\n".join(lines)


def ablation_section(settings):
    """DELTA, DELTA (w/o ATT) (uniform channel weights) and KnowDist per data set, paired per seed."""
    lines = [
        "| data set | KnowDist | DELTA (w/o ATT) | DELTA | w/o ATT − KnowDist (averaging, α) "
        "| DELTA − w/o ATT (attention) | train CE: KnowDist / w/o ATT / DELTA |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in plans.DATASETS:
        entries = table_entries(settings, dataset, ["knowdist", "delta"])
        uniform = [r for _, r in collect(settings, plans.ablation_runs(settings, dataset)) if r is not None]
        if not uniform:
            continue
        knowdist, delta = entries["knowdist"], entries["delta"]
        losses = " / ".join(_final_train_loss(r) for r in (knowdist, uniform, delta))
        lines.append(
            f"| {dataset} | {_cell(knowdist)} | {_cell(uniform)} | {_cell(delta)} "
            f"| {_diff_cell(paired(by_seed(uniform), by_seed(knowdist)))} "
            f"| {_diff_cell(paired(by_seed(delta), by_seed(uniform)))} | {losses} |"
        )
    return "\n".join(lines) if len(lines) > 2 else "Pending."


BACKEND_SUBSET = ("l2", "l2_sp", "delta", "l2_sp+dtnh")


def backend_section(settings, dataset="dtd10", labels=BACKEND_SUBSET):
    """The same runs (same configs, same seeds) on TensorFlow and JAX: do they agree within one std?"""
    lines = [
        "| method | TensorFlow top-1 (%) | JAX top-1 (%) | JAX − TF | within one std |",
        "|---|---|---|---|---|",
    ]
    for label in labels:
        runs = plans.table_runs(settings, dataset, [label])
        tf, jax = (
            by_seed([cached(run, settings.runs_dir, backend) for run in runs])
            for backend in ("tensorflow", "jax")
        )
        seeds = sorted(set(tf) & set(jax))  # a backend with more seeds must not move its mean
        if not seeds:
            lines.append(f"| {NAMES[label]} | {_mean_std(list(tf.values()))} | pending | | |")
            continue
        a, b = [tf[s] for s in seeds], [jax[s] for s in seeds]
        diff = np.mean(b) - np.mean(a)
        std = max(np.std(a, ddof=1) if len(a) > 1 else 0.0, np.std(b, ddof=1) if len(b) > 1 else 0.0)
        lines.append(
            f"| {NAMES[label]} | {_mean_std(a)} | {_mean_std(b)} | {100 * diff:+.1f} | {'yes' if abs(diff) <= std else 'no'} |"
        )
    return "\n".join(lines)


def step_time_section(results_dir, labels, backends=("tensorflow", "jax")):
    """Median step time per method from `benchmarks/step_overhead.py`, one quiet process per backend.

    The suite's own run times are not used: its runs were timed while other work shared the cores.
    """
    measured = {}
    for backend in backends:
        path = os.path.join(results_dir, f"step_overhead_{backend}.json")
        if os.path.isfile(path):
            with open(path) as f:
                measured[backend] = json.load(f)
    if not measured:
        return "Pending: `python benchmarks/step_overhead.py --batch_size=32 --json=...` on a quiet machine."
    first = next(iter(measured.values()))["args"]
    lines = [
        f"`benchmarks/step_overhead.py --batch_size={first['batch_size']}`: {first['backbone']} (the benchmark's "
        f"backbone), {first['steps']} steps x {first['rounds']} interleaved rounds per case, median step. "
        "Ratios are to L2's step in the same process; how the machine was kept quiet is in the notes above.",
        "",
        "| method | " + " | ".join(f"{b} ms/step | {b} images/s | {b} / L2" for b in measured) + " |",
        "|---|" + "---|---|---|" * len(measured),
    ]
    for label in labels:
        case = STEP_CASES.get(label)
        cells = []
        for data in measured.values():
            results = data["results"]
            if case not in results or "plain" not in results:
                cells.append("— | — | —")
                continue
            median = results[case]["median_s"]
            cells.append(
                f"{1e3 * median:.0f} | {results[case]['images_per_s']:.0f} | "
                f"{median / results['plain']['median_s']:.2f}"
            )
        lines.append(f"| {NAMES[label]} | " + " | ".join(cells) + " |")
    keras_line = [
        f"{b}: {data['results']['plain']['median_s'] / data['results']['keras']['median_s']:.2f}"
        for b, data in measured.items()
        if "keras" in data["results"] and "plain" in data["results"]
    ]
    if keras_line:
        lines += ["", "L2's step against a plain `keras.Model` fit the same way: " + ", ".join(keras_line) + "."]
    return "\n".join(lines)


def _cell(results):
    if not results:
        return "pending"
    finished = [r["top1"] for r in results if "diverged" not in r]
    diverged = len(results) - len(finished)
    text = _mean_std(finished) if finished else ""
    return text + (f" ({diverged} diverged)" if diverged else "")


def _mean_std(values):
    if not values:
        return "—"
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{100 * np.mean(values):.1f} ± {100 * std:.1f} (n={len(values)})"


def _mean_deg(values):
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.1f}°" if values else "—"


def _mean_frac(values):
    values = [v for v in values if v is not None]
    return f"{100 * np.mean(values):.0f} %" if values else "—"


# ------------------------------------------------------------------------------------ plots


@contextlib.contextmanager
def _figure(path, panels, height=3.6):
    """A row of `panels` axes, each gridded with a legend, saved to `path` on exit."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, panels, figsize=(5 * panels, height), squeeze=False)
    yield axes[0]
    for axis in axes[0]:
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    pyplot.close(figure)


def _plot_dtnh(curves, l2, path):
    """Top-1 against α of X and DTNH(X) (mean ± std over seeds), L2 as a line."""
    if not curves:
        return
    with _figure(path, len(curves), height=3.8) as axes:
        for axis, (method, points) in zip(axes, curves.items(), strict=True):
            for index, name in ((1, NAMES[method]), (2, f"DTNH({NAMES[method]})")):
                done = [(point[0], list(point[index].values())) for point in points if point[index]]
                if done:
                    alphas, values = zip(*done, strict=True)
                    means = [100 * np.mean(v) for v in values]
                    stds = [100 * np.std(v) for v in values]
                    axis.errorbar(alphas, means, yerr=stds, marker="o", capsize=3, label=name)
            if l2:
                axis.axhline(100 * np.mean(list(l2.values())), color="grey", ls="--", label="L2")
            axis.set(xscale="log", xlabel="α", ylabel="DTD-10 test top-1 (%)", title=NAMES[method])


def _plot_schedule(settings, path):
    """L2's validation curve for each schedule length, per data set."""
    with _figure(path, len(plans.DATASETS)) as axes:
        for axis, dataset in zip(axes, plans.DATASETS, strict=True):
            for run, result in collect(settings, plans.schedule_runs(settings, dataset)):
                curve = (result or {}).get("history", {}).get("val_accuracy")
                if curve:
                    axis.plot(
                        np.arange(1, len(curve) + 1), 100 * np.asarray(curve), label=f"{run.epochs} epochs"
                    )
            axis.set(title=f"{dataset}: L2, validation", xlabel="epoch", ylabel="top-1 (%)")


# ------------------------------------------------------------------------------------ document


def every_run(settings, labels):
    """Every saved result any plan refers to, once: of every method, not only `labels`.

    The record must not shrink because one process ran `--methods=<a subset>`: the suite
    restores a fresh clone's cache from it (`benchmarks.runs.restore`).
    """
    labels = list(dict.fromkeys([*plans.METHODS, *labels]))
    seen = {}
    names = (
        [f"schedule:{d}" for d in plans.DATASETS]
        + ["grid", "dtnh"]
        + [f"{kind}:{d}" for kind in ("table", "ablation") for d in plans.DATASETS]
    )
    for name in names:
        for run, result in collect(settings, plans.plan(settings, name, labels)):
            if result is not None:
                seen[run.key()] = result
    return list(seen.values())


def write(settings, doc, results_dir, labels, intro_path=None):
    """Writes `doc` (markdown), its plots and `runs_<backend>.json` into `results_dir`; returns `doc`."""
    os.makedirs(results_dir, exist_ok=True)
    backend = keras.backend.backend()
    runs = every_run(settings, labels)
    files.write_json(os.path.join(results_dir, f"runs_{backend}.json"), runs)
    _plot_schedule(settings, os.path.join(results_dir, "schedule.png"))
    intro_path = intro_path or os.path.join(results_dir, "notes.md")
    intro = open(intro_path).read().strip() if os.path.isfile(intro_path) else ""
    sections = [
        "# Benchmarks",
        "<!-- Written by `python -m benchmarks.suite --report` from the saved runs; notes from "
        "docs/benchmarks/notes.md. -->",
        intro,
        "## Sources\n\n" + upstream_section(settings),
        "## Schedule (L2's validation curve)\n\n![schedule](benchmarks/schedule.png)\n\n"
        + "\n\n".join(schedule_section(settings, d) for d in plans.DATASETS),
        "## Coefficients (DTD-10 val split, seed 0)\n\n" + grid_section(settings),
        "## DTNH where the pull is too strong\n\n"
        + dtnh_section(settings, results_dir)
        + "\n\n![DTNH sweep](benchmarks/dtnh_sweep.png)",
    ]
    for dataset in plans.DATASETS:
        sections.append(f"## {dataset}: test split\n\n" + table_section(settings, dataset, labels))
    sections.append("## The papers' directions\n\n" + directions_section(settings, labels))
    sections.append(
        "## DELTA's channel attention, ablated (test split, same α and seeds)\n\n" + ablation_section(settings)
    )
    sections.append("## Step time on a quiet machine\n\n" + step_time_section(results_dir, labels))
    sections.append("## TensorFlow and JAX (DTD-10, same configs and seeds)\n\n" + backend_section(settings))
    sections.append(
        f"Every run's JSON: `docs/benchmarks/runs_{backend}.json` ({len(runs)} runs; key = hash of the "
        "run's config, see `benchmarks/runs.py`)."
    )
    files.write_atomic(doc, "\n\n".join(s for s in sections if s) + "\n")
    return doc
