"""The CSMS's limits bound the local energy manager (docs/ocpp.md "Arbitration"): an
aggregator steers a Dynamic DC_BPT session over MQTT (real mosquitto) while the CSMS simulator
sets charging profiles over a real WebSocket (OCPP 2.1). The car never gets more than the
CSMS's composite allows: ExternalSetpoint limits both directions, ChargingOnly forbids
discharge, Idle any flow. A standing MQTT setpoint is clamped into the bound (and applies
again once the CSMS clears its profiles); the state shows the bounded limits, and a new
setpoint beyond them is refused. What counts is the simulated EV's own record of each
DC_ChargeLoopRes (EVSEPresentCurrent x EVSEPresentVoltage)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_energy import OcppSetpoints
from evse.config import OcppConfig
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from simulators.csms import CsmsSimulator
from tests.mqtt.helpers import aggregator
from tests.mqtt.station_rig import TOPICS, dynamic_scenario, station_rig, until

STATION = "CS1"


def tx_default(pid: int, level: int, period: dict[str, Any]) -> dict[str, Any]:
    return {"evse_id": 1, "charging_profile": {
        "id": pid, "stack_level": level, "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [{"id": pid, "charging_rate_unit": "W",
                               "start_schedule": "2020-01-01T00:00:00Z",
                               "charging_schedule_period": [{"start_period": 0, **period}]}]}}


def settled(evcc: Any, since: int, watts: float, tol: float = 300.0) -> bool:
    log = evcc.loop_log[since:]
    return len(log) >= 3 and all(abs(i * v - watts) <= tol for _, i, v in log[-3:])


def worst(evcc: Any, since: int) -> tuple[float, float]:
    """(most charge, most discharge) W in the EV's loop log since `since`."""
    powers = [i * v for _, i, v in evcc.loop_log[since:]] or [0.0]
    return max(powers), min(powers)


async def test_csms_limits_bound_the_mqtt_setpoints(broker: Any, tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    cfg = OcppConfig(url=csms.url, station_id=STATION, password="p" * 16, version="2.1",
                     reconnect_min_s=0.05, reconnect_max_s=0.2, sampled_interval_s=0.0)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    client = OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))
    client.start()
    try:
        async with station_rig(broker, tmp_path=tmp_path) as rig, aggregator(
                broker.host, broker.port, f"{TOPICS.base}/#") as agg:
            bounds = OcppSetpoints(client, {"1": 1}, rig.server.set_power_bound)
            bounds.start()
            await asyncio.wait_for(client.accepted.wait(), 30)
            async with asyncio.timeout(30):
                while STATION not in csms.stations:
                    await asyncio.sleep(0.02)
            evcc, ev_task = rig.start_ev(**dynamic_scenario())
            await agg.wait_for(TOPICS.state("1"), lambda r: r.json()["control_mode"] ==
                               "Dynamic", timeout=10)

            async def setpoint(kw: float) -> None:
                reply = await agg.request(TOPICS.command("1", "setpoint"),
                                          {"request_id": f"sp{kw}", "power_kw": kw})
                assert reply["ok"], reply

            await setpoint(-9.0)
            mark = len(evcc.loop_log)
            await until(lambda: settled(evcc, mark, -9000.0), 5.0, "the EV at -9 kW")

            # the CSMS: ExternalSetpoint within 6 kW charge / 4 kW discharge
            res = await csms.call(STATION, "SetChargingProfile", tx_default(1, 0, {
                "operation_mode": "ExternalSetpoint", "limit": 6000.0,
                "discharge_limit": -4000.0}))
            assert res.status == "Accepted"
            mark = len(evcc.loop_log)
            await until(lambda: settled(evcc, mark, -4000.0), 5.0, "discharge bounded to 4 kW")
            # the aggregator sees the CSMS's bound as its limits, and the setpoint that applies
            await agg.wait_for(TOPICS.state("1"), lambda r: (
                r.json()["limits"]["max_charge_power_kw"] == 6.0
                and r.json()["limits"]["max_discharge_power_kw"] == 4.0
                and r.json()["setpoint_kw"] == -4.0), timeout=5)
            reply = await agg.request(TOPICS.command("1", "setpoint"),
                                      {"request_id": "too much", "power_kw": 11.0})
            assert not reply["ok"] and "out of range" in reply["error"], reply
            await setpoint(5.0)
            mark = len(evcc.loop_log)
            await until(lambda: settled(evcc, mark, 5000.0), 5.0, "the EV at 5 kW")
            assert worst(evcc, mark + 3)[0] <= 6000.0 * 1.02
            await setpoint(-3.0)
            mark = len(evcc.loop_log)
            await until(lambda: settled(evcc, mark, -3000.0), 5.0, "the EV at -3 kW")

            # ChargingOnly (2.1's default mode): the standing discharge setpoint gives none
            res = await csms.call(STATION, "SetChargingProfile", tx_default(2, 1, {
                "limit": 6000.0}))
            assert res.status == "Accepted"
            mark = len(evcc.loop_log)
            await until(lambda: settled(evcc, mark, 0.0), 5.0, "no discharge (ChargingOnly)")
            await asyncio.sleep(0.5)
            assert worst(evcc, mark + 3)[1] >= -300.0
            reply = await agg.request(TOPICS.command("1", "setpoint"),
                                      {"request_id": "discharge", "power_kw": -1.0})
            assert not reply["ok"], reply

            # Idle: no flow either way
            res = await csms.call(STATION, "SetChargingProfile", tx_default(3, 2, {
                "operation_mode": "Idle", "limit": 6000.0}))
            assert res.status == "Accepted"
            mark = len(evcc.loop_log)
            await asyncio.sleep(0.5)
            assert max(abs(p) for p in worst(evcc, mark + 3)) <= 300.0
            reply = await agg.request(TOPICS.command("1", "setpoint"),
                                      {"request_id": "charge", "power_kw": 1.0})
            assert not reply["ok"], reply

            # the CSMS clears its profiles: the aggregator's setpoint applies again
            res = await csms.call(STATION, "ClearChargingProfile", {})
            assert res.status == "Accepted"
            mark = len(evcc.loop_log)
            await until(lambda: settled(evcc, mark, -3000.0), 5.0, "the EV at -3 kW again")

            reply = await agg.request(TOPICS.command("1", "stop"), {"request_id": "s"})
            assert reply["ok"], reply
            report = await ev_task
            assert report.success, report.reason
            await bounds.stop()
    finally:
        await client.stop()
        await csms.stop()
