"""docs/BENCHMARKS.md from the saved runs: the notes, then each section of `benchmarks.tables`.

Only saved results are read (nothing is trained here): `benchmarks.records` finds them,
`benchmarks.statistics` pairs them over seeds, `benchmarks.tables` and `benchmarks.cells`
write them as markdown, `benchmarks.plots` draws the figures.
"""

import os

import keras

from benchmarks import defaults_tables, plans
from benchmarks.plots import plot_schedule
from benchmarks.records import every_run, read_select_record
from benchmarks.tables import (
    ablation_section,
    backend_section,
    directions_section,
    dtnh_section,
    grid_section,
    schedule_section,
    step_time_section,
    table_section,
    upstream_section,
)
from keras_tl.utils import files


def write(settings, doc, results_dir, labels, intro_path=None):
    """Writes `doc` (markdown), its plots and `runs_<backend>.json` into `results_dir`; returns `doc`."""
    labels = plans.table_labels() if labels is None else labels
    os.makedirs(results_dir, exist_ok=True)
    backend = keras.backend.backend()
    runs = every_run(settings, labels)
    files.write_json(os.path.join(results_dir, f"runs_{backend}.json"), runs)
    plot_schedule(settings, os.path.join(results_dir, "schedule.png"))
    intro_path = intro_path or os.path.join(results_dir, "notes.md")
    intro = open(intro_path).read().strip() if os.path.isfile(intro_path) else ""
    sections = [
        "# Benchmarks",
        "<!-- Written by `python -m benchmarks.suite --report` from the saved runs; notes from "
        "docs/benchmarks/notes.md. -->",
        intro,
        "## Sources\n\n" + upstream_section(settings),
        "## Schedule (L2's validation curve)\n\n![schedule](benchmarks/schedule.png)\n\n"
        + "\n\n".join(schedule_section(settings, d) for d in plans.schedule_datasets(settings)),
        "## Coefficients (DTD-10 val split, seed 0)\n\n" + grid_section(settings),
        "## DTNH where the pull is too strong\n\n"
        + dtnh_section(settings, results_dir)
        + "\n\n![DTNH sweep](benchmarks/dtnh_sweep.png)",
    ]
    for dataset in plans.table_datasets(settings):
        sections.append(f"## {dataset}: test split\n\n" + table_section(settings, dataset, labels))
    sections.append("## The papers' directions\n\n" + directions_section(settings, labels))
    sections += defaults_sections(settings, labels, results_dir)
    sections.append(
        "## DELTA's channel attention, ablated (test split, same α and seeds)\n\n"
        + ablation_section(settings)
    )
    sections.append("## Step time on a quiet machine\n\n" + step_time_section(results_dir, labels))
    sections.append("## TensorFlow and JAX (DTD-10, same configs and seeds)\n\n" + backend_section(settings))
    sections.append(
        f"Every run's JSON: `docs/benchmarks/runs_{backend}.json` ({len(runs)} runs; key = hash of the "
        "run's config, see `benchmarks/runs.py`)."
    )
    files.write_atomic(doc, "\n\n".join(s for s in sections if s) + "\n")
    return doc


def defaults_sections(settings, labels, results_dir):
    """The library's defaults: how the scale-free α was chosen, and every method at its defaults per data set."""
    record = read_select_record(results_dir)
    sections = [
        "## The scale-free α (relative feature-map terms, issue 27)\n\n"
        + "\n\n".join(
            filter(None, (defaults_tables.strength_section(settings, d) for d in plans.datasets_of(settings)))
        )
    ]
    for dataset in plans.datasets_of(settings):
        table = defaults_tables.defaults_section(settings, dataset, labels)
        if table == "Pending.":
            continue
        parts = [f"## {dataset}: every method at the library's defaults (test split)", table]
        if plans.DATASETS[dataset].get("sources") == "near":
            parts.append(defaults_tables.regime_section(settings, dataset, labels))
        parts += [
            defaults_tables.defaults_directions(settings, dataset, labels),
            defaults_tables.advice(settings, dataset, labels),
        ]
        sections.append("\n\n".join(p for p in parts if p))
    sections.append(
        "## `keras_tl.select` (validation: the selection split)\n\n"
        + defaults_tables.select_section(settings, labels, record)
    )
    return sections
