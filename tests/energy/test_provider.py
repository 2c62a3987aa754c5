"""PlanningScheduleProvider: the optimizer behind ScheduleExchange (pure, no SECC)."""

from __future__ import annotations

import pytest

from evse.energy.prices import PriceCurve
from evse.energy.provider import EnergyPolicy, PlanningScheduleProvider, estimate_soc
from evse.protocol.limits import EvLimits, EvseLimits
from evse.protocol.schedules import ScheduleRequest
from tests.energy.conftest import DAY, HOUR, NIGHT_BUY, day_ahead

EVSE = EvseLimits(max_charge_power=11000.0, max_charge_current=32.0, max_voltage=500.0,
                  max_discharge_power=11000.0, max_discharge_current=32.0)
EV = EvLimits(max_charge_power=11000.0, max_discharge_power=11000.0, target_soc=80)


def _req(now: float = DAY + 0.5 * HOUR, *, bpt: bool = True, **kw: object) -> ScheduleRequest:
    base: dict[str, object] = dict(now=123.0, timestamp=now, departure_time=int(23 * HOUR),
                                   ev_limits=EV, evse_limits=EVSE, bpt=bpt,
                                   ev_target_energy_wh=18_000.0, max_supporting_points=1024)
    base.update(kw)
    return ScheduleRequest(**base)  # type: ignore[arg-type]


def _energy(entries: tuple[object, ...]) -> float:
    return sum(e.duration * e.power for e in entries) / 3.6e6  # type: ignore[attr-defined]


def test_day_ahead_schedule_charges_at_night_and_sells_at_the_peak() -> None:
    provider = PlanningScheduleProvider(day_ahead(), EnergyPolicy())
    s = provider.schedules_for(_req())
    assert s is not None and s.start == 123.0  # on the SECC's clock
    plan = provider.last_plan
    assert plan is not None and plan.target_feasible and plan.start == DAY + 0.5 * HOUR
    assert plan.final_soc == pytest.approx(80.0, abs=1e-6)
    # the SOC now came from the energy request: 80 % - 18 kWh / 60 kWh = 50 %
    assert plan.slots[0].soc_start == pytest.approx(50.0)
    night = [sl for sl in plan.slots if sl.end <= DAY + 6 * HOUR]
    peak = [sl for sl in plan.slots if DAY + 17 * HOUR <= sl.start < DAY + 21 * HOUR]
    assert sum(sl.energy_kwh for sl in night) > 0
    assert all(sl.power_w <= 0 for sl in peak) and any(sl.power_w < 0 for sl in peak)
    assert all(sl.power_w >= 0 for sl in plan.slots if sl not in peak)
    assert _energy(s.charging) == pytest.approx(plan.money.energy_bought_kwh, rel=1e-6)
    assert _energy(s.discharging) == pytest.approx(plan.money.energy_sold_kwh, rel=1e-6)
    # buy prices for charging, sell prices for discharging (their own schedule id)
    assert s.price is not None and s.discharge_price is not None
    assert s.price.rules[0].energy_fee == NIGHT_BUY
    assert s.discharge_price.schedule_id != s.price.schedule_id
    assert max(r.energy_fee for r in s.discharge_price.rules) == 0.40


def test_unprofitable_spread_or_no_v2g_never_discharges() -> None:
    for prices, policy in ((day_ahead(peak_sell=0.12), EnergyPolicy()),
                           (day_ahead(), EnergyPolicy(v2g=False))):
        provider = PlanningScheduleProvider(prices, policy)
        s = provider.schedules_for(_req())
        assert s is not None and s.discharging and all(e.power == 0 for e in s.discharging)
        assert provider.last_plan is not None and provider.last_plan.final_soc >= 80 - 1e-6


def test_without_bpt_there_is_no_discharging_schedule() -> None:
    s = PlanningScheduleProvider(day_ahead()).schedules_for(_req(bpt=False))
    assert s is not None and s.discharging == () and s.discharge_price is None


def test_equal_prices_charge_as_early_as_possible() -> None:
    provider = PlanningScheduleProvider(PriceCurve.flat(0.30, 0.10))
    s = provider.schedules_for(_req())
    assert s is not None and s.charging[0].power == pytest.approx(11000.0)
    plan = provider.last_plan
    assert plan is not None
    assert plan.money.cost_bought == pytest.approx(0.30 * plan.money.energy_bought_kwh)


def test_policy_defaults_fill_what_the_ev_does_not_say() -> None:
    policy = EnergyPolicy(target_soc=70.0, reserve_soc=30.0, unknown_soc=40.0,
                          default_departure_s=4 * HOUR)
    provider = PlanningScheduleProvider(day_ahead(), policy)
    provider.schedules_for(_req(ev_limits=EvLimits(max_charge_power=7000.0),
                                ev_target_energy_wh=None, departure_time=None))
    plan = provider.last_plan
    assert plan is not None
    assert plan.target_soc == 70.0 and plan.reserve_soc == 30.0
    assert plan.slots[0].soc_start == 40.0
    assert plan.departure - plan.start == 4 * HOUR
    assert max(sl.power_w for sl in plan.slots) <= 7000.0  # the EV's limit
    # the EV's MinimumSOC raises the reserve, its TargetSOC wins over the policy's
    provider.schedules_for(_req(minimum_soc=45, target_soc=90))
    assert provider.last_plan is not None
    assert provider.last_plan.reserve_soc == 45 and provider.last_plan.target_soc == 90


def test_supporting_points_limit_the_entries() -> None:
    provider = PlanningScheduleProvider(day_ahead())
    s = provider.schedules_for(_req(max_supporting_points=12))
    assert s is not None and len(s.charging) <= 12 and len(s.discharging) <= 12


def test_estimate_soc() -> None:
    assert estimate_soc(capacity_kwh=60, target_soc=80, target_energy_wh=18000) == 50.0
    assert estimate_soc(capacity_kwh=60, maximum_energy_wh=6000) == 90.0
    # a whole-percent PresentSOC close to the precise value: the precise one
    assert estimate_soc(capacity_kwh=60, target_soc=80, target_energy_wh=17700,
                        present_soc=50) == pytest.approx(50.5)
    # far apart (wrong capacity estimate): the EV's own number
    assert estimate_soc(capacity_kwh=40, target_soc=80, target_energy_wh=18000,
                        present_soc=50) == 50.0
    assert estimate_soc(capacity_kwh=60) is None
