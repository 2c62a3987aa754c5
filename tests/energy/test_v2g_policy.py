"""The planner with the wear model and the owner's policy."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evse.energy.optimizer import PowerLimits, plan
from evse.energy.prices import PriceCurve
from evse.energy.wear import WearModel

H = 3600.0
LIM = PowerLimits(11_000.0, 11_000.0)


def _curve(sell_peak: float, buy_night: float) -> PriceCurve:
    # 18:00-22:00 peak (sell at sell_peak), 22:00-06:00 night (buy at buy_night)
    buy = [0.30] * 4 + [buy_night] * 8
    sell = [sell_peak] * 4 + [0.0] * 8
    return PriceCurve.day_ahead(0.0, H, buy, sell)


def _plan(curve: PriceCurve, wear: WearModel | None, **kw: object) -> object:
    args: dict[str, object] = dict(now=0.0, departure=12 * H, soc=60.0, target_soc=80.0,
                                   capacity_kwh=60.0, ev_limits=LIM, reserve_soc=20.0,
                                   charge_efficiency=0.95, discharge_efficiency=0.95,
                                   wear=wear)
    args.update(kw)
    return plan(curve, **args)  # type: ignore[arg-type]


def test_no_discharge_when_the_margin_after_wear_is_negative() -> None:
    # sell 0.15 vs refill 0.10 / 0.95^2 = 0.111: positive before wear, negative after the
    # wear of a 11 kW cycle at 220 EUR/kWh of battery
    curve = _curve(0.15, 0.10)
    wear = WearModel.for_chemistry("nmc", capacity_kwh=60.0, replacement_cost_per_kwh=220.0)
    assert wear.cost_per_kwh(0.2, 0.5, 11 / 60) / 0.95 > 0.15 - 0.10 / 0.95**2
    with_wear = _plan(curve, wear)
    assert all(s.power_w >= 0 for s in with_wear.slots)  # type: ignore[attr-defined]
    free = _plan(curve, WearModel.for_chemistry("nmc", capacity_kwh=60.0,
                                                replacement_cost_per_kwh=0.0))
    assert any(s.power_w < 0 for s in free.slots)  # type: ignore[attr-defined]


def test_discharge_when_it_pays_says_why() -> None:
    wear = WearModel.for_chemistry("lfp", capacity_kwh=60.0)
    p = _plan(_curve(0.40, 0.05), wear)
    discharges = [s for s in p.slots if s.power_w < 0]  # type: ignore[attr-defined]
    assert discharges and all(s.margin is not None and s.margin > 0 for s in discharges)
    assert all("margin" in s.reason for s in discharges)
    assert p.money.degradation > 0 and p.final_soc >= 80 - 1e-6  # type: ignore[attr-defined]


def test_daily_discharge_cap_and_outage_reserve() -> None:
    wear = WearModel.for_chemistry("lfp", capacity_kwh=60.0)
    free = _plan(_curve(0.40, 0.05), wear)
    sold = free.money.energy_sold_kwh  # type: ignore[attr-defined]
    assert sold > 10
    capped = _plan(_curve(0.40, 0.05), wear, max_discharge_kwh=5.0)
    assert 4.0 < capped.money.energy_sold_kwh <= 5.0 + 1e-6  # type: ignore[attr-defined]
    held = _plan(_curve(0.40, 0.05), wear, reserve_soc=50.0)
    assert min(held.soc) >= 50.0 - 1e-6  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(prices=st.lists(st.tuples(st.floats(-0.1, 0.6), st.floats(-0.1, 0.6)), min_size=4,
                       max_size=16),
       soc=st.floats(0, 100), target=st.floats(0, 100), hours=st.integers(1, 16),
       chemistry=st.sampled_from(["nmc", "lfp"]), cap_kwh=st.none() | st.floats(0, 30))
def test_departure_target_met_when_physically_possible(prices: list[tuple[float, float]],
                                                       soc: float, target: float, hours: int,
                                                       chemistry: str,
                                                       cap_kwh: float | None) -> None:
    curve = PriceCurve.day_ahead(0.0, H, [b for b, _ in prices], [s for _, s in prices])
    wear = WearModel.for_chemistry(chemistry, capacity_kwh=60.0)
    p = plan(curve, now=0.0, departure=hours * H, soc=soc, target_soc=target,
             capacity_kwh=60.0, ev_limits=LIM, reserve_soc=10.0, charge_efficiency=0.95,
             discharge_efficiency=0.95, wear=wear, max_discharge_kwh=cap_kwh)
    reachable = soc + 11 * hours * 0.95 / 60 * 100 >= target
    assert p.target_feasible == reachable
    if reachable:
        assert p.final_soc >= target - 1e-6
    else:
        assert p.final_soc >= min(100.0, soc + 11 * hours * 0.95 / 60 * 100) - 1e-6
    if cap_kwh is not None:
        assert p.money.energy_sold_kwh <= cap_kwh + 1e-6
