"""SI floats <-> DIN PhysicalValueType (Value * 10^Multiplier with a Unit).

DIN values are xs:short with a Multiplier of -3..3. Conversion happens only at the message
boundary. Real cars omit the Unit (EVerest logs) and send times in minutes or hours rather
than seconds: `seconds()` honours the Unit it is given.
"""

from __future__ import annotations

import math
from typing import Any

from exi_codec.schemas import din

SHORT_MIN = -32768
SHORT_MAX = 32767
MULTIPLIER_MIN = -3
MULTIPLIER_MAX = 3
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def physical(x: float, unit: str | None) -> din.PhysicalValueType:
    """The most precise PhysicalValue (Multiplier -3..3) whose Value fits a short; values
    beyond 32767 * 10^3 are capped there (the field cannot carry more)."""
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not a finite number")
    for multiplier in range(MULTIPLIER_MIN, MULTIPLIER_MAX + 1):
        value = round(x * 10.0**-multiplier)
        if SHORT_MIN <= value <= SHORT_MAX:
            break
    else:
        value = SHORT_MAX if x > 0 else SHORT_MIN
    while multiplier < 0 and value % 10 == 0 and value:
        value //= 10
        multiplier += 1
    if value == 0:
        multiplier = 0
    return din.PhysicalValueType(
        multiplier=multiplier,
        unit=None if unit is None else din.unitSymbolType(unit),
        value=int(value),
    )


def from_physical(pv: Any) -> float:
    """Value * 10^Multiplier as a float (a missing Multiplier counts as 0)."""
    multiplier = int(pv.multiplier or 0)
    value = int(pv.value or 0)
    return float(value * 10**multiplier) if multiplier >= 0 else value / 10**-multiplier


def opt_from_physical(pv: Any) -> float | None:
    return None if pv is None else from_physical(pv)


def seconds(pv: Any) -> float | None:
    """A time value in seconds, whatever its Unit (s, m = minutes, h; none = seconds)."""
    if pv is None:
        return None
    unit = "s" if pv.unit is None else str(pv.unit)
    return from_physical(pv) * _SECONDS.get(unit, 1.0)
