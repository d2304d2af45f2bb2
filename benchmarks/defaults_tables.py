"""The report's sections about the library's defaults (issue 27) and the near-transfer regime (issue 29).

They read the plans of `benchmarks.strength`: the scale-free α's sweep (`strength:<data>`), every
method at the library's defaults (`defaults:<data>`) and at the papers' settings
(`authors:<data>`); nothing trains here.
"""

import numpy as np

from benchmarks import plans, strength
from benchmarks.cells import diff_cell, display, final_train_loss, mean_std, pct
from benchmarks.records import by_seed, collect
from benchmarks.runs import AUTHORS, LIBRARY, load_source
from benchmarks.statistics import paired, sign_test, verdict
from keras_tl.selection.candidates import Candidate


def _l2_selection_score(settings, dataset):
    """L2's seed-0 top-1 on the selection split at the chosen schedule (the schedule plan's run)."""
    epochs = plans.chosen_epochs(settings, dataset)
    for run, result in collect(settings, plans.schedule_runs(settings, dataset)):
        if result is not None and run.epochs == epochs:
            return result.get("top1")
    return None


def strength_section(settings, dataset):
    runs = collect(settings, strength.strength_runs(settings, dataset))
    if not runs:
        return f"**{dataset}**: pending (needs its schedule)."
    scores = {(run.method, dict(run.hparams)["alpha"]): result for run, result in runs}
    header = " | ".join(f"α = {a:g}" for a in strength.STRENGTH_VALUES)
    lines = [
        f"**{dataset}** — seed 0, the selection split; L2: {pct(_l2_selection_score(settings, dataset))} %",
        "",
        f"| method | {header} |",
        "|---|" + "---|" * len(strength.STRENGTH_VALUES),
    ]
    if all(result is None for _, result in runs):
        return ""
    for name in strength.relative_methods():
        cells = []
        for alpha in strength.STRENGTH_VALUES:
            result = scores.get((name, alpha))
            cells.append(
                "pending" if result is None else "diverged" if "diverged" in result else pct(result["top1"])
            )
        lines.append(f"| {display(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def defaults_entries(settings, dataset, labels, defaults=LIBRARY):
    """`{label: [finished or diverged results]}` of the `defaults:`/`authors:` plan."""
    entries = {}
    for run, result in collect(settings, strength.defaults_runs(settings, dataset, labels, defaults)):
        if result is not None:
            entries.setdefault(run.method, []).append(result)
    return entries


def _finished(results):
    return [r for r in results if "diverged" not in r]


def _summary(results):
    if not results:
        return "pending"
    diverged = len(results) - len(_finished(results))
    return mean_std([r["top1"] for r in _finished(results)]) + (f" ({diverged} diverged)" if diverged else "")


def defaults_section(settings, dataset, labels):
    library = defaults_entries(settings, dataset, labels)
    authors = defaults_entries(settings, dataset, labels, AUTHORS)
    l2 = by_seed(_finished(library.get("l2", [])))
    lines = [
        "| method | library defaults: top-1 (%) | Δ vs L2 (paired, 95 % CI, wins/n) | train CE, last epoch "
        "| papers' settings: top-1 (%) | Δ vs L2 |",
        "|---|---|---|---|---|---|",
    ]
    for label in labels:
        ours, theirs = library.get(label, []), authors.get(label, [])
        if not ours and not theirs:
            continue
        if not plans.method_class(label).authors_hparams:
            papers = "same"
        else:
            # The tin sets compare the library's defaults only; a method whose papers' settings became
            # its own after it was measured (WiSE-FT's interpolated statistics) has those runs there.
            papers = _summary(theirs) if theirs else "not run"
        papers_diff = "" if papers in ("same", "not run") else diff_cell(paired(by_seed(_finished(theirs)), l2))
        lines.append(
            f"| {display(label)} | {_summary(ours)} "
            f"| {'' if label == 'l2' else diff_cell(paired(by_seed(_finished(ours)), l2))} "
            f"| {final_train_loss(_finished(ours))} | {papers} | {papers_diff} |"
        )
    # Only where a method was run at defaults that differ from the test table's (L2 and L2-FE are the same runs).
    shown = {label for label in library if label not in ("l2", "l2_fe")} | set(authors)
    return "\n".join(lines) if shown else "Pending."


def defaults_directions(settings, dataset, labels):
    """The papers' directions on `dataset` at the library's defaults (`plans.directions`)."""
    entries = defaults_entries(settings, dataset, labels)
    lines = ["| claim | paired Δ (points) | sign test p | verdict |", "|---|---|---|---|"]
    for where, better, worse in plans.directions([dataset]):
        if where != dataset or better not in entries or worse not in entries:
            continue
        stats = paired(by_seed(_finished(entries[better])), by_seed(_finished(entries[worse])))
        p = "—" if stats is None else f"{sign_test(stats['wins'], stats['losses']):.2f}"
        lines.append(
            f"| {display(better)} ≥ {display(worse)} | {diff_cell(stats)} | {p} | {verdict(stats)} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def regime_section(settings, dataset, labels):
    """Is the source useful here? L2-FE's paired gap to L2 and the near sources' own accuracy."""
    entries = defaults_entries(settings, dataset, labels)
    gap = paired(by_seed(_finished(entries.get("l2_fe", []))), by_seed(_finished(entries.get("l2", []))))
    lines = [f"L2-FE − L2 (the source's frozen features against full fine-tuning): {diff_cell(gap)} points."]
    for loss, path in settings.near_sources:
        curve = load_source(path)[1].get("history", {}).get("val_accuracy", [])
        if curve:
            lines.append(
                f"`{path.rsplit('/', 1)[-1]}` ({loss}): {pct(curve[-1])} % top-1 on half A's held-out images "
                f"(best epoch {pct(float(np.max(curve)))} %)."
            )
    return "\n\n".join(lines)


def advice(settings, dataset, labels):
    """One line a user can act on: the method with the largest paired gain over L2 at the defaults."""
    entries = defaults_entries(settings, dataset, labels)
    l2 = by_seed(_finished(entries.get("l2", [])))
    best = None
    for label, results in entries.items():
        stats = paired(by_seed(_finished(results)), l2)
        if (
            label != "l2"
            and stats is not None
            and stats["n"] >= 2
            and (best is None or stats["mean"] > best[1]["mean"])
        ):
            best = (label, stats)
    if best is None:
        return ""
    label, stats = best
    if stats["mean"] <= 0:
        return "No method beats L2 at its defaults here: use L2, or `keras_tl.select` (it keeps L2 unless a method wins on validation data)."
    if stats["low"] is not None and stats["low"] > 0:
        return f"**Use {display(label)}** at its defaults: {diff_cell(stats)} points over plain fine-tuning (L2)."
    return (
        f"No method beats L2 with confidence here; the largest mean gain is {display(label)}'s {diff_cell(stats)} "
        "points: use `keras_tl.select`, which keeps L2 unless a method wins on validation data."
    )


def best_in_hindsight(table, seeds):
    """The key with the highest mean test top-1 over `seeds`, among those finished at every one of them.

    A method run at fewer seeds than the search is not a candidate: its mean is over other
    seeds and would not be paired with the search's.
    """
    means = {}
    for key, results in table.items():
        found = by_seed(_finished(results))
        if found and all(seed in found for seed in seeds):
            means[key] = float(np.mean([found[seed] for seed in seeds]))
    return max(means, key=means.get) if means else None


def hindsight_candidates(grid, defaults, variants=None):
    """`{(label, "grid" | "defaults"): results}`: every method at its grid coefficient and at its
    defaults; with `variants` (`{name: results}`), `(name, "variant")` for each of them too.

    Both count: a grid that stops short of a method's default strength (Co-Tuning's λ on
    Caltech-101) must not hide that the default beats every grid point; and a method that is one
    of the search's default candidates (LP-FT over Co-Tuning) is one of the grid's best's.
    """
    candidates = {(label, "grid"): results for label, results in grid.items()}
    candidates.update({(label, "defaults"): results for label, results in defaults.items()})
    candidates.update({(name, "variant"): results for name, results in (variants or {}).items()})
    return candidates


def variant_entries(settings, dataset):
    """`{candidate name: [finished or diverged results]}` of the `variants:` plan (`LP-FT (base=co_tuning)`)."""
    entries = {}
    for run, result in collect(settings, strength.variant_runs(settings, dataset)):
        if result is not None:
            entries.setdefault(Candidate(run.method, dict(run.hparams)).name, []).append(result)
    return entries


def _hindsight_name(key):
    label, where = key
    if where == "variant":
        return label
    return display(label) + (" at its defaults" if where == "defaults" else "")


# Issue 27's target for `select`: on average over these data sets, within this much (a fraction) of
# the grid's best method on test.
TARGET_DATASETS = ("dtd10", "caltech101")
TARGET_GAP = 0.005


def select_section(settings, labels, record):
    """`keras_tl.select`'s searches (`benchmarks.select_runs`): per seed, its choice against L2 and the
    grid's best; the default search first (the target is its), then each shortlist (`candidates=`)."""
    if not record:
        return "Pending (`python -m benchmarks.select_runs`)."
    groups = {}
    for key, found in sorted(record.items()):
        groups.setdefault(tuple(found.get("candidates") or ()), {})[key] = found
    parts = []
    for shortlist in sorted(groups, key=len):
        lines, to_best, stale = _select_table(settings, labels, groups[shortlist])
        if stale:
            lines += [
                "",
                f"† {stale} of these {len(groups[shortlist])} searches trained other candidates than a search "
                "trains today (an earlier default list: FTP ninth, before LP-FT over Co-Tuning); "
                "`python -m benchmarks.select_runs` searches them again and replaces their rows. Until then "
                "the measure below mixes the two lists.",
            ]
        mean = (
            float(np.mean([to_best[dataset] for dataset in TARGET_DATASETS]))
            if all(dataset in to_best for dataset in TARGET_DATASETS)
            else None
        )
        if shortlist:
            if mean is not None:
                lines += [
                    "",
                    "The target's measure for this shortlist (the target is the default search's): "
                    f"{100 * mean:+.2f} points.",
                ]
            parts.append(
                f"**`candidates={list(shortlist)}`** (L2 and {len(shortlist)} more, default budget):\n\n"
                + "\n".join(lines)
            )
            continue
        if mean is not None:
            lines += [
                "",
                f"Target (within {100 * TARGET_GAP:.1f} points of the grid's best on test, the mean of "
                f"{' and '.join(TARGET_DATASETS)}'s means): {100 * mean:+.2f} points, "
                f"{'met' if mean >= -TARGET_GAP else 'not met'}.",
            ]
        parts.append("**Default candidates and budget:**\n\n" + "\n".join(lines))
    parts.append(
        "The grid's best: the method, at its grid coefficient (where the data set has a grid table) or at "
        "its defaults, or one of the search's other default candidates run alone (LP-FT over Co-Tuning, "
        "plan `variants:<dataset>`), with the highest mean test top-1 over the search's seeds, among those "
        "run at each of them; per seed its run's test top-1."
    )
    return "\n\n".join(parts)


def _select_table(settings, labels, record):
    """`(lines, {dataset: mean of select − the grid's best}, number of stale searches)` of one group of
    searches; a stale search (†) trained other candidates than its search would today."""
    from benchmarks.records import planned_names, searched_names, table_entries  # the grid's table plan

    lines = [
        "| data set | seed | chosen | val top-1: chosen / L2 (%) | test top-1 (%) | L2 test | grid's best test "
        "| WiSE-FT α | cost (L2 runs) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    deltas = {}
    seeds_of = {}
    stale = 0
    for found in record.values():
        seeds_of.setdefault(found["dataset"], set()).add(found["seed"])
    candidates_of = {
        dataset: hindsight_candidates(
            table_entries(settings, dataset, labels) if dataset in plans.table_datasets(settings) else {},
            defaults_entries(settings, dataset, labels),
            variant_entries(settings, dataset),
        )
        for dataset in seeds_of
    }
    for key in sorted(record):
        found = record[key]
        dataset, seed = found["dataset"], found["seed"]
        # The best method in hindsight (test): over the grid's table and every method's defaults;
        # L2's test from the grid's table where the data set has one, else from the defaults runs.
        candidates = candidates_of[dataset]
        best = best_in_hindsight(candidates, seeds_of[dataset])
        l2_key = ("l2", "grid") if ("l2", "grid") in candidates else ("l2", "defaults")
        l2 = by_seed(_finished(candidates.get(l2_key, []))).get(seed)
        grid = by_seed(_finished(candidates.get(best, []))).get(seed) if best else None
        test = found["test"]["top1"]
        deltas.setdefault(dataset, []).append(
            (test - l2 if l2 is not None else None, test - grid if grid is not None else None)
        )
        wise = (found.get("wise_ft") or {}).get("alpha")
        name = Candidate(found["method"], found["hparams"]).name
        if searched_names(found) != planned_names(settings, dataset, found.get("candidates") or ()):
            name += " †"
            stale += 1
        lines.append(
            f"| {dataset} | {seed} | {name} | {pct(found['validation_top1'])} / {pct(found['reference_top1'])} "
            f"| {pct(test)} | {pct(l2)} | {pct(grid)} ({_hindsight_name(best) if best else '—'}) "
            f"| {'—' if wise is None else f'{wise:g}'} | {found['cost']['ratio']:.2f} |"
        )
    to_best = {}
    for dataset, pairs in deltas.items():
        to_l2 = [a for a, _ in pairs if a is not None]
        to_grid = [b for _, b in pairs if b is not None]
        if to_grid:
            to_best[dataset] = float(np.mean(to_grid))
        lines.append("")
        lines.append(
            f"{dataset}: select − L2 on test {pct(float(np.mean(to_l2)), True) if to_l2 else '—'} points, "
            f"select − the grid's best {pct(to_best[dataset], True) if to_grid else '—'} points "
            f"(mean over {len(pairs)} seed{'s' if len(pairs) > 1 else ''})."
        )
    return lines, to_best, stale
