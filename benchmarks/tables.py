"""The report's sections as markdown: sources, schedule, grids, DTNH sweep, test tables, directions,
ablation, backends, step times. Only saved results are read; a run not finished yet is pending.
"""

import json
import os

import numpy as np

from benchmarks import plans
from benchmarks.cells import cell, diff_cell, display, final_train_loss, mean_deg, mean_frac, mean_std, pct
from benchmarks.plots import plot_dtnh
from benchmarks.records import by_seed, collect, table_entries, upstream_accuracy
from benchmarks.runs import cached, load_source
from benchmarks.statistics import paired, sign_test, verdict
from keras_tl import methods
from keras_tl.models.cards import card_path, load_card

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
            origin = (
                f"not recorded in its card; the same recipe re-run (`{os.path.basename(card_path(rerun))}`): "
            )
        points = origin + ", ".join(pct(v) for v in curve) if curve else "not recorded"
        lines.append(f"| `{result['path']}` | {loss} | {pct(result['top1'])} | {points} |")
    return "\n".join(lines)


def schedule_section(settings, dataset):
    runs = collect(settings, plans.schedule_runs(settings, dataset))
    chosen = plans.chosen_epochs(settings, dataset)
    what = (
        "its val split"
        if plans.DATASETS[dataset]["selection_split"] == "val"
        else f"the train images its {plans.DATASETS[dataset]['per_class']}-per-class sample leaves out"
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
        points = ", ".join(pct(v) for v in curve[4::5])
        lines.append(f"| {run.epochs} | {steps} | {pct(result['top1'])} | {points} |")
    return "\n".join(lines)


def grid_section(settings):
    epochs = plans.chosen_epochs(settings, "dtd10")
    if epochs is None:
        return "Pending (needs DTD-10's schedule)."
    lines = [
        "| method | coefficient | paper value (at batch 32) | val top-1 (%) by value | chosen |",
        "|---|---|---|---|---|",
    ]
    for method in plans.grid_methods():
        name = methods.registered(method).coefficient
        values = plans.grid_values(settings, method, epochs)
        cells = []
        for value in values:
            score = plans.grid_score(settings, method, value, epochs)
            cells.append(
                f"{value:g}: " + ("pending" if score is None else "NaN" if score < 0 else pct(score))
            )
        chosen = plans.chosen_hparams(settings, method)
        chosen_text = "pending" if chosen is None else f"{chosen[0][1]:g}"
        paper = plans.paper_value(method, settings.batch_size)
        lines.append(f"| {display(method)} | {name} | {paper:g} | {'; '.join(cells)} | {chosen_text} |")
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
        hparams = plans.chosen_hparams(settings, label)
        coefficient = "" if not hparams else ", ".join(f"{k}={v:g}" for k, v in hparams)
        di2_k = sorted({r["di2_k"] for r in results if "di2_k" in r})
        if di2_k:  # DI2's k: shared upstream classes + 1, from the source's mean logits per target class
            coefficient += ", k=" + "/".join(map(str, di2_k))
        if not results:
            lines.append(f"| {display(label)} | {coefficient} | pending | | | | |")
            continue
        diverged = [r["run"]["seed"] for r in results if "diverged" in r]
        top1 = [r["top1"] for r in finished]
        mpc = [r["mean_per_class"] for r in finished]
        cell = mean_std(top1) + (f" (diverged: seeds {diverged})" if diverged else "")
        lines.append(
            f"| {display(label)} | {coefficient} | {cell} | {mean_std(mpc)} "
            f"| {diff_cell(paired(by_seed(finished), by_seed(entries.get('l2', []))))} "
            f"| {diff_cell(paired(by_seed(finished), by_seed(entries.get('l2_sp', []))))} "
            f"| {final_train_loss(finished)} |"
        )
    return "\n".join(lines)


def directions_section(settings, labels):
    tables = {d: table_entries(settings, d, labels) for d in plans.table_datasets(settings)}
    lines = ["| data set | claim | paired Δ (points) | sign test p | verdict |", "|---|---|---|---|---|"]
    for dataset, better, worse in plans.directions(plans.table_datasets(settings)):
        if better not in labels or worse not in labels:
            continue
        stats = paired(by_seed(tables[dataset].get(better, [])), by_seed(tables[dataset].get(worse, [])))
        p = "—" if stats is None else f"{sign_test(stats['wins'], stats['losses']):.2f}"
        lines.append(
            f"| {dataset} | {display(better)} ≥ {display(worse)} | {diff_cell(stats)} | {p} | {verdict(stats)} |"
        )
    return "\n".join(lines)


def dtnh_section(settings, results_dir):
    epochs = plans.chosen_epochs(settings, "dtd10")
    if epochs is None:
        return "Pending (needs DTD-10's schedule)."
    l2 = by_seed([r for _, r in collect(settings, plans.dtnh_runs(settings, ())) if r is not None])
    lines = [
        f"DTD-10 test split, {epochs} epochs, seeds 0-{settings.seeds - 1}. L2 (no pull to the source): "
        f"{mean_std(list(l2.values()))} %.",
        "",
        "| X | α | X top-1 (%) | DTNH(X) top-1 (%) | DTNH(X) − X (paired) | X − L2 | DTNH(X) − L2 "
        "| ∠(∇J+∇Ω, ∇J) | projected steps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    curves = {}
    for method, alphas in plans.dtnh_sweeps().items():
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
                f"| {display(method)} | {alpha:g} | {cell(row[method])} | {cell(row[method + '+dtnh'])} "
                f"| {diff_cell(paired(d, x))} | {diff_cell(paired(x, l2))} | {diff_cell(paired(d, l2))} "
                f"| {mean_deg(angles)} | {mean_frac(projected)} |"
            )
    plot_dtnh(curves, l2, os.path.join(results_dir, "dtnh_sweep.png"))
    return "\n".join(lines)


def ablation_section(settings):
    """DELTA, DELTA (w/o ATT) (uniform channel weights) and KnowDist per data set, paired per seed."""
    lines = [
        "| data set | KnowDist | DELTA (w/o ATT) | DELTA | w/o ATT − KnowDist (averaging, α) "
        "| DELTA − w/o ATT (attention) | train CE: KnowDist / w/o ATT / DELTA |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in plans.table_datasets(settings):
        entries = table_entries(settings, dataset, ["knowdist", "delta"])
        uniform = [r for _, r in collect(settings, plans.ablation_runs(settings, dataset)) if r is not None]
        if not uniform:
            continue
        knowdist, delta = entries["knowdist"], entries["delta"]
        losses = " / ".join(final_train_loss(r) for r in (knowdist, uniform, delta))
        lines.append(
            f"| {dataset} | {cell(knowdist)} | {cell(uniform)} | {cell(delta)} "
            f"| {diff_cell(paired(by_seed(uniform), by_seed(knowdist)))} "
            f"| {diff_cell(paired(by_seed(delta), by_seed(uniform)))} | {losses} |"
        )
    return "\n".join(lines) if len(lines) > 2 else "Pending."


def backend_section(settings, dataset="dtd10", labels=None):
    """The same runs (same configs, same seeds) on TensorFlow and JAX: do they agree within one std?"""
    lines = [
        "| method | TensorFlow top-1 (%) | JAX top-1 (%) | JAX − TF | within one std |",
        "|---|---|---|---|---|",
    ]
    for label in plans.cross_backend_labels() if labels is None else labels:
        runs = plans.table_runs(settings, dataset, [label])
        tf, jax = (
            by_seed([cached(run, settings.runs_dir, backend) for run in runs])
            for backend in ("tensorflow", "jax")
        )
        seeds = sorted(set(tf) & set(jax))  # a backend with more seeds must not move its mean
        if not seeds:
            lines.append(f"| {display(label)} | {mean_std(list(tf.values()))} | pending | | |")
            continue
        a, b = [tf[s] for s in seeds], [jax[s] for s in seeds]
        diff = np.mean(b) - np.mean(a)
        std = max(np.std(a, ddof=1) if len(a) > 1 else 0.0, np.std(b, ddof=1) if len(b) > 1 else 0.0)
        lines.append(
            f"| {display(label)} | {mean_std(a)} | {mean_std(b)} | {100 * diff:+.1f} | {'yes' if abs(diff) <= std else 'no'} |"
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
        case = label
        cells = []
        for data in measured.values():
            results = data["results"]
            if case not in results or "l2" not in results:
                cells.append("— | — | —")
                continue
            median = results[case]["median_s"]
            cells.append(
                f"{1e3 * median:.0f} | {results[case]['images_per_s']:.0f} | "
                f"{median / results['l2']['median_s']:.2f}"
            )
        lines.append(f"| {display(label)} | " + " | ".join(cells) + " |")
    keras_line = [
        f"{b}: {data['results']['l2']['median_s'] / data['results']['keras']['median_s']:.2f}"
        for b, data in measured.items()
        if "keras" in data["results"] and "l2" in data["results"]
    ]
    if keras_line:
        lines += [
            "",
            "L2's step against a plain `keras.Model` fit the same way: " + ", ".join(keras_line) + ".",
        ]
    return "\n".join(lines)
