"""SI floats <-> -20 RationalNumberType (value * 10^exponent, value an xs:short).

Conversion happens only at the message boundary: events, effects and limits are SI floats.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

SHORT_MIN = -32768
SHORT_MAX = 32767
EXPONENT_MIN = -128
EXPONENT_MAX = 127

R = TypeVar("R")


def to_rational(x: float, cls: type[R], *, min_exponent: int = -3) -> R:
    """The most precise RationalNumber (exponent >= min_exponent) whose value fits a short.

    Exact integers keep exponent 0 when they fit (400 V -> 0/400); fractions get a negative
    exponent (400.5 V -> -1/4005); large values a positive one (150 kW -> 1/15000).
    Trailing zeros of a negative exponent are dropped (2.50 -> -1/25).
    """
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not a finite number")
    for exponent in range(min_exponent, EXPONENT_MAX + 1):
        scaled = x * 10**-exponent if exponent < 0 else x / 10**exponent
        value = round(scaled)
        if SHORT_MIN <= value <= SHORT_MAX:
            break
    else:  # pragma: no cover - a finite float always fits with exponent <= 127 ... almost
        raise OverflowError(f"{x!r} does not fit a RationalNumber")
    while exponent < 0 and value % 10 == 0:
        value //= 10
        exponent += 1
    if value == 0:
        exponent = 0
    return cls(exponent=exponent, value=int(value))  # type: ignore[call-arg]


def from_rational(r: Any) -> float:
    """value * 10^exponent as a float."""
    exponent = int(r.exponent)
    value = int(r.value)
    return float(value * 10**exponent) if exponent >= 0 else value / 10**-exponent


def opt_from_rational(r: Any) -> float | None:
    return None if r is None else from_rational(r)
