"""Successive halving with a forced reference, as a KerasTuner `Oracle`.

Why not KerasTuner's `Hyperband`: its brackets spread a budget over several halving ladders
of random draws, each bracket starting fresh models, and nothing in them keeps one
configuration in every round. Here the candidates are a fixed list, the budget is a fixed
multiple (3×) of one full run, and L2, the reference of the guarantee, must reach the last
rung to be compared there: one ladder, L2 forced through every rung, the others promoted by
validation top-1. The oracle is KerasTuner's all the same: its project folder holds the
trials and this state (a killed search resumes), and its chief/worker mode serves trials
to several machines.

A trial is one candidate on one rung: its values are the candidate's index, method label
and hyperparameters (JSON), the rung, the epoch to reach, the one its run starts from and
the cool-down (in epochs) before it is scored (`keras_tl.selection.cooldown`).
Rungs are synchronous: rung r + 1 starts once every trial of rung r has ended, so the
choice does not depend on how many workers ran them or in which order.
"""

import json
import math
import warnings

import keras_tuner

from keras_tl.api_export import keras_tl_export
from keras_tl.selection.candidates import Rung, fingerprint
from keras_tl.utils import files

OBJECTIVE = "val_top1"
REFERENCE_INDEX = 0


def rank_key(candidate, score):
    """Sort key of the ranking: higher score first; on a tie the reference (L2), then the earlier candidate."""
    return (-score, candidate != REFERENCE_INDEX, candidate)


def _ranked(results):
    """The candidates of `results` (`{candidate: score or None}`) that have a score, best first."""
    scored = [(rank_key(c, s), c) for c, s in results.items() if s is not None and not math.isnan(s)]
    return [c for _, c in sorted(scored)]


def promote(results, size):
    """The `size` candidates of the next rung, from `results` (`{candidate: score or None}` of this rung).

    The reference (candidate 0) is always promoted when it has a score; the other places
    go to the best scores (`rank_key`). A candidate without a score (diverged, failed) is
    not promoted.
    """
    ranked = _ranked(results)
    reference = [c for c in ranked if c == REFERENCE_INDEX]
    others = [c for c in ranked if c != REFERENCE_INDEX]
    return reference + others[: size - len(reference)]


def choose(results):
    """The winner of the last rung: the best other candidate if its score is strictly above the
    reference's (or the reference has none), else the reference; None if nothing has a score."""
    ranked = _ranked(results)
    return ranked[0] if ranked else None


def score_of(trial):
    """The trial's validation top-1, or None while running or when it diverged or failed."""
    if trial.status != "COMPLETED" or trial.score is None or math.isnan(trial.score):
        return None
    return float(trial.score)


@keras_tl_export("keras_tl.selection.SuccessiveHalvingOracle")
class SuccessiveHalvingOracle(keras_tuner.Oracle):
    """Successive halving over a fixed list of candidates, candidate 0 (L2) forced through every rung.

    Args:
        candidates: `Candidate.get_config()` dicts (`{"label", "hparams"}`), the reference first.
        rungs: `Rung`s (`epochs`, `size`, `cooldown`), from `keras_tl.selection.rungs` (and
            `with_cooldown`).
        settings: a JSON-safe dict of what else makes the search (the recipe, the data's
            sizes). The project folder keeps them with the candidates and rungs: a rerun with
            others is refused, naming them. Each trial carries their digest (`search`), and a
            worker started with other settings refuses its trials.
        **kwargs: for `keras_tuner.Oracle` (`seed`, ...).

    Example:
    >>> oracle = keras_tl.selection.SuccessiveHalvingOracle([{"label": "l2", "hparams": {}}, ...], rungs)
    """

    def __init__(self, candidates, rungs, settings=None, **kwargs):
        kwargs.setdefault(
            "max_consecutive_failed_trials", len(candidates) * len(rungs) + 1
        )  # divergence is a result
        super().__init__(objective=keras_tuner.Objective(OBJECTIVE, "max"), **kwargs)
        self.candidates = [dict(c) for c in candidates]
        self.rungs = [[int(r.epochs), int(r.size), float(r.cooldown)] for r in rungs]
        self.settings = dict(settings or {})
        self.search = fingerprint(self.plan())
        self.entries = [[] for _ in self.rungs]  # per rung: the trial ids, in start order

    def plan(self):
        """What identifies the search: candidates, rungs and settings."""
        return {"candidates": self.candidates, "rungs": self.rungs, "settings": self.settings}

    def get_config(self):
        return self.plan()

    @classmethod
    def from_config(cls, config):
        return cls(config["candidates"], [Rung(*rung) for rung in config["rungs"]], config["settings"])

    # ------------------------------------------------------------------------------ rungs

    def rung_results(self, rung):
        """`{candidate: score or None}` of the trials started on `rung`."""
        trials = [self.trials[t] for t in self.entries[rung]]
        return {t.hyperparameters.values["candidate"]: score_of(t) for t in trials}

    def eligible(self, rung):
        """The candidates `rung` trains, in order (the reference first): all on rung 0, then the promoted."""
        if rung == 0:
            return list(range(len(self.candidates)))
        return promote(self.rung_results(rung - 1), self.rungs[rung][1])

    def winner(self):
        """The chosen candidate's index (see `choose`), or None before the last rung has ended."""
        last = len(self.rungs) - 1
        if not self._rung_ended(last) or len(self.entries[last]) < len(self.eligible(last)):
            return None
        return choose(self.rung_results(last))

    def _rung_ended(self, rung):
        return all(self.trials[t].status in ("COMPLETED", "FAILED") for t in self.entries[rung])

    def populate_space(self, trial_id):
        for rung in range(len(self.rungs)):
            started = {self.trials[t].hyperparameters.values["candidate"] for t in self.entries[rung]}
            for candidate in self.eligible(rung):
                if candidate not in started:
                    self.entries[rung].append(trial_id)
                    return {"status": "RUNNING", "values": self.values(candidate, rung)}
            if not self._rung_ended(rung):
                return {"status": "IDLE"}  # a worker waits for the rung's last trials (synchronous rungs)
        return {"status": "STOPPED"}

    def values(self, candidate, rung):
        spec = self.candidates[candidate]
        return {
            "candidate": candidate,
            "method": spec["label"],
            "hparams": json.dumps(spec["hparams"], sort_keys=True),
            "rung": rung,
            "epochs": self.rungs[rung][0],
            "initial_epoch": self.rungs[rung - 1][0] if rung else 0,
            "cooldown": self.rungs[rung][2],
            "search": self.search,
        }

    def score_trial(self, trial):
        # A diverged trial reports NaN, which marks it failed; numpy's nanmax warns about it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            super().score_trial(trial)

    def get_best_trials(self, num_trials=1):
        """The ended trials with a score, the deepest rung first, each rung in `rank_key` order: the
        first is the winner once the search has ended (`keras_tuner.Tuner.get_best_models` reads it)."""
        ranked = []
        for rung in range(len(self.rungs)):
            for trial_id in self.entries[rung]:
                trial = self.trials[trial_id]
                score = score_of(trial)
                if score is not None:
                    ranked.append(
                        ((-rung, *rank_key(trial.hyperparameters.values["candidate"], score)), trial)
                    )
        return [trial for _, trial in sorted(ranked, key=lambda pair: pair[0])][:num_trials]

    # ------------------------------------------------------------------------------ state

    def get_state(self):
        state = super().get_state()
        state["successive_halving"] = {**self.plan(), "entries": self.entries}
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state["successive_halving"]
        now = json.loads(json.dumps(self.plan()))  # as read back: tuples are lists
        saved_settings = {"candidates": saved["candidates"], "rungs": saved["rungs"], **saved["settings"]}
        now_settings = {"candidates": now["candidates"], "rungs": now["rungs"], **now["settings"]}
        differ = sorted(
            k for k in {*saved_settings, *now_settings} if saved_settings.get(k) != now_settings.get(k)
        )
        if differ:
            shown = ", ".join(
                f"{k}: {saved_settings.get(k)!r} there, {now_settings.get(k)!r} now" for k in differ
            )
            raise ValueError(
                f"Expected the settings of the search saved in {self._project_dir}. Received: other {shown}. "
                "Use another directory or project_name, or overwrite=True to start over."
            )
        self.entries = saved["entries"]

    # A kill while KerasTuner writes its JSON in place would leave a file no rerun can read:
    # write a temp file and rename it (keras_tl.utils.files), as the checkpoints do.
    def save(self):
        files.write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        files.write_json(f"{self._get_trial_dir(trial.trial_id)}/trial.json", trial.get_state())
