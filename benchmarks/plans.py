"""What the benchmark runs, as lists of `Run`s: schedule, coefficient grids, DTNH sweep, main table.

Every plan is a function of the settings and of the results already saved (the schedule's
epochs come from the schedule study, a method's coefficient from its grid), so rerunning a
plan recomputes the same runs and finds them cached. Selection never reads a test split:
DTD-10's val split, and for Caltech-101 the train images its 30-per-class sample leaves out.
"""

import dataclasses

import numpy as np

from benchmarks.datasets import DATASETS, HOLDOUT
from benchmarks.runs import AUTHORS, LIBRARY, Run, cached
from keras_tl import methods

# The table's methods, their coefficients and grids, their DTNH sweeps and --quick settings are
# each registered method's own (`keras_tl.methods.Method`'s class attributes); see `table_labels`.
PAPER_BATCH_SIZE = 64  # kept for the tests; a method's own is `coefficient_batch_size`
GRID_EXTENSIONS = 2  # a winner at an edge adds the next value out, at most this many times
SCHEDULE_EPOCHS = (10, 20, 40)
PLATEAU = 0.01  # the schedule: fewest epochs within this top-1 of the best
QUICK_EPOCHS = 3  # --quick, the CI test: every method trains and beats chance, within 5 minutes


def method_class(label):
    """The registered `keras_tl.methods.Method` class of a table label (`"delta"`, `"delta+dtnh"`)."""
    return methods.registered(methods.split_label(label)[0])


def table_labels():
    """The table's labels: every registered method, then DTNH(X) for each X it also runs under DTNH."""
    names = methods.names()
    return names + [name + methods.DTNH_SUFFIX for name in names if methods.registered(name).benchmark_dtnh]


def grid_methods():
    """The methods with a coefficient grid of their own, in registration order."""
    return [n for n in methods.names() if methods.registered(n).coefficient and not methods.registered(n).grid_from]


def dtnh_sweeps():
    """`{method: coefficient values}` of the X vs DTNH(X) sweep."""
    return {n: methods.registered(n).dtnh_sweep for n in methods.names() if methods.registered(n).dtnh_sweep}


def cross_backend_labels():
    """The labels whose TensorFlow and JAX runs the report compares (`Method.cross_backend`)."""
    return [label for label in table_labels() if methods.split_label(label)[1] in method_class(label).cross_backend]


def directions(dataset_names):
    """`[(dataset, better, worse)]`: each method's `claims`, and DTNH's own (DTNH(X) ≥ X, "never hurt")."""
    found = []
    for label in table_labels():
        name, dtnh = methods.split_label(label)
        claims = (methods.Claim(name),) if dtnh else method_class(label).claims
        for claim in claims:
            found += [(d, label, claim.over) for d in dataset_names if claim.datasets is None or d in claim.datasets]
    return found


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every run shares: sources, schedule, seeds, where results go."""

    sources: tuple  # ((loss, path), ...): pre-trained on all of Tiny-ImageNet-32
    data_root: str
    runs_dir: str
    near_sources: tuple = ()  # ((loss, path), ...): pre-trained on half A, for the near-transfer target
    seeds: int = 3
    # A test table's seeds where they differ from `seeds` (its DELTA ablation, paired with it,
    # follows). A DTD-10 run takes about 40 s on 2 cores against Caltech's 8 minutes, so DTD-10
    # affords 6 paired seeds, where its differences between methods are a point or two.
    table_seeds: tuple = (("dtd10", 6), ("tin-b", 5))
    batch_size: int = 32
    lr: float = 0.01
    image_size: int = 32
    quick: bool = False
    selection_backend: str | None = None  # whose schedule and grid results to use; None: this one

    def source(self, loss, dataset=None):
        """The source pre-trained with `loss` that fine-tuning on `dataset` starts from."""
        near = dataset is not None and DATASETS[dataset].get("sources") == "near"
        return dict(self.near_sources if near else self.sources)[loss]

    def seeds_of(self, dataset):
        """The seeds of `dataset`'s test table: 0..n-1, one with --quick."""
        return range(1 if self.quick else dict(self.table_seeds).get(dataset, self.seeds))


def datasets_of(settings):
    """The data sets `settings` has sources for (tin-b needs the near sources), in `DATASETS` order."""
    return [d for d in DATASETS if DATASETS[d].get("sources") != "near" or settings.near_sources]


def schedule_datasets(settings):
    """The data sets with a schedule study of their own (the others take another's: `schedule_from`)."""
    return [d for d in datasets_of(settings) if "schedule_from" not in DATASETS[d]]


def table_datasets(settings):
    """The data sets with a test table at the grid's coefficients (`table:<dataset>`)."""
    return [d for d in datasets_of(settings) if DATASETS[d].get("grid_table", True)]


def make_run(settings, dataset, label, epochs, seed=0, hparams=(), selection=False, **overrides):
    """The `Run` of table label `label` on `dataset`; `selection=True` evaluates on the selection split."""
    data = DATASETS[dataset]
    if selection and data["selection_split"] == HOLDOUT and data.get("holdout_per_class"):
        overrides.setdefault("eval_per_class", data["holdout_per_class"])
    return Run(
        dataset=dataset,
        method=label,
        source=settings.source(method_class(label).upstream, dataset),
        seed=seed,
        hparams=hparams,
        split=data["split"],
        eval_split=data["selection_split"] if selection else data["test_split"],
        per_class=data["per_class"],
        epochs=epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        image_size=settings.image_size,
        **overrides,
    )


def top1(result):
    """A run's top-1, or None if it diverged or has not run."""
    if result is None or "diverged" in result:
        return None
    return result["top1"]


# ------------------------------------------------------------------------------------ schedule


def schedule_runs(settings, dataset):
    """L2, seed 0, at each of `SCHEDULE_EPOCHS` (doubled while the longest still gains), with curves."""
    epochs = list(SCHEDULE_EPOCHS)
    while True:
        runs = [make_run(settings, dataset, "l2", e, selection=True, curve=True) for e in epochs]
        scores = [top1(cached(r, settings.runs_dir, settings.selection_backend)) for r in runs]
        # Longer only while the longest is still better than every shorter one by the plateau margin.
        if None in scores or scores[-1] <= max(scores[:-1]) + PLATEAU or len(epochs) >= 5:
            return runs
        epochs.append(2 * epochs[-1])


def chosen_epochs(settings, dataset):
    """The fewest epochs whose val top-1 is within `PLATEAU` of the best, or None while running."""
    if settings.quick:
        return QUICK_EPOCHS
    runs = schedule_runs(settings, DATASETS[dataset].get("schedule_from", dataset))
    scores = [top1(cached(r, settings.runs_dir, settings.selection_backend)) for r in runs]
    if None in scores:
        return None
    best = max(scores)
    return next(r.epochs for r, s in zip(runs, scores, strict=True) if s >= best - PLATEAU)


# ------------------------------------------------------------------------------------ coefficients


def paper_value(method, batch_size):
    """The grid's centre: the coefficient's value in the papers' settings, at batch `batch_size` for a
    batch-summed term (the grids run the papers' conventions, `Run.defaults == AUTHORS`)."""
    cls = methods.registered(method)
    value = {**cls.defaults(), **cls.authors_hparams}[cls.coefficient]
    return value * cls.coefficient_batch_size / batch_size if cls.coefficient_batch_size else value


def grid_values(settings, method, epochs):
    """The grid of `method`'s coefficient: paper ×{0.1, 1, 10}, extended past a winning edge."""
    centre = paper_value(method, settings.batch_size)
    values = [centre * factor for factor in methods.registered(method).grid_factors]
    for _ in range(GRID_EXTENSIONS):
        scores = [grid_score(settings, method, v, epochs) for v in values]
        if None in scores:
            break
        best = int(np.argmax(scores))
        if max(scores) < 0:
            best = 0  # every value diverged: look at weaker ones
        elif scores.count(scores[best]) > 1:
            break  # a tie at the edge is no evidence that the optimum lies beyond it
        if best == 0:
            values.insert(0, values[0] / 10)
        elif best == len(values) - 1:
            values.append(values[-1] * 10)
        else:
            break
    return values


def _grid_run(settings, method, value, epochs):
    name = methods.registered(method).coefficient
    return make_run(settings, "dtd10", method, epochs, hparams=((name, _round(value)),), selection=True)


def grid_score(settings, method, value, epochs):
    """Val top-1, -1 for a diverged run, None before it ran."""
    result = cached(_grid_run(settings, method, value, epochs), settings.runs_dir, settings.selection_backend)
    if result is None:
        return None
    return -1.0 if "diverged" in result else result["top1"]


def _round(value):
    return float(f"{value:.6g}")


def grid_runs(settings):
    epochs = chosen_epochs(settings, "dtd10")
    if epochs is None:
        return []
    return [
        _grid_run(settings, method, value, epochs)
        for method in grid_methods()
        for value in grid_values(settings, method, epochs)
    ]


def chosen_hparams(settings, method):
    """`((name, value),)` with the best val top-1 of the grid that chooses `method`'s coefficient (first of
    ties; `Method.grid_from`), or None while it runs."""
    cls = method_class(method)
    method = cls.grid_from or cls.name
    if method not in grid_methods():
        return ()
    if settings.quick:
        return ()
    epochs = chosen_epochs(settings, "dtd10")
    if epochs is None:
        return None
    values = grid_values(settings, method, epochs)
    scores = [grid_score(settings, method, v, epochs) for v in values]
    if None in scores:
        return None
    best = values[int(np.argmax(scores))]
    return ((methods.registered(method).coefficient, _round(best)),)


# ------------------------------------------------------------------------------------ table, sweep


def table_runs(settings, dataset, labels):
    """Every method at its chosen coefficient, each of `settings.seeds_of(dataset)`, on the test split."""
    epochs = chosen_epochs(settings, dataset)
    if epochs is None:
        return []
    chosen = {label: chosen_hparams(settings, label) for label in labels}
    # --quick, the CI test, checks that every method trains at the library's defaults.
    quick = {"defaults": LIBRARY} if settings.quick else {}
    # Seed-major, so a suite stopped part-way leaves every method with the same seeds.
    return [
        make_run(settings, dataset, label, epochs, seed=s, hparams=hparams + _quick_hparams(label, settings), **quick)
        for s in settings.seeds_of(dataset)
        for label, hparams in chosen.items()
        if hparams is not None
    ]


def _quick_hparams(label, settings):
    # --quick: each method's `quick_hparams` (e.g. DELTA's measurement shortened).
    return tuple(method_class(label).quick_hparams.items()) if settings.quick else ()


def dtnh_runs(settings, names=None):
    """DTD-10 test: X and DTNH(X) over a range of α up to where X falls below L2, every seed."""
    epochs = chosen_epochs(settings, "dtd10")
    if epochs is None:
        return []
    runs = [make_run(settings, "dtd10", "l2", epochs, seed=s) for s in range(settings.seeds)]
    sweeps = dtnh_sweeps()
    for method in sweeps if names is None else names:
        for alpha in sweeps[method]:
            for label in (method, method + "+dtnh"):
                runs += [
                    make_run(settings, "dtd10", label, epochs, seed=s, hparams=(("alpha", alpha),))
                    for s in range(settings.seeds)
                ]
    return runs


# The paper's "DELTA (w/o ATT)" (Table 1): every channel weighs 1, so the term is KnowDist's
# averaged over positions (DELTA's reduction).
WITHOUT_ATTENTION = (("attention", False),)


def ablation_runs(settings, dataset):
    """DELTA at its chosen α with uniform channel weights, on `dataset`'s test split and table seeds.

    Next to DELTA and KnowDist it separates the two ways DELTA's term differs from KnowDist's:
    the channel attention (DELTA − uniform) and the per-position averaging with its own α
    (uniform − KnowDist).
    """
    epochs = chosen_epochs(settings, dataset)
    hparams = chosen_hparams(settings, "delta")
    if epochs is None or hparams is None:
        return []
    return [
        make_run(settings, dataset, "delta", epochs, seed=s, hparams=hparams + WITHOUT_ATTENTION)
        for s in settings.seeds_of(dataset)
    ]


def plan(settings, name, labels=None):
    """The runs of plan `name`: `schedule:<dataset>`, `grid`, `table:<dataset>`, `dtnh[:<method>]`,
    `ablation:<dataset>` (the papers' conventions), `strength`, `defaults:<dataset>`, `authors:<dataset>`,
    `variants:<dataset>` (`benchmarks.strength`)."""
    kind, _, arg = name.partition(":")
    labels = table_labels() if labels is None else labels
    if kind == "schedule":
        return schedule_runs(settings, arg)
    if kind == "grid":
        return grid_runs(settings)
    if kind == "table":
        return table_runs(settings, arg, labels)
    if kind == "dtnh":
        return dtnh_runs(settings, (arg,) if arg else None)
    if kind == "ablation":
        return ablation_runs(settings, arg)
    from benchmarks import strength  # it builds on this module

    if kind == "strength":
        return strength.strength_runs(settings, arg or "dtd10")
    if kind in ("defaults", "authors"):
        return strength.defaults_runs(settings, arg, labels, LIBRARY if kind == "defaults" else AUTHORS)
    if kind == "variants":
        return strength.variant_runs(settings, arg)
    raise ValueError(
        "Expected a plan 'schedule:<dataset>', 'grid', 'table:<dataset>', 'dtnh[:<method>]', "
        "'ablation:<dataset>', 'strength[:<dataset>]', 'defaults:<dataset>', 'authors:<dataset>' or "
        "'variants:<dataset>'. "
        f"Received: {name!r}"
    )
