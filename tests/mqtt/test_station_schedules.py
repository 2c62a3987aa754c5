"""Scheduled mode: the aggregator's day-ahead prices become the ScheduleExchangeRes the EV
gets (charging and discharging power schedules), planned by the optimizer.

Prices (hourly, from the hour that has begun): a cheap night (hours 0-5), day (6-9), an
evening peak (10-13), day again; the EV leaves 16 h from now and wants 80 % (it has 50 % of
60 kWh). Efficiencies 0.95; wear from the NMC tables (the policy default), or the flat
override of 0.05 per kWh discharged where a test says so.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from evse.energy.provider import EnergyPolicy
from tests.mqtt.helpers import aggregator
from tests.mqtt.station_rig import TOPICS, station_rig, until

H = 3600
NIGHT, DAY, PEAK = (0.10, 0.02), (0.25, 0.05), 0.45
ETA = 0.95


def _slots(h0: int, peak_sell: float) -> list[dict[str, float]]:
    slots = []
    for h in range(30):
        buy, sell = NIGHT if h < 6 else (PEAK, peak_sell) if 10 <= h < 14 else DAY
        slots.append({"start": h0 + h * H, "end": h0 + (h + 1) * H, "buy": buy, "sell": sell})
    return slots


def _intervals(anchor: int, entries: Any) -> list[tuple[float, float, float]]:
    out, t = [], float(anchor)
    for duration, power in entries:
        out.append((t, t + duration, abs(power)))
        t += duration
    return out


async def _schedule(broker: Any, peak_sell: float,
                    policy: EnergyPolicy | None = None) -> tuple[Any, int, Any]:
    h0 = int(time.time()) // H * H
    async with station_rig(broker, policy=policy) as rig, aggregator(broker.host, broker.port,
                                                      f"{TOPICS.base}/#") as agg:
        reply = await agg.request(TOPICS.command("1", "prices"), {
            "request_id": "da", "currency": "EUR", "slots": _slots(h0, peak_sell)})
        assert reply["ok"], reply
        evcc, ev_task = rig.start_ev("dc_bpt_scheduled", discharge_loops=None,
                                     expect_discharge=False, max_loops=3,
                                     departure_time=16 * H, target_soc=80.0)
        report = await ev_task
        assert report.success, report.reason
        assert evcc.schedule is not None
        plan = rig.port._connectors["1"].provider.last_plan
        await until(lambda: bool(rig.server.sessions), 2, "session record")
        return evcc.schedule, h0, plan


def _final_soc(schedule: Any) -> float:
    charge = _intervals(schedule.time_anchor, schedule.charging)
    discharge = _intervals(schedule.time_anchor, schedule.discharging)
    kwh = 30.0  # 50 % of 60 kWh
    for t0, t1, p in charge:
        kwh += p * (t1 - t0) / 3.6e6 * ETA
    for t0, t1, p in discharge:
        kwh -= p * (t1 - t0) / 3.6e6 / ETA
    return kwh / 60.0 * 100.0


async def test_day_ahead_prices_charge_at_night_and_discharge_at_the_peak(broker: Any) -> None:
    # spread: 0.40 * 0.95 - 0.10 / 0.95 = 0.27 per kWh, far above the wear: V2G pays
    schedule, h0, plan = await _schedule(broker, peak_sell=0.40)
    anchor = schedule.time_anchor
    assert abs(anchor - time.time()) < 10
    charging = _intervals(anchor, schedule.charging)
    discharging = _intervals(anchor, schedule.discharging)
    peak = (h0 + 10 * H, h0 + 14 * H)
    night_end = h0 + 6 * H
    assert sum(p * (t1 - t0) for t0, t1, p in charging if t1 <= night_end) > 0  # night
    discharged = [(t0, t1, p) for t0, t1, p in discharging if p > 0]
    assert discharged, schedule.discharging
    assert all(peak[0] <= t0 and t1 <= peak[1] for t0, t1, _ in discharged), discharged
    assert not any(p > 0 and t0 < peak[1] and t1 > peak[0] for t0, t1, p in charging)
    # the departure target is met (and the plan agrees)
    assert _final_soc(schedule) == pytest.approx(80.0, abs=0.5)
    assert plan.target_feasible and plan.final_soc >= 80.0 - 1e-6
    assert plan.money.revenue_sold > 0


async def test_no_profitable_spread_never_discharges(broker: Any) -> None:
    # spread: 0.12 * 0.95 - 0.10 / 0.95 = 0.009 per kWh < the flat 0.05: no V2G (the NMC
    # tables would allow a slow shallow discharge: 0.1C costs ~0.003 per kWh)
    schedule, h0, plan = await _schedule(broker, peak_sell=0.12,
                                         policy=EnergyPolicy(degradation_cost=0.05))
    charging = _intervals(schedule.time_anchor, schedule.charging)
    assert schedule.discharging and all(p == 0 for _, p in schedule.discharging)
    assert all(p == 0 or t1 <= h0 + 6 * H for t0, t1, p in charging), charging  # night only
    assert _final_soc(schedule) == pytest.approx(80.0, abs=0.5)
    assert plan.money.energy_sold_kwh == 0 and math.isclose(plan.money.revenue_sold, 0.0)
