"""Energy-policy faults never fail a charging session, and prices that cannot be planned are
refused with nothing changed (issue 11, item 4).

Real mosquitto, our SeccServer on loopback (sim HAL), the simulated EV through
ScheduleExchange; the aggregator sees replies and events on the broker.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import evse.aio.station_port as station_port_module
from evse.energy.provider import EnergyPolicy, PlanningScheduleProvider
from tests.mqtt.helpers import aggregator
from tests.mqtt.station_rig import TOPICS, dynamic_scenario, station_rig, until

BROKEN = EnergyPolicy(charge_efficiency=0.0)  # every plan raises ValueError


def _charged(evcc: Any) -> bool:
    return any(current > 1.0 for _, current, _ in evcc.loop_log)


async def test_absurd_prices_are_refused_and_later_sessions_charge(broker: Any) -> None:
    async with station_rig(broker) as rig, aggregator(broker.host, broker.port,
                                                      f"{TOPICS.base}/#") as agg:
        rt = rig.port._connectors["1"]
        before = rt.provider.prices
        reply = await agg.request(TOPICS.command("1", "prices"),
                                  {"request_id": "huge", "buy": 1e150, "sell": 1e150})
        assert reply["ok"] is False, reply
        assert reply["error"].startswith("buy: 1e+150 out of range [-10, 10] per kWh"), reply
        assert rt.provider.prices is before and not rt.prices_from_mqtt
        evcc, ev_task = rig.start_ev("dc_bpt_scheduled", discharge_loops=None,
                                     expect_discharge=False, max_loops=3)
        report = await ev_task
        assert report.success, report.reason
        assert not rig.server.sessions[-1].failed


async def test_prices_whose_plan_fails_are_refused_without_a_session(broker: Any) -> None:
    async with station_rig(broker, policy=BROKEN) as rig, aggregator(
            broker.host, broker.port, f"{TOPICS.base}/#") as agg:
        rt = rig.port._connectors["1"]
        before = rt.provider.prices
        reply = await agg.request(TOPICS.command("1", "prices"),
                                  {"request_id": "p", "buy": 0.3, "sell": 0.1})
        assert reply["ok"] is False, reply
        assert reply["error"].startswith("prices: rejected: the plan with these prices failed")
        assert "charge_efficiency" in reply["error"] and "previous prices stay" in reply["error"]
        assert rt.provider.prices is before and not rt.prices_from_mqtt


@pytest.mark.parametrize("scenario", ["scheduled", "dynamic"])
async def test_a_broken_policy_falls_back_to_the_default_schedule(broker: Any,
                                                                   scenario: str) -> None:
    async with station_rig(broker, policy=BROKEN) as rig, aggregator(
            broker.host, broker.port, f"{TOPICS.base}/#") as agg:
        if scenario == "scheduled":
            evcc, ev_task = rig.start_ev("dc_bpt_scheduled", discharge_loops=None,
                                         expect_discharge=False, max_loops=5)
        else:
            evcc, ev_task = rig.start_ev(**dynamic_scenario(max_loops=8))
        warning = await agg.wait_for(TOPICS.events("1"),
                                     lambda r: r.json()["event"] == "warning", timeout=10)
        assert warning.json()["code"] == "energy_policy"
        assert "default schedule" in warning.json()["message"]
        assert "charge_efficiency" in warning.json()["message"]
        report = await ev_task
        assert report.success, report.reason
        assert not rig.server.sessions[-1].failed
        assert evcc.schedule is not None or scenario == "dynamic"
        assert _charged(evcc), evcc.loop_log  # the default schedule charges


async def test_a_dynamic_replan_that_fails_leaves_the_session_alone(
        broker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async with station_rig(broker) as rig, aggregator(broker.host, broker.port,
                                                      f"{TOPICS.base}/#") as agg:
        rt = rig.port._connectors["1"]
        evcc, ev_task = rig.start_ev(**dynamic_scenario(max_loops=40))
        await until(lambda: len(evcc.loop_log) >= 2, 10, "the charge loop")
        before, loops = rt.provider.prices, len(evcc.loop_log)

        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ArithmeticError("planner bug")

        monkeypatch.setattr(PlanningScheduleProvider, "make_plan", fail)
        reply = await agg.request(TOPICS.command("1", "prices"),
                                  {"request_id": "mid", "buy": 0.2, "sell": 0.1})
        assert reply["ok"] is False and "planner bug" in reply["error"], reply
        assert rt.provider.prices is before and rt.replan is None
        monkeypatch.undo()
        await until(lambda: len(evcc.loop_log) >= loops + 5, 10, "the loop going on")
        report = await ev_task
        assert report.success, report.reason
        assert not rig.server.sessions[-1].failed


async def test_a_replan_that_fails_to_steer_falls_back_to_the_schedule(
        broker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async with station_rig(broker) as rig, aggregator(broker.host, broker.port,
                                                      f"{TOPICS.base}/#") as agg:
        rt = rig.port._connectors["1"]
        evcc, ev_task = rig.start_ev(**dynamic_scenario(max_loops=40))
        await until(lambda: len(evcc.loop_log) >= 2, 10, "the charge loop")
        h0 = int(time.time()) // 3600 * 3600
        reply = await agg.request(TOPICS.command("1", "prices"), {
            "request_id": "day", "slots": [
                {"start": h0 + h * 3600, "end": h0 + (h + 1) * 3600, "buy": 0.1 + h / 100,
                 "sell": 0.05} for h in range(24)]})
        assert reply["ok"], reply
        assert rt.replan is not None

        def fail(plan: Any, t: float) -> float:
            raise ArithmeticError("setpoint bug")

        monkeypatch.setattr(station_port_module, "setpoint_at", fail)
        warning = await agg.wait_for(TOPICS.events("1"),
                                     lambda r: r.json()["event"] == "warning", timeout=10)
        assert warning.json()["code"] == "energy_policy"
        assert "setpoint bug" in warning.json()["message"]
        assert rt.replan is None
        loops = len(evcc.loop_log)
        await until(lambda: len(evcc.loop_log) >= loops + 5, 10, "the loop going on")
        report = await ev_task
        assert report.success, report.reason
