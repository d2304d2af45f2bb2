"""`SuccessiveHalvingOracle` driven by KerasTuner's own search loop, the trials' results scripted (no training).

The example, by hand (7 candidates, 9 epochs: rungs (1, 7), (3, 3), (9, 2)):
- rung 0 scores L2 .50, c1 .60, c2 .55, c3 .58, c4 diverged, c5 .40, c6 .58: rung 1 takes L2
  (forced, though 5th) and the 2 best others: c1, then c3 (c3 and c6 tie at .58: the earlier);
- rung 1 scores L2 .62, c1 .61, c3 .70: rung 2 takes L2 and c3;
- rung 2: L2 .75 and c3 .75 tie: L2 is chosen; with c3 at .76, c3.
"""

import math

import keras_tuner
import pytest

from keras_tl.selection import SuccessiveHalvingOracle, choose, promote, rungs, with_cooldown

CANDIDATES = [{"label": "l2", "hparams": {}}] + [
    {"label": "l2_sp", "hparams": {"alpha": a}} for a in range(1, 7)
]
SCORES = {
    0: {0: 0.50, 1: 0.60, 2: 0.55, 3: 0.58, 4: math.nan, 5: 0.40, 6: 0.58},
    1: {0: 0.62, 1: 0.61, 3: 0.70},
    2: {0: 0.75, 3: 0.75},
}
EXPECTED = (
    [(c, 0, 0, 1) for c in range(7)]  # (candidate, rung, from epoch, to epoch)
    + [(0, 1, 1, 3), (1, 1, 1, 3), (3, 1, 1, 3)]
    + [(0, 2, 3, 9), (3, 2, 3, 9)]
)


class Interrupted(BaseException):
    """Stands for a kill: not an `Exception`, so KerasTuner does not record the trial as failed."""


class ScriptedTuner(keras_tuner.Tuner):
    def __init__(self, oracle, scores, stop_after=None, **kwargs):
        super().__init__(oracle, **kwargs)
        self.scores, self.stop_after, self.ran = scores, stop_after, []

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        self.ran.append((values["candidate"], values["rung"], values["initial_epoch"], values["epochs"]))
        if len(self.ran) == self.stop_after:
            raise Interrupted
        score = self.scores[values["rung"]][values["candidate"]]
        return {"val_top1": score, "diverged": float(math.isnan(score))}


def search(tmp_path, scores=SCORES, settings=None, stop_after=None):
    oracle = SuccessiveHalvingOracle(CANDIDATES, rungs(7, 9), {"lr": 0.01, **(settings or {})})
    tuner = ScriptedTuner(oracle, scores, stop_after, directory=str(tmp_path), project_name="p")
    tuner.search(verbose=0)
    return oracle, tuner


def test_promotion_and_choice_by_hand():
    assert promote(SCORES[0], 3) == [0, 1, 3]
    assert promote(SCORES[1], 2) == [0, 3]
    assert choose(SCORES[2]) == 0  # a tie goes to L2
    assert choose({0: 0.75, 3: 0.76}) == 3
    assert choose({0: 0.75, 3: 0.74}) == 0  # never below L2
    assert choose({0: None, 2: 0.5, 1: 0.5}) == 1  # L2 diverged: the best other, the earlier on a tie
    assert promote({0: None, 1: 0.1, 2: 0.3, 3: 0.2}, 2) == [2, 3]  # L2's place goes to another
    assert choose({1: None}) is None


def test_the_search_runs_the_hand_computed_rungs_and_chooses_l2_on_a_tie(tmp_path):
    oracle, tuner = search(tmp_path)
    assert tuner.ran == EXPECTED
    assert oracle.winner() == 0
    best = tuner.oracle.get_best_trials(2)
    assert [t.hyperparameters.values["candidate"] for t in best] == [0, 3]  # the winner first
    assert [t.hyperparameters.values["rung"] for t in best] == [2, 2]
    assert best[0].hyperparameters.values["method"] == "l2"
    assert oracle.trials[oracle.entries[0][4]].status == "FAILED"  # the diverged candidate


def test_the_best_other_wins_only_when_strictly_above_l2(tmp_path):
    scores = {**SCORES, 2: {0: 0.75, 3: 0.76}}
    oracle, tuner = search(tmp_path, scores)
    assert oracle.winner() == 3
    assert tuner.get_best_hyperparameters()[0].values["hparams"] == '{"alpha": 3}'


def test_a_killed_search_resumes_without_rerunning_finished_trials(tmp_path):
    with pytest.raises(Interrupted):
        search(tmp_path, stop_after=9)  # killed in rung 1's second trial (c1)
    oracle, tuner = search(tmp_path)
    assert tuner.ran == EXPECTED[8:]  # the killed trial again, then the rest
    assert oracle.winner() == 0
    assert sorted(oracle.trials) == [f"{i:04d}" for i in range(len(EXPECTED))]  # no trial created twice


def test_a_rerun_with_other_settings_is_refused_naming_them(tmp_path):
    search(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"Expected the settings of the search saved in .*p. Received: other lr: 0.01 "
        r"there, 0.1 now. Use another directory or project_name, or overwrite=True",
    ):
        search(tmp_path, settings={"lr": 0.1})


def test_the_oracle_config_round_trips_and_names_the_search():
    oracle = SuccessiveHalvingOracle(CANDIDATES, rungs(7, 9), {"lr": 0.01})
    again = SuccessiveHalvingOracle.from_config(oracle.get_config())
    assert again.get_config() == oracle.get_config()
    assert again.search == oracle.search and len(oracle.search) == 16
    assert SuccessiveHalvingOracle(CANDIDATES, rungs(7, 9), {"lr": 0.1}).search != oracle.search
    assert oracle.values(3, 1) == {
        "candidate": 3,
        "method": "l2_sp",
        "hparams": '{"alpha": 3}',
        "rung": 1,
        "epochs": 3,
        "initial_epoch": 1,
        "cooldown": 0.0,
        "search": oracle.search,
    }
    cooled = with_cooldown(rungs(7, 9), 9, 3.0, steps_per_epoch=10)  # 27 - 25 = 2 epochs: 6 steps each
    assert SuccessiveHalvingOracle(CANDIDATES, cooled, {"lr": 0.01}).values(3, 1)["cooldown"] == 0.6
    assert SuccessiveHalvingOracle(CANDIDATES, cooled, {"lr": 0.01}).search != oracle.search
