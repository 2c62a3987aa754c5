"""The broker dies and comes back in the middle of a session: the session goes on, the state is
retained again after the reconnect, commands work again; without a broker the charger keeps
its limits and falls back to its own energy policy."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.mqtt.helpers import aggregator
from tests.mqtt.station_rig import TOPICS, dynamic_scenario, station_rig, until


async def test_broker_restart_mid_session_loses_nothing(broker: Any) -> None:
    async with station_rig(broker) as rig:
        evcc, ev_task = rig.start_ev(**dynamic_scenario())
        async with aggregator(broker.host, broker.port, f"{TOPICS.base}/#") as agg:
            first = await agg.wait_for(TOPICS.state("1"), lambda r: r.json()["session_state"] in (
                "charging", "suspended"), timeout=10)
            session_id = first.json()["session_id"]
            assert (await agg.request(TOPICS.command("1", "setpoint"),
                                      {"request_id": 1, "power_kw": 6}))["ok"]
            await agg.wait_for(TOPICS.state("1"), lambda r: r.json()["setpoint_kw"] == 6)
        connects = rig.bridge.connect_count
        broker.stop()  # SIGKILL: retained messages are gone (persistence false)
        await until(lambda: not rig.bridge.connected.is_set(), 5, "the bridge to notice")
        loops = len(evcc.loop_log)
        await asyncio.sleep(0.5)  # the charger does not wait for the broker
        assert len(evcc.loop_log) > loops + 3
        assert rig.conn().charger.setpoint_w == 6000.0  # the last setpoint holds
        broker.start()
        await asyncio.wait_for(rig.bridge.connected.wait(), 10)
        assert rig.bridge.connect_count == connects + 1
        # a new subscriber gets the retained state again: same session, still charging
        async with aggregator(broker.host, broker.port, f"{TOPICS.base}/#") as agg:
            state = await agg.wait_for(TOPICS.state("1"), lambda r: r.retain, timeout=5)
            assert state.json()["session_id"] == session_id
            assert state.json()["session_state"] == "charging"
            assert state.json()["setpoint_kw"] == 6
            online = await agg.wait_for(TOPICS.availability, lambda r: r.retain)
            assert online.payload == b"online"
            await agg.wait_for(TOPICS.telemetry("1"))
            # commands work again
            mark = len(evcc.loop_log)
            assert (await agg.request(TOPICS.command("1", "setpoint"),
                                      {"request_id": 2, "power_kw": -6}))["ok"]
            await until(lambda: len(evcc.loop_log) > mark + 2 and evcc.loop_log[-1][1] < -10,
                        5, "discharge after the reconnect")
            assert (await agg.request(TOPICS.command("1", "stop"), {"request_id": 3}))["ok"]
            report = await ev_task
            assert report.success and report.connections == 1
            stopped = await agg.wait_for(TOPICS.events("1"),
                                         lambda r: r.json()["event"] == "session_stopped")
            assert stopped.json()["session_id"] == session_id
        assert len(rig.server.sessions) == 1 and not rig.server.sessions[0].failed


async def test_without_a_broker_the_local_policy_takes_over(broker: Any) -> None:
    async with station_rig(broker) as rig:
        rig.port.setpoint_fallback_s = 0.3
        evcc, ev_task = rig.start_ev(**dynamic_scenario())
        async with aggregator(broker.host, broker.port, f"{TOPICS.base}/#") as agg:
            await agg.wait_for(TOPICS.state("1"), lambda r: r.json()["session_state"] in (
                "charging", "suspended"), timeout=10)
            assert (await agg.request(TOPICS.command("1", "limits"),
                                      {"request_id": 1, "max_charge_power_kw": 8}))["ok"]
            assert (await agg.request(TOPICS.command("1", "setpoint"),
                                      {"request_id": 2, "power_kw": -5}))["ok"]
            await until(lambda: evcc.loop_log[-1][1] < -5, 5, "discharge")
        broker.stop()
        # the MQTT setpoint expires; the plan (flat tariff: charge) resumes, within the limit
        await until(lambda: rig.conn().charger.setpoint_w is None, 5, "the fallback")
        await until(lambda: evcc.loop_log[-1][1] > 5, 5, "charging by the local policy")
        assert all(i * v <= 8000 * 1.05 for _, i, v in evcc.loop_log[-3:])
        assert rig.conn().charger.limits.max_charge_power == 8000.0
        assert not ev_task.done()
        rig.server.stop_session("1")
        assert (await ev_task).success
        broker.start()  # for the fixture's clean shutdown
