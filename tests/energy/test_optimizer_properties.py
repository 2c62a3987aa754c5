"""Hypothesis: invariants on random price curves, and optimality against a brute force."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evse.energy.optimizer import Plan, PowerLimits, plan
from evse.energy.prices import PriceCurve

HOUR = 3600.0
cents = st.integers(min_value=-5, max_value=60).map(lambda c: c / 100)


@st.composite
def curves(draw: st.DrawFn, max_slots: int = 30) -> PriceCurve:
    n = draw(st.integers(1, max_slots))
    slot = draw(st.sampled_from([900.0, 1800.0, 3600.0]))
    buy = draw(st.lists(cents, min_size=n, max_size=n))
    # Sell at most the buy price of the same slot (the usual tariff; see the optimizer's
    # docstring for the convexification when it is not).
    margin = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    sell = [b - m / 100 for b, m in zip(buy, margin, strict=True)]
    return PriceCurve.day_ahead(draw(st.integers(0, 10**6)) * 900.0, slot, buy, sell)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, object]:
    prices = draw(curves())
    now = prices.start + draw(st.floats(0, 2 * HOUR))
    departure = now + draw(st.floats(0.25 * HOUR, 30 * HOUR))
    reserve = draw(st.floats(0, 50))
    max_soc = draw(st.floats(max(reserve, 1.0), 100))
    return dict(prices=prices, now=now, departure=departure,
                soc=draw(st.floats(0, 100)), target_soc=draw(st.floats(0, max_soc)),
                reserve_soc=reserve, max_soc=max_soc,
                capacity_kwh=draw(st.floats(5, 120)),
                ev_limits=PowerLimits(draw(st.floats(1000, 50000)),
                                      draw(st.floats(0, 50000))),
                charge_efficiency=draw(st.floats(0.8, 1.0)),
                discharge_efficiency=draw(st.floats(0.8, 1.0)),
                degradation_cost=draw(st.floats(0, 0.2)))


def _run(req: dict[str, object], **override: object) -> Plan:
    args = dict(req, **override)
    prices = args.pop("prices")
    return plan(prices, **args)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_invariants_on_random_curves(req: dict[str, object]) -> None:
    p = _run(req)
    lim: PowerLimits = req["ev_limits"]  # type: ignore[assignment]
    soc0 = float(req["soc"])  # type: ignore[arg-type]
    reserve = float(req["reserve_soc"])  # type: ignore[arg-type]
    max_soc = max(float(req["max_soc"]), soc0)  # type: ignore[arg-type]
    assert p.slots[0].start == req["now"] and p.slots[-1].end == req["departure"]
    for s in p.slots:
        assert -lim.max_discharge_w - 1e-6 <= s.power_w <= lim.max_charge_w + 1e-6
        assert s.soc_end <= max_soc + 1e-7
        if s.power_w < 0:  # a discharge never starts below, nor ends below, the reserve
            assert s.soc_start >= reserve - 1e-7 and s.soc_end >= reserve - 1e-7
    if p.target_feasible:
        assert p.final_soc >= float(req["target_soc"]) - 1e-6  # type: ignore[arg-type]
    else:  # full power until full
        assert all(s.power_w == pytest.approx(lim.max_charge_w) or s.soc_end >= max_soc - 1e-6
                   for s in p.slots)
    m = p.money
    assert m.net == pytest.approx(m.cost_bought - m.revenue_sold + m.degradation)
    recomputed = sum(s.energy_kwh * (s.buy if s.power_w > 0 else s.sell) for s in p.slots)
    assert recomputed == pytest.approx(m.cost_bought - m.revenue_sold, abs=1e-9)
    # V2G is a relaxation of smart charging: it never costs more ...
    if p.target_feasible:
        smart = _run(req, allow_discharge=False)
        assert m.net <= smart.money.net + 1e-7
        # ... and smart charging never costs more than charging at once at full power.
        assert smart.money.net <= _asap_cost(req) + 1e-7


def _asap_cost(req: dict[str, object]) -> float:
    """Charge at full power from now until the target (and at least to the reserve when
    arriving below it, as the planner's reserve rule demands), then idle."""
    prices: PriceCurve = req["prices"]  # type: ignore[assignment]
    soc = float(req["soc"])  # type: ignore[arg-type]
    goal = float(req["target_soc"])  # type: ignore[arg-type]
    if soc < float(req["reserve_soc"]):  # type: ignore[arg-type]
        goal = max(goal, float(req["reserve_soc"]))  # type: ignore[arg-type]
    eta = float(req["charge_efficiency"])  # type: ignore[arg-type]
    need = max(0.0, (goal - soc) / 100 * float(req["capacity_kwh"]))  # type: ignore[arg-type]
    rate = req["ev_limits"].max_charge_w / 1000 * eta  # type: ignore[attr-defined]
    cost = 0.0
    for s in _run(req, allow_discharge=False).slots:  # the same slot boundaries and prices
        cells = min(need, rate * s.duration / HOUR)
        need -= cells
        cost += cells / eta * prices.at(s.start).buy
    return cost


def _brute_force(buy: list[float], sell: list[float], deg: float, e0: int, target: int,
                 reserve: int, cap: int, c_step: int, d_step: int) -> float:
    """Exhaustive DP over whole-step battery levels (efficiencies 1, one-hour slots),
    with the planner's reserve rule: below the reserve, charge at full power up to it."""
    n = len(buy)
    lower = []
    reach = e0
    for _ in range(n):
        reach = min(cap, reach + c_step)
        lower.append(reserve if e0 >= reserve else min(reserve, reach))
    best = {e0: 0.0}
    for t in range(n):
        nxt: dict[int, float] = {}
        for e, cost in best.items():
            for y in range(max(0, e - d_step), min(cap, e + c_step) + 1):
                if y < lower[t]:
                    continue
                d = y - e
                c = cost + (d * buy[t] if d > 0 else d * sell[t] - d * deg)
                if c < nxt.get(y, math.inf):
                    nxt[y] = c
        best = nxt
    return min(c for e, c in best.items() if e >= target)


@settings(max_examples=60, deadline=None, database=None)
@given(n=st.integers(1, 6), data=st.data())
def test_optimal_against_brute_force(n: int, data: st.DataObject) -> None:
    # Integral data (1 kWh steps, a 20 kWh battery): the LP optimum is integral too
    # (a flow problem), so the brute force over whole kWh finds the same optimum.
    buy = data.draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    sell = [b - data.draw(st.integers(0, b + 5)) for b in buy]
    deg = data.draw(st.integers(0, 10))
    c_step, d_step = data.draw(st.integers(1, 8)), data.draw(st.integers(0, 8))
    reserve = data.draw(st.integers(0, 10))
    e0 = data.draw(st.integers(0, 20))
    target = data.draw(st.integers(0, min(20, max(e0, min(20, e0 + n * c_step)))))
    prices = PriceCurve.day_ahead(0.0, HOUR, [b / 100 for b in buy], [s / 100 for s in sell])
    p = plan(prices, now=0.0, departure=n * HOUR, soc=e0 * 5.0, target_soc=target * 5.0,
             reserve_soc=reserve * 5.0, capacity_kwh=20.0,
             ev_limits=PowerLimits(c_step * 1000.0, d_step * 1000.0),
             degradation_cost=deg / 100)
    assert p.target_feasible
    expected = _brute_force([b / 100 for b in buy], [s / 100 for s in sell], deg / 100, e0,
                            target, reserve, 20, c_step, d_step)
    assert p.money.net == pytest.approx(expected, abs=1e-9)
