"""The report's figures: L2's schedule curves and the DTNH sweep (matplotlib, Agg)."""

import contextlib

import numpy as np

from benchmarks import plans
from benchmarks.cells import display
from benchmarks.records import collect


@contextlib.contextmanager
def figure(path, panels, height=3.6):
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


def plot_dtnh(curves, l2, path):
    """Top-1 against α of X and DTNH(X) (mean ± std over seeds), L2 as a line."""
    if not curves:
        return
    with figure(path, len(curves), height=3.8) as axes:
        for axis, (method, points) in zip(axes, curves.items(), strict=True):
            for index, name in ((1, display(method)), (2, f"DTNH({display(method)})")):
                done = [(point[0], list(point[index].values())) for point in points if point[index]]
                if done:
                    alphas, values = zip(*done, strict=True)
                    means = [100 * np.mean(v) for v in values]
                    stds = [100 * np.std(v) for v in values]
                    axis.errorbar(alphas, means, yerr=stds, marker="o", capsize=3, label=name)
            if l2:
                axis.axhline(100 * np.mean(list(l2.values())), color="grey", ls="--", label="L2")
            axis.set(xscale="log", xlabel="α", ylabel="DTD-10 test top-1 (%)", title=display(method))


def plot_schedule(settings, path):
    """L2's validation curve for each schedule length, per data set."""
    with figure(path, len(plans.schedule_datasets(settings))) as axes:
        for axis, dataset in zip(axes, plans.schedule_datasets(settings), strict=True):
            for run, result in collect(settings, plans.schedule_runs(settings, dataset)):
                curve = (result or {}).get("history", {}).get("val_accuracy")
                if curve:
                    axis.plot(
                        np.arange(1, len(curve) + 1), 100 * np.asarray(curve), label=f"{run.epochs} epochs"
                    )
            axis.set(title=f"{dataset}: L2, validation", xlabel="epoch", ylabel="top-1 (%)")
