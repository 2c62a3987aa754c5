"""SI floats <-> -2 PhysicalValueType (Value * 10^Multiplier, Value an xs:short, Multiplier
-3..3, with a unit symbol).

Received values are read leniently: a real car may send a multiplier or a unit the XSD does
not allow (lenient decode keeps them), and time values in minutes or hours rather than
seconds (RemainingTimeToFullSoC in "m"); `seconds()` converts by the unit.
"""

from __future__ import annotations

import math
from typing import Any

from exi_codec.schemas import iso2

SHORT_MIN = -32768
SHORT_MAX = 32767
MULTIPLIER_MIN = -3
MULTIPLIER_MAX = 3
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def physical(x: float, unit: str) -> iso2.PhysicalValueType:
    """The most precise PhysicalValue for `x` (multiplier -3..3, value a short).

    Values beyond 32767 * 10^3 saturate (a limit we state is never above what we can do)."""
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not a finite number")
    for multiplier in range(MULTIPLIER_MIN, MULTIPLIER_MAX + 1):
        value = round(x * 10.0 ** -multiplier)
        if SHORT_MIN <= value <= SHORT_MAX:
            break
    else:
        value = SHORT_MAX if x > 0 else SHORT_MIN
    while multiplier < 0 and value % 10 == 0:
        value //= 10
        multiplier += 1
    if value == 0:
        multiplier = 0
    return iso2.PhysicalValueType(
        multiplier=multiplier, unit=iso2.unitSymbolType(unit), value=int(value)
    )


def si(p: Any) -> float:
    """Value * 10^Multiplier as a float (whatever the unit)."""
    multiplier = int(p.multiplier)
    return float(int(p.value) * 10.0 ** multiplier)


def opt_si(p: Any) -> float | None:
    return None if p is None else si(p)


def seconds(p: Any) -> float | None:
    """A time value in seconds: real cars state RemainingTimeToFullSoC in minutes ("m") or
    hours ("h") too. None when absent or in a unit that is not a time."""
    if p is None:
        return None
    factor = _SECONDS.get(str(p.unit))
    return None if factor is None else si(p) * factor
