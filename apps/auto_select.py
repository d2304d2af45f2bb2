"""`apps.finetune --method=auto`: `keras_tl.select` chooses the method and its coefficient, per seed.

Flags only: the search is `keras_tl.select`'s. The validation split is, by default, what the
seed's training sample leaves out of `--split` (`keras_tl.data.load(..., complement=True)`);
with neither `--per_class` nor `--fraction`, `auto` trains on 1 − `--select_holdout` of each
class and validates on the rest; `--select_validation=val` reads a split of the data set instead.
"""

import dataclasses
import time

from absl import flags

import keras_tl
from apps import common, flag_groups, method_flags
from keras_tl import data as tl_data
from keras_tl.selection import result as result_module

AUTO = method_flags.AUTO


def define(fv):
    """--select_validation, --select_holdout, --select_budget and --select_candidates on `fv`."""
    flags.DEFINE_string(
        "select_validation",
        "",
        f"--method={AUTO}: the split it validates on; empty: what the training sample leaves out of --split "
        "(with neither --per_class nor --fraction, --select_holdout of each class).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "select_holdout",
        0.2,
        f"--method={AUTO} without --per_class, --fraction or --select_validation: the fraction of each class held "
        "out of --split to validate on.",
        lower_bound=0.0,
        upper_bound=1.0,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "select_budget",
        3.0,
        f"--method={AUTO}: the search's training steps in full L2 runs of --epochs (more: more candidates).",
        lower_bound=1.0,
        flag_values=fv,
    )
    flags.DEFINE_list(
        "select_candidates",
        [],
        f"--method={AUTO}: the methods it compares with L2 (--hparams and --dtnh apply); empty: the registry's "
        "default candidates (keras_tl.selection.default_candidates).",
        flag_values=fv,
    )
    flag_groups.validator(fv, "select_candidates", lambda entries: entries and method_flags.check_entries(entries))


def splits(config, seed, size, preprocess, digits_classes):
    """`(train, validation)` of one seed for `keras_tl.select` (see the module docstring)."""
    c = config
    digits = {"digits_classes": digits_classes}
    if not c.select_validation and not (c.per_class or c.fraction):
        c = dataclasses.replace(c, fraction=1.0 - c.select_holdout)
    train = common.load_split(c, c.split, size, preprocess, training=True, seed=seed, sampled=True, **digits)
    if c.select_validation:
        validation = common.load_split(c, c.select_validation, size, preprocess, training=False, **digits)
    else:
        validation = common.load_split(
            c, c.split, size, preprocess, training=False, seed=seed, sampled=True, complement=True, **digits
        )
    return train, validation


def select_and_evaluate(config, source, train, validation, eval_data, ten_crop_data, seed, taps):
    """`(model, record)` as `keras_tl.fine_tuning.fine_tune_and_evaluate`'s, for the method `select` chooses.

    The record adds `selected` (the chosen label), `hparams` and `selection` (the search:
    `SelectionResult.get_config()`, its table and cost).
    """
    c = config
    candidates = None
    if c.select_candidates:
        candidates = [method_flags.method_for(entry, c.dtnh, c.hparams) for entry in c.select_candidates]
    start = time.perf_counter()
    result = keras_tl.select(
        source,
        train,
        validation,
        directory=c.backup(AUTO, f"seed{seed}"),
        candidates=candidates,
        budget=c.select_budget,
        epochs=c.epochs,
        lr=c.lr,
        momentum=c.momentum,
        taps=taps,
        dropout=c.dropout,
        seed=seed,
        distribute=c.distribute,
        verbose=1 if c.verbose else 0,
    )
    record = {
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 2),
        "selected": result.method.label,
        "hparams": dict(result.method.hparams),
        "selection": result.get_config(),
        "history": result.history,
    }
    record.update(tl_data.evaluate(result.model, eval_data.dataset, eval_data.num_classes))
    if ten_crop_data is not None:
        ten = tl_data.evaluate(result.model, ten_crop_data.dataset, ten_crop_data.num_classes)
        record.update({f"{key}_10crop": value for key, value in ten.items()})
    return result.model, record


def markdown(results):
    """The searches of `--method=auto` (one section per seed) for results.md; "" without them."""
    sections = []
    for run in results.get(AUTO, {}).get("runs", []):
        sections += ["", f"## {AUTO}, seed {run['seed']}", "", result_module.markdown(run["selection"])]
    return "\n".join(sections)
