"""The benchmark suite: run keys, the plans' selection rules, paired statistics, `--quick` end to end."""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from scipy import stats as scipy_stats

from benchmarks import plans, records, statistics, strength, suite, tables
from benchmarks.runs import HOLDOUT, Run, cached, restore, result_path, save_json, save_result


@pytest.fixture
def sources(tmp_path):
    paths = {}
    for name, content in (("a", b"one"), ("b", b"one"), ("c", b"two")):
        paths[name] = str(tmp_path / f"{name}.keras")
        with open(paths[name], "wb") as handle:
            handle.write(content)
    return paths


def test_run_key_covers_every_field_and_the_source_by_content(sources):
    run = Run("dtd10", "l2_sp", sources["a"], hparams={"beta": 0.1, "alpha": 1.0})
    assert run.hparams == (("alpha", 1.0), ("beta", 0.1))  # order-free
    assert run.key() == Run("dtd10", "l2_sp", sources["a"], hparams={"alpha": 1.0, "beta": 0.1}).key()
    assert run.key() == dataclasses.replace(run, source=sources["b"]).key()  # same bytes
    changed = [dataclasses.replace(run, source=sources["c"])] + [
        dataclasses.replace(run, **{field: value})
        for field, value in [("seed", 1), ("epochs", 31), ("lr", 0.02), ("method", "l2"), ("curve", True)]
    ]
    keys = {r.key() for r in changed}
    assert run.key() not in keys and len(keys) == len(changed)
    assert run.label == "l2_sp(alpha=1,beta=0.1)"
    with pytest.raises(ValueError, match="Expected per_class > 0 with eval_split='holdout'"):
        Run("dtd10", "l2", sources["a"], eval_split=HOLDOUT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.seed = 3


def settings_for(tmp_path, sources, **kwargs):
    kwargs.setdefault("table_seeds", ())  # every plan takes `seeds` unless a test says otherwise
    return plans.Settings(
        sources=(("cross_entropy", sources["a"]), ("pgd", sources["c"])),
        data_root=str(tmp_path),
        runs_dir=str(tmp_path / "runs"),
        **kwargs,
    )


def save(settings, run, top1=None, diverged=False, **extra):
    result = (
        {"run": dataclasses.asdict(run), "diverged": "NaN"} if diverged else {"run": dataclasses.asdict(run)}
    )
    if not diverged:
        result.update({"top1": top1, "mean_per_class": top1, "history": {}, **extra})
    save_result(run, settings.runs_dir, result)


def test_schedule_is_the_fewest_epochs_within_the_plateau_and_extends_while_the_longest_wins(
    tmp_path, sources
):
    settings = settings_for(tmp_path, sources)
    runs = plans.schedule_runs(settings, "caltech101")
    assert [r.epochs for r in runs] == [10, 20, 40]
    assert all(r.eval_split == HOLDOUT and r.per_class == 30 and r.curve and r.method == "l2" for r in runs)
    assert plans.chosen_epochs(settings, "caltech101") is None
    for run, top1 in zip(runs, (0.50, 0.60, 0.70), strict=True):
        save(settings, run, top1)
    extended = plans.schedule_runs(settings, "caltech101")
    assert [r.epochs for r in extended] == [10, 20, 40, 80]  # the longest was best: one more
    save(settings, extended[-1], 0.705)
    assert plans.chosen_epochs(settings, "caltech101") == 40  # 0.70 is within 1 point of 0.705
    dtd = plans.schedule_runs(settings, "dtd10")
    assert {r.eval_split for r in dtd} == {"val"} and {r.per_class for r in dtd} == {0}


def test_grid_is_centred_on_the_paper_value_and_extends_past_a_winning_edge(tmp_path, sources):
    settings = settings_for(tmp_path, sources)
    for run, top1 in zip(plans.schedule_runs(settings, "dtd10"), (0.4, 0.5, 0.45), strict=True):
        save(settings, run, top1)
    assert plans.chosen_epochs(settings, "dtd10") == 20
    # KnowDist sums over the batch: the paper's α = 0.01 at batch 64 is 0.02 at batch 32.
    assert plans.grid_values(settings, "knowdist", 20) == pytest.approx([0.002, 0.02, 0.2])
    grid = [r for r in plans.grid_runs(settings) if r.method == "knowdist"]
    assert all(r.eval_split == "val" and r.seed == 0 and r.epochs == 20 for r in grid)
    for run, outcome in zip(grid, (0.5, None, None), strict=True):
        save(settings, run, outcome, diverged=outcome is None)
    assert plans.grid_values(settings, "knowdist", 20) == pytest.approx([0.0002, 0.002, 0.02, 0.2])
    assert plans.chosen_hparams(settings, "knowdist+dtnh") is None  # 0.0002 not run yet
    low = next(r for r in plans.grid_runs(settings) if r.method == "knowdist" and r.hparams[0][1] == 0.0002)
    save(settings, low, 0.5)  # a tie keeps the first (the weaker pull)
    assert plans.chosen_hparams(settings, "knowdist+dtnh") == (("alpha", 0.0002),)
    assert plans.chosen_hparams(settings, "l2") == ()
    for run in [r for r in plans.grid_runs(settings) if r.method == "afa"]:
        save(settings, run, diverged=True)
    assert plans.grid_values(settings, "afa", 20) == pytest.approx([0.0001, 0.001, 0.01, 0.1])


def test_table_pairs_seeds_across_methods(tmp_path, sources):
    settings = settings_for(tmp_path, sources, seeds=3)
    for run, top1 in zip(plans.schedule_runs(settings, "dtd10"), (0.4, 0.5, 0.45), strict=True):
        save(settings, run, top1)
    runs = plans.table_runs(settings, "dtd10", ["l2", "l2_fe", "dsd"])
    assert [(r.method, r.seed) for r in runs] == [
        (m, s) for s in range(3) for m in ("l2", "l2_fe")
    ]  # seed-major
    for run in plans.grid_runs(settings):
        if run.method == "di2":
            save(settings, run, 0.3)
    dsd = [r for r in plans.table_runs(settings, "dtd10", ["dsd"])]
    assert {r.source for r in dsd} == {sources["c"]} and dsd[0].hparams == (("lam", 0.0001),)  # DI2's grid
    assert {r.method for r in dsd} == {"dsd"}
    for run, loss in zip(dsd, (0.5, 0.75, 1.0), strict=True):
        save(settings, run, 0.5, di2_k=4, history={"empirical_loss": [2.0, loss]})
    (row,) = [line for line in tables.table_section(settings, "dtd10", ["dsd"]).splitlines() if "DSD" in line]
    assert row.startswith("| DSD (PGD source + DI2) | lam=0.0001, k=4 | 50.0 ± 0.0 (n=3) |")
    assert row.endswith("| 0.750 |")  # the last epoch's training cross-entropy, mean over seeds


def test_delta_ablation_uses_deltas_alpha_with_uniform_weights_and_pairs_seeds(tmp_path, sources):
    settings = settings_for(tmp_path, sources, seeds=2)
    assert plans.plan(settings, "ablation:dtd10") == []  # no schedule yet
    for run, top1 in zip(plans.schedule_runs(settings, "dtd10"), (0.4, 0.5, 0.45), strict=True):
        save(settings, run, top1)
    for _ in range(2):  # 0.002 wins at the grid's edge, which adds 0.0002
        for run in plans.grid_runs(settings):
            if run.method in ("delta", "knowdist") and cached(run, settings.runs_dir) is None:
                save(settings, run, 0.4 if dict(run.hparams)["alpha"] == 0.002 else 0.3)
    runs = plans.plan(settings, "ablation:dtd10")
    assert [(r.method, r.seed, r.hparams) for r in runs] == [
        ("delta", s, (("alpha", 0.002), ("attention", False))) for s in range(2)
    ]
    assert runs[0].label == "delta(alpha=0.002,attention=False)"
    for label, top1s in (("knowdist", (0.50, 0.52)), ("delta", (0.49, 0.50))):
        for run, top1 in zip(plans.table_runs(settings, "dtd10", [label]), top1s, strict=True):
            save(settings, run, top1)
    for run, top1 in zip(runs, (0.48, 0.51), strict=True):
        save(settings, run, top1)
    (row,) = [line for line in tables.ablation_section(settings).splitlines() if line.startswith("| dtd10")]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[4].startswith("-1.5 ± 0.7")  # uniform − KnowDist: seeds -2, -1
    assert cells[5].startswith("+0.0 ± 1.4")  # DELTA − uniform: seeds +1, -1
    # The committed record keeps every method's runs whatever subset one process ran.
    recorded = records.every_run(settings, ["l2"])
    assert sum(r["run"]["method"] == "delta" and r["run"]["eval_split"] == "test" for r in recorded) == 4


def test_a_table_has_its_own_seeds_and_backends_are_compared_on_the_seeds_both_ran(tmp_path, sources):
    assert plans.Settings(sources=(), data_root="", runs_dir="").seeds_of("dtd10") == range(6)
    settings = settings_for(tmp_path, sources, seeds=2, table_seeds=(("dtd10", 4),))
    assert dataclasses.replace(settings, quick=True).seeds_of("dtd10") == range(1)
    for run, top1 in zip(plans.schedule_runs(settings, "dtd10"), (0.4, 0.5, 0.45), strict=True):
        save(settings, run, top1)
    l2 = plans.table_runs(settings, "dtd10", ["l2"])
    assert [r.seed for r in l2] == [0, 1, 2, 3]
    assert [r.seed for r in plans.dtnh_runs(settings, ())] == [0, 1]  # the sweep keeps `seeds`
    assert settings.seeds_of("caltech101") == range(2)
    ran = {"tensorflow": (0.5, 0.5, 0.9, 0.9), "jax": (0.5, 0.5)}  # the JAX subset ran two seeds
    for backend, top1s in ran.items():
        for run, top1 in zip(l2, top1s, strict=False):
            save_json(
                result_path(run, settings.runs_dir, backend), {"run": dataclasses.asdict(run), "top1": top1}
            )
    (row,) = [
        line for line in tables.backend_section(settings, labels=("l2",)).splitlines() if "| L2 |" in line
    ]
    assert row == "| L2 | 50.0 ± 0.0 (n=2) | 50.0 ± 0.0 (n=2) | +0.0 | yes |"  # not TF's 70.0 over 4 seeds


def test_paired_statistics_match_scipy():
    values = {0: 0.52, 1: 0.55, 2: 0.50, 3: 0.58}
    reference = {0: 0.50, 1: 0.51, 2: 0.51, 3: 0.53, 9: 0.9}  # seed 9 has no pair
    stats = statistics.paired(values, reference)
    diffs = np.array([0.02, 0.04, -0.01, 0.05])
    interval = scipy_stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert stats["n"] == 4 and stats["wins"] == 3 and stats["losses"] == 1
    np.testing.assert_allclose([stats["mean"], stats["std"]], [diffs.mean(), diffs.std(ddof=1)])
    np.testing.assert_allclose([stats["low"], stats["high"]], [interval.low, interval.high], rtol=1e-3)
    for wins, losses in ((3, 1), (5, 0), (2, 2), (0, 7)):
        expected = scipy_stats.binomtest(wins, wins + losses).pvalue
        assert statistics.sign_test(wins, losses) == pytest.approx(expected)
    assert statistics.verdict(stats) == "holds (≥ 0, not significant)"
    assert statistics.verdict(statistics.paired({0: 0.6, 1: 0.62, 2: 0.61}, {0: 0.5, 1: 0.51, 2: 0.5})) == "holds"


def test_beats_chance_names_every_failing_run():
    def result(method, top1=None):
        entry = {
            "run": {"dataset": "dtd10", "method": method, "seed": 0},
            "num_classes": 10,
            "eval_examples": 400,
        }
        return {**entry, "diverged": "NaN"} if top1 is None else {**entry, "top1": top1}

    statistics.check_beats_chance([result("l2", 0.5)])
    with pytest.raises(
        AssertionError, match=r"dtd10/bss seed 0: top-1 0.120 <= 0.146; dtd10/lwf seed 0: diverged$"
    ):
        statistics.check_beats_chance([result("l2", 0.5), result("bss", 0.12), result("lwf")])


def test_step_times_come_from_the_quiet_measurement_as_ratios_to_l2(tmp_path):
    def measured(backend, **medians):
        results = {case: {"median_s": s, "images_per_s": 32 / s} for case, s in medians.items()}
        args = {"batch_size": 32, "backbone": "cifar_resnet20", "steps": 15, "rounds": 3}
        path = tmp_path / f"step_overhead_{backend}.json"
        path.write_text(json.dumps({"backend": backend, "args": args, "results": results}))

    assert tables.step_time_section(str(tmp_path), ["l2"]).startswith("Pending")
    measured("tensorflow", keras=0.09, l2=0.1, delta=0.125)
    measured("jax", l2=0.2, **{"delta+dtnh": 0.3})
    rows = tables.step_time_section(str(tmp_path), ["l2", "delta", "delta+dtnh"]).splitlines()
    assert "| DELTA | 125 | 256 | 1.25 | — | — | — |" in rows
    assert "| DTNH(DELTA) | — | — | — | 300 | 107 | 1.50 |" in rows
    assert rows[-1] == "L2's step against a plain `keras.Model` fit the same way: tensorflow: 1.11."


def test_a_saved_run_is_read_back_not_trained_again(tmp_path, sources, monkeypatch):
    settings = settings_for(tmp_path, sources)
    run = plans.schedule_runs(settings, "dtd10")[0]
    save(settings, run, 0.42)
    monkeypatch.setattr("keras_tl.fine_tune", lambda *a, **k: pytest.fail("trained a cached run"))
    from benchmarks.runs import execute

    assert execute(run, settings.data_root, settings.runs_dir)["top1"] == 0.42
    assert cached(dataclasses.replace(run, seed=1), settings.runs_dir) is None


def test_a_fresh_clone_resumes_from_the_committed_record_without_overwriting_local_runs(tmp_path, sources):
    """`runs_dir` is not committed: the record `runs_<backend>.json` must refill it, local results winning."""
    committed = settings_for(tmp_path, sources)
    runs = plans.schedule_runs(committed, "caltech101")
    for run, top1 in zip(runs, (0.50, 0.70, 0.69), strict=True):
        save(committed, run, top1, key=run.key())
    record = [cached(run, committed.runs_dir) for run in runs]
    results_dir = tmp_path / "docs"
    results_dir.mkdir()
    (results_dir / "runs_tensorflow.json").write_text(json.dumps(record))
    (results_dir / "runs_jax.json").write_text(json.dumps(record[:1]))

    fresh = dataclasses.replace(committed, runs_dir=str(tmp_path / "fresh"), selection_backend="tensorflow")
    assert plans.chosen_epochs(fresh, "caltech101") is None
    local = result_path(runs[0], fresh.runs_dir, "tensorflow")
    save_json(local, {**record[0], "top1": 0.1})
    assert restore(str(results_dir), fresh.runs_dir) == {"tensorflow": 2, "jax": 1}
    assert cached(runs[0], fresh.runs_dir, "tensorflow")["top1"] == 0.1  # not overwritten
    assert cached(runs[2], fresh.runs_dir, "tensorflow")["top1"] == 0.69
    assert cached(runs[0], fresh.runs_dir, "jax")["top1"] == 0.50
    assert plans.chosen_epochs(fresh, "caltech101") == 20  # the plan continues from the record
    assert restore(str(results_dir), fresh.runs_dir) == {"tensorflow": 0, "jax": 0}


def test_run_plan_runs_only_unsaved_runs_and_quick_runs_keep_no_backup(tmp_path, sources, monkeypatch):
    calls = []

    def fake_execute(run, data_root, runs_dir, verbose=0, backup=True):
        calls.append((run.method, run.seed, backup))
        return {"run": dataclasses.asdict(run), "top1": 0.5}

    monkeypatch.setattr(suite, "execute", fake_execute)
    quick = settings_for(tmp_path, sources, quick=True, seeds=2)
    assert len(suite.run_plan(quick, "table:dtd10", ["l2", "bss"], workers=1)) == 2  # one seed
    assert calls == [("l2", 0, False), ("bss", 0, False)]

    calls.clear()
    monkeypatch.setattr(plans, "chosen_epochs", lambda settings, dataset: 20)  # a finished schedule
    monkeypatch.setattr(plans, "chosen_hparams", lambda settings, method: ())
    full = settings_for(tmp_path, sources, seeds=2)
    save(full, plans.table_runs(full, "dtd10", ["l2"])[0], top1=0.7)
    results = suite.run_plan(full, "table:dtd10", ["l2", "bss"], workers=1)
    assert sorted(r["top1"] for r in results) == [0.5, 0.5, 0.5, 0.7]
    assert calls == [("bss", 0, True), ("l2", 1, True), ("bss", 1, True)]  # L2's seed 0 is saved


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="--quick's CI budget is 5 minutes; on JAX compiling 16 methods' steps alone takes longer",
)
@pytest.mark.skipif(
    not os.path.isdir(os.path.join(suite.PROJECT_ROOT, "..", "shared", "data", "dtd10")),
    reason="the shared data is not beside the project",
)
def test_quick_suite_every_method_beats_chance(tmp_path):
    """The CI integration test: every method fine-tunes on DTD-10 through the library and beats chance."""
    command = [sys.executable, "-m", "benchmarks.suite", "--quick", f"--runs_dir={tmp_path}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=suite.PROJECT_ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Every method beats chance." in done.stdout
    saved = os.listdir(os.path.join(tmp_path, "quick", keras.backend.backend()))
    assert len([name for name in saved if name.endswith(".json")]) == len(plans.table_labels())


def test_near_transfer_is_benchmarked_at_the_defaults_with_the_few_shot_directions(tmp_path, sources):
    settings = dataclasses.replace(settings_for(tmp_path, sources), near_sources=(("cross_entropy", sources["a"]),))
    assert plans.datasets_of(settings) == ["dtd10", "caltech101", "tin-b", "tin-b5", "tin-b25"]
    assert plans.table_datasets(settings) == ["dtd10", "caltech101"]
    assert plans.schedule_datasets(settings) == ["dtd10", "caltech101", "tin-b"]
    # Issue 29: DELTA ≥ L2-SP ≥ L2 with few shots, Co-Tuning and DSD ≥ L2, DTNH(X) ≥ X, at every k.
    for k in ("tin-b5", "tin-b", "tin-b25"):
        near = {(better, worse) for _, better, worse in plans.directions([k])}
        assert {("delta", "l2_sp"), ("l2_sp", "l2"), ("co_tuning", "l2"), ("dsd", "l2"), ("delta+dtnh", "delta")} <= near
    # k = 5 and 25 take k = 10's schedule and differ from it only in the sample.
    for run, top1 in zip(plans.schedule_runs(settings, "tin-b"), (0.1, 0.2, 0.15), strict=True):
        save(settings, run, top1)
    assert plans.chosen_epochs(settings, "tin-b5") == plans.chosen_epochs(settings, "tin-b25") == 20
    runs = {k: strength.defaults_runs(settings, k, ["l2"]) for k in ("tin-b5", "tin-b", "tin-b25")}
    assert {k: {r.per_class for r in rs} for k, rs in runs.items()} == {"tin-b5": {5}, "tin-b": {10}, "tin-b25": {25}}
    assert [r.seed for r in runs["tin-b5"]] == [r.seed for r in runs["tin-b"]] == [0, 1, 2]  # paired
    assert len({r.key() for rs in runs.values() for r in rs}) == 9
    far = {(better, worse) for _, better, worse in plans.directions(["dtd10"])}
    assert ("co_tuning", "l2") not in far and ("delta", "knowdist") in far


def test_select_variants_are_run_alone_and_a_search_of_an_earlier_list_is_stale(tmp_path, sources):
    settings = settings_for(tmp_path, sources)
    assert strength.variant_runs(settings, "dtd10") == []  # no schedule chosen yet
    for run, top1 in zip(plans.schedule_runs(settings, "dtd10"), (0.4, 0.5, 0.45), strict=True):
        save(settings, run, top1)
    # LP-FT's second default candidate, over Co-Tuning, alone at the defaults on every seed of the table.
    variants = plans.plan(settings, "variants:dtd10")
    assert [(r.method, r.hparams, r.seed, r.epochs, r.eval_split) for r in variants] == [
        ("lp_ft", (("base", "co_tuning"),), s, 20, "test") for s in settings.seeds_of("dtd10")
    ]
    assert variants[0].label == "lp_ft(base=co_tuning)"  # what the suite logs after each run
    names = records.planned_names(settings, "dtd10")
    assert names[-2:] == ["LP-FT", "LP-FT (base=co_tuning)"] and len(names) == 9
    assert records.planned_names(settings, "dtd10", ["co_tuning", "lp_ft"]) == ["L2", "Co-Tuning (lam=2.3)", "LP-FT"]
    # A recorded search's candidates are its first rung's rows, by index.
    old = names[:-1] + ["FTP"]
    rows = [{"candidate": name, "index": i, "rung": 0} for i, name in reversed(list(enumerate(old)))]
    summary = {"table": rows + [{"candidate": "L2", "index": 0, "rung": 1}]}
    assert records.searched_names(summary) == old != names
