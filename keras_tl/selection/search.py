"""`keras_tl.select`: choose the method and its coefficient on a validation split, never below L2.

Design (issue 27):

- **Candidates.** L2 at its defaults is always candidate 0, the reference. The others come
  from the `candidates` argument or, by default, from the registry (each method's
  `select_factors`, then, as the budget allows, its other `grid_factors`; see
  `keras_tl.selection.default_candidates`), so a newly registered method is a candidate by
  setting one class attribute.
- **Successive halving** with η = 3 (`keras_tl.selection.rungs`): rung 0 trains every
  candidate to ⌊E/9⌋ epochs, rung 1 L2 and the best others (a third of the candidates) to
  ⌊E/3⌋, rung 2 L2 and the best other to E. Rungs continue training: each candidate's run is
  one `keras_tl.fine_tune` run of E epochs (one cosine schedule), stopped at the rung's epoch
  and continued from its checkpoint when promoted. KerasTuner's `Hyperband` does not fit: its
  brackets restart models and spread the budget over several ladders, and no configuration
  is kept through every round; here one ladder within a fixed multiple of one run, L2 forced
  through it (`SuccessiveHalvingOracle`). A list the budget can train fully (3 candidates with L2
  at the default budget) is not halved: every candidate runs to E on one rung
  (`keras_tl.selection.ladder`), so a method whose gain shows only late in its run is compared
  on its full run (Co-Tuning on Caltech-101: `candidates=["co_tuning", "lp_ft"]`).
- **Scores mid-schedule.** A rung stops a run where the cosine rate is still high and a
  weakly anchored run's validation top-1 swings; the rung before the last, whose best other
  goes to the final comparison, scores each candidate after a cool-down off its run (the
  rate annealed to 0 over at most one epoch, the checkpoint left at the rung's epoch), paid
  by the budget's rest (`keras_tl.selection.cooldown`, `with_cooldown`).
- **The guarantee.** On the last rung, the chosen candidate is the best other one only if
  its validation top-1 is strictly above L2's; a tie goes to L2, a tie among the others to
  the earlier candidate. So `select` never returns a method whose validation accuracy is below
  L2's in the same search (when L2 itself diverges, the best other finished candidate).
- **Cost**, in training steps over one full L2 run's (E × steps per epoch): 9 candidates
  cost E/9·9 + 3·2E/9 + 2·2E/3 = 3E (the cool-down takes what the floors leave), so the
  default budget of 3 fits 9 candidates when E ≥ 9 (today L2, the 6 methods with a coefficient
  and `select_factors` at their defaults, LP-FT with its probe's C on the validation split, and
  LP-FT over Co-Tuning; FTP is the tenth); with fewer epochs the first rung cannot be shorter
  than one epoch and the default list is cut to what fits. A user's list that does not fit is refused,
  with the budget it needs. The methods' data-dependent preparation (DELTA's channel
  ablation, Co-Tuning's relationship) and the model builds are counted apart, in seconds.
- **Resumable.** The KerasTuner project folder (`directory`/`project_name`) holds the oracle's
  state and each candidate's checkpoint (`candidate_<i>/backup`): rerun the same call after
  a kill and the finished trials are not run again, and the killed one continues from its
  last finished epoch. A rerun with other settings is refused, naming them.
- **Several machines.** KerasTuner's chief/worker mode: run the same script on every
  machine, with `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` the chief's address and
  `KERASTUNER_TUNER_ID` `chief` on one machine (it serves the trials, trains nothing, and
  returns the result) and `worker0`, `worker1`, ... on the others (they train; `select`
  returns None there). `directory` must be a folder every machine shares (the candidates'
  checkpoints move between workers from rung to rung), as KerasTuner's own checkpoints need.

Held-out data: a training `Split` needs a validation `Split` (e.g. the complement of the few-shot
sample, `keras_tl.data.load(spec, "train", per_class=k, seed=s, complement=True)`); in-memory
training arrays take a fraction (`validation=0.2`: that fraction of each class is held out).
"""

import dataclasses
import logging
import os
import shutil

from keras_tl.api_export import keras_tl_export
from keras_tl.selection import candidates as candidates_module
from keras_tl.selection import data as data_module
from keras_tl.selection import paired
from keras_tl.selection import result as result_module
from keras_tl.selection.oracle import SuccessiveHalvingOracle
from keras_tl.selection.tuner import Recipe, SelectionTuner
from keras_tl.utils.validation import check_number

logger = logging.getLogger(__name__)

# WiSE-FT's interpolation replaces the chosen model only at this McNemar p-value (the usual 5 %).
WISE_FT_LEVEL = 0.05


def is_worker():
    """A KerasTuner worker (chief/worker mode, not the chief): it trains, the chief returns the result."""
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")


def _source_identity(source):
    if isinstance(source, str):
        return source
    return f"{source.name} ({source.count_params()} parameters)"


@keras_tl_export("keras_tl.select")
def select(
    source,
    train,
    validation=None,
    *,
    directory,
    candidates=None,
    budget=3.0,
    epochs=10,
    lr=0.01,
    momentum=0.9,
    batch_size=32,
    taps=None,
    dropout=0.0,
    seed=0,
    project_name="select",
    overwrite=False,
    distribute="none",
    callbacks=(),
    verbose=1,
    wise_ft=True,
    cooldown=True,
):
    """Chooses the fine-tuning method and its coefficient on a validation split: never below L2.

    Successive halving over (method, coefficient) candidates, L2 always among them and
    forced through every rung, built on KerasTuner (see the module docstring for the design,
    the cost and the chief/worker mode).

    Args:
        source: the source `keras.Model` (or a backbone name), as for `keras_tl.fine_tune`.
        train: the training split (`keras_tl.data.load(..., training=True)`) or `(x, y)` arrays.
        validation: a validation split, `(x, y)` arrays, or, with training arrays, the
            fraction of each class to hold out of them (e.g. 0.2).
        directory: the search's folder (KerasTuner's `directory`): the trials and every
            candidate's checkpoint; rerun with the same arguments to resume.
        candidates: the candidates besides L2: method labels (`"l2_sp"`, `"delta+dtnh"`),
            `(label, hparams)` pairs (`("l2_sp", {"alpha": 0.1})`) or `keras_tl.methods.Method`s;
            None: `keras_tl.selection.default_candidates` cut to the budget. With L2, no more
            than `budget` of them are all trained to `epochs` (`keras_tl.selection.ladder`).
        budget: the search's training steps in full L2 runs (at least 1).
        epochs: the length of each run (the last rung's epoch).
        lr, momentum, taps, dropout, seed, distribute: as for `keras_tl.fine_tune`, for every run.
        batch_size: the batches of in-memory arrays (a split keeps its own).
        project_name: the search's subfolder of `directory`.
        overwrite: start the search over (only where `directory` holds this project).
        callbacks: more `keras.callbacks.Callback`s for every run's `fit`.
        verbose: 0 silent; else KerasTuner's trial summaries and one line per epoch.
        wise_ft: then try WiSE-FT on the chosen model at no training cost (`keras_tl.wise_ft`,
            α ∈ {0, 0.1, ..., 1} towards the source, each interpolation's BatchNorm statistics
            re-estimated on `train`, evaluated on `validation`); the interpolated model is kept
            only if its validation top-1 is above the model's own (α = 1) by an edge McNemar's
            exact test finds significant at `WISE_FT_LEVEL`. Needs `source` as a `keras.Model`.
        cooldown: score the rung before the last after a cool-down (the run's rate annealed
            linearly to 0 over at most one epoch, off the run), paid by what the budget's
            floors leave (`keras_tl.selection.with_cooldown`); False: score it mid-schedule.

    Returns:
        A `keras_tl.selection.SelectionResult` (the chosen method, its trained model, the
        table of what was tried, the cost); None on a KerasTuner worker.

    Example:
    >>> train = keras_tl.data.load("folder:../shared/data/dtd10", "train", per_class=30, seed=0, **data)
    >>> val = keras_tl.data.load("folder:../shared/data/dtd10", "train", per_class=30, seed=0,
    ...                          complement=True, training=False, **data)
    >>> result = keras_tl.select(source, train, val, epochs=20, lr=0.01, directory="runs/select")
    >>> result.method  # e.g. L2SP(alpha=0.01, beta=0.01, dtnh=False)
    >>> print(result.markdown())
    """
    budget = check_number("budget", budget, minimum=1)
    epochs = check_number("epochs", epochs, minimum=1, integer=True)
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise ValueError(f"Expected directory to be a folder path. Received: directory={directory!r}")
    train, validation = data_module.splits(train, validation, batch_size, seed)
    recipe = Recipe(
        source,
        train,
        validation,
        epochs,
        float(lr),
        float(momentum),
        taps,
        float(dropout),
        int(seed),
        distribute,
        tuple(callbacks),
        2 if verbose else 0,
    )
    steps = recipe.batches_per_epoch() if cooldown else None
    chosen, ladder = candidates_module.plan(candidates, epochs, budget, train.batch_size, steps)
    if candidates is None:
        logger.info("select: budget=%g keeps the default candidates %s", budget, [c.name for c in chosen])
    settings = {
        "source": _source_identity(source),
        "train": [int(train.num_examples), int(train.num_classes), int(train.batch_size)],
        "validation": int(validation.num_examples),
        **{key: getattr(recipe, key) for key in ("epochs", "lr", "momentum", "dropout", "seed")},
        "taps": None if taps is None else list(taps),
    }
    oracle = SuccessiveHalvingOracle([c.get_config() for c in chosen], ladder, settings, seed=int(seed) + 1)
    recipe.search = oracle.search
    worker = is_worker()
    # A worker never deletes the shared folder: the chief and the other workers are using it.
    tuner = SelectionTuner(
        oracle,
        recipe,
        directory=os.fspath(directory),
        project_name=project_name,
        overwrite=bool(overwrite) and not worker,
    )
    if not worker:
        tuner.save()  # the plan is on disk before any training: a kill from here on resumes
    tuner.search(verbose=1 if verbose else 0)
    if worker:
        return None
    result = _result(tuner, oracle, recipe)
    if wise_ft:
        result = _with_wise_ft(result, recipe)
    return result


def _with_wise_ft(result, recipe):
    """`result` with WiSE-FT's sweep on its model; the interpolation kept only if significantly better.

    Its α is chosen on the split that scored the candidates, as WiSE-FT chooses α on held-out
    data; since α = 1 is the chosen model itself, the guarantee (never below L2) still holds.
    Each interpolated model's BatchNorm statistics are re-estimated on pass 0 of the training
    split (one forward pass per α, no gradient: not counted as training steps; pass 0, so a
    resumed search sweeps the same models), since interpolated statistics collapse a long
    fine-tune's interpolations (`keras_tl.batchnorm`). The best of 11 values is optimistic: the
    interpolation replaces the model only if its edge passes McNemar's exact test at level
    `WISE_FT_LEVEL` on the validation examples the two classify differently
    (`keras_tl.selection.paired`); at Caltech-101 seed 1 a 3-image edge of α = 0.9 out of 2,870
    tested 0.9 points below the model itself.
    """
    import keras

    from keras_tl import data as tl_data
    from keras_tl import interpolation

    if not isinstance(recipe.source, keras.Model):
        logger.info("select: WiSE-FT skipped (it needs the source as a keras.Model)")
        return result
    model, selection = interpolation.wise_ft(
        result.model,
        interpolation.DEFAULT_ALPHAS,
        validation_data=recipe.validation,
        source=recipe.source,
        batchnorm_data=tl_data.first_pass(recipe.train, name="train"),
    )
    itself = next(row["top1"] for row in selection["table"] if row["alpha"] == 1.0)
    record = {**selection, "sweep_alpha": selection["alpha"], "p_value": None}
    if selection["top1"] > itself:
        record["p_value"] = paired.mcnemar_p(
            paired.correct(model, recipe.validation), paired.correct(result.model, recipe.validation)
        )
        if record["p_value"] < WISE_FT_LEVEL:
            return dataclasses.replace(result, model=model, validation_top1=float(selection["top1"]), wise_ft=record)
    return dataclasses.replace(result, wise_ft={**record, "alpha": 1.0, "top1": itself})


def _result(tuner, oracle, recipe):
    rows = result_module.trial_rows(oracle)
    winner = oracle.winner()
    reference = [row for row in rows if row["index"] == 0]
    if winner is None or any(row["status"] == "failed" for row in reference):
        failures = [
            f"{row['candidate']} (rung {row['rung']}): {row['status']}"
            for row in rows
            if row["status"] in ("failed", "diverged")
        ]
        raise RuntimeError(
            f"select: no candidate to choose: L2 failed or every candidate diverged or failed ({failures}); "
            f"the trials' messages are in {tuner.project_dir}."
        )
    last = oracle.entries[-1]
    trial = next(
        oracle.trials[t] for t in last if oracle.trials[t].hyperparameters.values["candidate"] == winner
    )
    model, history = tuner.restore(trial)
    for index in range(len(oracle.candidates)):
        if index != winner:  # never trained again: only the chosen run's checkpoint is worth its disk
            shutil.rmtree(os.path.join(tuner.candidate_dir(index), "backup"), ignore_errors=True)
    planned = candidates_module.cost(candidates_module.Rung(*rung) for rung in oracle.rungs)
    return result_module.SelectionResult(
        method=candidates_module.Candidate(**oracle.candidates[winner]).method(),
        model=model,
        history={key: [float(v) for v in values] for key, values in history.history.items()},
        validation_top1=float(trial.score),
        reference_top1=oracle.rung_results(len(oracle.rungs) - 1).get(0),
        table=rows,
        cost=result_module.cost_of(rows, recipe.epochs, recipe.batches_per_epoch(), planned),
        directory=tuner.project_dir,
    )
