"""The report's cells: a single run or pair shows no spread it does not have."""

from benchmarks import cells
from benchmarks.statistics import paired


def test_one_run_shows_its_value_without_a_spread():
    assert cells.mean_std([0.5]) == "50.0 (n=1)"
    assert cells.mean_std([0.5, 0.6]) == "55.0 ± 7.1 (n=2)"
    assert cells.mean_std([]) == "—"


def test_one_pair_shows_its_difference_without_a_spread_or_an_interval():
    assert cells.diff_cell(paired({0: 0.52}, {0: 0.50})) == "+2.0 (1/1)"
    # 2 pairs: +1 and +3 points, std 1.41, t(1) = 12.71 → half-width 12.7 points
    assert cells.diff_cell(paired({0: 0.51, 1: 0.53}, {0: 0.50, 1: 0.50})) == "+2.0 ± 1.4 [-10.7, +14.7] (2/2)"
