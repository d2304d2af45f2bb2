"""What `keras_tl.select` compares: (method, hyperparameters) candidates, L2 first, and their rungs.

A candidate is a registered method's label and the hyperparameters given over its defaults.
The default list comes from the registry: every method whose `select_factors` is not empty,
for each of its `select_variants` (hyperparameters over its defaults), at those multiples of
its coefficient's default (taken at the training batch size for a batch-summed term, as the
benchmark's grid centre), then, when the budget allows more, at the other values of its
`grid_factors` (the ×0.1 before the ×10). L2 at its defaults, the reference, is always the
first candidate.

The rungs are successive halving's with η = 3 on a 3-rung ladder: rung 0 trains every
candidate to ⌊E/9⌋ epochs (at least 1), rung 1 the best third to ⌊E/3⌋, rung 2 two of
them, L2 and the best other, to E. Floors, not rounding: with n = 9 candidates the cost is
9·t0 + 3·(t1 − t0) + 2·(E − t1) = 6·t0 + t1 + 2E ≤ 3E whenever E ≥ 9. A rung whose epoch
equals the previous one's would train nothing and is dropped (with E < 9 the ladder is
shorter and fewer default candidates fit the budget). The floors leave part of the budget
unused (3E − 117 = 3 epochs at E = 40): it pays for the cool-down that scores the rung
before the last (`with_cooldown`, `keras_tl.selection.cooldown`), at most one epoch. A list no
longer than the budget has full runs (3 with L2 at the default budget) is not halved:
`ladder` trains them all to E on one rung.

Example:
>>> candidates = keras_tl.selection.default_candidates(batch_size=32)
>>> [c.name for c in candidates]  # ['L2', 'L2-SP (alpha=0.01)', 'KnowDist (alpha=0.02)', ...]
>>> keras_tl.selection.rungs(len(candidates), epochs=9)  # (Rung(epochs=1, size=7), Rung(3, 3), Rung(9, 2))
>>> keras_tl.selection.ladder(3, epochs=9, budget=3.0)  # (Rung(epochs=9, size=3),)
"""

import dataclasses
import json
import math

from keras_tl import methods
from keras_tl.api_export import keras_tl_export

REFERENCE = "l2"
ETA = 3
NUM_RUNGS = 3


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One (method, hyperparameters) pair: `label` as `keras_tl.methods.get` takes it, `hparams` over its defaults."""

    label: str
    hparams: dict = dataclasses.field(default_factory=dict)

    def method(self):
        return methods.get(self.label, **self.hparams)

    @property
    def name(self):
        """`"L2-SP (alpha=0.01)"`: the table's name (the coefficient is shown even at its default)."""
        name, dtnh = methods.split_label(self.label)
        cls = methods.registered(name)
        shown = dict(self.hparams)
        if cls.coefficient and cls.coefficient not in shown:
            shown = {cls.coefficient: cls.defaults()[cls.coefficient], **shown}
        text = ", ".join(
            f"{key}={value:g}" if _is_number(value) else f"{key}={value}" for key, value in shown.items()
        )
        return cls.display(dtnh) + (f" ({text})" if text else "")

    def get_config(self):
        return {"label": self.label, "hparams": dict(self.hparams)}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _round(value):
    # 0.01 × 64 / 32 × 0.1 is 0.0020000000000000005: six significant digits, as people write them.
    return float(f"{value:.6g}")


def coefficient_value(cls, batch_size=None, factor=1.0):
    """`factor` × the default of `cls.coefficient`, the default taken at `batch_size` for a batch-summed term."""
    defaults = cls.defaults()
    value = defaults[cls.coefficient]
    # A scale-free (relative) feature-map term is a batch mean: its α does not depend on the batch size.
    if cls.coefficient_batch_size and batch_size and not defaults.get("relative", False):
        value = value * cls.coefficient_batch_size / batch_size
    return _round(value * factor)


@keras_tl_export("keras_tl.selection.default_candidates")
def default_candidates(batch_size=None):
    """L2, then every registered method's `select_factors` candidates, then its other `grid_factors` ones.

    The order is the priority in which a budget takes them (`keras_tl.select` keeps the
    longest prefix that fits). A method without a coefficient but with `select_factors` is
    one candidate for each of its `select_variants` (LP-FT: at its defaults, then over
    Co-Tuning); a method with one, its `select_factors` candidates for each variant.

    Args:
        batch_size: the training batch size (the coefficient of a batch-summed term scales with it).
    """
    first, more = [], []
    for name in methods.names():
        cls = methods.registered(name)
        if not cls.select_factors or name == REFERENCE:
            continue
        for variant in cls.select_variants:
            given = dict(variant)
            if not cls.coefficient:
                first.append(Candidate(name, given))
                continue
            first += [
                Candidate(name, {**given, cls.coefficient: coefficient_value(cls, batch_size, f)})
                for f in cls.select_factors
            ]
            for factor in cls.grid_factors:
                if factor not in cls.select_factors:
                    candidate = Candidate(
                        name, {**given, cls.coefficient: coefficient_value(cls, batch_size, factor)}
                    )
                    more.append((abs(math.log10(factor)), factor, len(more), candidate))
    more.sort(key=lambda entry: entry[:3])  # nearest the default first, ×0.1 before ×10, then registry order
    return [Candidate(REFERENCE)] + first + [entry[-1] for entry in more]


def as_candidates(entries):
    """`entries` (labels, `(label, hparams)` pairs or `Method`s) as `Candidate`s: L2 first, duplicates dropped.

    Each is checked by `keras_tl.methods.get` (an unknown name or hyperparameter is a
    `ValueError` naming the registered ones). Two entries are duplicates when they give the
    same method (L2 at its defaults is the reference wherever it is listed).
    """
    reference = Candidate(REFERENCE)
    found, seen = [reference], [reference.method()]
    for index, entry in enumerate(entries):
        if isinstance(entry, methods.Method):
            candidate = Candidate(entry.label, dict(entry.hparams))
        elif isinstance(entry, str):
            candidate = Candidate(entry)
        elif isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], dict):
            candidate = Candidate(entry[0], dict(entry[1]))
        else:
            raise ValueError(
                "Expected each candidate to be a method label, a (label, hparams dict) pair or a "
                f"keras_tl.methods.Method. Received: candidates[{index}]={entry!r}"
            )
        method = candidate.method()
        if method.needs_validation and not method.selects_on_validation:
            raise ValueError(
                f"Expected candidates that learn nothing on held-out data: {candidate.label!r} learns on a "
                "validation split or changes the model after training by it, and that split scores the "
                "candidates. Fine-tune it with keras_tl.fine_tune(..., validation_data=...) instead. "
                f"Received: candidates[{index}]={entry!r}"
            )
        if method not in seen:
            found.append(candidate)
            seen.append(method)
    return found


@dataclasses.dataclass(frozen=True)
class Rung:
    """Train `size` candidates to epoch `epochs` (of the full run's schedule); with `cooldown` > 0,
    score each after that many more epochs (a fraction: whole steps) of a cool-down off the run."""

    epochs: int
    size: int
    cooldown: float = 0.0


@keras_tl_export("keras_tl.selection.rungs")
def rungs(num_candidates, epochs):
    """The successive-halving rungs for `num_candidates` candidates (L2 included) and `epochs`-epoch runs.

    Example:
    >>> keras_tl.selection.rungs(9, 9)  # (Rung(epochs=1, size=9), Rung(epochs=3, size=3), Rung(epochs=9, size=2))
    """
    final = min(num_candidates, 2)
    targets = [max(1, epochs // ETA ** (NUM_RUNGS - 1 - r)) for r in range(NUM_RUNGS)]
    sizes = [num_candidates] + [
        max(final, math.ceil(num_candidates / ETA**r)) for r in range(1, NUM_RUNGS - 1)
    ]
    found = []
    for target, size in zip(targets, sizes + [final], strict=True):
        if found and target == found[-1].epochs:
            continue  # nothing left to train at this epoch: the next rung promotes from the previous one
        found.append(Rung(target, size))
    return tuple(found)


@keras_tl_export("keras_tl.selection.ladder")
def ladder(num_candidates, epochs, budget):
    """The rungs `keras_tl.select` trains: successive halving's (`rungs`), or one rung that trains
    every candidate to the end where halving would stop one that the budget can train fully.

    Why: a rung scores runs stopped at a third of their schedule or earlier, and a method whose
    gain appears late ranks low there (Co-Tuning on Caltech-101, docs/SELECTION.md). With no
    more candidates than the budget has full runs (3 at the default budget), nothing needs to be
    stopped: every candidate is compared on its full run. One or two candidates already reach
    the end on the halving ladder (its last rung keeps two), which is kept for them.

    Example:
    >>> keras_tl.selection.ladder(3, 40, budget=3.0)  # (Rung(epochs=40, size=3),): 3 full runs
    >>> keras_tl.selection.ladder(9, 40, budget=3.0) == keras_tl.selection.rungs(9, 40)  # True
    """
    halving = rungs(num_candidates, epochs)
    if halving[-1].size < num_candidates <= budget * (1 + 1e-9):
        return (Rung(epochs, num_candidates),)
    return halving


def cost(ladder):
    """The epochs a ladder of rungs trains in all (each promoted candidate continues its own run,
    and each scored after a cool-down trains that too)."""
    total, previous = 0, 0
    for rung in ladder:
        total += rung.size * (rung.epochs - previous + rung.cooldown)
        previous = rung.epochs
    return total


@keras_tl_export("keras_tl.selection.with_cooldown")
def with_cooldown(ladder, epochs, budget, steps_per_epoch):
    """`ladder` with the rung before the last scored after a cool-down paid by the budget's rest.

    Each of that rung's candidates gets min(1 epoch, (budget·E − cost) / size) of it, in
    whole steps of `steps_per_epoch`; none when the floors leave less than a step each
    (E = 9: 27 = 3E) or the ladder has one rung. At E = 40 with 9 candidates: 1 epoch each,
    120 = 3E; at E = 20: 8 of 13 steps each (58 + 3 · 8/13 ≤ 60).

    Example:
    >>> keras_tl.selection.with_cooldown(rungs(9, 40), 40, 3.0, steps_per_epoch=92)[1]  # Rung(13, 3, 1.0)
    """
    if len(ladder) < 2:
        return tuple(ladder)
    scored = ladder[-2]
    left = (budget * epochs - cost(ladder)) * steps_per_epoch / scored.size
    steps = min(steps_per_epoch, math.floor(left + 1e-9))
    if steps < 1:
        return tuple(ladder)
    cooled = dataclasses.replace(scored, cooldown=_round(steps / steps_per_epoch))
    return (*ladder[:-2], cooled, ladder[-1])


def fit_budget(candidates, epochs, budget, trim, steps_per_epoch=None):
    """`(candidates, rungs)` whose cost is at most `budget` full runs of `epochs` epochs (`ladder`).

    With `trim` (the default list), the longest prefix that fits; without (the user's list),
    all of them or a `ValueError` that says which budget they need. With `steps_per_epoch`,
    the budget's rest pays for a cool-down on the rung before the last (`with_cooldown`).
    """
    for count in range(len(candidates), 0, -1):
        found = ladder(count, epochs, budget)
        if cost(found) <= budget * epochs * (1 + 1e-9):
            if count < len(candidates) and not trim:
                break
            if steps_per_epoch:
                found = with_cooldown(found, epochs, budget, steps_per_epoch)
            return candidates[:count], found
    needed = cost(rungs(len(candidates), epochs)) / epochs
    raise ValueError(
        f"Expected candidates whose search fits budget={budget:g} full L2 runs. Received: {len(candidates)} "
        f"candidates (L2 included) at epochs={epochs}, whose rungs cost {needed:.3g} runs: pass budget={needed:.3g}, "
        "fewer candidates, or more epochs (the first rung trains epochs/9 of them, at least 1)."
    )


def plan(candidates, epochs, budget, batch_size=None, steps_per_epoch=None):
    """`(candidates, rungs)` that `keras_tl.select` trains: `candidates` (None: the default list
    cut to the budget) as `Candidate`s with their ladder (`fit_budget`)."""
    if candidates is None:
        found = default_candidates(batch_size)
        return fit_budget(found, epochs, budget, trim=True, steps_per_epoch=steps_per_epoch)
    return fit_budget(as_candidates(candidates), epochs, budget, trim=False, steps_per_epoch=steps_per_epoch)


def fingerprint(settings):
    """A short digest of a JSON-safe dict: what a search's folder and its workers agree on."""
    import hashlib

    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
