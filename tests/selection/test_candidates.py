"""The candidates `keras_tl.select` compares and the rungs' cost, against counts made by hand."""

import dataclasses

import pytest

import keras_tl
from keras_tl import methods
from keras_tl.selection import candidates as c
from keras_tl.selection.candidates import Candidate, Rung


def test_the_default_ladder_of_nine_candidates_is_successive_halving_by_three():
    # E = 9: everyone 1 epoch, the best third (3) to 3, L2 and the best other to 9.
    assert c.rungs(9, 9) == (Rung(1, 9), Rung(3, 3), Rung(9, 2))
    assert c.cost(c.rungs(9, 9)) == 9 * 1 + 3 * 2 + 2 * 6 == 27  # 3 full runs of 9 epochs
    assert c.rungs(9, 20) == (Rung(2, 9), Rung(6, 3), Rung(20, 2))  # floors: 20/9, 20/3
    assert c.cost(c.rungs(9, 20)) == 18 + 3 * 4 + 2 * 14 == 58


def test_rungs_that_would_train_nothing_are_dropped():
    # E = 3: E/9 and E/3 are both 1 epoch; the promotion goes from rung 0 straight to the last rung.
    assert c.rungs(7, 3) == (Rung(1, 7), Rung(3, 2))
    assert c.rungs(4, 1) == (Rung(1, 4),)  # one epoch: every candidate trains the whole run
    assert c.rungs(1, 9) == (Rung(1, 1), Rung(3, 1), Rung(9, 1))  # L2 alone: one full run
    assert c.cost(c.rungs(1, 9)) == 9


def test_nine_candidates_cost_at_most_three_l2_runs_from_nine_epochs_on():
    for epochs in range(9, 301):
        assert c.cost(c.rungs(9, epochs)) <= 3 * epochs, epochs
    assert (
        c.cost(c.rungs(9, 5)) == 9 + 2 * 4 > 3 * 5
    )  # with 5 epochs the first rung (1 epoch) is more than E/9


def test_candidates_the_budget_can_train_fully_are_not_halved():
    # 3 candidates, 3 full runs: halving would stop one of them at E/3, so all three train to E.
    assert c.ladder(3, 40, budget=3.0) == (Rung(40, 3),)
    assert c.cost(c.ladder(3, 40, 3.0)) == 120
    assert c.ladder(3, 40, budget=2.9) == c.rungs(3, 40) == (Rung(4, 3), Rung(13, 2), Rung(40, 2))
    assert c.ladder(5, 9, budget=5.0) == (Rung(9, 5),)
    assert c.ladder(9, 40, budget=3.0) == c.rungs(9, 40)  # the default list is halved
    # One or two candidates reach the end on the halving ladder already: it is kept.
    assert c.ladder(2, 9, budget=3.0) == c.rungs(2, 9) == (Rung(1, 2), Rung(3, 2), Rung(9, 2))
    assert c.ladder(1, 9, budget=1.0) == c.rungs(1, 9)
    chosen, ladder = c.fit_budget(c.as_candidates(["co_tuning", "lp_ft"]), 40, 3.0, trim=False, steps_per_epoch=92)
    assert [x.label for x in chosen] == ["l2", "co_tuning", "lp_ft"] and ladder == (Rung(40, 3),)  # no cool-down


def test_the_budget_left_by_the_floors_pays_a_cool_down_on_the_rung_before_the_last():
    # E = 40: 9·4 + 3·9 + 2·27 = 117 of 120 epochs; the 3 left give rung 1's 3 candidates one epoch each.
    assert c.with_cooldown(c.rungs(9, 40), 40, 3.0, steps_per_epoch=92) == (Rung(4, 9), Rung(13, 3, 1.0), Rung(40, 2))
    assert c.cost(c.with_cooldown(c.rungs(9, 40), 40, 3.0, 92)) == 120
    # E = 20: 58 of 60; 2 epochs of 13 steps over 3 candidates: 8 whole steps each (26 / 3 = 8.67).
    assert c.with_cooldown(c.rungs(9, 20), 20, 3.0, 13)[1] == Rung(6, 3, c._round(8 / 13))
    assert c.with_cooldown(c.rungs(9, 20), 20, 5.0, 13)[1] == Rung(6, 3, 1.0)  # at most one epoch
    assert c.with_cooldown(c.rungs(9, 9), 9, 3.0, 92) == c.rungs(9, 9)  # 27 = 3E: nothing left
    assert c.with_cooldown(c.rungs(4, 1), 1, 3.0, 92) == c.rungs(4, 1)  # one rung: nothing to score early
    for epochs in range(9, 101):
        for steps in (1, 5, 13, 92):
            chosen, ladder = c.fit_budget(c.default_candidates(32), epochs, 3.0, trim=True, steps_per_epoch=steps)
            assert chosen == c.fit_budget(c.default_candidates(32), epochs, 3.0, trim=True)[0]  # the same list
            assert c.cost(ladder) * steps <= 3 * epochs * steps + 1e-6, (epochs, steps)
            assert ladder[-2].cooldown * steps == pytest.approx(round(ladder[-2].cooldown * steps))  # whole steps


def test_the_default_list_is_cut_to_the_default_budget():
    found = c.default_candidates(batch_size=32)
    for epochs in range(1, 101):
        chosen, ladder = c.fit_budget(found, epochs, budget=3.0, trim=True)
        assert chosen == found[: len(chosen)] and chosen[0] == Candidate("l2")
        assert c.cost(ladder) <= 3 * epochs
        assert ladder == c.ladder(len(chosen), epochs, 3.0)
        assert c.cost(c.ladder(len(chosen) + 1, epochs, 3.0)) > 3 * epochs  # one more would not fit
        if epochs >= 9:
            assert len(chosen) >= 9, epochs  # nine always fit from nine epochs on (10 at some, e.g. 17)
    assert [len(c.fit_budget(found, e, 3.0, trim=True)[0]) for e in (1, 2, 3, 9)] == [3, 4, 5, 9]


def test_the_budget_takes_more_candidates_and_refuses_a_list_too_long():
    found = c.default_candidates(batch_size=32)
    assert len(found) == 23  # L2 + 6 methods × (×1, ×0.1, ×10) + LP-FT, LP-FT over Co-Tuning, FTP, SPD
    # 14 candidates on rungs (1, 14), (3, 5), (9, 2) cost 14 + 10 + 12 = 36 = 4 runs; 15 cost 37.
    assert len(c.fit_budget(found, 9, budget=4.0, trim=True)[0]) == 14
    assert len(c.fit_budget(found, 9, budget=5.0, trim=True)[0]) == 19  # 19 + 14 + 12 = 45
    with pytest.raises(
        ValueError,
        match=r"^Expected candidates whose search fits budget=3 full L2 runs. Received: 14 candidates \(L2 included\) at "
        r"epochs=9, whose rungs cost 4 runs: pass budget=4, fewer candidates, or more epochs",
    ):
        c.fit_budget(found[:14], 9, budget=3.0, trim=False)


def test_default_candidates_come_from_the_registry_in_priority_order():
    names = [candidate.name for candidate in c.default_candidates(batch_size=32)]
    assert names[:9] == [
        "L2",
        "L2-SP (alpha=0.01)",
        "KnowDist (alpha=10)",  # the scale-free α: a batch mean, the same at every batch size
        "DELTA (alpha=10)",
        "BSS (eta=0.001)",
        "Co-Tuning (lam=2.3)",
        "LwF (lam=1)",
        "LP-FT",  # its probe's C chosen on the search's validation split
        "LP-FT (base=co_tuning)",  # its second select_variants entry
    ]
    assert names[9:11] == ["FTP", "SPD"]  # no coefficient: one candidate each; a budget of 3 runs leaves them out
    lp_ft, stacked = (candidate.method() for candidate in c.default_candidates()[7:9])
    assert lp_ft.needs_validation and lp_ft.selects_on_validation
    assert stacked == methods.get("lp_ft", base="co_tuning") and stacked.selects_on_validation
    assert names[11:17] == [
        "L2-SP (alpha=0.001)",
        "KnowDist (alpha=1)",
        "DELTA (alpha=1)",
        "BSS (eta=0.0001)",
        "Co-Tuning (lam=0.23)",
        "LwF (lam=0.1)",
    ]  # ×0.1 before ×10
    assert names[17] == "L2-SP (alpha=0.1)"
    # The papers' batch-summed term (relative=False) takes the paper's α at its batch size 64.
    authors = c.as_candidates([("knowdist", {"relative": False, "alpha": 0.01})])[1]
    assert authors.method() == methods.get("knowdist", relative=False, alpha=0.01)
    assert c.default_candidates(batch_size=64)[2] == Candidate("knowdist", {"alpha": 10.0})
    with pytest.raises(
        ValueError, match=r"^Expected candidates that learn nothing on held-out data: 'wise_ft'"
    ):
        c.as_candidates(["wise_ft"])
    with pytest.raises(ValueError, match=r"^Expected candidates that learn nothing on held-out data: 'tpgm'"):
        c.as_candidates([("tpgm", {})])
    assert c.as_candidates(["lp_ft"])[1] == Candidate("lp_ft")


def test_a_registered_method_with_select_factors_is_a_default_candidate():
    @methods.register
    class Mine(methods.Method):
        name = "mine_for_select"
        coefficient = "alpha"
        select_factors = (1.0, 3.0)
        select_variants = ({}, {"beta": 2.0})
        grid_factors = (1.0, 3.0)
        alpha: float = 0.5
        beta: float = 1.0

        def terms(self, context):
            return []

    try:
        found = c.default_candidates()
        # After the built-ins' select_factors candidates, before their other grid values; each
        # variant at each factor.
        assert found[11:15] == [
            Candidate("mine_for_select", {"alpha": 0.5}),
            Candidate("mine_for_select", {"alpha": 1.5}),
            Candidate("mine_for_select", {"beta": 2.0, "alpha": 0.5}),
            Candidate("mine_for_select", {"beta": 2.0, "alpha": 1.5}),
        ]
        assert found[15].name == "L2-SP (alpha=0.001)"
    finally:
        methods.unregister("mine_for_select")
    assert Candidate("mine_for_select", {"alpha": 0.5}) not in c.default_candidates()


def test_as_candidates_checks_each_entry_and_puts_l2_first_once():
    found = c.as_candidates(
        [
            "l2_sp",
            ("delta+dtnh", {"alpha": 0.1}),
            methods.get("l2"),
            methods.get("lwf", lam=0.5),
            ("l2_sp", {"alpha": 0.01}),
        ]
    )  # the last is l2_sp at its defaults again
    assert found == [
        Candidate("l2"),
        Candidate("l2_sp"),
        Candidate("delta+dtnh", {"alpha": 0.1}),
        Candidate("lwf", {"lam": 0.5}),
    ]
    assert found[2].method() == methods.get("delta", alpha=0.1, dtnh=True)
    assert found[2].name == "DTNH(DELTA) (alpha=0.1)"
    assert c.as_candidates([("l2", {"beta": 0.001})])[1] == Candidate(
        "l2", {"beta": 0.001}
    )  # another L2 is a candidate
    with pytest.raises(
        ValueError,
        match=r"^Expected each candidate to be a method label, a \(label, hparams dict\) "
        r"pair or a keras_tl.methods.Method. Received: candidates\[1\]=3$",
    ):
        c.as_candidates(["l2_sp", 3])
    with pytest.raises(ValueError, match=r"Expected hyperparameters of 'l2_sp' from \['alpha', 'beta'\]"):
        c.as_candidates([("l2_sp", {"lam": 1.0})])
    with pytest.raises(ValueError, match=r"Expected a method from .* Received: name='nope'"):
        c.as_candidates(["nope"])


def test_candidate_config_is_json_safe_and_frozen():
    candidate = Candidate("l2_sp", {"alpha": 0.1})
    assert candidate.get_config() == {"label": "l2_sp", "hparams": {"alpha": 0.1}}
    assert Candidate(**candidate.get_config()) == candidate
    with pytest.raises(dataclasses.FrozenInstanceError):
        candidate.label = "l2"
    assert keras_tl.selection.Candidate is Candidate
