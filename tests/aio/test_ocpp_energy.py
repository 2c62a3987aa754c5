"""The CSMS's charging profiles bound real sessions (evse/aio/ocpp_energy.py): a simulated -20
EV over TCP against SeccServer on the sim HAL, the OCPP schedule policy as the schedules hook.
A TxDefaultProfile caps the charge power; a V2X profile (2.1 CentralSetpoint with a negative
setpoint, then Idle) makes the car discharge and then stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from evse import events as se
from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_energy import OcppSchedulePolicy
from evse.config import OcppConfig
from evse.hooks import Hooks
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation, iso_time
from simulators.csms import CsmsSimulator
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, fast_scenario, running


def client(tmp_path: Path) -> OcppClient:
    # never connected: the profiles are set as the CSMS's handler would (tested over the
    # WebSocket in test_ocpp_smart_charging.py); here only their effect on the session counts
    cfg = OcppConfig(url="ws://127.0.0.1:9", station_id="CS1", password="p" * 16)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    return OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))


def tx_default(periods: list[dict[str, Any]], start: float) -> dict[str, Any]:
    return {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", "startSchedule":
                                  iso_time(start), "chargingSchedulePeriod": periods}]}


async def session(rig: Any, name: str) -> tuple[Any, list[se.Measurement]]:
    rig.station.bus.measurement_interval = 0.0
    stream = rig.station.events(measurements_max=100_000)
    scenario = fast_scenario(name)
    report = await asyncio.wait_for(run_session(
        scenario, host=HOST, port=rig.port, battery=rig.link(0, dc=True)), 60)
    got: list[se.Measurement] = []
    async with asyncio.timeout(30):
        async for event in stream:
            if isinstance(event, se.Measurement):
                got.append(event)
            if isinstance(event, se.SessionEnded):
                break
    stream.close()
    return report, got


async def test_tx_default_profile_caps_the_charge_power(tmp_path: Path) -> None:
    c = client(tmp_path)
    async with running() as rig:
        report, free = await session(rig, "dc")
        assert report.success
        assert max(m.power_w for m in free) > 8000.0  # the charger alone goes higher
        await rig.wait_safe(timeout=10)
        c.profiles.set(1, tx_default([{"startPeriod": 0, "limit": 6000.0}], time.time() - 1),
                       time.time())
        rig.server.hooks = Hooks(schedules=OcppSchedulePolicy(c, {"1": 1}))
        report, capped = await session(rig, "dc")
        assert report.success
        assert 0 < max(m.power_w for m in capped) <= 6000.0 * 1.02


async def test_v2x_profile_discharges_then_idles(tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    cfg = OcppConfig(url=csms.url, station_id="CS1", password="p" * 16, version="2.1",
                     reconnect_min_s=0.05, reconnect_max_s=0.2)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    c = OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))
    c.start()
    await asyncio.wait_for(c.accepted.wait(), 30)
    t0 = time.time()
    c.profiles.set(1, tx_default([
        {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -6000.0,
         "limit": 11000.0, "dischargeLimit": -8000.0},
        {"startPeriod": 3, "operationMode": "Idle"},
    ], t0 - 1), t0)  # started a second ago (the SECC's TimeAnchor is whole seconds)
    try:
        async with running() as rig:
            rig.server.hooks = Hooks(schedules=OcppSchedulePolicy(c, {"1": 1}))
            report, ms = await session(rig, "dc_bpt_scheduled")
        async with asyncio.timeout(30):
            while not csms.calls("CS1", "NotifyEVChargingSchedule"):
                await asyncio.sleep(0.02)
    finally:
        await c.stop()
        await csms.stop()
    (needs,) = csms.calls("CS1", "NotifyEVChargingNeeds")
    assert needs["evse_id"] == 1
    assert needs["charging_needs"]["requested_energy_transfer"] == "DC_BPT"
    assert needs["charging_needs"]["control_mode"] == "ScheduledControl"
    assert needs["charging_needs"]["v2x_charging_parameters"]["max_discharge_power"] > 0
    (given,) = csms.calls("CS1", "NotifyEVChargingSchedule")
    first = given["charging_schedule"]["charging_schedule_period"][0]
    assert first["limit"] == 0.0 and first["discharge_limit"] == -6000.0
    discharging = [m for m in ms if m.at < t0 + 2.0 and m.power_w < -1000.0]
    assert discharging, [(round(m.at - t0, 2), m.power_w) for m in ms]
    assert min(m.power_w for m in ms) >= -6000.0 * 1.02  # never beyond the setpoint
    late = [m for m in ms if m.at > t0 + 2.5]
    assert late and all(abs(m.power_w) < 300.0 for m in late[-3:]), [
        (round(m.at - t0, 2), m.power_w) for m in late]
    assert not any(m.power_w > 300.0 for m in ms)  # ChargingOnly never came: no charging
    assert report.success, report.reason  # the EV saw its V2G phase


def test_central_setpoints_are_pushed_and_withdrawn_by_the_dead_man(tmp_path: Path) -> None:
    from evse.aio.ocpp_energy import OcppSetpoints
    from evse.protocol.events import PowerBoundUpdated

    c = client(tmp_path)
    now = [1_800_000_000.0]
    sent: list[tuple[str, PowerBoundUpdated]] = []
    sp = OcppSetpoints(c, {"1": 1}, lambda cid, b: sent.append((cid, b)), clock=lambda: now[0])
    assert sp.apply() == now[0] + 3600.0 and sent == []  # nothing from OCPP: nothing pushed
    dyn = tx_default([{"startPeriod": 0, "operationMode": "CentralSetpoint",
                       "setpoint": -5000.0, "dischargeLimit": -7000.0}], now[0])
    dyn.update(chargingProfileKind="Dynamic", dynUpdateInterval=10)
    c.profiles.set(1, dyn, now[0])
    c.profiles_changed()
    assert sp.apply() == now[0] + 10  # look again when the dead-man could fire
    assert sent == [("1", PowerBoundUpdated(None, 7000.0, -5000.0, renegotiate=True))]
    now[0] += 5
    sp.apply()
    assert len(sent) == 1  # unchanged: not sent again
    now[0] += 6  # no update from the CSMS for 11 s
    sp.apply()
    # withdrawn: the local policy again, and a Scheduled session is asked to renegotiate
    # (its schedule was the CSMS's)
    assert sent[1:] == [("1", PowerBoundUpdated(renegotiate=True))]
    now[0] += 30
    sp.apply()
    assert len(sent) == 2  # once


def test_dynamic_profile_updates_that_only_move_the_expiry_ask_no_renegotiation(
        tmp_path: Path) -> None:
    """The CSMS refreshing a Dynamic profile (same limits) only moves its dead-man edge: no
    renegotiation each time; a new limit does ask; the expiry withdraws and asks once."""
    from evse.aio.ocpp_energy import OcppSetpoints
    from evse.protocol.events import PowerBoundUpdated

    c = client(tmp_path)
    now = [1_800_000_000.0]
    sent: list[PowerBoundUpdated] = []
    sp = OcppSetpoints(c, {"1": 1}, lambda cid, b: sent.append(b), clock=lambda: now[0])
    sp.apply()

    def update(limit: float) -> None:
        dyn = tx_default([{"startPeriod": 0, "limit": limit}], now[0])
        dyn.update(chargingProfileKind="Dynamic", dynUpdateInterval=10)
        c.profiles.set(1, dyn, now[0])
        c.profiles_changed()
        sp.apply()

    update(5000.0)
    assert sent == [PowerBoundUpdated(5000.0, 0.0, None, renegotiate=True)]
    for _ in range(3):  # refreshed in time, unchanged
        now[0] += 5
        update(5000.0)
    assert len(sent) == 1
    now[0] += 5
    update(4000.0)
    assert sent[1:] == [PowerBoundUpdated(4000.0, 0.0, None, renegotiate=True)]
    now[0] += 11  # not refreshed: dead-man
    sp.apply()
    assert sent[2:] == [PowerBoundUpdated(renegotiate=True)]
    # GetCompositeSchedule keeps the dead-man edge
    assert c.profiles.composite(1, now[0] - 11, 20)[-1][1] == c.profiles.limits_at(1, now[0])


def test_a_new_price_schedule_alone_asks_renegotiation(tmp_path: Path) -> None:
    """OCPP 2.1: a profile with the same limits but another price schedule: the bound is
    unchanged, the EV's price is stale -> renegotiate; the same price again -> nothing."""
    import copy

    from evse.aio.ocpp_energy import OcppSetpoints
    from evse.protocol.events import PowerBoundUpdated
    from simulators.csms_prices import EXAMPLE_ABSOLUTE_PRICE

    c = client(tmp_path)
    now = [1_800_000_000.0]
    sent: list[PowerBoundUpdated] = []
    sp = OcppSetpoints(c, {"1": 1}, lambda cid, b: sent.append(b), clock=lambda: now[0])
    sp.apply()

    def priced(fee: int) -> dict[str, Any]:
        profile = tx_default([{"startPeriod": 0, "limit": 9000.0}], now[0] - 10)
        price = copy.deepcopy(EXAMPLE_ABSOLUTE_PRICE)
        price["priceRuleStacks"][0]["priceRule"][0]["energyFee"]["value"] = fee
        profile["chargingSchedule"][0]["absolutePriceSchedule"] = price
        return profile

    c.profiles.set(1, priced(32), now[0])
    c.profiles_changed()
    sp.apply()
    assert sent == [PowerBoundUpdated(9000.0, 0.0, None, renegotiate=True)]
    assert c.profiles.price_at(1, now[0]) is not None
    now[0] += 5
    c.profiles.set(1, priced(32), now[0])  # the same price again: nothing moves
    c.profiles_changed()
    sp.apply()
    assert len(sent) == 1
    c.profiles.set(1, priced(40), now[0])  # only the price changed
    c.profiles_changed()
    sp.apply()
    assert sent[1:] == [PowerBoundUpdated(9000.0, 0.0, None, renegotiate=True)]


def test_bounds_follow_periods_and_ask_renegotiation_only_on_profile_changes(
        tmp_path: Path) -> None:
    from evse.aio.ocpp_energy import OcppSetpoints
    from evse.protocol.events import PowerBoundUpdated

    c = client(tmp_path)
    now = [1_800_000_000.0]
    sent: list[PowerBoundUpdated] = []
    sp = OcppSetpoints(c, {"1": 1}, lambda cid, b: sent.append(b), clock=lambda: now[0])
    sp.apply()
    two_periods = tx_default([{"startPeriod": 0, "limit": 9000.0},
                              {"startPeriod": 60, "limit": 4000.0}], now[0])
    c.profiles.set(1, two_periods, now[0])
    c.profiles_changed()
    assert sp.apply() == now[0] + 60  # the next period boundary
    # a profile of 2.0.1 (ChargingOnly): no discharge; the EV's schedule is now stale
    assert sent == [PowerBoundUpdated(9000.0, 0.0, None, renegotiate=True)]
    now[0] += 60  # the boundary: the loop's limit follows, the schedule already had it
    sp.apply()
    assert sent[-1] == PowerBoundUpdated(4000.0, 0.0, None, renegotiate=False)
    c.profiles.set(1, two_periods, now[0] - 60)  # the same profile again: nothing moves
    c.profiles_changed()
    sp.apply()
    assert len(sent) == 2
    c.profiles.clear()
    c.profiles_changed()
    sp.apply()  # withdrawn: unbounded, and the EV may get more again
    assert sent[-1] == PowerBoundUpdated(renegotiate=True)
