"""Paired statistics over seeds: differences to a reference with a t-interval, the sign test, a verdict.

Seed s draws the same few-shot sample and the same initial head for every method, so a method's
difference to another is taken per seed and summarised as mean ± std with a 95 % t-interval (the
Student quantile from scipy) and a sign count.
"""

import math

import numpy as np
from scipy import stats as scipy_stats


def t95(degrees_of_freedom):
    """The two-sided 95 % quantile of Student's t (12.706 at 1 degree of freedom, 2.571 at 5)."""
    return float(scipy_stats.t.ppf(0.975, degrees_of_freedom))


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
    half = t95(len(seeds) - 1) * stats["std"] / math.sqrt(len(seeds)) if len(seeds) > 1 else None
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
