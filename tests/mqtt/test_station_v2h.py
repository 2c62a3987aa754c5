"""V2H: a grid outage during a Dynamic DC_BPT session (MQTT `outage` command): the EV supplies
the home load, stops at the reserve SOC, and charges again once the grid is back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evse.energy.prices import PriceCurve
from evse.energy.provider import EnergyPolicy
from simulators.battery import EvBattery
from tests.mqtt.helpers import aggregator
from tests.mqtt.station_rig import TOPICS, dynamic_scenario, station_rig, until

RESERVE = 30.0
HOME_KW = 20.0


async def test_outage_supplies_the_home_down_to_the_reserve(broker: Any, tmp_path: Path) -> None:
    battery = EvBattery(capacity_kwh=2.0, soc=0.36)  # small: the test drains it in ~2 s
    async with station_rig(broker, battery=battery, speedup=20.0, tmp_path=tmp_path,
                           prices=PriceCurve.flat(0.30, 0.20),
                           policy=EnergyPolicy(reserve_soc=RESERVE)) as rig, aggregator(
            broker.host, broker.port, f"{TOPICS.base}/#") as agg:
        evcc, ev_task = rig.start_ev(**dynamic_scenario(min_soc=10.0))
        await agg.wait_for(TOPICS.state("1"), lambda r: r.json()["session_state"] in (
            "charging", "suspended"), timeout=10)
        reply = await agg.request(TOPICS.command("1", "outage"), {
            "request_id": "o", "active": True, "home_load_kw": HOME_KW})
        assert reply["ok"], reply
        await agg.wait_for(TOPICS.events("1"), lambda r: r.json()["event"] == "grid_outage")
        # the EV feeds the house: negative current, |P| ~ the home load
        await until(lambda: len(evcc.loop_log) > 3 and all(
            abs(i * v + HOME_KW * 1000) < 0.12 * HOME_KW * 1000
            for _, i, v in evcc.loop_log[-3:]), 5, "V2H discharge at the home load")
        state = await agg.wait_for(TOPICS.state("1"), lambda r: r.json()["grid_outage"]
                                   and r.json()["session_state"] == "discharging")
        assert state.json()["limits"]["max_charge_power_kw"] == 0  # no grid to charge from
        reply = await agg.request(TOPICS.command("1", "setpoint"),
                                  {"request_id": "s", "power_kw": -5})
        assert not reply["ok"] and "grid outage" in reply["error"], reply
        # ... until the reserve SOC, then it stops discharging
        event = await agg.wait_for(TOPICS.events("1"),
                                   lambda r: r.json()["event"] == "v2h_reserve_reached",
                                   timeout=10)
        assert abs(event.json()["soc_percent"] - RESERVE) < 0.6, event.json()
        mark = len(evcc.loop_log)
        await until(lambda: len(evcc.loop_log) > mark + 10, 5, "more charge loops")
        tail = evcc.loop_log[mark + 4:]
        assert tail and all(abs(i) < 2.0 for _, i, _ in tail), tail
        soc = battery.soc * 100.0
        assert RESERVE - 0.6 < soc < RESERVE + 0.6, soc
        assert rig.conn().charger.setpoint_w == 0.0
        # the grid is back: the energy policy charges again
        reply = await agg.request(TOPICS.command("1", "outage"),
                                  {"request_id": "r", "active": False})
        assert reply["ok"], reply
        await agg.wait_for(TOPICS.events("1"), lambda r: r.json()["event"] == "grid_restored")
        await until(lambda: evcc.loop_log[-1][1] > 5, 5, "charging after the outage")
        assert (await agg.request(TOPICS.command("1", "stop"), {"request_id": "x"}))["ok"]
        report = await ev_task
        assert report.success and report.energy_discharged_wh > 0
        # the house's energy in the outage is supplied, not sold: no revenue in the report
        await until(lambda: bool(rig.server.sessions), 2, "session record")
        await rig.port.flush_reports()
        money = rig.port.last_record.money
        assert money.energy_sold_kwh > 0 and money.revenue_sold == 0.0, money
