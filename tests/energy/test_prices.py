from __future__ import annotations

import math

import pytest

from evse.energy.prices import PriceCurve, PriceError, PriceSlot
from tests.energy.conftest import DAY, HOUR, day_ahead


def test_day_ahead_lookup_and_hold_beyond_the_ends() -> None:
    c = day_ahead()
    assert c.start == DAY and c.end == DAY + 48 * HOUR
    assert c.buy_at(DAY + 3 * HOUR) == 0.10
    assert c.buy_at(DAY + 18 * HOUR + 59) == 0.45 and c.sell_at(DAY + 18 * HOUR) == 0.40
    assert c.buy_at(DAY + 21 * HOUR) == 0.25  # end is exclusive
    assert c.at(DAY - 1e6).buy == 0.10  # before the curve: the first slot holds
    assert c.at(DAY + 1e7).buy == c.slots[-1].buy  # after it: the last one


def test_flat_breakpoints_segments() -> None:
    flat = PriceCurve.flat(0.3, 0.1, currency="CHF")
    assert flat.at(-1e12) == flat.at(1e12) == PriceSlot(-math.inf, math.inf, 0.3, 0.1)
    assert flat.breakpoints(0, 1e9) == []
    assert list(flat.segments(10, 20)) == [PriceSlot(10, 20, 0.3, 0.1)]
    c = day_ahead()
    assert c.breakpoints(DAY + 5.5 * HOUR, DAY + 7.5 * HOUR) == [DAY + 6 * HOUR,
                                                                 DAY + 7 * HOUR]
    segs = list(c.segments(DAY + 5.5 * HOUR, DAY + 6.5 * HOUR))
    assert [(s.start, s.end, s.buy) for s in segs] == [
        (DAY + 5.5 * HOUR, DAY + 6 * HOUR, 0.10), (DAY + 6 * HOUR, DAY + 6.5 * HOUR, 0.25)]
    tail = list(c.segments(c.end - 10, c.end + 100))  # beyond the end: the last slot holds
    assert tail[-1].end == c.end + 100


def test_round_trip_through_dict() -> None:
    for curve in (day_ahead(), PriceCurve.flat(0.2, -0.01)):
        assert PriceCurve.from_dict(curve.to_dict()) == curve


@pytest.mark.parametrize(("slots", "message"), [
    ((), "at least one slot"),
    ((PriceSlot(0, 10, 0.1, 0.0), PriceSlot(11, 20, 0.1, 0.0)), "gap or overlap"),
    ((PriceSlot(0, 10, math.nan, 0.0),), "finite"),
    ((PriceSlot(10, 10, 0.1, 0.0),), "start must be before end"),
    ((PriceSlot(0, math.inf, 0.1, 0.0), PriceSlot(math.inf, math.inf, 0.1, 0.0)), "+inf"),
])
def test_invalid_curves(slots: tuple[PriceSlot, ...], message: str) -> None:
    with pytest.raises(PriceError, match=message.replace("+", r"\+")):
        PriceCurve(slots)


def test_day_ahead_checks_lengths() -> None:
    with pytest.raises(PriceError, match="sell has 2 prices, buy has 3"):
        PriceCurve.day_ahead(0, 900, [1, 2, 3], [1, 2])
    assert PriceCurve.day_ahead(0, 900, [1, 2], 0.5).slots[1].sell == 0.5
