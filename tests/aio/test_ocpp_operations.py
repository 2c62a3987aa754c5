"""CSMS-initiated operations over a real WebSocket against a real session: RequestStopTransaction
stops the simulated EV's session (Ended: RemoteStop / Remote), TriggerMessage makes the station
send StatusNotification and Heartbeat now, and answers NotImplemented for what it cannot."""

from __future__ import annotations

import asyncio
from pathlib import Path

from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_events import OcppEventBridge, remote_stop
from evse.config import OcppConfig
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from simulators.csms import CsmsSimulator
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, fast_scenario, running

STATION = "CS1"


async def test_request_stop_and_trigger_message(tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    cfg = OcppConfig(url=csms.url, station_id=STATION, password="p" * 16,
                     sampled_interval_s=0.0, reconnect_min_s=0.05, reconnect_max_s=0.2)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    client = OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))
    try:
        async with running() as rig:
            bridge = OcppEventBridge(client, rig.station.events, {"1": 1})
            client.request_stop = remote_stop(bridge, rig.server.stop_session)
            client.start()
            bridge.start()
            await asyncio.wait_for(client.accepted.wait(), 30)
            assert (await csms.call(STATION, "RequestStopTransaction",
                                    {"transaction_id": "nope"})).status == "Rejected"
            scenario = fast_scenario("dc", max_loops=2000, loop_interval=0.02)
            ev = asyncio.create_task(run_session(scenario, host=HOST, port=rig.port,
                                                 battery=rig.link(0, dc=True)))
            async with asyncio.timeout(30):
                while not csms.calls(STATION, "TransactionEvent"):
                    await asyncio.sleep(0.02)
            tx_id = csms.calls(STATION, "TransactionEvent")[0]["transaction_info"][
                "transaction_id"]
            n_status = len(csms.calls(STATION, "StatusNotification"))
            res = await csms.call(STATION, "TriggerMessage",
                                  {"requested_message": "StatusNotification"})
            assert res.status == "Accepted"
            res = await csms.call(STATION, "TriggerMessage", {"requested_message": "Heartbeat"})
            assert res.status == "Accepted"
            res = await csms.call(STATION, "TriggerMessage",
                                  {"requested_message": "MeterValues"})
            assert res.status == "Accepted"  # MeterValues now (ocpp_operations)
            res = await csms.call(STATION, "RequestStopTransaction", {"transaction_id": tx_id})
            assert res.status == "Accepted"
            report = await asyncio.wait_for(ev, 30)
            assert report.loops < 2000  # stopped long before the EV's own end
            async with asyncio.timeout(30):
                while csms.calls(STATION, "TransactionEvent")[-1]["event_type"] != "Ended":
                    await asyncio.sleep(0.02)
            await bridge.stop()
        ended = csms.calls(STATION, "TransactionEvent")[-1]
        assert ended["trigger_reason"] == "RemoteStop"
        assert ended["transaction_info"]["stopped_reason"] == "Remote"
        statuses = csms.calls(STATION, "StatusNotification")[n_status:]
        assert statuses and statuses[0]["connector_status"] == "Occupied"  # the triggered one
        assert csms.calls(STATION, "Heartbeat")
    finally:
        await client.stop()
        await csms.stop()


async def test_reset_on_idle_waits_and_immediate_stops_the_session(tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    cfg = OcppConfig(url=csms.url, station_id=STATION, password="p" * 16,
                     sampled_interval_s=0.0, reconnect_min_s=0.05, reconnect_max_s=0.2)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    client = OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))
    resets: list[float] = []
    try:
        async with running() as rig:
            bridge = OcppEventBridge(client, rig.station.events, {"1": 1})
            client.request_stop = remote_stop(bridge, rig.server.stop_session)
            client.start()
            bridge.start()
            await asyncio.wait_for(client.accepted.wait(), 30)
            res = await csms.call(STATION, "Reset", {"type": "Immediate"})
            assert res.status == "Rejected"  # nobody to reset the station yet
            client.on_reset = lambda: resets.append(1.0)
            assert (await csms.call(STATION, "Reset", {"type": "Immediate", "evse_id": 1})
                    ).status == "Rejected"  # no EVSE-level reset
            scenario = fast_scenario("dc", max_loops=2000, loop_interval=0.02)
            ev = asyncio.create_task(run_session(scenario, host=HOST, port=rig.port,
                                                 battery=rig.link(0, dc=True)))
            async with asyncio.timeout(30):
                while not client.tracker.open_transactions:
                    await asyncio.sleep(0.02)
            res = await csms.call(STATION, "Reset", {"type": "OnIdle"})
            assert res.status == "Scheduled"
            await asyncio.sleep(0.5)
            assert resets == [] and not ev.done()  # the session goes on
            res = await csms.call(STATION, "Reset", {"type": "Immediate"})
            assert res.status == "Accepted"
            report = await asyncio.wait_for(ev, 30)
            assert report.loops < 2000
            async with asyncio.timeout(30):
                while not resets:
                    await asyncio.sleep(0.02)
            await bridge.stop()
        assert resets == [1.0]  # once, after the session ended
        ended = csms.calls(STATION, "TransactionEvent")[-1]
        assert ended["event_type"] == "Ended"  # sent before the reset
        assert ended["trigger_reason"] == "ResetCommand"
        assert ended["transaction_info"]["stopped_reason"] == "ImmediateReset"
    finally:
        await client.stop()
        await csms.stop()


async def test_request_start_authorizes_the_next_session_without_authorize(
        tmp_path: Path) -> None:
    from evse.aio.ocpp_auth import OcppAuthorizer
    from evse.hooks import Hooks

    csms = CsmsSimulator()  # accepts no token: an Authorize would deny the EV
    await csms.start()
    cfg = OcppConfig(url=csms.url, station_id=STATION, password="p" * 16,
                     sampled_interval_s=0.0, reconnect_min_s=0.05, reconnect_max_s=0.2)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    client = OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))
    try:
        async with running(auto_authorize=False) as rig:
            rig.server.hooks = Hooks(authorizer=OcppAuthorizer(client, evse_ids={"1": 1}))
            bridge = OcppEventBridge(client, rig.station.events, {"1": 1})
            client.start()
            bridge.start()
            await asyncio.wait_for(client.accepted.wait(), 30)
            token = {"id_token": "APP-USER-7", "type": "Central"}
            assert (await csms.call(STATION, "RequestStartTransaction", {
                "id_token": token, "remote_start_id": 77, "evse_id": 9})).status == "Rejected"
            assert (await csms.call(STATION, "RequestStartTransaction", {
                "id_token": token, "remote_start_id": 77, "evse_id": 1})).status == "Accepted"
            report = await asyncio.wait_for(run_session(
                fast_scenario("dc", max_loops=10), host=HOST, port=rig.port,
                battery=rig.link(0, dc=True)), 60)
            assert report.success, report.reason
            async with asyncio.timeout(30):
                while not any(e["event_type"] == "Ended"
                              for e in csms.calls(STATION, "TransactionEvent")):
                    await asyncio.sleep(0.02)
            await bridge.stop()
        assert csms.calls(STATION, "Authorize") == []
        started = [e for e in csms.calls(STATION, "TransactionEvent")
                   if e["trigger_reason"] == "RemoteStart"]
        assert len(started) == 1
        assert started[0]["id_token"] == {"id_token": "APP-USER-7", "type": "Central"}
        assert started[0]["transaction_info"]["remote_start_id"] == 77
        assert client.remote_starts == {}  # used once
    finally:
        await client.stop()
        await csms.stop()
