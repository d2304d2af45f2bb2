"""One benchmark run as a frozen config, executed through the library and cached on the config's hash.

A `Run` names everything its result depends on (data set and splits, few-shot sample, schedule,
method and hyperparameters, seed, and the source by its file's digest), so `key()` is the cache
key: a finished run is read back from `<runs_dir>/<backend>/<key>.json`, an interrupted one
resumes from its last finished epoch (`AtomicBackupAndRestore` in `<key>/backup`), and two
plans that ask for the same run share it. Nothing here goes through the apps: it is
`keras_tl.data.load` + `keras_tl.methods.get` + `keras_tl.fine_tune`, which is what a Python
user would write.
"""

import dataclasses
import functools
import hashlib
import json
import os
import time

import keras

import keras_tl
from benchmarks import datasets
from benchmarks.datasets import HOLDOUT
from keras_tl import backbones
from keras_tl.utils import files

# Run.defaults: what a run's hparams override. The benchmark's first plans ran every method in the
# papers' settings (`Method.authors_hparams`); since the scale-free feature-map terms, the library's
# defaults differ for some methods.
AUTHORS, LIBRARY = "authors", "library"


@dataclasses.dataclass(frozen=True)
class Run:
    """One fine-tuning run.

    Attributes:
        dataset: a folder under the data root (`dtd10`, `caltech101`).
        method: a `keras_tl.methods` entry (`"l2_sp"`, `"delta+dtnh"`).
        source: the source `.keras` file (its card beside it gives preprocessing and backbone).
        seed: the run's seed; it also draws the few-shot sample, so seed s trains every method
            on the same images (paired comparisons).
        hparams: `((name, value), ...)`, sorted: the method's hyperparameters over its defaults.
        split, eval_split: training split and the split measured after training
            (`HOLDOUT`: what the few-shot sample of `split` leaves out).
        per_class: few-shot images per class; 0 keeps the whole split.
        epochs, batch_size, lr, momentum: the schedule (cosine SGD, see `keras_tl.fine_tune`).
        image_size: the network's input side.
        curve: evaluate `eval_split` after every epoch (a learning curve in the history).
        defaults: `AUTHORS` (`hparams` over the method's `authors_hparams`, the papers' settings)
            or `LIBRARY` (over its defaults). Methods whose two coincide always say `AUTHORS`,
            so their runs are shared.
        eval_per_class: at most this many evaluated images per class (0: all), e.g. a bounded
            held-out set.
    """

    dataset: str
    method: str
    source: str
    seed: int = 0
    hparams: tuple = ()
    split: str = "train"
    eval_split: str = "test"
    per_class: int = 0
    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    image_size: int = 32
    curve: bool = False
    defaults: str = AUTHORS
    eval_per_class: int = 0

    def __post_init__(self):
        object.__setattr__(self, "hparams", tuple(sorted((str(k), v) for k, v in dict(self.hparams).items())))
        if self.defaults not in (AUTHORS, LIBRARY):
            raise ValueError(f"Expected defaults to be {AUTHORS!r} or {LIBRARY!r}. Received: defaults={self.defaults!r}")
        if not self.method_class().authors_hparams:
            object.__setattr__(self, "defaults", AUTHORS)
        if self.eval_split == HOLDOUT and not self.per_class:
            raise ValueError(
                f"Expected per_class > 0 with eval_split={HOLDOUT!r} (the held-out set is what the "
                f"few-shot sample leaves out). Received: per_class={self.per_class!r}"
            )

    def method_class(self):
        return keras_tl.methods.registered(keras_tl.methods.split_label(self.method)[0])

    def make_method(self):
        """The `keras_tl.methods.Method` this run fine-tunes with."""
        base = self.method_class().authors_hparams if self.defaults == AUTHORS else {}
        return keras_tl.methods.get(self.method, **{**base, **dict(self.hparams)})

    def key(self):
        """A hash of every field, the source by its content: the run's cache key.

        `defaults` and `eval_per_class` enter only when they are not their defaults: the runs made
        before they existed keep their keys.
        """
        fields = dataclasses.asdict(self)
        if fields["defaults"] == AUTHORS:
            del fields["defaults"]
        if not fields["eval_per_class"]:
            del fields["eval_per_class"]
        fields["source"] = file_digest(self.source)
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self):
        """`method` with its hyperparameters, e.g. `l2_sp(alpha=0.1)`; `[library]` for the library's defaults."""
        text = self.method
        if self.hparams:
            text += "(" + ",".join(f"{k}={_format(v)}" for k, v in self.hparams) + ")"
        return text + ("[library]" if self.defaults == LIBRARY else "")


def _format(value):
    # format(False, "g") is "0"; a method's name (LP-FT's base="co_tuning") has no "g".
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


@functools.cache
def file_digest(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def result_path(run, runs_dir, backend=None):
    return os.path.join(runs_dir, backend or keras.backend.backend(), f"{run.key()}.json")


def cached(run, runs_dir, backend=None):
    """The saved result of `run` on `backend` (default: this one), or None."""
    path = result_path(run, runs_dir, backend)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


@functools.cache
def load_source(path):
    """`(model, card)` of a source file, loaded once per process (`keras_tl.models.load_model_and_card`)."""
    return keras_tl.models.load_model_and_card(path)


def load_splits(run, data_root, selection=False):
    """`(train, eval)` splits of `run` from `data_root`; with `selection`, also its data set's selection
    split (as the third), for the methods that choose or learn on held-out data."""
    _, card = load_source(run.source)
    common = {
        "image_size": run.image_size,
        "preprocess": card.get("preprocess", card.get("backbone")),
        "batch_size": run.batch_size,
        "classes": datasets.classes(run.dataset),
    }
    spec = datasets.spec(run.dataset, data_root)
    sample = {"per_class": run.per_class, "seed": run.seed} if run.per_class else {"seed": run.seed}
    # The committed runs kept the short last batch (the library drops it by default since): keep it,
    # so that a resumed suite matches them. docs/benchmarks/notes.md, "Known inconsistency".
    short = {"drop_remainder": False} if run.dataset in datasets.KEEPS_SHORT_BATCH else {}
    train = keras_tl.data.load(spec, run.split, training=True, **short, **common, **sample)

    def evaluated(split, per_class):
        limit = {"max_per_class": per_class} if per_class else {}
        if split == HOLDOUT:
            return keras_tl.data.load(spec, run.split, training=False, complement=True, **common, **sample, **limit)
        return keras_tl.data.load(spec, split, training=False, **common, **limit)

    evaluation = evaluated(run.eval_split, run.eval_per_class)
    if not selection:
        return train, evaluation
    data = datasets.DATASETS[run.dataset]
    chosen = data["selection_split"]
    if chosen == run.eval_split:
        return train, evaluation, evaluation
    return train, evaluation, evaluated(chosen, data.get("holdout_per_class", 0) if chosen == HOLDOUT else 0)


def execute(run, data_root, runs_dir, verbose=0, backup=True):
    """Runs `run` unless its result is saved; returns the result dict (also saved as JSON).

    With `backup`, each epoch is checkpointed (`AtomicBackupAndRestore`): a killed suite
    resumes a long run at its last finished epoch.

    A run that diverges (`NaNGuard`) is saved as `{"diverged": message}`: it is a result, and
    rerunning the plan does not try it again.
    """
    saved = cached(run, runs_dir)
    if saved is not None:
        return saved
    work_dir = os.path.join(runs_dir, keras.backend.backend(), run.key())
    source, card = load_source(run.source)
    needs_validation = run.make_method().needs_validation
    train, evaluation, *validation = load_splits(run, data_root, selection=needs_validation)
    timer = keras_tl.callbacks.StepTimer(keras_tl.fine_tuning.steps_per_epoch(train))
    result = {"run": dataclasses.asdict(run), "key": run.key(), "backend": keras.backend.backend()}
    start = time.perf_counter()
    try:
        model, history = keras_tl.fine_tune(
            run.make_method(),
            source,
            train,
            eval_data=evaluation,
            epochs=run.epochs,
            lr=run.lr,
            momentum=run.momentum,
            taps=backbones.default_taps(card["backbone"]),
            seed=run.seed,
            cache_dir=os.path.join(work_dir, "cache"),
            backup_dir=os.path.join(work_dir, "backup") if backup else None,
            validation_freq=1 if run.curve else 0,
            callbacks=[timer],
            verbose=verbose,
            validation_data=validation[0] if validation else None,
        )
    except FloatingPointError as error:
        result["diverged"] = str(error)
    else:
        result.update(keras_tl.data.evaluate(model, evaluation.dataset, evaluation.num_classes))
        result["history"] = {k: [float(v) for v in values] for k, values in history.history.items()}
        result["step_seconds"] = timer.step_seconds()
        for regularizer in model.regularizers:
            if isinstance(regularizer, keras_tl.regularizers.DiscrepantDiffusion):
                result["di2_k"] = len(regularizer.sequences[0])
    result.update(
        seconds=round(time.perf_counter() - start, 1),
        train_examples=train.num_examples,
        eval_examples=evaluation.num_examples,
        num_classes=train.num_classes,
    )
    save_result(run, runs_dir, result)
    return result


def save_result(run, runs_dir, result):
    """Writes `result` as `run`'s saved result (atomically: a kill leaves the old file or none)."""
    save_json(result_path(run, runs_dir), result)


def save_json(path, obj):
    """`files.write_json`, creating `path`'s folder first (a fresh clone has no `runs_dir`)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.write_json(path, obj)


def restore(results_dir, runs_dir):
    """Copies each committed result of `<results_dir>/runs_<backend>.json` that `runs_dir` lacks into it.

    `runs_dir` is a local, uncommitted cache; the report's `runs_<backend>.json` is the committed
    record of every finished run. Without this, a fresh clone would see no finished run, plan
    from nothing, and rewrite that record with only what it ran itself. A result whose key no
    longer matches any run (its source or config changed) is restored but never read.

    Returns:
        `{backend: number of results restored}`.
    """
    restored = {}
    for backend in ("tensorflow", "jax"):
        record = os.path.join(results_dir, f"runs_{backend}.json")
        if not os.path.isfile(record):
            continue
        with open(record) as handle:
            results = json.load(handle)
        restored[backend] = 0
        for result in results:
            path = os.path.join(runs_dir, backend, f"{result['key']}.json")
            if not os.path.isfile(path):
                save_json(path, result)
                restored[backend] += 1
    return restored
