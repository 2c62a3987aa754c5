"""OCPP from a real session: a simulated -20 DC_BPT EV over TCP against SeccServer on the sim
HAL; the session event stream drives the OCPP client (evse/aio/ocpp_events.py), which talks to
the CSMS simulator over a real WebSocket. The discharge shows up in Export measurands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_events import OcppEventBridge
from evse.config import OcppConfig
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from simulators.csms import CsmsSimulator
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, fast_scenario, running

STATION = "CS1"


def measurand(event: dict[str, Any], name: str) -> list[float]:
    return [sv["value"] for mv in event.get("meter_value", [])
            for sv in mv["sampled_value"] if sv["measurand"] == name]


async def test_dc_bpt_session_discharge_in_export_register(tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    cfg = OcppConfig(url=csms.url, station_id=STATION, password="x" * 16,
                     sampled_interval_s=0.2, reconnect_min_s=0.05, reconnect_max_s=0.2)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    client = OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))
    try:
        async with running(auto_authorize=False, authorize=lambda r, c: True) as rig:
            rig.station.bus.measurement_interval = 0.05
            bridge = OcppEventBridge(client, rig.station.events, {"1": 1})
            client.start()
            bridge.start()
            await asyncio.wait_for(client.accepted.wait(), 30)
            scenario = fast_scenario("dc_bpt_scheduled")
            report = await asyncio.wait_for(
                run_session(scenario, host=HOST, port=rig.port,
                            battery=rig.link(0, dc=scenario.service.is_dc)), 60)
            assert report.success
            summary = rig.server.sessions[-1]
            async with asyncio.timeout(30):
                while not any(e["event_type"] == "Ended"
                              for e in csms.calls(STATION, "TransactionEvent")):
                    await asyncio.sleep(0.05)
            # the status travels apart from the queued Ended: give it a moment too
            for _ in range(100):
                if csms.calls(STATION, "StatusNotification")[-1][
                        "connector_status"] == "Available":
                    break
                await asyncio.sleep(0.05)
            await bridge.stop()
        events = csms.calls(STATION, "TransactionEvent")
        assert [e["seq_no"] for e in events] == list(range(len(events)))
        assert events[0]["event_type"] == "Started"
        assert events[0]["transaction_info"]["transaction_id"] == summary.session_id
        assert "Authorized" in [e["trigger_reason"] for e in events]
        assert summary.energy_out_wh > 0  # the EV did discharge
        ended = events[-1]
        assert ended["event_type"] == "Ended"
        assert measurand(ended, "Energy.Active.Export.Register") == [
            round(summary.energy_out_wh, 3)]
        assert measurand(ended, "Energy.Active.Import.Register") == [
            round(summary.energy_in_wh, 3)]
        periodic = [e for e in events if e["trigger_reason"] == "MeterValuePeriodic"]
        assert periodic, "no sampled meter values"
        assert max(v for e in periodic for v in measurand(e, "Power.Active.Export")) > 0
        statuses = [s["connector_status"] for s in csms.calls(STATION, "StatusNotification")]
        assert statuses == ["Available", "Occupied", "Available"]
    finally:
        await client.stop()
        await csms.stop()
