"""The fleet split (simulators.fleet.dispatch) as pure functions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.fleet.dispatch import Bounds, CarView, bounds, fleet_range, marginal_wear, split

DT = 1.0 / 60  # a one-minute dispatch interval (simulated hours)


def car(key: str, **kw: float) -> CarView:
    base: dict[str, float] = dict(soc=50.0, capacity_kwh=60.0, target_soc=80.0,
                                  minimum_soc=20.0, time_left_h=10.0, max_charge_kw=11.0,
                                  max_discharge_kw=11.0, wear_per_kwh=0.05)
    base.update(kw)
    return CarView(key=key, **base)


def test_meets_a_feasible_request_within_every_bound() -> None:
    cars = [car("a"), car("b", soc=70.0), car("c", max_discharge_kw=5.0)]
    for request in (-20.0, -5.0, 0.0, 12.0, 30.0):
        shares = split(cars, request, DT)
        assert math.isclose(sum(shares.values()), request, abs_tol=1e-6), request
        for c in cars:
            b = bounds(c, DT)
            assert b.lo - 1e-9 <= shares[c.key] <= b.hi + 1e-9


def test_an_infeasible_request_gets_the_fleets_bound() -> None:
    cars = [car("a"), car("b")]
    assert math.isclose(sum(split(cars, -100.0, DT).values()), -22.0)
    assert math.isclose(sum(split(cars, 100.0, DT).values()), 22.0)
    assert fleet_range(cars, DT) == (-22.0, 22.0)
    assert split([], 50.0, DT) == {}


def test_departure_need_wins_over_the_request() -> None:
    # 16.5 kWh still needed, 1.5 h left at 11 kW: it must charge at full power whatever the
    # fleet is asked; the others deliver what they can
    late = car("late", soc=52.5, target_soc=80.0, time_left_h=1.5)
    assert math.isclose(late.need_kwh, 16.5)
    b = bounds(late, DT)
    assert b.lo == b.hi == 11.0
    shares = split([late, car("x"), car("y")], -30.0, DT)
    assert shares["late"] == 11.0
    assert math.isclose(shares["x"] + shares["y"], -22.0)
    # with time to spare the same car may discharge now
    assert bounds(car("early", soc=52.5, time_left_h=8.0), DT).lo == -11.0


def test_the_floor_keeps_the_target_reachable_after_discharging() -> None:
    c = car("c", soc=50.0, target_soc=80.0, time_left_h=2.2)  # 18 kWh in 2.2 h at 11 kW
    b = bounds(c, 0.25, margin=0.85)
    # discharging at lo for 15 min still leaves the need reachable at 85 % power
    need_after = c.need_kwh - b.lo * 0.25
    assert need_after <= 0.85 * 11.0 * (2.2 - 0.25) + 1e-9
    assert b.lo == pytest.approx((18.0 - 0.85 * 11.0 * 1.95) / 0.25)  # -0.93 kW, not -11


def test_soc_window_bounds_one_interval() -> None:
    low = car("low", soc=20.5, minimum_soc=20.0, capacity_kwh=60.0)  # 0.3 kWh above min
    assert math.isclose(bounds(low, 0.1).lo, -3.0)
    full = car("full", soc=99.5, target_soc=80.0)  # 0.3 kWh to full
    assert math.isclose(bounds(full, 0.1).hi, 3.0)


def test_higher_wear_discharges_less() -> None:
    cheap = car("lfp", wear_per_kwh=marginal_wear("LFP"))
    dear = car("nmc", wear_per_kwh=marginal_wear("NMC"))
    assert marginal_wear("LFP") < marginal_wear("NMC") == marginal_wear(None)
    shares = split([cheap, dear], -10.0, DT)
    assert shares["lfp"] < shares["nmc"] < 0  # more negative = more discharge
    # charging requests are split by room only
    up = split([cheap, dear], 10.0, DT)
    assert math.isclose(up["lfp"], up["nmc"])


def test_marginal_wear_is_the_station_default_per_kwh() -> None:
    assert marginal_wear("NMC", 0.08) == 0.08
    assert marginal_wear("lfp", 0.08) == pytest.approx(0.04)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(15, 100), st.floats(20, 100), st.floats(0, 30),
                          st.floats(0.05, 12), st.floats(0, 22), st.floats(0, 22),
                          st.floats(0, 0.2)), min_size=1, max_size=12),
       st.floats(-300, 300))
def test_split_properties(specs: list[tuple[float, ...]], request: float) -> None:
    cars = [car(str(i), soc=s, target_soc=t, minimum_soc=m, time_left_h=h, max_charge_kw=ch,
                max_discharge_kw=dis, wear_per_kwh=w)
            for i, (s, t, m, h, ch, dis, w) in enumerate(specs)]
    shares = split(cars, request, DT)
    lo, hi = fleet_range(cars, DT)
    want = min(hi, max(lo, request))
    assert math.isclose(sum(shares.values()), want, abs_tol=1e-6 * (1 + abs(want)))
    for c in cars:
        b = bounds(c, DT)
        assert b.lo - 1e-9 <= shares[c.key] <= b.hi + 1e-9


def test_a_car_winds_down_before_departure() -> None:
    # done, two intervals before it leaves: it is kept at 0 whatever the fleet is asked,
    # so that the others already carry its share when it unplugs
    leaving = car("leaving", soc=80.0, target_soc=80.0, time_left_h=2 * DT)
    assert bounds(leaving, DT, lead_h=3 * DT) == Bounds(0.0, 0.0, 0.0)
    shares = split([leaving, car("x"), car("y")], -20.0, DT, lead_h=3 * DT)
    assert shares["leaving"] == 0.0 and math.isclose(shares["x"] + shares["y"], -20.0)
    # without the lead it would still be dispatched
    assert split([leaving, car("x"), car("y")], -20.0, DT)["leaving"] < 0
    # one still short of its target only takes what it needs in the wind-down
    short = car("short", soc=79.9, target_soc=80.0, capacity_kwh=60.0, time_left_h=DT)
    assert math.isclose(bounds(short, DT, lead_h=3 * DT).lo, 0.06 / DT)
