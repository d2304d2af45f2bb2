"""docs/BENCHMARKS.md from the saved runs: tables with paired statistics, curves, the DTNH sweep."""

import math


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


def write(settings, doc, results_dir, labels):
    raise NotImplementedError
