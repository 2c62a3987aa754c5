"""The charger on its hardware backends, end to end: `SeccServer` with the composite backend
(serial over a real pty to the simulated safety MCU + bidirectional CAN power modules on a
python-can bus) under the safety supervisor, against the simulated EV over loopback TCP.

Everything runs on the real clock (the MCU and the modules in threads, `simulators.hw`);
only the simulated isolation monitor measures faster than the default. Each fault is
injected in the middle of a session and must reach the safe state with the current at zero
before the contacts open, both in the charger's records (controller and supervisor
actions) and physically (`PowerTrace`: the current the modules carried at the moment the
MCU's contacts opened), be reported (EV sees FAILED with EVSENotification=Terminate, the
trip is in the session record), leave no contactor coil energised and no session stuck,
and the next session must succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from evse.aio.app import SeccOptions, build_station
from evse.aio.secc_server import SeccServer, Station
from evse.control import check_safe_sequence
from evse.control.supervision import SupervisedController
from evse.energy.schedule import DefaultScheduleProvider
from evse.protocol.iso20.timeouts import Timeouts
from hal.backends.can import CanBackend, ModuleHealth
from hal.backends.serial import SerialBackend
from hal.supervisor import SafetySupervisor, TripReason
from simulators.ev.client import run_session
from simulators.hw import SimulatedHardware
from tests.aio.helpers import fast_scenario
from tests.conftest import ROOT

HOST = "127.0.0.1"
TIMEOUTS = Timeouts(close_after_session_stop=0.3, charge_loop_sequence=1.0)
_channels = itertools.count()


@dataclasses.dataclass
class HwRig:
    hw: SimulatedHardware
    server: SeccServer
    station: Station

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    @property
    def controller(self) -> SupervisedController:
        ctl = self.station.connectors[0].controller
        assert isinstance(ctl, SupervisedController)
        return ctl

    @property
    def supervisor(self) -> SafetySupervisor:
        sup = self.station.connectors[0].backend
        assert isinstance(sup, SafetySupervisor)
        return sup

    @property
    def serial(self) -> SerialBackend:
        board = self.supervisor.backend.sources["board"]  # type: ignore[attr-defined]
        assert isinstance(board, SerialBackend)
        return board

    @property
    def can(self) -> CanBackend:
        psu = self.supervisor.backend.sources["power_supply"]  # type: ignore[attr-defined]
        assert isinstance(psu, CanBackend)
        return psu

    async def session(self, name: str = "dc", timeout: float = 20.0, **changes: Any) -> Any:
        if name == "dc":  # long enough that real-time power modules ramp and energy moves
            changes.setdefault("max_loops", 30)
        scenario = fast_scenario(name, speedup=1.0, **changes)
        return await asyncio.wait_for(
            run_session(scenario, host=HOST, port=self.port), timeout)

    async def wait_safe(self, timeout: float = 3.0) -> None:
        """Until the connector is free and in the safe state (supervisor's too, if tripped)."""
        c = self.station.connectors[0]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            sup_ok = not self.supervisor.tripped or self.supervisor.safe_state_reached
            if c.controller.safe_state_reached and not c.busy and sup_ok:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"not safe/free: {c.controller.status()} busy={c.busy} "
                             f"actions={list(c.controller.actions)[-8:]}")


@contextlib.asynccontextmanager
async def charger(*, discharge_window: tuple[int, int] = (1, 2),
                  supervisor: dict[str, Any] | None = None,
                  modules_in_charger: bool = False) -> AsyncIterator[HwRig]:
    """The charger on `serial:PTY,can:virtual:NAME,sim` (modules in a thread of the
    simulated hardware) or, with `modules_in_charger`, on `serial:PTY,can:virtual+sim:NAME,
    sim`; isolation monitor and meter simulated, explicitly (--allow-simulated-parts)."""
    channel = f"hw-test-{os.getpid()}-{next(_channels)}"
    hw = SimulatedHardware(can=None if modules_in_charger else f"virtual:{channel}")
    hw.start()
    spec = hw.hal_spec
    if modules_in_charger:
        spec = spec.replace("virtual+sim", f"virtual+sim:{channel}")
    try:
        options = SeccOptions(
            address=HOST, hal=spec, allow_plain_tcp_iso20=True, port=0,
            allow_simulated_parts=True,
            discharge_window=discharge_window, supervisor_options=supervisor or {},
            hal_options={"sim": {"imd_measuring_time": 0.2}},
        )
        station, config = build_station(options)
        config = dataclasses.replace(
            config, timeouts=TIMEOUTS,
            schedule_provider=DefaultScheduleProvider(discharge_window=discharge_window))
        server = SeccServer(config, station, address=HOST, port=0, poll_interval=0.01,
                            sample_interval=0.05)
        await server.start()
        try:
            rig = HwRig(hw, server, station)
            await _wait(lambda: rig.serial.link.up, 3.0, "the MCU link never came up")
            yield rig
        finally:
            await server.close()
    finally:
        hw.close()


async def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(what)
        await asyncio.sleep(0.005)


async def _charging(rig: HwRig, amps: float = 20.0) -> None:
    """Until the modules carry at least `amps` into the battery (the charge loop runs)."""
    await _wait(lambda: (rig.hw.rack is not None and rig.hw.rack.total_current > amps), 8.0,
                "the EV never charged")


async def _discharging(rig: HwRig, amps: float = 20.0) -> None:
    await _wait(lambda: (rig.hw.rack is not None and rig.hw.rack.total_current < -amps), 8.0,
                "the EV never discharged")


def assert_safe(rig: HwRig) -> None:
    """Current zero before the contacts opened, in the records and physically; nothing
    energised; no session holding the connector."""
    ctl, sup, hw = rig.controller, rig.supervisor, rig.hw
    problem = check_safe_sequence(ctl.actions)
    assert problem is None, (problem, list(ctl.actions))
    assert ctl.safe_state_reached, ctl.status()
    # the supervisor: power off first, every opening after it at ~0 A (or a bounded forced one)
    names = [a.action for a in sup.actions]
    for i, name in enumerate(names):
        if name.startswith("open_contactors") and "re-assert" not in sup.actions[i].detail:
            assert "power_off" in names[:i], names
            if name == "open_contactors":
                assert abs(sup.actions[i].current) <= sup.zero_current, sup.actions
    # physically: the modules carried ~0 A whenever the contacts opened
    assert not hw.trace.breaks_under_load(), hw.trace.breaks
    assert hw.rack is not None and abs(hw.rack.total_current) < 0.5
    assert not hw.mcu.contactors_commanded  # no contactor coil energised
    assert not sup.board.contactors_commanded_closed
    assert not rig.station.connectors[0].busy


def assert_terminated(report: Any) -> None:
    """The EV was told: a FAILED response carrying EVSENotification=Terminate."""
    assert not report.success, report.summary()
    assert any(n.endswith(":Terminate") for n in report.evse_notifications), report.summary()
    assert "FAILED" in report.reason, report.reason


def trip_reasons(summary: Any) -> list[str]:
    return [t.reason for t in summary.safety_trips]


# -- the full session ------------------------------------------------------------------------


async def test_dc_bpt_session_charges_and_discharges_on_serial_and_can() -> None:
    async with charger() as rig:
        assert isinstance(rig.supervisor, SafetySupervisor)  # on by default for real hardware
        assert rig.supervisor.limits is not None
        report = await rig.session("dc_bpt_scheduled")
        assert report.success, report.summary()
        assert report.energy_charged_wh > 0 and report.energy_discharged_wh > 0
        await rig.wait_safe()
        summary = rig.server.sessions[-1]
        assert not summary.failed and summary.service_id == 6 and summary.bidirectional
        assert summary.energy_in_wh > 0 and summary.energy_out_wh > 0
        currents = [a for _, _, a, _ in summary.samples]
        assert max(currents) > 20 and min(currents) < -20  # the sign changed
        assert rig.hw.trace.max_current > 20 and rig.hw.trace.min_current < -20
        # the supervisor watched the EV's limits: 420 V max (EV), 100 A (2 modules)
        assert rig.supervisor.limits.max_voltage == 420.0
        assert rig.supervisor.limits.max_charge_current == 100.0
        assert not rig.supervisor.trips and summary.safety_trips == []
        assert rig.serial.link.stats.link_losses == 0
        assert_safe(rig)


async def test_dc_bpt_session_with_the_modules_inside_the_charger_process() -> None:
    """`can:virtual+sim`: the single-process form (MCU still on its pty)."""
    async with charger(modules_in_charger=True) as rig:
        assert rig.can.rack is not None
        report = await rig.session("dc_bpt_scheduled")
        assert report.success, report.summary()
        assert report.energy_charged_wh > 0 and report.energy_discharged_wh > 0
        await rig.wait_safe()
        assert not rig.supervisor.trips
        assert check_safe_sequence(rig.controller.actions) is None


# -- faults, each in the middle of a session -------------------------------------------------


async def test_mcu_goes_silent() -> None:
    async with charger() as rig:
        task = asyncio.create_task(rig.session("dc_bpt_scheduled"))
        await _charging(rig)
        rig.hw.mcu_silent(True)
        report = await task
        assert_terminated(report)
        sup = rig.supervisor
        await _wait(lambda: sup.safe_state_reached and not rig.station.connectors[0].busy, 3.0,
                    "no safe state without the MCU")
        summary = rig.server.sessions[-1]
        assert summary.failed and "link_lost" in (summary.reason or "")
        assert trip_reasons(summary)[0] == "link_lost"
        # Without the MCU's STATUS the host cannot confirm the contacts (it keeps the last
        # feedback, closed): it holds the supply off and the contactors commanded open. The
        # MCU opened them (it still hears the host), after the current had gone to zero.
        await _wait(lambda: not rig.hw.mcu.contactors_closed, 1.0, "the MCU kept them closed")
        assert not rig.hw.trace.breaks_under_load(), rig.hw.trace.breaks
        assert not rig.controller.safe_state_reached  # unconfirmed, and says so
        rig.hw.mcu_silent(False)
        await _wait(lambda: rig.serial.link.up, 3.0, "the MCU link did not come back")
        await rig.wait_safe()
        assert_safe(rig)  # now confirmed by the MCU's feedback
        report = await rig.session()
        assert report.success, report.summary()
        assert not rig.supervisor.tripped
        assert rig.server.sessions[-1].safety_trips == []


async def test_crc_errors_and_garbage_on_the_serial_link_are_survived() -> None:
    async with charger() as rig:
        task = asyncio.create_task(rig.session("dc", max_loops=30))
        await _charging(rig)
        # One damaged STATUS and a burst of garbage every 0.3 s: each costs one frame, far
        # from the 5 lost STATUS frames (mcu_timeout 0.5 s) that would mean a lost link.
        for _ in range(3):
            rig.hw.corrupt_crc(1)
            rig.hw.send_garbage()
            await asyncio.sleep(0.3)
        report = await task
        assert report.success, report.summary()
        stats = rig.serial.link.stats
        assert stats.framing.crc_errors >= 3 and stats.framing.errors > stats.framing.crc_errors
        assert stats.link_losses == 0 and not rig.supervisor.trips
        await rig.wait_safe()
        assert_safe(rig)


async def test_a_power_module_drops_out_mid_discharge_and_the_session_goes_on_derated() -> None:
    """docs/can_protocol.md: a lost module is left out, the supply's capabilities shrink to
    the remaining module, the setpoint is re-shared and capped (no trip); the SECC is told
    the derated limits (LimitsUpdated) and the session ends normally."""
    async with charger(discharge_window=(1, 3)) as rig:
        task = asyncio.create_task(rig.session("dc_bpt_scheduled", max_loops=64))
        await _discharging(rig, 60.0)
        rig.hw.drop_module(1)
        await _wait(lambda: rig.can.power_supply.degraded, 2.0, "the loss was not noticed")
        await asyncio.sleep(0.3)
        conn = rig.server.connection("1")  # the SECC now offers what one module can do
        assert conn is not None and conn.charger.limits.max_discharge_current == 50.0
        assert conn.charger.limits.max_charge_current == 50.0
        rack = rig.hw.rack
        assert rack is not None
        after = [a for t, a, closed in list(rig.hw.trace.samples) if t > rack.now - 0.25]
        report = await task
        assert report.success, report.summary()
        assert report.energy_discharged_wh > 0
        assert max(abs(a) for a in after) <= 50.0 + 0.5, after  # one module: 50 A at most
        events = [e.kind for e in rig.can.power_supply.events]
        assert "module_lost" in events
        assert rig.can.power_supply.capabilities.max_discharge_current == 50.0
        names = rig.controller.action_names()
        assert "derated" in names  # LimitsUpdated went to the SECC
        assert not rig.supervisor.trips
        summary = rig.server.sessions[-1]
        assert not summary.failed and summary.safety_trips == []
        await rig.wait_safe()
        assert_safe(rig)
        rig.hw.restore_module(1)
        psu = rig.can.power_supply
        await _wait(lambda: psu.modules[1].health is ModuleHealth.OK, 3.0,
                    "the module did not answer again")
        assert psu.degraded  # held off: nobody asked for power since
        await asyncio.sleep(0.2)
        assert not rig.hw.rack.modules[1].output_enabled
        report = await rig.session()  # the new session acknowledges: both modules again
        assert report.success, report.summary()
        assert not psu.degraded


async def test_all_power_modules_drop_out() -> None:
    async with charger() as rig:
        task = asyncio.create_task(rig.session("dc_bpt_scheduled"))
        await _charging(rig)
        rig.hw.drop_module(0)
        rig.hw.drop_module(1)
        report = await task
        assert_terminated(report)
        await rig.wait_safe(timeout=4.0)
        summary = rig.server.sessions[-1]
        assert trip_reasons(summary)[0] == TripReason.POWER_SUPPLY_FAULT.value
        assert "power modules lost" in (summary.reason or "")
        assert_safe(rig)
        rig.hw.restore_module(0)
        rig.hw.restore_module(1)
        psu = rig.can.power_supply
        await _wait(lambda: all(m.health is ModuleHealth.OK for m in psu.modules.values()),
                    3.0, "modules did not answer again")
        assert psu.fault is not None  # held off until a new session asks for power
        await asyncio.sleep(0.2)  # the host's "off" to the modules that came back
        assert not any(m.output_enabled for m in rig.hw.rack.modules.values())
        report = await rig.session()
        assert report.success, report.summary()


async def test_stale_measurements_trip_the_supervisor() -> None:
    async with charger() as rig:
        task = asyncio.create_task(rig.session("dc_bpt_scheduled"))
        await _charging(rig)
        rig.hw.mute_outputs(True)  # the modules answer, but their output readings stop
        report = await task
        assert_terminated(report)
        await rig.wait_safe(timeout=4.0)
        summary = rig.server.sessions[-1]
        assert trip_reasons(summary)[0] == TripReason.STALE_MEASUREMENT.value
        # no fresh zero-current reading can come: the supervisor opens after open_timeout
        assert "open_contactors_forced" in [a.action for a in rig.supervisor.actions]
        assert_safe(rig)
        rig.hw.mute_outputs(False)
        await asyncio.sleep(0.3)
        report = await rig.session()
        assert report.success, report.summary()


async def test_welded_contactor_is_detected_at_session_end_and_blocks_the_next_session(
) -> None:
    async with charger() as rig:
        task = asyncio.create_task(rig.session("dc", max_loops=10))
        await _charging(rig)
        rig.hw.weld_contactor()
        report = await task
        await _wait(lambda: rig.supervisor.tripped, 3.0, "the weld was not detected")
        # the welded contacts stay closed (the feedback says so): the supervisor's safe
        # state is supply off and coils off; the controller rightly never calls it "reached"
        await _wait(lambda: (rig.supervisor.safe_state_reached
                             and not rig.station.connectors[0].busy), 3.0, "not safe/free")
        assert not rig.controller.safe_state_reached
        summary = rig.server.sessions[-1]
        # reported in the record of the session whose end found it (and to the EV, with a
        # FAILED response, if it came before the EV's SessionStop)
        assert TripReason.CONTACTOR_MISMATCH.value in trip_reasons(summary), summary
        trip = next(t for t in summary.safety_trips if t.reason == "contactor_mismatch")
        assert trip.emergency and "welded" in trip.text
        if not report.success:  # DC_WeldingDetectionRes has no EVSEStatus: FAILED alone
            assert "FAILED" in report.reason, report.summary()
        assert rig.hw.mcu.contactors_closed  # still welded: the contacts did not open
        assert not rig.hw.mcu.contactors_commanded and abs(rig.hw.rack.total_current) < 0.5
        assert not rig.hw.trace.breaks_under_load()
        # the next EV: the trip cannot be cleared, the session fails at once, nothing closes
        closes = rig.controller.action_names().count("contactors_close")
        report = await rig.session()
        assert not report.success and report.energy_charged_wh == 0, report.summary()
        failed = rig.server.sessions[-1] if rig.server.sessions[-1] is not summary else None
        if failed is not None:
            assert failed.safety_trips and failed.safety_trips[0].before_session
        assert rig.controller.action_names().count("contactors_close") == closes
        # repaired: the next session is fine
        rig.hw.repair_contactor()
        await _wait(lambda: not rig.hw.mcu.contactors_closed, 1.0, "contacts stuck")
        await rig.wait_safe()
        report = await rig.session()
        assert report.success, report.summary()
        assert_safe(rig)


async def test_emergency_stop_pressed_on_the_mcu() -> None:
    async with charger() as rig:
        task = asyncio.create_task(rig.session("dc_bpt_scheduled"))
        await _charging(rig, 50.0)
        rig.hw.press_emergency_stop()
        report = await task
        assert_terminated(report)
        await rig.wait_safe()
        summary = rig.server.sessions[-1]
        assert TripReason.EMERGENCY_STOP.value in trip_reasons(summary)
        assert "emergency stop" in (summary.reason or "")
        assert rig.hw.mcu.estop_latched
        assert_safe(rig)
        # still pressed: the next session is refused before anything is energised
        closes = rig.controller.action_names().count("contactors_close")
        report = await rig.session()
        assert not report.success and report.energy_charged_wh == 0
        assert rig.controller.action_names().count("contactors_close") == closes
        rig.hw.release_emergency_stop()
        board = rig.serial.board
        await _wait(lambda: not board.emergency_stop_button_pressed, 1.0, "still pressed")
        report = await rig.session()  # the released latch is reset for the new session
        assert report.success, report.summary()
        assert not rig.hw.mcu.estop_latched
        assert "emergency_stop_reset" in rig.controller.action_names()
        await rig.wait_safe()
        assert_safe(rig)


async def test_mcu_announces_another_protocol_version_mid_session() -> None:
    """Issue 11 item 10: another version and back again, both read in one poll. The loss
    reaches the controller (the session fails with link_lost), the host says HELLO again
    (the MCU opens its contacts) and never closes them by itself; the next session closes
    them because control asks."""
    async with charger() as rig:
        task = asyncio.create_task(rig.session("dc_bpt_scheduled"))
        await _charging(rig)
        with rig.hw.mcu.lock:  # both frames go out together
            rig.hw.announce_version(2)
            rig.hw.announce_version(1)
        report = await task
        assert_terminated(report)
        await _wait(lambda: rig.serial.link.stats.handshakes >= 2, 3.0, "no re-handshake")
        await rig.wait_safe()
        summary = rig.server.sessions[-1]
        assert summary.failed and trip_reasons(summary)[0] == TripReason.LINK_LOST.value
        assert "HELLO_REPLY" in summary.safety_trips[0].text
        await asyncio.sleep(0.5)  # up again for a while: nothing re-closed
        assert rig.serial.link.up and not rig.hw.mcu.contactors_commanded
        assert_safe(rig)
        report = await rig.session()
        assert report.success, report.summary()
        assert rig.server.sessions[-1].safety_trips == []


async def test_mcu_status_stops_while_the_line_stays_alive() -> None:
    """Issue 11 item 11: ACKs and reports keep coming, STATUS frames do not: the host's
    max_status_age_s (0.5 s) ends the session, whatever else arrives."""
    async with charger() as rig:
        task = asyncio.create_task(rig.session("dc_bpt_scheduled"))
        await _charging(rig)

        async def chatter() -> None:  # valid frames of another type keep the line alive
            while True:
                rig.hw.mcu.send_unknown_type()
                await asyncio.sleep(0.05)

        talker = asyncio.create_task(chatter())
        rig.hw.pause_status(True)
        try:
            report = await task
        finally:
            talker.cancel()
        assert_terminated(report)
        summary = rig.server.sessions[-1]
        assert trip_reasons(summary)[0] == TripReason.LINK_LOST.value
        assert "STATUS" in summary.safety_trips[0].text
        rig.hw.pause_status(False)
        await _wait(lambda: rig.serial.link.up, 3.0, "the MCU link did not come back")
        await rig.wait_safe()
        assert_safe(rig)
        report = await rig.session()
        assert report.success, report.summary()


# -- the commands, as separate processes -------------------------------------------------------


def _free_port(kind: int) -> int:
    """A port nothing uses now (the kernel's choice), for a child process to bind."""
    with socket.socket(socket.AF_INET6 if kind == socket.SOCK_DGRAM else socket.AF_INET,
                       kind) as sock:
        sock.bind(("::" if kind == socket.SOCK_DGRAM else HOST, 0))
        return int(sock.getsockname()[1])


def _udp_multicast_available(port: int) -> bool:
    if importlib.util.find_spec("msgpack") is None:
        return False
    import can

    try:
        bus = can.Bus(interface="udp_multicast", channel="ff01::4556:5345", port=port)
    except (can.CanError, OSError):
        return False
    bus.shutdown()
    return True


def test_sim_hw_and_evse_secc_commands_run_a_dc_bpt_session(tmp_path: Path) -> None:
    """`evse sim-hw` (MCU on a pty, modules on udp_multicast) + `evse secc --hal serial:LINK,
    can:udp_multicast:[GROUP]:PORT` + `evse ev`, three processes, as docs/hardware.md shows."""
    port = _free_port(socket.SOCK_DGRAM)
    if not _udp_multicast_available(port):
        pytest.skip("python-can udp_multicast unavailable here")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    link = tmp_path / "mcu"
    log = tmp_path / "secc.log"
    can_target = f"udp_multicast:[ff01::4556:5345]:{port}"
    hw = subprocess.Popen(
        [sys.executable, "-m", "evse", "sim-hw", "--pty-link", str(link), "--can", can_target,
         "--no-stdin"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    secc = None
    try:
        deadline = time.monotonic() + 10
        while not link.is_symlink():
            if hw.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"evse sim-hw: {hw.communicate(timeout=5)[0]}")
            time.sleep(0.05)
        tcp = _free_port(socket.SOCK_STREAM)
        with open(log, "w") as out:  # a file, not a pipe: a full pipe would block the charger
            secc = subprocess.Popen(
                [sys.executable, "-m", "evse", "secc", "--address", HOST, "--port", str(tcp),
                 "--allow-plain-tcp-iso20", "--no-sdp", "--hal",
                 f"serial:{link},can:{can_target},sim", "--allow-simulated-parts",
                 "--discharge-window", "1,2"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        while "evse secc:" not in log.read_text():
            assert secc.poll() is None and time.monotonic() < deadline + 10, log.read_text()
            time.sleep(0.05)
        assert "DC_BPT" in log.read_text()
        # Every part announced; the simulated ones say so.
        assert (f"HAL board: serial {link} (real); power_supply: can udp_multicast:"
                "ff01::4556:5345 (real); isolation_monitor: sim (SIMULATED); "
                "meter: sim (SIMULATED)") in log.read_text()
        ev = subprocess.run(
            [sys.executable, "-m", "evse", "ev", "--host", HOST, "--port", str(tcp),
             "--no-tls", "--scenario", "dc_bpt_scheduled", "--loops", "40",
             "--loop-interval", "0.05"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert ev.returncode == 0, ev.stdout + ev.stderr
        assert "OK" in ev.stdout
        charged = float(ev.stdout.split("energy +")[1].split(" Wh")[0])
        discharged = float(ev.stdout.split("/ -")[1].split(" Wh")[0])
        assert charged > 0 and discharged > 0, ev.stdout
    finally:
        for proc in (secc, hw):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    text = log.read_text()
    assert secc is not None and secc.returncode == 0, text
    assert "safety supervisor on 1 connector" in text and "safety trip" not in text, text
    assert not link.exists()  # sim-hw removed its symlink
