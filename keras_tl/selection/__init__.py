"""`keras_tl.select`: the method and its coefficient chosen on a validation split, by successive
halving on KerasTuner, never below L2 (see `keras_tl.selection.search`).

Example:
>>> result = keras_tl.select(source, (x, y), validation=0.2, epochs=9, directory="runs/select")
>>> result.method, result.cost["ratio"]
"""

from keras_tl.selection.candidates import (
    Candidate,
    Rung,
    as_candidates,
    default_candidates,
    ladder,
    rungs,
    with_cooldown,
)
from keras_tl.selection.cooldown import LinearCooldown, cool_down
from keras_tl.selection.oracle import SuccessiveHalvingOracle, choose, promote
from keras_tl.selection.result import SelectionResult
from keras_tl.selection.search import select
from keras_tl.selection.tuner import Recipe, SelectionTuner
