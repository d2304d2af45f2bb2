"""The KerasTuner `Tuner` that runs a trial of `keras_tl.select`: one candidate, trained to its rung's epoch.

Every candidate's run is one `keras_tl.fine_tune` run of the full `epochs` (one cosine
schedule, the method's stages where the full run has them); a rung trains it up to the
rung's epoch (`stop_at_epoch`) and keeps its checkpoint (`keep_backup`) in the candidate's
own folder, so the candidate's next rung, on whichever worker, continues that run
(`AtomicBackupAndRestore` restores the weights and the optimizer's state). A rung with a
cool-down then trains the model a few more steps off the run before scoring it
(`keras_tl.selection.cooldown`); the checkpoint stays the rung's. A killed trial reruns the
same way and continues from its last finished epoch.
"""

import dataclasses
import json
import logging
import math
import os
import time

import keras
import keras_tuner

from keras_tl import fine_tuning, methods
from keras_tl.selection import cooldown as cooldown_module
from keras_tl.utils import files

logger = logging.getLogger(__name__)

# How long a worker waits before asking again while the other workers finish a rung.
IDLE_SECONDS = 0.5


@dataclasses.dataclass
class Recipe:
    """How every candidate is trained and scored: `keras_tl.fine_tune`'s arguments, the validation split."""

    source: object
    train: object
    validation: object
    epochs: int
    lr: float
    momentum: float = 0.9
    taps: list | None = None
    dropout: float = 0.0
    seed: int = 0
    distribute: str = "none"
    callbacks: tuple = ()
    verbose: object = 0
    search: str = ""

    def batches_per_epoch(self):
        """The batches one epoch runs, the cost's unit: the schedule's steps, plus the short last batch
        where the split keeps one (`load(..., drop_remainder=False)`): a trial's meter counts it."""
        train = self.train
        selection = getattr(train, "selection", None) or {}
        if selection.get("drop_remainder") is False and getattr(train, "batches", None) is None:
            return max(1, math.ceil(train.num_examples / train.batch_size))
        return fine_tuning.steps_per_epoch(train)

    def fine_tune(self, method, folder, stop_at_epoch, callbacks=()):
        """`(model, history)`: `method`'s run in `folder` trained (or restored) to `stop_at_epoch`."""
        return fine_tuning.fine_tune(
            method,
            self.source,
            self.train,
            epochs=self.epochs,
            lr=self.lr,
            momentum=self.momentum,
            taps=self.taps,
            dropout=self.dropout,
            seed=self.seed,
            cache_dir=os.path.join(folder, "cache"),
            backup_dir=os.path.join(folder, "backup"),
            keep_backup=True,
            stop_at_epoch=stop_at_epoch,
            distribute=self.distribute,
            validation_freq=0,
            validation_data=self.validation,  # for the methods that choose a setting on it (LP-FT's C)
            callbacks=list(callbacks) + list(self.callbacks),
            verbose=self.verbose,
        )


class TrialMeter(keras.callbacks.Callback):
    """What one trial's `fit` did: the epoch it resumed from, the epochs it finished, its steps, the
    seconds before `fit` began (the method's data-dependent preparation and the model's build)."""

    def __init__(self):
        super().__init__()
        self.start = time.perf_counter()
        self.setup_seconds = 0.0
        self.first_epoch = None
        self.finished = None
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.setup_seconds = time.perf_counter() - self.start

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.finished = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def metrics(self, values, steps_per_epoch, cooled=None):
        """The trial's `epochs` reached and `steps`: the training its rung cost, from the epoch the
        candidate's previous rung ended (`initial_epoch`), restored epochs included (a rerun after
        a kill counts them once, and never the steps the kill threw away), and the cool-down's
        (`cooled["cooldown_steps"]`, all of them once it began: a cool-down stopped by NaN too)."""
        restored = values["epochs"] if self.first_epoch is None else self.first_epoch
        reached = self.finished if self.finished is not None else restored
        cooldown = (cooled or {}).get("cooldown_steps", 0.0)
        return {
            "epochs": float(reached),
            "steps": float((restored - values["initial_epoch"]) * steps_per_epoch + self.steps + cooldown),
            "setup_seconds": float(self.setup_seconds),
        }


class SelectionTuner(keras_tuner.Tuner):
    """Runs `keras_tl.select`'s trials (see the module docstring); its oracle is a `SuccessiveHalvingOracle`.

    Args:
        oracle: the `SuccessiveHalvingOracle`.
        recipe: a `Recipe`.
        **kwargs: for `keras_tuner.Tuner` (`directory`, `project_name`, `overwrite`).
    """

    def __init__(self, oracle, recipe, **kwargs):
        super().__init__(oracle, **kwargs)
        self.recipe = recipe
        self._asked = False

    def candidate_dir(self, candidate):
        """The candidate's folder: its checkpoint (`backup/`) and its preparation's cache (`cache/`)."""
        return os.path.join(self.project_dir, f"candidate_{int(candidate)}")

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        if values["search"] != self.recipe.search:
            raise keras_tuner.errors.FatalValueError(
                f"Expected this worker's select(...) arguments to be the chief's. Received: trial {trial.trial_id} "
                f"of search {values['search']}, this worker's is {self.recipe.search}"
            )
        method = methods.get(values["method"], **json.loads(values["hparams"]))
        meter = TrialMeter()
        steps = self.recipe.batches_per_epoch()
        cooldown = round(values.get("cooldown", 0.0) * steps)
        cooled = {}
        try:
            model, _ = self.recipe.fine_tune(
                method, self.candidate_dir(values["candidate"]), values["epochs"], [meter]
            )
            if cooldown:  # off the run: its checkpoint stays at the rung's epoch
                cooled = {"rung_top1": self.validation_score(trial, model), "cooldown_steps": float(cooldown)}
                recipe = self.recipe
                cooldown_module.cool_down(model, recipe.train, cooldown, values["epochs"], recipe.distribute, recipe.verbose)
        except FloatingPointError as error:  # NaNGuard: a result of the search, not a crash
            logger.warning("%s diverged on rung %d: %s", method.label, values["rung"], error)
            return {**meter.metrics(values, steps, cooled), "diverged": 1.0, "val_top1": math.nan}
        score = self.validation_score(trial, model)
        return {**meter.metrics(values, steps, cooled), **cooled, "diverged": 0.0, "val_top1": score}

    def validation_score(self, trial, model):
        """Validation top-1 of a trial's model (`keras_tl.data.evaluate`)."""
        from keras_tl import data

        del trial
        validation = self.recipe.validation
        return data.evaluate(model, validation.dataset, validation.num_classes)["top1"]

    def load_model(self, trial):
        """The model of a last-rung trial (`keras_tuner.Tuner.get_best_models` calls it); see `restore`."""
        return self.restore(trial)[0]

    def restore(self, trial):
        """`(model, history)` of a last-rung trial, restored from its candidate's checkpoint (nothing is trained)."""
        values = trial.hyperparameters.values
        if values["epochs"] != self.recipe.epochs:
            raise ValueError(
                f"Expected a trial of the last rung (its run's checkpoint moved on after the others). Received: "
                f"trial {trial.trial_id} on rung {values['rung']} ({values['epochs']} of {self.recipe.epochs} epochs)"
            )
        method = methods.get(values["method"], **json.loads(values["hparams"]))
        return self.recipe.fine_tune(method, self.candidate_dir(values["candidate"]), values["epochs"])

    # A worker asks again at once when the oracle answers IDLE (the other workers are ending a
    # rung): wait a little between such answers rather than spin on the chief.
    def pre_create_trial(self):
        if self._asked:
            time.sleep(IDLE_SECONDS)
        self._asked = True

    def on_trial_begin(self, trial):
        self._asked = False
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        if trial.status in ("INVALID", "FAILED") and trial.message:
            logger.warning("Trial %s failed:\n%s", trial.trial_id, trial.message)
        super().on_trial_end(trial)

    def save(self):
        # As the oracle's: a temp file renamed into place, never a half-written JSON.
        if not self._is_worker():
            self.oracle.save()
        files.write_json(self._get_tuner_fname(), self.get_state())
