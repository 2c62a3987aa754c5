"""The pilot lifecycle and SLAC wired into the SECC (evse/aio/connector_link.py), in process:
a real SeccServer on loopback, the sim board's pilot, SLAC with the simulated car and modem
over an in-process medium, the simulated EV's -20 session over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from evse.aio.connector_link import ConnectorWiring, LinkSpec
from evse.aio.slac_link import InProcessMedium
from evse.link import pilot as pl
from hal.interfaces import PilotState
from simulators.ev import Evcc
from simulators.slac_ev import EvSlacBehaviour, ev_slac
from tests.aio.helpers import (
    HOST,
    Rig,
    assert_safe_sequence,
    ev_until_loop,
    fast_scenario,
    read_until_eof,
    running,
)

EVSE_MAC = bytes.fromhex("020000000e5e")
CAR_MAC = bytes.fromhex("0a0000000ca1")
LOOSE = dict(match_response=1.0, match_sequence=2.0, time_out_units=30)
EV_LOOSE = EvSlacBehaviour().scaled(5.0)
WAIT = 20.0
# the sim board's budget from an unplug to open contactors, generous for a loaded machine
SAFE_BUDGET = 3.0


@dataclass
class LinkRig:
    rig: Rig
    wiring: ConnectorWiring
    medium: InProcessMedium

    @property
    def board(self) -> object:
        return self.rig.connector().backend.board

    def pilot(self, state: PilotState) -> None:
        self.rig.connector().backend.board.set_ev_pilot_state(state)


async def until(predicate: object, timeout: float = WAIT, what: str = "") -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def linked(**pilot: object) -> AsyncIterator[LinkRig]:
    medium = InProcessMedium()
    async with running(1) as rig:
        spec = LinkSpec(modem="simulated", pilot=pl.PilotConfig(**pilot),  # type: ignore[arg-type]
                        slac=LOOSE, poll_interval=0.02)
        wiring = ConnectorWiring(rig.connector(), rig.server, spec,
                                 transport=medium.port(EVSE_MAC))
        await wiring.start()
        try:
            yield LinkRig(rig, wiring, medium)
        finally:
            await wiring.close()


async def plug_and_match(r: LinkRig) -> None:
    board = r.rig.connector().backend.board
    r.pilot(PilotState.B)
    await until(lambda: board.pwm_duty == 5.0, what="5 % duty")
    await ev_slac(r.medium.port(CAR_MAC), EV_LOOSE)
    await until(lambda: r.wiring.session_allowed, what="session allowed")


async def test_no_v2g_connection_before_the_slac_match() -> None:
    async with linked() as r:
        r.pilot(PilotState.B)
        reader, writer = await asyncio.open_connection(HOST, r.rig.port)
        writer.write(Evcc(fast_scenario("dc")).start(asyncio.get_running_loop().time()))
        await read_until_eof(reader, timeout=WAIT)  # refused: the link allows no session
        writer.close()
        assert r.rig.server.refused == 1
        assert not r.rig.connector().busy


async def test_plug_slac_session_unplug_is_one_story() -> None:
    async with linked() as r:
        events = r.rig.server.station.events()  # the integrators' stream (evse.events)
        await plug_and_match(r)
        r.pilot(PilotState.C)
        await until(lambda: r.wiring.energy_permitted(), what="energy allowed in C")
        scenario = fast_scenario("dc_bpt_scheduled")
        evcc, reader, writer, _ = await ev_until_loop(r.rig, scenario, 3, r.rig.link())
        ctl = r.rig.connector().controller
        assert ctl.hal.power_supply.setpoint[1] != 0.0  # energy flows in C
        unplugged = time.monotonic()
        r.pilot(PilotState.A)
        await r.rig.wait_safe(timeout=SAFE_BUDGET)
        took = time.monotonic() - unplugged
        assert took < SAFE_BUDGET
        # in the board's own (HAL) time: from the pilot's safe state to open contactors at
        # zero current within the controller's open_timeout (+ the contactor's switch time)
        actions = list(ctl.actions)
        start = next(a for a in actions if a.name == "safe_state" and "unplugged" in a.detail)
        opened = next(a for a in actions if a.time >= start.time
                      and a.name.startswith("contactors_open"))
        assert opened.name == "contactors_open"  # at ~0 A, not forced
        assert opened.time - start.time <= ctl.config.open_timeout
        await read_until_eof(reader)  # the connection ends with the unplug
        writer.close()
        assert_safe_sequence(r.rig)
        summary = r.rig.server.sessions[-1]
        times = r.wiring.times
        assert summary.plugged_at == times.plugged_at is not None
        assert summary.slac_matched_at == times.slac_matched_at is not None
        assert summary.unplugged_at == times.unplugged_at is not None
        assert summary.plugged_at < summary.slac_matched_at < summary.unplugged_at
        record = summary.to_dict()
        assert record["unplugged_at"] == times.unplugged_at
        assert "unplugged" in (summary.reason or "")
        assert r.rig.connector().backend.board.pwm_duty == 100.0  # no PWM after the unplug
        names = [e.name for e in r.wiring.events]
        assert names[:3] == ["plugged", "slac_started", "slac_matched"]
        assert names[-1] == "unplugged"
        seen = []
        while (event := events.get_nowait()) is not None:
            seen.append(type(event).__name__)
        events.close()
        # plug-in first, the session, then the unplug (which ended the session)
        assert seen[0] == "Plugged" and seen.count("Unplugged") == 1, seen
        assert seen.index("SessionStarted") < seen.index("SessionEnded"), seen
        assert seen.index("SessionStarted") < seen.index("Unplugged"), seen


async def test_energy_only_in_c_or_d() -> None:
    async with linked() as r:
        await plug_and_match(r)  # the car stays in B: no energy whatever it asks over V2G
        scenario = fast_scenario("dc")
        _, _, writer, _ = await ev_until_loop(r.rig, scenario, 3, r.rig.link())
        ctl = r.rig.connector().controller
        assert ctl.hal.power_supply.setpoint[1] == 0.0
        assert any(a.name == "clamp" and "pilot" in a.detail for a in ctl.actions)
        writer.close()


async def test_back_to_b_while_charging_takes_the_current_to_zero_first() -> None:
    async with linked() as r:
        await plug_and_match(r)
        r.pilot(PilotState.C)
        await until(lambda: r.wiring.energy_permitted())
        _, reader, writer, pending = await ev_until_loop(r.rig, fast_scenario("dc"), 3,
                                                         r.rig.link())
        r.pilot(PilotState.B)  # the car paused or stopped
        ctl = r.rig.connector().controller
        await until(lambda: ctl.safe_state_reached, timeout=SAFE_BUDGET, what="safe state")
        assert_safe_sequence(r.rig)
        writer.write(pending)  # the car's next request: current stays at zero
        await asyncio.sleep(0.2)
        assert ctl.hal.power_supply.setpoint[1] == 0.0
        writer.close()


async def test_pilot_fault_mid_session_gives_the_safe_state() -> None:
    for fault in (PilotState.E, PilotState.F, "invalid"):
        async with linked() as r:
            await plug_and_match(r)
            r.pilot(PilotState.C)
            await until(lambda: r.wiring.energy_permitted())
            _, reader, writer, _ = await ev_until_loop(r.rig, fast_scenario("dc"), 3,
                                                       r.rig.link())
            board = r.rig.connector().backend.board
            if fault == "invalid":
                board._ev_pilot = "X"  # a reading between the bands
            elif fault is PilotState.F:
                board._ev_pilot = PilotState.F  # -12 V read back while we drive PWM
            else:
                r.pilot(fault)  # type: ignore[arg-type]
            await r.rig.wait_safe(timeout=SAFE_BUDGET)
            assert_safe_sequence(r.rig)
            await read_until_eof(reader)
            writer.close()
            assert not r.wiring.session_allowed
            assert "pilot_fault" in [e.name for e in r.wiring.events]


async def test_basic_charging_without_digital_communication_follows_the_limit() -> None:
    async with linked(digital_communication=False, max_current=16.0) as r:
        board = r.rig.connector().backend.board
        r.pilot(PilotState.B)
        await until(lambda: board.pwm_duty == pl.duty_for_current(16.0), what="16 A duty")
        r.pilot(PilotState.C)
        await until(lambda: r.wiring.energy_permitted(), what="energy in C")
        r.wiring.set_current_limit(40.0)  # the energy policy raised the limit
        await until(lambda: board.pwm_duty == pl.duty_for_current(40.0), what="40 A duty")
        assert not r.wiring.session_allowed  # basic charging: no V2G connection
        r.pilot(PilotState.A)
        await until(lambda: board.pwm_duty == 100.0, what="no PWM after unplug")


async def test_the_cars_new_connection_replaces_a_stale_one_without_a_session() -> None:
    async with linked() as r:
        await plug_and_match(r)
        r.pilot(PilotState.C)
        loop = asyncio.get_running_loop()
        # a first connection negotiates supportedAppProtocol, then goes silent: it holds
        # the connector without a session
        reader, stale = await asyncio.open_connection(HOST, r.rig.port)
        stale.write(Evcc(fast_scenario("dc")).start(loop.time()))
        assert await asyncio.wait_for(reader.read(65536), WAIT)
        await until(lambda: r.rig.connector().busy, what="the stale connection bound")
        server = r.rig.server  # after its grace time, a newcomer may push it out
        server.admission_config = dataclasses.replace(server.admission_config, evict_grace=0.2)
        await asyncio.sleep(0.3)
        # the car reconnects on the same link and charges
        _, _, writer, _ = await ev_until_loop(r.rig, fast_scenario("dc"), 2, r.rig.link())
        assert r.rig.server.evicted == 1
        assert await read_until_eof(reader) == b""  # the stale one was closed
        writer.close()
        stale.close()


def test_sim_hw_drives_the_cars_side_of_the_pilot() -> None:
    from hal.backends.serial.protocol import PilotCode
    from simulators.hw import SimulatedHardware, run_command

    with SimulatedHardware(can=None, ev_pilot=PilotCode.A) as hw:
        seen = []
        for command in ("plug", "ready", "ventilation", "pause", "diode", "unplug"):
            assert run_command(hw, command).startswith(f"{command}: done")
            seen.append(hw.mcu.ev_pilot)
        assert seen == [PilotCode.B, PilotCode.C, PilotCode.D, PilotCode.B, PilotCode.E,
                        PilotCode.A]
        assert "pilot " in run_command(hw, "status") and "duty" in run_command(hw, "status")
        with pytest.raises(ValueError):
            hw.set_ev_pilot(PilotCode.F)  # F is the charger's own (duty 0 %)


async def test_the_energy_policys_limit_moves_the_basic_charging_duty() -> None:
    from evse._mqtt_api import LimitsUpdate
    from evse.aio.station_port import SeccStationPort

    async with linked(digital_communication=False, max_current=32.0) as r:
        board = r.rig.connector().backend.board
        port = SeccStationPort(r.rig.server, station_id="ST", plan_schedules=False,
                               report_svg=False)
        r.pilot(PilotState.C)
        await until(lambda: board.pwm_duty == pl.duty_for_current(32.0), what="32 A duty")
        port.set_limits("1", LimitsUpdate(max_charge_current_a=10.0))
        await until(lambda: board.pwm_duty == pl.duty_for_current(10.0), what="10 A duty")
        assert board.pwm_duty == pytest.approx(16.7)


async def test_a_board_that_lost_its_duty_is_told_again() -> None:
    """A serial MCU back from a link loss drives 0 % (state F) until told a duty: the link
    sets the lifecycle's duty again, so the next plug-in is seen."""
    async with linked() as r:
        board = r.rig.connector().backend.board
        board.set_pwm_duty(0.0)  # what the serial backend does on a link loss
        await until(lambda: board.pwm_duty == 100.0, what="the duty set again")
        await plug_and_match(r)  # a plug-in works again
