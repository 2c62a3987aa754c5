"""The CSMS simulator sends a V2X TxProfile in the middle of a -20 Dynamic BPT session (2.1
CentralSetpoint, negative setpoint): the station takes it, pushes the setpoint into the running
session, and the car discharges at that setpoint (without the profile the local Dynamic
policy of this rig discharges far harder, beyond 30 kW: the bound below fails then). Real
WebSocket, real SECC, simulated EV."""

from __future__ import annotations

import asyncio
from pathlib import Path

from evse import events as se
from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_energy import OcppSetpoints
from evse.aio.ocpp_events import OcppEventBridge
from evse.config import OcppConfig
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from simulators.csms import CsmsSimulator
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, fast_scenario, running

V2X = {"id": 50, "stack_level": 1, "charging_profile_kind": "Relative",
       "charging_schedule": [{"id": 50, "charging_rate_unit": "W",
                              "charging_schedule_period": [{
                                  "start_period": 0, "operation_mode": "CentralSetpoint",
                                  "setpoint": -5000.0, "discharge_limit": -8000.0,
                                  "limit": 11000.0}]}]}


async def test_csms_v2x_profile_mid_session_makes_the_car_discharge(tmp_path: Path) -> None:
    csms = CsmsSimulator(profile_on_start=V2X, profile_delay=0.3)
    await csms.start()
    cfg = OcppConfig(url=csms.url, station_id="CS1", password="p" * 16, version="2.1",
                     sampled_interval_s=0.0, reconnect_min_s=0.05, reconnect_max_s=0.2)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    client = OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))
    try:
        async with running() as rig:
            rig.station.bus.measurement_interval = 0.0
            stream = rig.station.events(measurements_max=100_000)
            bridge = OcppEventBridge(client, rig.station.events, {"1": 1})
            setpoints = OcppSetpoints(client, {"1": 1}, rig.server.set_power_bound)
            client.start()
            bridge.start()
            setpoints.start()
            await asyncio.wait_for(client.accepted.wait(), 30)
            scenario = fast_scenario("dc_bpt_dynamic", max_loops=80, loop_interval=0.05)
            report = await asyncio.wait_for(run_session(
                scenario, host=HOST, port=rig.port, battery=rig.link(0, dc=True)), 60)
            ms: list[se.Measurement] = []
            async with asyncio.timeout(30):
                async for event in stream:
                    if isinstance(event, se.Measurement):
                        ms.append(event)
                    if isinstance(event, se.SessionEnded):
                        break
            await setpoints.stop()
            await bridge.stop()
        assert csms.profile_answers == ["Accepted"]
        assert report.energy_discharged_wh > 0, report.reason
        assert min(m.power_w for m in ms) < -3000.0
        assert min(m.power_w for m in ms) >= -5000.0 * 1.02  # no more than the setpoint
    finally:
        await client.stop()
        await csms.stop()
