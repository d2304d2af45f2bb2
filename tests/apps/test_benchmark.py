"""The benchmark app: source lookup, the chance test, the report's numbers, and `--quick` end to end."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl import flags

from apps import benchmark, benchmark_report, common

DATA_ROOT = benchmark.DATA_ROOT


def parsed(*argv):
    common.parse(benchmark.FLAGS, ["benchmark", *argv])
    return benchmark.FLAGS


def test_chance_threshold_is_a_one_sided_binomial_bound():
    # 10 classes, 400 test images: 0.1 + 3.09·sqrt(0.1·0.9/400).
    assert benchmark.chance_threshold(10, 400) == pytest.approx(0.1 + 3.09 * 0.015)
    assert benchmark.chance_threshold(2, 100) == pytest.approx(0.5 + 3.09 * 0.05)


def fake_report(top1s, num_classes=10, eval_examples=400, step=0.05, k=None):
    runs = []
    for seed, top1 in enumerate(top1s):
        run = {"seed": seed, "top1": top1, "mean_per_class": top1 - 0.01, "seconds": 10.0 + seed}
        run.update(step_seconds=step, history={"loss": [1.0, 0.5]})
        if k is not None:
            run["di2_k"] = k
        runs.append(run)
    return {"num_classes": num_classes, "eval_examples": eval_examples, "result": {"runs": runs}}


def fake_results(methods, backend="tensorflow"):
    return {
        "environment": {
            "backend": backend,
            "keras": "3",
            "tensorflow": "2",
            "jax": "0",
            "python": "3.11",
            "machine": "test",
            "date": "today",
            "command": "python -m apps.benchmark",
        },
        "upstream": {
            "cross_entropy": {"path": "s.keras", "card": {"backbone": "b"}, "validation": {"top1": 0.3}}
        },
        "datasets": {
            "caltech101": {
                "protocol": {
                    "per_class": 30,
                    "eval_split": "test",
                    "lr": 0.01,
                    "epochs": 2,
                    "batch_size": 32,
                    "seeds": 2,
                },
                "methods": methods,
                "wall_seconds": 120.0,
            }
        },
        "wall_seconds": 130.0,
        "quick": False,
    }


def test_beats_chance_names_every_failing_method():
    results = fake_results(
        {"l2": fake_report([0.5, 0.6]), "bss": fake_report([0.5, 0.12]), "lwf": {"diverged": "NaN"}}
    )
    with pytest.raises(
        AssertionError, match=r"Received: caltech101/bss: top-1 0.120 <= 0.146; caltech101/lwf: diverged$"
    ):
        benchmark.check_beats_chance(results)
    benchmark.check_beats_chance(fake_results({"l2": fake_report([0.5, 0.6])}))


def test_report_tables_gains_ratios_and_checks(tmp_path):
    methods = {
        "l2": fake_report([0.40, 0.42], step=0.050),
        "l2_sp": fake_report([0.44, 0.46], step=0.051),
        "knowdist": fake_report([0.41, 0.45], step=0.060),
        "delta": fake_report([0.30, 0.34], step=0.065),
        "dsd": fake_report([0.50, 0.50], step=0.055, k=3),
        "co_tuning": fake_report([0.49, 0.47]),
        "spa_gca": {"diverged": "Training stopped at epoch 2"},
    }
    results = fake_results(methods)
    results["selection"] = {
        "methods": {"knowdist": {"chosen": "alpha=0.001", "val_top1": {"0.01": None, "0.001": 0.5}}},
        "wall_seconds": 60.0,
    }
    (tmp_path / "results_full_tensorflow.json").write_text(json.dumps(results))
    doc = tmp_path / "BENCHMARKS.md"
    benchmark_report.write_doc(str(tmp_path), str(doc))
    text = doc.read_text()
    # KnowDist: 43.0 ± 2.8, +2.0 over L2, -2.0 under L2-SP, 60/50 ms per step = 1.20.
    assert "| KnowDist | 43.0 ± 2.8 | 42.0 ± 2.8 | +2.0 | -2.0 | 1.20 | 60 | 10 |" in text
    assert "| L2 | 41.0 ± 1.4 | 40.0 ± 1.4 | – | -4.0 | 1.00 | 50 | 10 |" in text
    assert "| KnowDist | alpha=0.01: diverged, alpha=0.001: 50.0 | alpha=0.001 |" in text
    assert "| SPA→GCA | diverged (NaN) |" in text
    assert "DI2's k (granularity diffusion sequence length, Sec. 4.6 '+1' rule): [3]." in text
    assert "DELTA 32.0 ± 2.8 vs KnowDist 43.0 ± 2.8 (-11.0 points): does **not** hold" in text
    assert "KnowDist 43.0 ± 2.8 vs L2 41.0 ± 1.4 (+2.0 points): holds" in text
    assert "DSD (PGD source + DI2) 50.0 ± 0.0 vs Co-Tuning 48.0 ± 1.4 (+2.0 points): holds" in text
    assert os.path.getsize(tmp_path / "accuracy.png") > 1000


def test_report_needs_results(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"Expected results_full_<backend>.json in .*python -m apps.benchmark"
    ):
        benchmark_report.write_doc(str(tmp_path), str(tmp_path / "doc.md"))


def test_sources_are_looked_up_committed_then_cached(tmp_path):
    fv = parsed(f"--sources_dir={tmp_path}/committed", f"--cache_dir={tmp_path}/cache")
    name = benchmark.source_name(fv, "pgd")
    assert name == "tin32_cifar_resnet20_pgd_e10_b128_lr0.1_s0"
    cached = tmp_path / "cache" / "sources" / name / "source.keras"
    cached.parent.mkdir(parents=True)
    cached.write_text("")
    assert benchmark.source_path(fv, "pgd") == str(cached)
    committed = tmp_path / "committed" / f"{name}.keras"
    committed.parent.mkdir()
    committed.write_text("")
    assert benchmark.source_path(fv, "pgd") == str(committed)


def test_unknown_methods_and_datasets_are_refused():
    with pytest.raises(
        flags.IllegalFlagValueError, match=r"Expected --methods from \['l2', .*Received: \['l3'\]"
    ):
        parsed("--methods=l2,l3")
    with pytest.raises(
        flags.IllegalFlagValueError, match=r"Expected --datasets from \['caltech101', 'dtd10'\]"
    ):
        parsed("--datasets=cub200")


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="--quick's CI budget is 5 minutes; on JAX compiling 16 methods' steps alone takes longer "
    "(docs/BENCHMARKS.md reports the JAX subset of the full benchmark)",
)
@pytest.mark.skipif(
    not os.path.isdir(os.path.join(DATA_ROOT, "dtd10")), reason=f"the shared data is not at {DATA_ROOT}"
)
def test_quick_benchmark_every_method_beats_chance(tmp_path):
    """The CI integration test: every method fine-tunes on DTD-10 and beats chance (p < 0.001)."""
    command = [
        sys.executable,
        "-m",
        "apps.benchmark",
        "--quick",
        "--verbose=0",
        f"--results_dir={tmp_path}/results",
        f"--runs_dir={tmp_path}/runs",
        f"--cache_dir={tmp_path}/cache",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=benchmark.PROJECT_ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Every method beats chance." in done.stdout
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    results = json.loads((tmp_path / "results" / f"results_quick_{backend}.json").read_text())
    methods = results["datasets"]["dtd10"]["methods"]
    assert list(methods) == list(benchmark.METHODS)
    top1 = {label: report["result"]["runs"][0]["top1"] for label, report in methods.items()}
    assert all(np.isfinite(list(top1.values())))


def test_selection_uses_the_val_split_and_keeps_the_first_best(tmp_path, monkeypatch):
    fv = parsed(f"--runs_dir={tmp_path}", "--methods=l2,knowdist,knowdist+dtnh")
    seen = []

    def fake_finetune_once(argv, source):
        seen.append(argv)
        alpha = next(a for a in argv if a.startswith("--hparams=")).split("=")[-1]
        if alpha == "0.01":
            return {"diverged": "Training stopped at epoch 2, batch 1: 'empirical_loss' went NaN/inf first"}
        return {"result": {"runs": [{"top1": {"0.001": 0.5, "0.0001": 0.5}[alpha]}]}}

    monkeypatch.setattr(benchmark, "finetune_once", fake_finetune_once)
    chosen = benchmark.select_hparams(fv, {"cross_entropy": "s.keras"})
    assert chosen == {
        "knowdist": {
            "chosen": "alpha=0.001",
            "val_top1": {"0.01": None, "0.001": 0.5, "0.0001": 0.5},
            "wall_seconds": 0.0,
        }
    }
    assert len(seen) == 3
    assert all("--eval_split=val" in argv and "--repeats=1" in argv for argv in seen)
    assert all(f"--dataset=folder:{os.path.join(DATA_ROOT, 'dtd10')}" in argv for argv in seen)
    # The chosen coefficient reaches the method and its DTNH variant.
    argv = benchmark.finetune_argv(
        fv, "caltech101", "knowdist+dtnh", "s.keras", str(tmp_path), hparams="alpha=0.001"
    )
    assert argv[0] == "--hparams=alpha=0.001" and "--per_class=30" in argv and "--eval_split=test" in argv
