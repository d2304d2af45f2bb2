"""docs/BENCHMARKS.md from the benchmark's results JSON: tables, gains, step-time ratios, checks, plots."""

import json
import os

import numpy as np

from apps.training import summary

# The papers' directions the benchmark checks: (data set or None for all, better, worse, where it is claimed).
EXPECTED = (
    (
        "caltech101",
        "delta",
        "knowdist",
        "DELTA Tables 2-3: attention on the channels beats uniform distillation",
    ),
    ("caltech101", "knowdist", "l2", "DELTA Tables 2-3: feature-map distillation beats plain L2"),
    (
        None,
        "l2_sp+dtnh",
        "l2_sp",
        "DTNH Table II: DTNH never hurts L2-SP, and helps most far from the source",
    ),
    (None, "dsd", "co_tuning", "DSD Tables 2-3: full DSD beats Co-Tuning"),
)
NAMES = {
    "l2": "L2",
    "l2_fe": "L2-FE",
    "l2_sp": "L2-SP",
    "knowdist": "KnowDist",
    "delta": "DELTA",
    "l2_sp_att": "L2-SP-ATT",
    "afa": "AFA (AST→ACT)",
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


def method_stats(report):
    """`{"top1", "mean_per_class", "step_seconds", "seconds"}` → `{"mean", "std"}` over the seeds of one method."""
    runs = report["result"]["runs"]
    stats = {key: summary([run[key] for run in runs]) for key in ("top1", "mean_per_class", "seconds")}
    steps = [run["step_seconds"] for run in runs if run.get("step_seconds")]
    stats["step_seconds"] = summary(steps) if steps else None
    ks = sorted({run["di2_k"] for run in runs if "di2_k" in run})
    stats["di2_k"] = ks or None
    return stats


def _pct(stat):
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def _gain(stats, label, reference):
    if reference not in stats or label == reference:
        return "–"
    return f"{100 * (stats[label]['top1']['mean'] - stats[reference]['top1']['mean']):+.1f}"


def trained(methods):
    """The methods of a data set that did not diverge (see `apps.benchmark.finetune_once`)."""
    return {label: report for label, report in methods.items() if "diverged" not in report}


def dataset_table(entry):
    """The markdown table of one data set's methods; a diverged method gets a row saying so."""
    stats = {label: method_stats(report) for label, report in trained(entry["methods"]).items()}
    plain = stats.get("l2", {}).get("step_seconds")
    lines = [
        "| method | top-1 (%) | mean per-class (%) | vs L2 | vs L2-SP | step time / L2 | ms/step | fit s (mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, stat in stats.items():
        step = stat["step_seconds"]
        ratio = f"{step['mean'] / plain['mean']:.2f}" if step and plain else "–"
        ms = f"{1000 * step['mean']:.0f}" if step else "–"
        lines.append(
            f"| {NAMES.get(label, label)} | {_pct(stat['top1'])} | {_pct(stat['mean_per_class'])} | "
            f"{_gain(stats, label, 'l2')} | {_gain(stats, label, 'l2_sp')} | {ratio} | {ms} | "
            f"{stat['seconds']['mean']:.0f} |"
        )
    for label, report in entry["methods"].items():
        if "diverged" in report:
            lines.append(f"| {NAMES.get(label, label)} | diverged (NaN) | | | | | | |")
    return "\n".join(lines), stats


def checks(results):
    """One line per expected direction and data set: the two means, and whether the direction holds."""
    lines = []
    for dataset, entry in results["datasets"].items():
        stats = {label: method_stats(report) for label, report in trained(entry["methods"]).items()}
        for where, better, worse, claim in EXPECTED:
            if (where and where != dataset) or better not in stats or worse not in stats:
                continue
            b, w = stats[better]["top1"], stats[worse]["top1"]
            gap = b["mean"] - w["mean"]
            noise = max(b["std"], w["std"])
            verdict = "holds" if gap >= 0 else ("within noise" if -gap <= noise else "does **not** hold")
            lines.append(
                f"- {dataset}: {NAMES[better]} {_pct(b)} vs {NAMES[worse]} {_pct(w)} "
                f"({100 * gap:+.1f} points): {verdict}. *{claim}.*"
            )
    return lines


def plot(results, path):
    """Accuracy bars with the seeds' std as error bars, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    datasets = list(results["datasets"].items())
    figure, axes = pyplot.subplots(len(datasets), 1, figsize=(12, 4 * len(datasets)), squeeze=False)
    for axis, (dataset, entry) in zip(axes[:, 0], datasets, strict=True):
        labels = list(trained(entry["methods"]))
        stats = [method_stats(entry["methods"][label])["top1"] for label in labels]
        axis.bar(
            np.arange(len(labels)),
            [100 * s["mean"] for s in stats],
            yerr=[100 * s["std"] for s in stats],
            capsize=3,
            color=["tab:orange" if "dtnh" in label else "tab:blue" for label in labels],
        )
        axis.set_xticks(
            np.arange(len(labels)), [NAMES.get(label, label) for label in labels], rotation=35, ha="right"
        )
        axis.set(title=f"{dataset}: top-1 (%), mean ± std over seeds", ylabel="top-1 (%)")
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    pyplot.close(figure)


def plot_dtnh_angles(results, path):
    """DTNH's angles per epoch (mean over seeds) for each +dtnh method and data set."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    panels = [
        (dataset, label, report)
        for dataset, entry in results["datasets"].items()
        for label, report in trained(entry["methods"]).items()
        if label.endswith("+dtnh")
    ]
    if not panels:
        return False
    figure, axes = pyplot.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    keys = (
        ("dtnh/angle_sum_loss", "∇J+∇Ω vs ∇J"),
        ("dtnh/angle_d_loss", "d vs ∇J"),
        ("dtnh/angle_sum_reg", "∇J+∇Ω vs ∇Ω"),
    )
    for axis, (dataset, label, report) in zip(axes[0], panels, strict=True):
        histories = [run["history"] for run in report["result"]["runs"]]
        for key, name in keys:
            curves = [h[key] for h in histories if key in h]
            if curves:
                curve = np.mean(curves, axis=0)
                axis.plot(np.arange(1, len(curve) + 1), curve, label=name)
        projected = [h["dtnh/projected"][-1] for h in histories if "dtnh/projected" in h]
        title = f"{dataset}: {NAMES.get(label, label)}"
        if projected:
            title += f"\nprojected {100 * np.mean(projected):.0f}% of steps (last epoch)"
        axis.set(title=title, xlabel="epoch", ylabel="degrees")
        axis.axhline(90, color="grey", lw=0.8, ls=":")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    pyplot.close(figure)
    return True


def run_minutes(results):
    """Minutes of fine-tuning runs behind `results`: every method's and the selection's own wall time."""
    seconds = sum(
        e.get("wall_seconds", 0.0) for e in results.get("selection", {}).get("methods", {}).values()
    )
    for entry in results["datasets"].values():
        seconds += sum(report.get("wall_seconds", 0.0) for report in entry["methods"].values())
    return seconds / 60


def summary_table(results):
    """All data sets' tables, for the terminal."""
    parts = []
    for dataset, entry in results["datasets"].items():
        table, _ = dataset_table(entry)
        parts.append(f"{dataset} ({entry['wall_seconds']:.0f} s)\n{table}")
    return "\n\n".join(parts)


def _load(results_dir, mode, backend):
    path = os.path.join(results_dir, f"results_{mode}_{backend}.json")
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def _backend_comparison(reference, other):
    lines = [
        f"| data set | method | top-1 {reference['environment']['backend']} (%) | "
        f"top-1 {other['environment']['backend']} (%) | ms/step {reference['environment']['backend']} | "
        f"ms/step {other['environment']['backend']} |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, entry in other["datasets"].items():
        for label, report in trained(entry["methods"]).items():
            base = reference["datasets"].get(dataset, {}).get("methods", {}).get(label)
            if base is None or "diverged" in base:
                continue
            a, b = method_stats(base), method_stats(report)
            steps = [f"{1000 * s['step_seconds']['mean']:.0f}" if s["step_seconds"] else "–" for s in (a, b)]
            lines.append(
                f"| {dataset} | {NAMES.get(label, label)} | {_pct(a['top1'])} | {_pct(b['top1'])} | "
                f"{steps[0]} | {steps[1]} |"
            )
    return "\n".join(lines)


def write_doc(results_dir, doc_path, intro_path=None):
    """Writes `doc_path` from `results_full_<backend>.json` (TF as the reference) and the quick runs' JSON."""
    full = {backend: _load(results_dir, "full", backend) for backend in ("tensorflow", "jax")}
    reference = full["tensorflow"] or full["jax"]
    if reference is None:
        raise FileNotFoundError(
            f"Expected results_full_<backend>.json in {results_dir}: run `python -m apps.benchmark` first."
        )
    env = reference["environment"]
    out = [
        "# Benchmarks",
        "",
        "Generated by `python -m apps.benchmark` (`--report` rewrites this page from "
        f"`{results_dir}/results_*.json`); the hand-written notes come from "
        "`docs/benchmarks/notes.md`.",
        "",
        f"- Machine: {env['machine']}; {env['date']}.",
        f"- Versions: Keras {env['keras']}, TensorFlow {env['tensorflow']}, JAX {env['jax']}, Python {env['python']}.",
        f"- Command: `{env['command']}` (KERAS_BACKEND={env['backend']}); the fine-tuning runs took "
        f"{run_minutes(reference):.0f} min in all after pre-training (each run's own wall time, summed; "
        "several ran side by side on the 2 cores).",
        "",
    ]
    notes = intro_path or os.path.join(results_dir, "notes.md")
    if os.path.isfile(notes):
        with open(notes) as handle:
            out += [handle.read().strip(), ""]
    selection = reference.get("selection", {}).get("methods", {})
    if selection:
        out += [
            "## Coefficients chosen on DTD-10's val split",
            "",
            "| method | val top-1 (%) per value | chosen |",
            "|---|---|---|",
        ]
        for method, entry in selection.items():
            name = entry["chosen"].split("=")[0]
            scores = ", ".join(
                f"{name}={value}: " + ("diverged" if top1 is None else f"{100 * top1:.1f}")
                for value, top1 in entry["val_top1"].items()
            )
            out.append(f"| {NAMES.get(method, method)} | {scores} | {entry['chosen']} |")
        seconds = sum(entry.get("wall_seconds", 0.0) for entry in selection.values())
        out += ["", f"Selection: {seconds / 60:.1f} min of runs (diverged runs not counted).", ""]
    out += ["## Upstream: the two source models", ""]
    out += ["| source | loss | Tiny-ImageNet-32 val top-1 (%) | file |", "|---|---|---|---|"]
    for loss, source in reference["upstream"].items():
        top1 = source.get("validation", {}).get("top1")
        shown = f"{100 * top1:.1f}" if top1 is not None else "–"
        out.append(
            f"| {source['card'].get('backbone')} | {loss} | {shown} | `{os.path.relpath(source['path'])}` |"
        )
    out.append("")
    for dataset, entry in reference["datasets"].items():
        table, stats = dataset_table(entry)
        p = entry["protocol"]
        shots = f"{p['per_class']} training images per class" if p["per_class"] else "The whole train split"
        out += [
            f"## {dataset}",
            "",
            f"{shots}, evaluated on the `{p['eval_split']}` split (center crop, {IMAGE_NOTE}); "
            f"SGD momentum 0.9, lr {p['lr']} cosine-decayed to 0 over {p['epochs']} epochs, batch {p['batch_size']}, "
            f"{p['seeds']} seeds (each its own few-shot sample). {sum(r.get('wall_seconds', 0.0) for r in entry['methods'].values()) / 60:.0f} min of runs in all.",
            "",
            table,
            "",
        ]
        if entry.get("not_run"):
            names = ", ".join(NAMES.get(label, label) for label in entry["not_run"])
            out += [
                f"Not run yet (the benchmark stopped for time; rerun the command to finish them): {names}.",
                "",
            ]
        ks = sorted({k for s in stats.values() for k in (s["di2_k"] or [])})
        if ks:
            out += [f"DI2's k (granularity diffusion sequence length, Sec. 4.6 '+1' rule): {ks}.", ""]
    out += ["## The papers' directions, checked", ""] + checks(reference) + [""]
    plot(reference, os.path.join(results_dir, "accuracy.png"))
    out += ["![accuracy](benchmarks/accuracy.png)", ""]
    if plot_dtnh_angles(reference, os.path.join(results_dir, "dtnh_angles.png")):
        out += [
            "DTNH's angles per epoch (mean over seeds): how often ∇Ω fought ∇J and was projected.",
            "",
            "![DTNH angles](benchmarks/dtnh_angles.png)",
            "",
        ]
    if full["tensorflow"] and full["jax"]:
        out += ["## TensorFlow vs JAX (subset)", "", _backend_comparison(full["tensorflow"], full["jax"]), ""]
    quick = [q for q in (_load(results_dir, "quick", b) for b in ("tensorflow", "jax")) if q]
    if quick:
        out += ["## `--quick` (the CI integration test)", ""]
        for q in quick:
            out.append(
                f"- {q['environment']['backend']}: {q['wall_seconds']:.0f} s for "
                f"{sum(len(e['methods']) for e in q['datasets'].values())} methods."
            )
        out.append("")
    out += [f"Every run's JSON: `{results_dir}/results_full_<backend>.json`.", ""]
    with open(doc_path, "w") as handle:
        handle.write("\n".join(out))


IMAGE_NOTE = "32×32 inputs, the sources' resolution"
