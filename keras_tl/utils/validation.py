"""One validator for the numeric arguments of every keras_tl unit."""

import math
import numbers


def check_number(name, value, minimum=None, exclusive=False, integer=False, maximum=None, exclusive_maximum=False):
    """Returns `value` as a Python float (or int) after checking it; raises a `ValueError` naming it.

    Accepts Python and numpy numbers (`np.float32(0.1)`, `np.int64(2)`); rejects bools, NaN,
    infinities, strings and anything below `minimum` (or equal to it with `exclusive`) or above
    `maximum` (or equal to it with `exclusive_maximum`).

    Example:
    >>> check_number("alpha", np.float32(0.1), minimum=0)  # 0.10000000149011612
    >>> check_number("k", True, minimum=1, integer=True)   # ValueError: Expected k >= 1 (an int) ...
    >>> check_number("dropout", 1.0, minimum=0, maximum=1, exclusive_maximum=True)  # ValueError
    """
    kind = "an int" if integer else "a float"
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if exclusive else '>='} {minimum:g}")
    if maximum is not None:
        bounds.append(f"{'<' if exclusive_maximum else '<='} {maximum:g}")
    condition = (" " + " and ".join(bounds)) if bounds else ""
    valid_type = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, valid_type) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok and minimum is not None:
        ok = value > minimum if exclusive else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if exclusive_maximum else value <= maximum
    if not ok:
        raise ValueError(f"Expected {name}{condition} ({kind}). Received: {name}={value!r}")
    return int(value) if integer else float(value)
