"""The planner on a day-ahead scenario: cheap night, expensive evening peak."""

from __future__ import annotations

import math
import time

import pytest

from evse.energy.optimizer import Plan, PowerLimits, plan, setpoint_at
from evse.energy.prices import PriceCurve
from tests.energy.conftest import DAY, HOUR, NIGHT_BUY, PEAK_SELL, day_ahead

EV = PowerLimits(11000.0, 11000.0)
CAP = 60.0


def evening_plan(**kw: object) -> Plan:
    """Plugged in at 17:00 with 40 %, leaving at 07:00 with >= 80 %, reserve 20 %."""
    args: dict[str, object] = dict(now=DAY + 17 * HOUR, departure=DAY + 31 * HOUR, soc=40.0,
                                   target_soc=80.0, reserve_soc=20.0, capacity_kwh=CAP,
                                   ev_limits=EV, degradation_cost=0.05)
    args.update(kw)
    prices = args.pop("prices", day_ahead())
    return plan(prices, **args)  # type: ignore[arg-type]


def hour_of(t: float) -> float:
    return ((t - DAY) / HOUR) % 24


def recompute_money(p: Plan, prices: PriceCurve, degradation_cost: float,
                    eta_d: float = 1.0) -> tuple[float, float, float]:
    """Cost, revenue and degradation from the powers and the *curve* (not the slot copy)."""
    cost = revenue = degradation = 0.0
    for s in p.slots:
        kwh = s.power_w * (s.end - s.start) / 3.6e6
        price = prices.at(s.start)
        assert prices.at(s.end - 1e-3) == price  # the price is constant inside a slot
        if kwh > 0:
            cost += kwh * price.buy
        else:
            revenue += -kwh * price.sell
            degradation += -kwh / eta_d * degradation_cost
    return cost, revenue, degradation


def check_invariants(p: Plan, ev: PowerLimits = EV) -> None:
    soc = p.soc
    assert len(soc) == len(p.slots) + 1
    assert min(soc) >= min(p.reserve_soc, soc[0]) - 1e-9  # never below the reserve
    for s in p.slots:
        assert -ev.max_discharge_w - 1e-6 <= s.power_w <= ev.max_charge_w + 1e-6
        if s.power_w < 0:
            assert s.soc_end >= p.reserve_soc - 1e-9
    for a, b in zip(p.slots, p.slots[1:], strict=False):
        assert a.end == b.start and a.soc_end == b.soc_start
    if p.target_feasible:
        assert p.final_soc >= p.target_soc - 1e-6


def test_charges_at_night_discharges_at_the_peak_and_meets_the_target() -> None:
    p = evening_plan()
    check_invariants(p)
    assert p.target_feasible and p.final_soc == pytest.approx(80.0)
    discharging = [s for s in p.slots if s.power_w < 0]
    charging = [s for s in p.slots if s.power_w > 0]
    assert discharging and charging
    assert all(17 <= hour_of(s.start) < 21 for s in discharging)  # only at the peak
    assert all(hour_of(s.start) < 6 for s in charging)  # only at night
    # Everything above the reserve is sold at the peak: 40 % -> 20 % of 60 kWh.
    assert p.money.energy_sold_kwh == pytest.approx(12.0)
    assert min(p.soc) == pytest.approx(20.0)
    # ... and bought back at night with what the target needs: 20 % -> 80 %.
    assert p.money.energy_bought_kwh == pytest.approx(36.0)
    assert p.money.net == pytest.approx(36 * NIGHT_BUY - 12 * PEAK_SELL + 12 * 0.05)


def test_no_discharge_when_the_spread_does_not_pay_for_the_wear() -> None:
    # Peak sell 0.40 - night buy 0.10 = 0.30 per kWh: a wear cost of 0.31 eats it up.
    p = evening_plan(degradation_cost=0.31)
    check_invariants(p)
    assert all(s.power_w >= 0 for s in p.slots)
    assert p.money.energy_sold_kwh == 0 and p.money.degradation == 0
    assert p.money.energy_bought_kwh == pytest.approx(24.0)  # 40 % -> 80 %, at night
    assert all(hour_of(s.start) < 6 for s in p.slots if s.power_w > 0)
    # Just below the spread it does discharge.
    assert evening_plan(degradation_cost=0.29).money.energy_sold_kwh == pytest.approx(12.0)


def test_efficiencies_enter_the_spread() -> None:
    # With 90 % each way a kWh sold at the peak brings 0.9 * 0.40 = 0.36 and costs
    # 0.10 / 0.9 = 0.111 to put back: it pays for a wear cost below 0.249, not above.
    kw = dict(charge_efficiency=0.9, discharge_efficiency=0.9)
    assert evening_plan(degradation_cost=0.24, **kw).money.energy_sold_kwh > 0
    assert evening_plan(degradation_cost=0.26, **kw).money.energy_sold_kwh == 0


@pytest.mark.parametrize("prices", [
    PriceCurve.flat(0.30, 0.30),  # no spread at all
    PriceCurve.flat(0.30, 0.08),
    day_ahead(peak_sell=0.10),  # the peak sells no dearer than the night buys
])
def test_never_discharges_without_a_profitable_spread(prices: PriceCurve) -> None:
    p = evening_plan(prices=prices, degradation_cost=0.0)
    check_invariants(p)
    assert all(s.power_w >= 0 for s in p.slots)


def test_v2g_disabled_never_discharges() -> None:
    p = evening_plan(allow_discharge=False)
    assert all(s.power_w >= 0 for s in p.slots) and p.final_soc == pytest.approx(80.0)


def test_money_summary_adds_up() -> None:
    prices = day_ahead()
    for deg, eta in ((0.05, 1.0), (0.02, 0.92)):
        p = evening_plan(degradation_cost=deg, discharge_efficiency=eta, charge_efficiency=eta)
        cost, revenue, degradation = recompute_money(p, prices, deg, eta)
        m = p.money
        assert m.cost_bought == pytest.approx(cost)
        assert m.revenue_sold == pytest.approx(revenue)
        assert m.degradation == pytest.approx(degradation)
        assert m.net == pytest.approx(cost - revenue + degradation)
        assert m.energy_bought_kwh == pytest.approx(sum(s.energy_kwh for s in p.slots
                                                        if s.power_w > 0))


def test_soc_trajectory_follows_the_powers() -> None:
    p = evening_plan(charge_efficiency=0.95, discharge_efficiency=0.9)
    for s in p.slots:
        kwh = s.power_w * s.duration / 3.6e6
        cells = kwh * 0.95 if kwh > 0 else kwh / 0.9
        assert s.soc_end - s.soc_start == pytest.approx(100 * cells / CAP, abs=1e-9)


def test_power_limits_of_ev_and_evse_combine() -> None:
    evse = PowerLimits(7400.0, 5000.0)
    p = evening_plan(evse_limits=evse)
    check_invariants(p, PowerLimits(7400.0, 5000.0))
    assert max(s.power_w for s in p.slots) == pytest.approx(7400.0)
    assert min(s.power_w for s in p.slots) == pytest.approx(-5000.0)  # the peak at full power


def test_reserve_first_when_arriving_below_it() -> None:
    # 10 % with a 20 % reserve at 17:00: charge to the reserve at once (peak price or not),
    # then never below it; the peak is not used to sell the reserve.
    p = evening_plan(soc=10.0)
    check_invariants(p)
    first = p.slots[0]
    assert first.power_w == pytest.approx(11000.0)
    reached = next(i for i, s in enumerate(p.slots) if s.soc_end >= 20.0 - 1e-9)
    assert all(s.power_w == pytest.approx(11000.0) for s in p.slots[:reached])
    assert all(s.soc_end >= 20.0 - 1e-9 for s in p.slots[reached:])
    assert p.final_soc == pytest.approx(80.0)


def test_infeasible_target_charges_at_full_power() -> None:
    p = evening_plan(now=DAY + 17 * HOUR, departure=DAY + 19 * HOUR, soc=10.0,
                     target_soc=90.0)
    assert not p.target_feasible
    assert all(s.power_w == pytest.approx(11000.0) for s in p.slots)
    assert p.final_soc == pytest.approx(10.0 + 100 * 22.0 / CAP)


def test_infeasible_stops_at_max_soc() -> None:
    p = plan(PriceCurve.flat(0.3), now=0, departure=4 * HOUR, soc=50, target_soc=99,
             max_soc=99, capacity_kwh=10, ev_limits=PowerLimits(1000.0))
    assert not p.target_feasible and p.final_soc == pytest.approx(90.0)
    q = plan(PriceCurve.flat(0.3), now=0, departure=10 * HOUR, soc=50, target_soc=95,
             max_soc=95, capacity_kwh=10, ev_limits=PowerLimits(1000.0))
    assert q.target_feasible and max(q.soc) <= 95 + 1e-9


def test_slots_follow_quarter_hours_and_price_changes() -> None:
    p = evening_plan(now=DAY + 17 * HOUR + 7 * 60, departure=DAY + 31 * HOUR + 20)
    assert p.slots[0].start == DAY + 17 * HOUR + 7 * 60
    assert p.slots[0].end == DAY + 17 * HOUR + 15 * 60
    assert p.slots[-1].end == DAY + 31 * HOUR + 20
    assert all(s.start % 900 == 0 for s in p.slots[1:])
    assert len(p.slots) == 1 + 4 * 14


def test_setpoint_at() -> None:
    p = evening_plan()
    assert setpoint_at(p, p.start - 1) == 0.0
    assert setpoint_at(p, p.departure) == 0.0
    for s in p.slots:
        assert setpoint_at(p, s.start) == s.power_w
        assert setpoint_at(p, (s.start + s.end) / 2) == s.power_w


def test_departure_not_after_now_gives_an_empty_plan() -> None:
    p = evening_plan(departure=DAY + 17 * HOUR)
    assert p.slots == () and p.money.net == 0 and setpoint_at(p, DAY + 17 * HOUR) == 0


@pytest.mark.parametrize(("kw", "message"), [
    (dict(soc=101.0), "soc must be in"),
    (dict(capacity_kwh=0.0), "capacity_kwh"),
    (dict(target_soc=90.0, max_soc=85.0), "above max_soc"),
    (dict(charge_efficiency=1.2), "charge_efficiency"),
    (dict(degradation_cost=-0.1), "degradation_cost"),
    (dict(departure=math.inf), "finite"),
])
def test_bad_inputs_name_the_parameter(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evening_plan(**kw)
    with pytest.raises(ValueError, match="max_discharge_w"):
        PowerLimits(1000.0, -1.0)


def test_24_hours_of_quarter_hours_in_under_50_ms() -> None:
    prices = day_ahead()
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        p = plan(prices, now=DAY + 7 * HOUR, departure=DAY + 31 * HOUR, soc=30.0,
                 target_soc=90.0, reserve_soc=20.0, capacity_kwh=77.0, ev_limits=EV,
                 charge_efficiency=0.93, discharge_efficiency=0.93, degradation_cost=0.03)
        best = min(best, time.perf_counter() - t0)
    assert len(p.slots) == 96
    assert best < 0.050, f"{best * 1000:.1f} ms"


def test_sell_dearer_than_buy_in_one_slot_still_gives_a_valid_plan() -> None:
    # Convexified (see the optimizer's docstring): valid and money exact, maybe not optimal.
    prices = PriceCurve.day_ahead(DAY, HOUR, [0.2, 0.1, 0.5, 0.3], [0.3, 0.05, 0.6, 0.1])
    p = plan(prices, now=DAY, departure=DAY + 4 * HOUR, soc=50, target_soc=60,
             reserve_soc=30, capacity_kwh=40, ev_limits=EV, degradation_cost=0.01)
    check_invariants(p)
    cost, revenue, degradation = recompute_money(p, prices, 0.01)
    assert p.money.net == pytest.approx(cost - revenue + degradation)
    assert p.money.energy_sold_kwh > 0  # the 0.6 hour is used
