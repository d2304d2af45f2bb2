"""Results of the fine-tuning runs: mean ± std per method, a markdown table, JSON and PNG plots."""

import os

import numpy as np

from keras_tl.utils import files

METRICS = (
    ("top1", "top-1 (%)"),
    ("mean_per_class", "mean per-class (%)"),
    ("top1_10crop", "10-crop top-1 (%)"),
    ("mean_per_class_10crop", "10-crop mean per-class (%)"),
)


def summary(values):
    """`{"mean", "std"}` of per-seed values (sample std, 0 for one run)."""
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def summarize(runs):
    """`{metric: {"mean", "std"}}` over the runs (seeds) of one method."""
    return {key: summary([run[key] for run in runs]) for key, _ in METRICS if runs and key in runs[0]}


def markdown_table(results):
    """`results`: `{method: {"runs": [...], "summary": {...}}}` → a markdown table, percentages mean ± std.

    A method with one run shows its value alone (a std of one run would read as a spread of 0);
    a diverged method (`"diverged"` in its result) gets a row saying so, after the others.
    """
    finished = {label: result for label, result in results.items() if "diverged" not in result}
    keys = [(key, title) for key, title in METRICS if any(key in r["summary"] for r in finished.values())]
    lines = [
        "| method | " + " | ".join(title for _, title in keys) + " | runs |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for method, result in finished.items():
        cells = []
        for key, _ in keys:
            stat = result["summary"].get(key)
            cells.append("" if stat is None else percent(stat, len(result["runs"])))
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {len(result['runs'])} |")
    for method, result in results.items():
        if "diverged" in result:
            cells = [f"diverged (seed {result['diverged']['seed']})"] + [""] * (len(keys) - 1)
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {len(result['runs'])} |")
    return "\n".join(lines)


def percent(stat, runs):
    """`"81.2 ± 1.3"` (percent) over several runs; `"81.2"` for one."""
    mean = f"{100 * stat['mean']:.1f}"
    return mean if runs == 1 else f"{mean} ± {100 * stat['std']:.1f}"


def write(output_dir, report, table=None):
    """`results.json` (and `results.md`), each replaced atomically: a kill never leaves half a file."""
    files.write_json(os.path.join(output_dir, "results.json"), report)
    if table is not None:
        files.write_atomic(os.path.join(output_dir, "results.md"), table + "\n")


def _mean_curve(runs, key):
    curves = [run["history"][key] for run in runs if key in run["history"]]
    if not curves:
        return None
    length = min(len(c) for c in curves)
    return np.mean([c[:length] for c in curves], axis=0)


def plot(output_dir, results):
    """Writes `learning_curves.png` and, when a method used DTNH, `dtnh_angles.png`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    paths = []
    panels = [
        ("val_accuracy", "eval accuracy"),
        ("accuracy", "train accuracy"),
        ("empirical_loss", "train cross-entropy"),
    ]
    figure, axes = pyplot.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for axis, (key, title) in zip(axes, panels, strict=True):
        for method, result in results.items():
            curve = _mean_curve(result["runs"], key)
            if curve is not None:
                axis.plot(np.arange(1, len(curve) + 1), curve, label=method)
        axis.set(title=title, xlabel="epoch")
        axis.grid(alpha=0.3)
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:  # no curve when nothing was evaluated during fit
            axis.legend()
            break
    figure.tight_layout()
    paths.append(os.path.join(output_dir, "learning_curves.png"))
    figure.savefig(paths[-1], dpi=100)
    pyplot.close(figure)

    with_dtnh = {
        m: r for m, r in results.items() if any(k.startswith("dtnh/") for k in r["runs"][0]["history"])
    }
    if with_dtnh:
        angles = [
            ("dtnh/angle_d_loss", "d vs ∇J"),
            ("dtnh/angle_d_reg", "d vs ∇Ω"),
            ("dtnh/angle_sum_loss", "∇J+∇Ω vs ∇J"),
            ("dtnh/angle_sum_reg", "∇J+∇Ω vs ∇Ω"),
        ]
        figure, axes = pyplot.subplots(1, len(with_dtnh), figsize=(6 * len(with_dtnh), 4), squeeze=False)
        for axis, (method, result) in zip(axes[0], with_dtnh.items(), strict=True):
            for key, label in angles:
                curve = _mean_curve(result["runs"], key)
                if curve is not None:
                    axis.plot(np.arange(1, len(curve) + 1), curve, label=label)
            curve = _mean_curve(result["runs"], "dtnh/projected")
            title = (
                method
                if curve is None
                else f"{method} (projected: {100 * curve[-1]:.0f}% of steps, last epoch)"
            )
            axis.set(title=title, xlabel="epoch", ylabel="angle (degrees), epoch mean")
            axis.grid(alpha=0.3)
            axis.legend()
        figure.tight_layout()
        paths.append(os.path.join(output_dir, "dtnh_angles.png"))
        figure.savefig(paths[-1], dpi=100)
        pyplot.close(figure)
    return paths
