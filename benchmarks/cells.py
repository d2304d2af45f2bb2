"""How the report writes a number, a difference, a method: the cells of its markdown tables."""

import numpy as np

from benchmarks import plans
from keras_tl import methods


def display(label):
    """A table label's name: the method's `display_name`, `DTNH(...)` under DTNH."""
    return plans.method_class(label).display(methods.split_label(label)[1])


def pct(value, sign=False):
    return "—" if value is None else (f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}")


def diff_cell(stats):
    if stats is None:
        return "—"
    if stats["n"] == 1:  # one pair has no spread to show
        return f"{pct(stats['mean'], True)} ({stats['wins']}/1)"
    interval = "" if stats["low"] is None else f" [{pct(stats['low'], True)}, {pct(stats['high'], True)}]"
    return f"{pct(stats['mean'], True)} ± {100 * stats['std']:.1f}{interval} ({stats['wins']}/{stats['n']})"


def cell(results):
    if not results:
        return "pending"
    finished = [r["top1"] for r in results if "diverged" not in r]
    diverged = len(results) - len(finished)
    text = mean_std(finished) if finished else ""
    return text + (f" ({diverged} diverged)" if diverged else "")


def mean_std(values):
    if not values:
        return "—"
    if len(values) == 1:  # one run has no spread to show
        return f"{100 * values[0]:.1f} (n=1)"
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f} (n={len(values)})"


def mean_deg(values):
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.1f}°" if values else "—"


def mean_frac(values):
    values = [v for v in values if v is not None]
    return f"{100 * np.mean(values):.0f} %" if values else "—"


def final_train_loss(results):
    """Mean over seeds of the last epoch's empirical (cross-entropy) training loss.

    How far a term holds the network back from fitting the target: next to top-1 it tells
    whether a method loses accuracy by under-fitting (a pull too strong for what the source holds).
    """
    values = [
        r["history"]["empirical_loss"][-1] for r in results if r.get("history", {}).get("empirical_loss")
    ]
    return f"{np.mean(values):.3f}" if values else "—"
