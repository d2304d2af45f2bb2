"""The best method in hindsight that `select` is compared with: paired over the search's seeds."""

from benchmarks import defaults_tables
from benchmarks.defaults_tables import best_in_hindsight, hindsight_candidates


def _runs(**top1_by_seed):
    return [{"run": {"seed": int(seed[1:])}, "top1": top1} for seed, top1 in top1_by_seed.items()]


def test_a_method_missing_a_seed_of_the_search_is_not_the_best():
    table = {
        "l2": _runs(s0=0.65, s1=0.66, s2=0.65),
        "di2": _runs(s0=0.66, s1=0.67, s2=0.66),
        "lp_ft": _runs(s0=0.675),  # the highest mean, but over one seed only
    }
    assert best_in_hindsight(table, {0, 1, 2}) == "di2"
    assert best_in_hindsight(table, {0}) == "lp_ft"


def test_diverged_runs_do_not_count_as_finished():
    table = {
        "l2": _runs(s0=0.50, s1=0.52),
        "knowdist": _runs(s0=0.60) + [{"run": {"seed": 1}, "top1": 0.01, "diverged": True}],
    }
    assert best_in_hindsight(table, {0, 1}) == "l2"
    assert best_in_hindsight({}, {0}) is None


def test_a_method_at_its_defaults_competes_with_the_grid():
    grid = {
        "l2": _runs(s0=0.65, s1=0.66),
        "co_tuning": _runs(s0=0.655, s1=0.66),  # a grid below the default strength
        "lp_ft": _runs(s0=0.67, s1=0.675),
    }
    defaults = {"l2": _runs(s0=0.65, s1=0.66), "co_tuning": _runs(s0=0.68, s1=0.68)}
    assert best_in_hindsight(hindsight_candidates(grid, defaults), {0, 1}) == ("co_tuning", "defaults")
    assert best_in_hindsight(hindsight_candidates(grid, {}), {0, 1}) == ("lp_ft", "grid")


def test_a_shortlist_search_is_reported_apart_and_the_target_reads_the_default_search(monkeypatch):
    def table(settings, labels, group):  # each group's rows, its mean select − best per data set, its stale rows
        shortlist = any(found.get("candidates") for found in group.values())
        gaps = {"dtd10": 0.0, "caltech101": 0.0} if shortlist else {"dtd10": -0.005, "caltech101": -0.012}
        rows = [f"rows of {sorted(group)}"]
        return rows, {found["dataset"]: gaps[found["dataset"]] for found in group.values()}, 0 if shortlist else 1

    monkeypatch.setattr(defaults_tables, "_select_table", table)
    record = {
        "dtd10/s0": {"dataset": "dtd10"},
        "caltech101/s0": {"dataset": "caltech101"},
        "caltech101/s0/co_tuning,lp_ft": {"dataset": "caltech101", "candidates": ["co_tuning", "lp_ft"]},
    }
    text = defaults_tables.select_section(None, [], record)
    default, shortlist = text.index("**Default candidates and budget:**"), text.index("**`candidates=['co_tuning', 'lp_ft']`**")
    assert default < text.index("rows of ['caltech101/s0', 'dtd10/s0']") < shortlist
    assert shortlist < text.index("rows of ['caltech101/s0/co_tuning,lp_ft']")
    assert text.count("Target") == 1 and "-0.85 points, not met." in text[default:shortlist]
    assert "The target's measure for this shortlist" not in text  # it has no DTD-10 search
    # A search of an earlier default list is counted and said to mix into the measure until searched again.
    assert text.count("† 1 of these 2 searches trained other candidates") == 1
    assert text.index("† 1 of these 2") < text.index("Target") < shortlist

    record["dtd10/s0/co_tuning,lp_ft"] = {"dataset": "dtd10", "candidates": ["co_tuning", "lp_ft"]}
    text = defaults_tables.select_section(None, [], record)
    assert "The target's measure for this shortlist (the target is the default search's): +0.00 points." in text
