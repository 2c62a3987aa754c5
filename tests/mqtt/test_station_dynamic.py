"""An aggregator steers a Dynamic DC_BPT session through MQTT: charge, discharge, charge.

Real mosquitto, our SeccServer on loopback (sim HAL), the simulated EV (dc_bpt_dynamic, which
follows the charger's present current). The EV's own record of EVSEPresentCurrent /
EVSEPresentVoltage in each DC_ChargeLoopRes is what is checked, plus what the aggregator
sees on the state and telemetry topics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.mqtt.helpers import aggregator
from tests.mqtt.station_rig import TOPICS, dynamic_scenario, station_rig, until


def _settled(evcc: Any, since: int, watts: float, tol: float = 0.12) -> bool:
    """The EV's last three loop responses after `since` show `watts` (signed) within tol."""
    log = evcc.loop_log[since:]
    if len(log) < 3:
        return False
    return all(abs(i * v - watts) <= tol * abs(watts) for _, i, v in log[-3:])


async def test_aggregator_steers_charge_discharge_charge(broker: Any, tmp_path: Path) -> None:
    async with station_rig(broker, tmp_path=tmp_path) as rig, aggregator(
            broker.host, broker.port, f"{TOPICS.base}/#") as agg:
        evcc, ev_task = rig.start_ev(**dynamic_scenario())
        await agg.wait_for(TOPICS.state("1"), lambda r: r.json()["control_mode"] == "Dynamic"
                           and r.json()["session_state"] in ("charging", "suspended"),
                           timeout=10)
        phases = [(11.0, "charge"), (-9.0, "discharge"), (7.5, "charge again")]
        seen = []
        for i, (kw, what) in enumerate(phases):
            mark = len(evcc.loop_log)
            reply = await agg.request(TOPICS.command("1", "setpoint"),
                                      {"request_id": f"p{i}", "power_kw": kw})
            assert reply == {"request_id": f"p{i}", "ok": True, "error": None}, reply
            await until(lambda kw=kw, mark=mark: _settled(evcc, mark, kw * 1000.0), 5.0,
                        f"the EV at {kw} kW ({what})")
            seen.append((kw, evcc.loop_log[-1]))
            state = await agg.wait_for(TOPICS.state("1"), lambda r, kw=kw: (
                r.json()["setpoint_kw"] == kw
                and abs(r.json()["power_kw"] - kw) < 0.15 * abs(kw)), timeout=5)
            assert state.json()["session_state"] == ("discharging" if kw < 0 else "charging")
            # periodic telemetry shows the same direction
            await agg.wait_for(TOPICS.telemetry("1"), lambda r, kw=kw: (
                r.json()["current_a"] * kw > 0 and abs(r.json()["current_a"]) > 10), timeout=5)
        # the sign of EVSEPresentCurrent followed the setpoints: +, -, +
        signs = [(kw > 0, cur > 0) for kw, (_, cur, _) in seen]
        assert all(a == b for a, b in signs), seen
        reply = await agg.request(TOPICS.command("1", "stop"), {"request_id": "s"})
        assert reply["ok"], reply
        report = await ev_task
        assert report.success and report.reason == "evse_terminate", report.reason
        stopped = await agg.wait_for(TOPICS.events("1"),
                                     lambda r: r.json()["event"] == "session_stopped")
        assert stopped.json()["energy_out_kwh"] > 0 and stopped.json()["energy_in_kwh"] > 0
        assert not rig.server.sessions[-1].failed
        paths = await rig.port.flush_reports()
        assert paths and paths[-1].json.exists() and paths[-1].svg is not None
        money = rig.port.last_record.money
        assert money.energy_bought_kwh > 0 and money.energy_sold_kwh > 0
        assert money.net == pytest.approx(money.cost_bought - money.revenue_sold
                                          + money.degradation)


async def test_state_carries_the_evs_departure_needs_and_limits(broker: Any,
                                                                tmp_path: Path) -> None:
    """The `ev` object of the state topic: what an aggregator needs to split a fleet request
    (departure, SOC window, capacity, energy to target, the EV's own power limits)."""
    async with station_rig(broker, tmp_path=tmp_path) as rig, aggregator(
            broker.host, broker.port, f"{TOPICS.base}/#") as agg:
        idle = await agg.wait_for(TOPICS.state("1"), timeout=5)
        assert idle.json()["ev"] is None  # no session: no EV
        evcc, _ = rig.start_ev(**dynamic_scenario(departure_time=3600, target_soc=85.0,
                                                  min_soc=25.0))
        state = await agg.wait_for(TOPICS.state("1"), lambda r: (
            r.json()["session_state"] in ("charging", "suspended")
            and (r.json()["ev"] or {}).get("max_discharge_power_kw") is not None), timeout=10)
        body = state.json()
        ev = body["ev"]
        # the departure the EV announced in ScheduleExchange, as Unix time
        assert abs(ev["departure_ts"] - (body["ts"] + 3600)) < 30, ev
        assert ev["target_soc_percent"] == 85 and ev["minimum_soc_percent"] == 25
        battery = evcc.battery.battery
        assert ev["capacity_kwh"] == pytest.approx(battery.capacity_kwh)
        to_target = (85.0 - body["soc_percent"]) / 100.0 * battery.capacity_kwh
        assert ev["energy_to_target_kwh"] == pytest.approx(to_target, abs=0.5)
        assert ev["max_charge_power_kw"] > 0 and ev["max_discharge_power_kw"] > 0
