"""The CSMS's charging profiles reach ISO 15118-2 and DIN 70121 cars (docs/ocpp.md
"Arbitration"): real SeccServer on the sim HAL, the simulated -2 / DIN EV over TCP, the CSMS
simulator over a real WebSocket (OCPP 2.1), the OCPP schedule policy as the schedules hook and
the composite limit as the connector's power bound (OcppSetpoints -> set_power_bound).

-2: a TxDefaultProfile of 9 kW gives the car PMax <= 9 kW; a TxProfile of 7 kW sent in the
middle of the session caps the loop at once and asks the car to renegotiate
(EVSENotification=ReNegotiation): its new SAScheduleList has PMax <= 7 kW.
DIN: PMax and EVSEMaximumPowerLimit <= the profile's 7 kW (DIN cannot renegotiate: a
mid-session profile reaches it as the loop's limits only); a profile with two periods gives
the DIN car two PMax entries."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_energy import OcppSchedulePolicy, OcppSetpoints
from evse.aio.ocpp_events import OcppEventBridge
from evse.config import OcppConfig
from evse.hooks import Hooks
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from simulators.csms import CsmsSimulator
from simulators.ev.client import Endpoint, run_session
from simulators.ev.din_evcc import DinEvcc, get_din_scenario
from simulators.ev.evcc import Evcc
from simulators.ev.iso2_client import drive_iso2
from simulators.ev.iso2_evcc import ISO2_SCENARIOS, Iso2Evcc
from simulators.ev.messages import value_of
from tests.aio.helpers import HOST, Rig, assert_safe_sequence, fast_scenario, running

STATION = "CS1"
PROTOCOLS = ("iso20", "iso2", "din")


def tx_default(limit_w: float) -> dict[str, Any]:
    return {"evse_id": 1, "charging_profile": {
        "id": 1, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [{"id": 1, "charging_rate_unit": "W",
                               "start_schedule": "2020-01-01T00:00:00Z",
                               "charging_schedule_period": [{"start_period": 0,
                                                             "limit": limit_w}]}]}}


TX_7KW = {"id": 2, "stack_level": 0, "charging_profile_kind": "Relative",
          "charging_schedule": [{"id": 2, "charging_rate_unit": "W",
                                 "charging_schedule_period": [{"start_period": 0,
                                                               "limit": 7000.0}]}]}


@contextlib.asynccontextmanager
async def ocpp_rig(tmp_path: Path, **csms: Any) -> AsyncIterator[tuple[Rig, CsmsSimulator]]:
    sim = CsmsSimulator(**csms)
    await sim.start()
    cfg = OcppConfig(url=sim.url, station_id=STATION, password="p" * 16, version="2.1",
                     reconnect_min_s=0.05, reconnect_max_s=0.2, sampled_interval_s=0.0)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    client = OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))
    try:
        async with running(protocols=PROTOCOLS) as rig:
            rig.server.hooks = Hooks(schedules=OcppSchedulePolicy(client, {"1": 1}))
            bridge = OcppEventBridge(client, rig.station.events, {"1": 1})
            bounds = OcppSetpoints(client, {"1": 1}, rig.server.set_power_bound)
            client.start()
            bridge.start()
            bounds.start()
            await asyncio.wait_for(client.accepted.wait(), 30)
            async with asyncio.timeout(30):
                while STATION not in sim.stations:
                    await asyncio.sleep(0.02)
            try:
                yield rig, sim
            finally:
                await bounds.stop()
                await bridge.stop()
    finally:
        await client.stop()
        await sim.stop()


async def test_iso2_car_gets_the_csms_limit_and_renegotiates_mid_session(tmp_path: Path
                                                                         ) -> None:
    async with ocpp_rig(tmp_path, profile_on_start=TX_7KW, profile_delay=0.3) as (rig, sim):
        res = await sim.call(STATION, "SetChargingProfile", tx_default(9000.0))
        assert res.status == "Accepted"
        await asyncio.sleep(0.1)  # the bound reaches the connector (a task of its own)
        backend = rig.connector().backend
        ev = Iso2Evcc(dataclasses.replace(ISO2_SCENARIOS["iso2_dc"], loops=100_000),
                      battery=backend.ev_battery,
                      on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                           closed))
        task = asyncio.create_task(drive_iso2(ev, Endpoint(HOST, rig.port),
                                              response_timeout=5.0))
        async with asyncio.timeout(20):
            while len(ev.pmax_w) < 2 or len(ev.loop_log) < ev.pmax_at_loop[1] + 20:
                await asyncio.sleep(0.05)
        rig.server.stop_session("1")
        run = await asyncio.wait_for(task, 20)
        assert run.success, run.summary()
        assert sim.profile_answers == ["Accepted"]
        first, second = ev.pmax_w[:2]
        assert first and max(first) <= 9000.0  # the TxDefaultProfile, at the first CPD
        assert "ReNegotiation" in ev.notifications  # the TxProfile came mid-session
        assert second and max(second) <= 7000.0  # the renegotiated schedule
        renegotiated_at = ev.pmax_at_loop[1]
        after = ev.loop_log[renegotiated_at:]
        assert after and all(limit <= 7000.0 for limit, _ in after)
        assert max(power for _, power in after) <= 7000.0 * 1.02
        assert max(power for _, power in ev.loop_log) <= 9000.0 * 1.02
        await rig.wait_safe(timeout=5)
        assert_safe_sequence(rig)


async def test_din_car_gets_the_csms_limit(tmp_path: Path) -> None:
    async with ocpp_rig(tmp_path) as (rig, sim):
        res = await sim.call(STATION, "SetChargingProfile", tx_default(7000.0))
        assert res.status == "Accepted"
        await asyncio.sleep(0.1)
        evcc = DinEvcc(get_din_scenario("din_dc", loop_interval=0.02, ongoing_interval=0.01,
                                        loops=30, msg_timeout=8.0, loop_timeout=2.0),
                       battery=rig.link())
        report = await asyncio.wait_for(run_session(
            evcc.scenario, host=HOST, port=rig.port, tls=False,  # type: ignore[arg-type]
            evcc=evcc), 30)  # type: ignore[arg-type]
        assert report.success, report.summary()
        assert evcc.pmax_w and all(0 < p <= 7000.0 for p in evcc.pmax_w[0])
        assert evcc.loop_log and all(limit <= 7000.0 for limit, _ in evcc.loop_log)
        assert max(power for _, power in evcc.loop_log) <= 7000.0 * 1.02
        assert max(power for _, power in evcc.loop_log) > 3000.0  # it did charge
        await rig.wait_safe(timeout=5)
        assert_safe_sequence(rig)


async def test_din_car_gets_the_csms_schedule_as_pmax_entries(tmp_path: Path) -> None:
    """A profile with two periods (6 kW now, 4 kW from 10 min on): the DIN car's
    SAScheduleList has two PMax entries (only with a CSMS profile; see test_din_handlers)."""
    async with ocpp_rig(tmp_path) as (rig, sim):
        profile = tx_default(6000.0)
        schedule = profile["charging_profile"]["charging_schedule"][0]
        schedule["start_schedule"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        schedule["charging_schedule_period"].append({"start_period": 600, "limit": 4000.0})
        res = await sim.call(STATION, "SetChargingProfile", profile)
        assert res.status == "Accepted"
        await asyncio.sleep(0.1)
        evcc = DinEvcc(get_din_scenario("din_dc", loop_interval=0.02, ongoing_interval=0.01,
                                        loops=30, msg_timeout=8.0, loop_timeout=2.0),
                       battery=rig.link())
        report = await asyncio.wait_for(run_session(
            evcc.scenario, host=HOST, port=rig.port, tls=False,  # type: ignore[arg-type]
            evcc=evcc), 30)  # type: ignore[arg-type]
        assert report.success, report.summary()
        assert evcc.pmax_w[0] == [6000.0, 4000.0], evcc.pmax_w
        assert evcc.loop_log and all(limit <= 6000.0 for limit, _ in evcc.loop_log)
        assert max(power for _, power in evcc.loop_log) > 3000.0  # it did charge
        # [K16] the CSMS heard what the DIN car was given: both periods
        async with asyncio.timeout(10):
            while not sim.calls(STATION, "NotifyEVChargingSchedule"):
                await asyncio.sleep(0.05)
        (told,) = sim.calls(STATION, "NotifyEVChargingSchedule")
        periods = told["charging_schedule"]["charging_schedule_period"]
        assert [p["limit"] for p in periods] == [6000.0, 4000.0]
        await rig.wait_safe(timeout=5)
        assert_safe_sequence(rig)


class _Iso20Ev(Evcc):
    """The -20 EV, recording each DC_ChargeLoopRes: (schedules received so far,
    EVSEMaximumChargePower, EVSEPresentCurrent x EVSEPresentVoltage)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop_log: list[tuple[int, float, float]] = []

    def _on_DC_ChargeLoopRes(self, msg: Any, now: float) -> None:  # noqa: N802
        mode = msg.scheduled_dc_cl_res_control_mode
        self.loop_log.append((self.schedules_received,
                              value_of(mode.evse_maximum_charge_power),
                              value_of(msg.evse_present_current)
                              * value_of(msg.evse_present_voltage)))
        super()._on_DC_ChargeLoopRes(msg, now)


async def test_iso20_scheduled_session_follows_a_mid_session_profile(tmp_path: Path) -> None:
    async with ocpp_rig(tmp_path, profile_on_start=TX_7KW, profile_delay=0.3) as (rig, sim):
        res = await sim.call(STATION, "SetChargingProfile", tx_default(9000.0))
        assert res.status == "Accepted"
        await asyncio.sleep(0.1)
        evcc = _Iso20Ev(fast_scenario("dc", max_loops=150), battery=rig.link())
        report = await asyncio.wait_for(run_session(
            evcc.scenario, host=HOST, port=rig.port, tls=False, evcc=evcc), 60)
        assert report.success, report.reason
        assert sim.profile_answers == ["Accepted"]
        assert any(n.endswith(":ScheduleRenegotiation") for n in evcc.evse_notifications)
        assert evcc.renegotiations >= 1 and evcc.schedule is not None
        assert max(p for _, p in evcc.schedule.charging) <= 7000.0  # the new schedule
        # [K16] the CSMS hears what the EV accepted each time: 9 kW, then 7 kW
        async with asyncio.timeout(10):
            while len(sim.calls(STATION, "NotifyEVChargingSchedule")) < 2:
                await asyncio.sleep(0.05)
        told = [max(p["limit"] for p in c["charging_schedule"]["charging_schedule_period"])
                for c in sim.calls(STATION, "NotifyEVChargingSchedule")]
        assert told[0] <= 9000.0 and told[-1] <= 7000.0, told
        first = [(lim, p) for n, lim, p in evcc.loop_log if n == 1]
        second = [(lim, p) for n, lim, p in evcc.loop_log if n >= 2]
        assert first and all(lim <= 9000.0 for lim, _ in first)
        assert second and all(lim <= 7000.0 for lim, _ in second)
        assert max(p for _, p in second) <= 7000.0 * 1.02
        # between the profile and the renegotiation the loop's limit already followed it
        capped = [lim for lim, _ in first if lim <= 7000.0]
        assert capped, first[-5:]
        await rig.wait_safe(timeout=5)
        assert_safe_sequence(rig)


async def test_iso20_scheduled_session_renegotiates_when_a_dynamic_profile_expires(
        tmp_path: Path) -> None:
    """A Dynamic TxDefaultProfile (5 kW, dynUpdateInterval 2 s) that the CSMS does not
    update: its dead-man expiry withdraws the bound and asks the running Scheduled -20
    session to renegotiate; the new schedule is the local policy's again (above 5 kW)."""
    async with ocpp_rig(tmp_path) as (rig, sim):
        profile = tx_default(5000.0)
        profile["charging_profile"].update(charging_profile_kind="Dynamic",
                                           dyn_update_interval=2)
        del profile["charging_profile"]["charging_schedule"][0]["start_schedule"]
        res = await sim.call(STATION, "SetChargingProfile", profile)
        assert res.status == "Accepted"
        await asyncio.sleep(0.1)
        evcc = _Iso20Ev(fast_scenario("dc", max_loops=250), battery=rig.link())
        report = await asyncio.wait_for(run_session(
            evcc.scenario, host=HOST, port=rig.port, tls=False, evcc=evcc), 60)
        assert report.success, report.reason
        assert any(n.endswith(":ScheduleRenegotiation") for n in evcc.evse_notifications)
        assert evcc.renegotiations >= 1 and evcc.schedule is not None
        assert max(p for _, p in evcc.schedule.charging) > 5000.0  # the local policy's
        first = [(lim, p) for n, lim, p in evcc.loop_log if n == 1]
        assert first and min(lim for lim, _ in first) <= 5000.0  # bounded before expiry
        await rig.wait_safe(timeout=5)
        assert_safe_sequence(rig)
