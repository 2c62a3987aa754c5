"""MCU link faults reach the controller: the charger (controller over the safety supervisor
over the `serial` backend) runs against the simulated MCU over a real pty on a fake clock.
Mid session the MCU announces another protocol version, or stops sending STATUS while still
talking; the session must end in the safe state with the loss as its reason, the host must
not close the contactors again after the reconnect, and only a new session may."""

from __future__ import annotations

import select
from typing import Any

import pytest

from evse.control.controller import ChargerController
from evse.control.supervision import SupervisedController
from evse.protocol import events as ev
from evse.protocol.limits import EvLimits, EvseLimits
from hal.backends.serial import SerialBackend
from hal.backends.serial.protocol import PROTOCOL_MAJOR
from hal.backends.sim import SimBackend
from hal.interfaces import HalBackend, PowerSupplyMode
from hal.parts import compose
from hal.supervisor import SafetySupervisor, TripReason
from simulators.mcu import PtyPair, SimulatedMcu
from tests.control.fake_clock import ClockedController

PTY_WAIT = 0.05  # bound of one wait for bytes known to be in flight (not a timing margin)
EVSE = EvseLimits(max_charge_power=150e3, max_charge_current=200.0, max_voltage=920.0,
                  min_voltage=150.0, max_discharge_power=50e3, max_discharge_current=100.0)
EV = EvLimits(max_charge_power=100e3, max_charge_current=150.0, max_voltage=420.0,
              min_voltage=300.0)


class McuRig(ClockedController):
    """A controller over `serial` (pty + SimulatedMcu) composed with an explicit `sim` for
    the other parts; the sim's contactor follows the MCU's real contacts, so current flows
    only while they are closed."""

    def __init__(self, supervised: bool = True, **serial_options: Any) -> None:
        self.pty = PtyPair()
        self.mcu = SimulatedMcu(self.pty.master_fd)
        self.serial = SerialBackend(self.pty.port, **serial_options)
        self.sim = SimBackend(contactor_switch_time=0.0, ev_contactor_closed=True)
        backend = compose(board=self.serial, power_supply=self.sim, isolation_monitor=self.sim,
                          meter=self.sim, allow_simulated_parts=True)
        self.t = 10.0
        self.hal: HalBackend = SafetySupervisor(backend) if supervised else backend
        self.ctl: ChargerController = (
            SupervisedController(self.hal, evse_limits=EVSE, now=self.t) if supervised
            else ChargerController(self.hal, now=self.t))
        self.start()
        self.run(1.0, until=lambda: self.serial.link.up and not self.serial.link.pending)
        assert self.serial.link.up
        self.chatter = False

    def run(self, seconds: float, dt: float = 0.02, until: Any = None) -> list[ev.Event]:
        out: list[ev.Event] = []
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.t = min(end, self.t + dt)
            new = self._tick()
            out += new
            self.events += new
            if until is not None and until():
                break
        return out

    def _tick(self) -> list[ev.Event]:
        self.sim.contactor.command(self.mcu.contactors_closed)
        sent = self.serial.link.stats.frames_sent
        out = [e for e in self.ctl.poll(self.t) if not isinstance(e, ev.MeasurementsUpdated)]
        if getattr(self, "chatter", False):
            self.mcu.send_unknown_type()  # a live line without STATUS frames
        mcu_sent = self.mcu.stats.frames_sent
        self.mcu.step(self.t, wait=PTY_WAIT if self.serial.link.stats.frames_sent != sent
                      else 0.0)
        if self.mcu.stats.frames_sent != mcu_sent:
            select.select([self.serial.fileno()], [], [], PTY_WAIT)
        return out

    def charging(self, amps: float = 50.0) -> None:
        self.ctl.begin_session(self.t)
        self.effect(ev.SessionStarted(b"\x01" * 8, "EVCC", "urn:iso:std:iso:15118:-20:DC"))
        self.effect(ev.EnergyServiceSelected(6, 1, False))
        self.effect(ev.EvLimitsReported(EV))
        self.effect(ev.StartPreCharge(375.0, 2.0))
        self.run(1.0)
        self.effect(ev.CloseContactors())
        self.run(0.2)
        assert self.mcu.contactors_closed
        self.effect(ev.SetPowerTarget(420.0, amps, 420.0 * amps))
        self.run(1.0)
        assert abs(self.sim.power_supply.measurement().current - amps) < 1.0

    def close(self) -> None:
        try:
            self.serial.close()
        finally:
            self.pty.close()


@pytest.fixture(params=[True, False], ids=["supervised", "plain"])
def rig(request: pytest.FixtureRequest) -> Any:
    r = McuRig(supervised=request.param)
    yield r
    r.close()


def _stops(events: list[ev.Event]) -> list[ev.EmergencyStop]:
    return [e for e in events if isinstance(e, ev.EmergencyStop)]


def test_version_change_mid_session_ends_it_and_nothing_recloses(rig: McuRig) -> None:
    rig.charging()
    rig.mcu.send_hello_reply((PROTOCOL_MAJOR + 1, 0))
    out = rig.run(2.0, until=lambda: rig.serial.link.stats.handshakes == 2)
    assert rig.serial.link.up  # reconnected (the MCU opened its contactors on the HELLO)
    out += rig.run(1.0)
    stops = _stops(out)
    assert len(stops) == 1, out  # the SECC is told once: the session ends as failed
    assert rig.ctl.fault is not None
    if isinstance(rig.hal, SafetySupervisor):
        assert rig.hal.trips[0].reason is TripReason.LINK_LOST
        assert "HELLO_REPLY" in rig.hal.trips[0].text
    else:
        assert "HELLO_REPLY" in stops[0].reason
    # A second after the reconnect the contacts are still open and the supply is off.
    assert not rig.mcu.contactors_commanded and not rig.mcu.contactors_closed
    assert rig.sim.power_supply.mode is PowerSupplyMode.OFF
    assert rig.ctl.safe_state_reached
    # A new session acknowledges the loss: now (and only now) control may close them.
    rig.charging()
    assert rig.mcu.contactors_closed
    assert _stops(rig.run(0.2)) == []


def test_version_flip_and_back_between_two_polls_still_ends_the_session(rig: McuRig) -> None:
    """Both HELLO_REPLYs (another version, then this one) are read in one poll: the loss
    must not vanish, and the link comes back only through a HELLO of the host (which opens
    the MCU's contactors) and without the host closing them again."""
    rig.charging()
    rig.mcu.send_hello_reply((PROTOCOL_MAJOR + 1, 0))
    rig.mcu.send_hello_reply()
    out = rig.run(2.0, until=lambda: rig.serial.link.stats.handshakes == 2)
    out += rig.run(1.0)
    assert len(_stops(out)) == 1, out
    assert rig.serial.link.stats.link_losses >= 1
    assert not rig.mcu.contactors_commanded and not rig.mcu.contactors_closed
    assert rig.sim.power_supply.mode is PowerSupplyMode.OFF


def test_stale_status_with_a_live_line_ends_the_session(rig: McuRig) -> None:
    rig.charging()
    rig.mcu.status_paused = True  # the MCU's STATUS task hangs; ACKs and reports go on
    rig.mcu.press_emergency_stop()  # ... so this e-stop never shows in a STATUS
    rig.chatter = True
    t0 = rig.t
    out = rig.run(3.0, until=lambda: bool(_stops(rig.events)))
    stops = _stops(out)
    assert len(stops) == 1
    assert rig.t - t0 <= rig.serial.link.max_status_age + 0.1
    assert "STATUS" in (rig.ctl.fault or "") or (
        isinstance(rig.hal, SafetySupervisor) and "STATUS" in rig.hal.trips[0].text)
    rig.run(1.0)
    assert rig.sim.power_supply.mode is PowerSupplyMode.OFF
    assert not rig.mcu.contactors_commanded and not rig.mcu.contactors_closed
