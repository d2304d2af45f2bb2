"""The saved results the report reads: by plan, by seed, and the record of every run (nothing trains here)."""

import json
import os

import keras

from benchmarks import plans
from benchmarks.runs import cached, file_digest, load_source, save_json


def by_seed(results):
    """`{seed: top-1}` of the finished, non-diverged results."""
    return {r["run"]["seed"]: r["top1"] for r in results if r is not None and "diverged" not in r}


def collect(settings, runs):
    """`[(run, result or None)]`."""
    return [(run, cached(run, settings.runs_dir)) for run in runs]


def table_entries(settings, dataset, labels):
    """`{label: [results]}` of the table plan (finished runs only)."""
    entries = {}
    for label in labels:
        runs = plans.table_runs(settings, dataset, [label])
        entries[label] = [result for _, result in collect(settings, runs) if result is not None]
    return entries


def upstream_accuracy(settings, loss):
    """Top-1 of a source's 200-way head on Tiny-ImageNet-32's validation split (cached by file digest)."""
    path = settings.source(loss)
    saved = os.path.join(
        settings.runs_dir, keras.backend.backend(), f"upstream_{file_digest(path)[:16]}.json"
    )
    if os.path.isfile(saved):
        with open(saved) as handle:
            return json.load(handle)
    import keras_tl.data

    model, card = load_source(path)
    data = keras_tl.data.load(
        f"tfrecord:{os.path.join(settings.data_root, 'tiny-imagenet-32')}",
        "validation",
        image_size=settings.image_size,
        preprocess=card.get("preprocess"),
        batch_size=256,
        training=False,
    )
    result = {"path": os.path.basename(path), "card": {k: v for k, v in card.items() if k != "class_names"}}
    result.update(keras_tl.data.evaluate(model, data.dataset, data.num_classes))
    save_json(saved, result)
    return result


def every_run(settings, labels):
    """Every saved result any plan refers to, once: of every method, not only `labels`.

    The record must not shrink because one process ran `--methods=<a subset>`: the suite
    restores a fresh clone's cache from it (`benchmarks.runs.restore`).
    """
    labels = list(dict.fromkeys([*plans.table_labels(), *labels]))
    seen = {}
    names = (
        [f"schedule:{d}" for d in plans.datasets_of(settings)]
        + ["grid", "dtnh"]
        + [f"{kind}:{d}" for kind in ("table", "ablation") for d in plans.datasets_of(settings)]
        + [
            f"{kind}:{d}"
            for kind in ("strength", "defaults", "authors", "variants")
            for d in plans.datasets_of(settings)
        ]
    )
    for name in names:
        for run, result in collect(settings, plans.plan(settings, name, labels)):
            if result is not None:
                seen[run.key()] = result
    return list(seen.values())


def select_record_path(results_dir):
    """The committed record of `benchmarks.select_runs`' searches on this backend."""
    return os.path.join(results_dir, f"select_{keras.backend.backend()}.json")


def read_select_record(results_dir):
    """`{"<dataset>/s<seed>": result}` of the finished `keras_tl.select` searches."""
    path = select_record_path(results_dir)
    if not os.path.isfile(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


# `keras_tl.select`'s default budget, which the benchmark's searches keep.
SELECT_BUDGET = 3.0


def planned_candidates(settings, dataset, candidates=()):
    """The `Candidate`s a search of `dataset` trains today (the default list cut to the budget at
    the data set's epochs and batch size, or L2 and the shortlist `candidates`), in order."""
    from keras_tl.selection.candidates import plan

    epochs = plans.chosen_epochs(settings, dataset)
    return plan(list(candidates) or None, epochs, SELECT_BUDGET, settings.batch_size)[0]


def planned_names(settings, dataset, candidates=()):
    """The names (`Candidate.name`) of `planned_candidates`, in order."""
    return [candidate.name for candidate in planned_candidates(settings, dataset, candidates)]


def searched_names(summary):
    """The names of the candidates a recorded search trained (its first rung has each), in order."""
    rows = sorted(summary["table"], key=lambda row: row["index"])
    return [row["candidate"] for row in rows if row["rung"] == 0]


def measured_once(runs_dir, name, key, measure):
    """`measure()`'s JSON-safe result kept under `key` in `<runs_dir>/<backend>/<name>.json`: a rerun
    (after a kill, or to print again) reads it back instead of measuring again."""
    from keras_tl.utils import files

    path = os.path.join(runs_dir, keras.backend.backend(), f"{name}.json")
    record = {}
    if os.path.isfile(path):
        with open(path) as handle:
            record = json.load(handle)
    if key not in record:
        record[key] = measure()
        files.write_json(path, record)
    return record[key]
