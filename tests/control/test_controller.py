"""ChargerController on the sim HAL backend with a fake clock: each SECC effect -> the HAL
action, the safe-state ordering, clamping, cable check pass/fail, faults -> EmergencyStop."""

from __future__ import annotations

from typing import Any

import pytest

from evse.control import (
    ChargerController,
    ControllerConfig,
    check_safe_sequence,
    judge_isolation,
)
from evse.protocol import events as ev
from evse.protocol.limits import EvLimits
from hal.backends.sim import SimBackend
from hal.interfaces import Measurement, PowerSupplyCapabilities, PowerSupplyMode
from tests.control.fake_clock import ClockedController

M = PowerSupplyMode
DC_BPT = "urn:iso:std:iso:15118:-20:DC"
AC = "urn:iso:std:iso:15118:-20:AC"


class Rig(ClockedController):
    """A controller on a sim backend and a fake clock that polls every `dt`."""

    def __init__(self, backend: SimBackend | None = None, **config: Any) -> None:
        self.backend = backend or SimBackend(ev_contactor_closed=True)
        self.t = 100.0
        self.ctl = ChargerController(self.backend, now=self.t, config=ControllerConfig(**config))
        self.start()

    @property
    def psu(self) -> Any:
        return self.backend.power_supply

    def mode(self) -> M:
        return self.backend.power_supply.mode

    def start_dc_session(self, bidirectional: bool = True) -> None:
        self.effect(ev.SessionStarted(b"\x01" * 8, "EVCC", DC_BPT))
        self.effect(ev.EnergyServiceSelected(6 if bidirectional else 2, 1, bidirectional))
        self.effect(ev.EvLimitsReported(EvLimits(max_charge_power=100e3, max_voltage=420.0,
                                                 min_voltage=300.0)))

    def charging(self, amps: float = 150.0) -> None:
        """Cable check, precharge, contactors, then charging at `amps`."""
        self.start_dc_session()
        self.effect(ev.StartCableCheck(420.0))
        self.run(10.0, until=lambda: any(isinstance(e, ev.CableCheckFinished)
                                         for e in self.events))
        self.effect(ev.StartPreCharge(375.0, 2.0))
        self.run(3.0)
        self.effect(ev.CloseContactors())
        self.run(0.1)
        self.effect(ev.SetPowerTarget(420.0, amps, 420.0 * amps))
        self.run(3.0)
        assert abs(self.psu.measurement().current - amps) < 1.0


def names(rig: Rig) -> list[str]:
    return rig.ctl.action_names()


# -- cable check -----------------------------------------------------------------------------


def test_cable_check_ramps_then_measures_then_passes() -> None:
    rig = Rig()
    rig.start_dc_session()
    assert rig.effect(ev.StartCableCheck(500.0)) == []
    assert rig.psu.mode is M.CABLECHECK
    assert rig.psu.setpoint == (500.0, 2.0)  # current-limited test voltage
    assert not rig.backend.isolation_monitor.measuring  # only once the voltage is there
    rig.run(2.0)  # 200 V/s ramp: not yet at 500 V
    assert not rig.backend.isolation_monitor.measuring
    rig.run(0.6)
    assert rig.backend.isolation_monitor.measuring
    assert not any(isinstance(e, ev.CableCheckFinished) for e in rig.events)
    rig.run(3.0, until=lambda: bool(rig.events))
    assert rig.events == [ev.CableCheckFinished(isolation_ok=True)]
    imd_start = next(a for a in rig.ctl.actions if a.name == "isolation_monitor_start")
    done = next(a for a in rig.ctl.actions if a.name == "cable_check_ok")
    assert done.time - imd_start.time >= 1.0 - 1e-6  # the monitor's measuring time


def test_cable_check_fails_below_100_ohm_per_volt_and_switches_off() -> None:
    rig = Rig(SimBackend(isolation_resistance_ohm=50.0 * 500))  # 50 ohm/V at 500 V
    rig.start_dc_session()
    rig.effect(ev.StartCableCheck(500.0))
    rig.run(10.0, until=lambda: bool(rig.events))
    assert rig.events == [ev.CableCheckFinished(isolation_ok=False)]
    assert rig.psu.mode is M.OFF
    assert "cable_check_failed" in names(rig)


def test_cable_check_warning_level_still_passes(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(SimBackend(isolation_resistance_ohm=300.0 * 500))  # between 100 and 500 ohm/V
    rig.start_dc_session()
    rig.effect(ev.StartCableCheck(500.0))
    rig.run(10.0, until=lambda: bool(rig.events))
    assert rig.events == [ev.CableCheckFinished(isolation_ok=True)]
    assert "warning level" in caplog.text


def test_isolation_thresholds_follow_iec_61851_23() -> None:
    assert not judge_isolation(99.0 * 400, 400.0).ok
    verdict = judge_isolation(100.0 * 400, 400.0)
    assert verdict.ok and verdict.warning
    assert judge_isolation(499.0 * 400, 400.0).warning
    assert not judge_isolation(500.0 * 400, 400.0).warning


def test_cable_check_voltage_is_clamped_to_the_supply() -> None:
    rig = Rig()
    rig.effect(ev.StartCableCheck(1500.0))
    assert rig.psu.setpoint[0] == 920.0
    assert any(a.name == "clamp" and "1500.0 V -> 920.0 V" in a.detail for a in rig.ctl.actions)


def test_cable_check_fails_when_the_monitor_is_broken() -> None:
    rig = Rig()
    rig.backend.isolation.device_fault = "no self test"
    rig.effect(ev.StartCableCheck(400.0))
    rig.run(5.0, until=lambda: bool(rig.events))
    assert rig.events == [ev.CableCheckFinished(isolation_ok=False)]


def test_cable_check_fails_when_the_voltage_never_comes() -> None:
    rig = Rig(SimBackend(voltage_ramp=1.0), cable_check_ramp_timeout=2.0)
    rig.effect(ev.StartCableCheck(400.0))
    rig.run(5.0, until=lambda: bool(rig.events))
    assert rig.events == [ev.CableCheckFinished(isolation_ok=False)]
    assert "output stuck" in rig.ctl.actions[-3].detail or any(
        "output stuck" in a.detail for a in rig.ctl.actions)


# -- precharge, contactors, power --------------------------------------------------------------


def test_precharge_regulates_to_the_ev_voltage_with_the_current_limit() -> None:
    rig = Rig()
    rig.effect(ev.StartPreCharge(380.0, 2.0))
    assert rig.psu.mode is M.PRECHARGE and rig.psu.setpoint == (380.0, 2.0)
    rig.run(3.0)
    assert abs(rig.psu.measurement().voltage - 380.0) < 1.0


def test_close_contactors_then_feedback() -> None:
    rig = Rig()
    rig.effect(ev.CloseContactors())
    assert rig.backend.board.contactors_commanded_closed
    rig.run(0.1)
    assert rig.backend.board.contactors_closed
    assert rig.ctl.fault is None


def test_power_target_is_clamped_to_current_and_power_capabilities() -> None:
    caps = PowerSupplyCapabilities(bidirectional=True, min_voltage=150.0, max_voltage=500.0,
                                   max_charge_current=200.0, max_charge_power=50_000.0,
                                   max_discharge_current=80.0, max_discharge_power=20_000.0)
    rig = Rig(SimBackend(capabilities=caps, ev_contactor_closed=True))
    rig.charging(amps=100.0)
    rig.effect(ev.SetPowerTarget(600.0, 500.0, 300_000.0))
    volts, amps = rig.psu.setpoint
    assert volts == 500.0  # voltage limit clamped to the supply's maximum
    v = rig.psu.measurement().voltage
    assert amps <= 50_000.0 / v + 1e-9 and amps < 200.0  # power-limited at the measured voltage
    rig.run(2.0)
    assert rig.psu.measurement().power <= 50_000.0 + 1.0
    clamps = [a.detail for a in rig.ctl.actions if a.name == "clamp"]
    assert any("600.0 V -> 500.0 V" in c for c in clamps)
    assert any(c.startswith("charge 500.0 A ->") for c in clamps)
    # discharge: clamped to the discharge current and power
    rig.effect(ev.SetPowerTarget(420.0, -500.0, -200_000.0))
    assert rig.psu.mode is M.IMPORT
    volts, amps = rig.psu.setpoint
    assert volts == 300.0  # the floor is the EV's minimum voltage
    assert -80.0 <= amps < 0 and -amps * rig.psu.measurement().voltage <= 20_000.0 + 1e-6
    rig.run(2.0)
    assert rig.psu.measurement().current < 0


def test_discharge_is_refused_without_a_bidirectional_session() -> None:
    rig = Rig()
    rig.effect(ev.SessionStarted(b"\x01" * 8, "EVCC", DC_BPT))
    rig.effect(ev.EnergyServiceSelected(2, 1, False))  # plain DC
    rig.effect(ev.CloseContactors())
    rig.effect(ev.SetPowerTarget(420.0, -50.0, -20_000.0))
    assert rig.psu.mode is M.EXPORT and rig.psu.setpoint[1] == 0.0
    assert any("refused" in a.detail for a in rig.ctl.actions)


def test_discharge_is_refused_by_a_unidirectional_supply() -> None:
    caps = PowerSupplyCapabilities(bidirectional=False, min_voltage=150.0, max_voltage=500.0,
                                   max_charge_current=100.0, max_charge_power=40_000.0)
    rig = Rig(SimBackend(capabilities=caps))
    rig.start_dc_session(bidirectional=True)
    rig.effect(ev.SetPowerTarget(420.0, -50.0, -20_000.0))
    assert rig.psu.mode is M.EXPORT and rig.psu.setpoint[1] == 0.0


def test_stop_power_zeroes_the_current_then_switches_off() -> None:
    rig = Rig()
    rig.charging()
    rig.effect(ev.StopPower())
    assert rig.psu.setpoint[1] == 0.0 and rig.psu.mode is M.EXPORT  # current first
    rig.run(0.05)
    assert rig.mode() is M.OFF
    assert names(rig)[-2:] == ["current_zero", "supply_off"]


def test_measurements_every_poll_with_meter_registers() -> None:
    rig = Rig()
    rig.charging(amps=100.0)
    rig.t += 0.01
    out = rig.ctl.poll(rig.t)
    m = out[-1]
    assert isinstance(m, ev.MeasurementsUpdated)
    assert abs(m.present_current - 100.0) < 1.0 and m.present_voltage > 300.0
    reading = rig.backend.meter.reading()
    assert m.imported_wh == reading.energy_imported_wh and m.imported_wh > 0


# -- the safe state ----------------------------------------------------------------------------


def _assert_safe(rig: Rig) -> None:
    assert check_safe_sequence(rig.ctl.actions) is None, list(rig.ctl.actions)
    assert rig.ctl.safe_state_reached
    assert rig.psu.mode is M.OFF and not rig.backend.board.contactors_closed
    assert rig.psu.measurement().current == 0.0


def test_failed_session_current_zero_before_contactors_open() -> None:
    rig = Rig()
    rig.charging(amps=180.0)
    rig.effect(ev.SessionEnded("FAILED_SequenceError", failed=True))
    # the contactors stay closed until a measurement shows no current
    assert rig.backend.board.contactors_commanded_closed
    rig.run(0.5)
    _assert_safe(rig)
    seq = names(rig)
    assert seq.index("safe_state") < seq.index("current_zero") < seq.index("contactors_open")
    opening = next(a for a in rig.ctl.actions if a.name == "contactors_open")
    assert abs(opening.current) <= 1.0


@pytest.mark.parametrize("effects", [
    [ev.StopPower(), ev.OpenContactors()],  # what the SECC sends on a timeout / lost connection
    [ev.OpenContactors()],  # even without StopPower the contactors never open under current
])
def test_open_contactors_waits_for_zero_current(effects: list[ev.Effect]) -> None:
    rig = Rig()
    rig.charging(amps=150.0)
    for e in effects:
        rig.effect(e)
    assert rig.backend.board.contactors_commanded_closed
    rig.run(0.5)
    _assert_safe(rig)


def test_contactors_open_after_a_bounded_wait_when_the_current_does_not_fall() -> None:
    rig = Rig(open_timeout=0.3, off_timeout=0.2)
    rig.charging(amps=150.0)
    psu = rig.backend.power_supply
    psu.measurement = lambda: Measurement(400.0, 120.0, rig.t)  # type: ignore[method-assign]
    rig.effect(ev.StopPower())
    rig.effect(ev.OpenContactors())
    rig.run(0.2)
    assert rig.backend.board.contactors_commanded_closed  # still waiting
    rig.run(0.3)
    assert not rig.backend.board.contactors_commanded_closed
    forced = next(a for a in rig.ctl.actions if a.name == "contactors_open_forced")
    assert forced.time - next(a.time for a in rig.ctl.actions if a.name == "current_zero") \
        == pytest.approx(0.3, abs=0.011)
    assert "supply_off" in names(rig)  # also forced off after off_timeout


def test_emergency_stop_button_is_reported_once_and_power_goes_off() -> None:
    rig = Rig()
    rig.charging()
    rig.backend.board.press_emergency_stop_button()
    out = rig.run(0.3)
    assert [e for e in out if isinstance(e, ev.EmergencyStop)] == [
        ev.EmergencyStop("emergency stop button")]
    assert rig.psu.mode is M.OFF and not rig.backend.board.contactors_closed
    assert rig.ctl.fault == "emergency stop"
    # a new session on the same connector hears about it again while it is latched
    rig.ctl.begin_session(rig.t)
    assert any(isinstance(e, ev.EmergencyStop) for e in rig.run(0.05))
    rig.backend.board.release_emergency_stop_button()
    assert rig.backend.board.reset_emergency_stop()
    rig.ctl.begin_session(rig.t)
    assert rig.run(0.1) == [] and rig.ctl.fault is None


def test_power_supply_fault_forces_the_safe_state_and_an_emergency_stop() -> None:
    rig = Rig()
    rig.charging()
    rig.backend.power_supply.inject_fault("DC link over-temperature")
    out = rig.run(0.3)
    assert [type(e) for e in out] == [ev.EmergencyStop]
    assert "over-temperature" in out[0].reason  # type: ignore[union-attr]
    _assert_safe(rig)


def test_welded_contactor_is_a_fault() -> None:
    rig = Rig()
    rig.charging()
    rig.backend.contactor.inject_weld()
    rig.effect(ev.StopPower())
    rig.effect(ev.OpenContactors())
    out = rig.run(1.0)
    assert any(isinstance(e, ev.EmergencyStop) and "welded" in e.reason for e in out)
    assert rig.psu.mode is M.OFF


def test_a_refused_hal_command_is_an_emergency_stop() -> None:
    rig = Rig()
    rig.backend.board.press_emergency_stop_button()
    rig.run(0.05)
    rig.ctl.begin_session(rig.t)  # a new session while the stop is still latched
    out = rig.effect(ev.CloseContactors())
    assert [type(e) for e in out] == [ev.EmergencyStop]
    assert "hal_error" in names(rig)


def test_a_failing_poll_is_a_fault() -> None:
    rig = Rig()
    rig.charging()

    def broken(now: float) -> None:
        raise OSError("link to the power module lost")

    rig.backend.poll = broken  # type: ignore[method-assign]
    out = rig.run(0.05)
    assert out and isinstance(out[0], ev.EmergencyStop)
    assert "link to the power module lost" in out[0].reason
    assert rig.psu.setpoint[1] == 0.0  # the zero-current command went out anyway


def test_safe_state_is_idempotent_and_quiet_when_already_safe() -> None:
    rig = Rig()
    rig.ctl.safe_state("nothing to do", rig.t)
    assert names(rig) == []
    rig.charging()
    rig.ctl.safe_state("stop", rig.t)
    rig.ctl.safe_state("stop again", rig.t)
    assert names(rig).count("safe_state") == 1
    assert rig.ctl.safe_reason == "stop"


def test_check_safe_sequence_finds_an_opening_under_current() -> None:
    from evse.control import Action

    bad = [Action(0.0, "setpoint", "400 V, 100 A", 0.0),
           Action(1.0, "contactors_open", "", 100.0)]
    assert "without a zero-current command" in (check_safe_sequence(bad) or "")
    bad2 = [Action(1.0, "current_zero"), Action(1.1, "contactors_open", "", 50.0)]
    assert "under 50.0 A" in (check_safe_sequence(bad2) or "")


# -- AC ----------------------------------------------------------------------------------------


def test_ac_session_switches_contactors_and_reports_the_commanded_power() -> None:
    rig = Rig()
    rig.effect(ev.SessionStarted(b"\x02" * 8, "EVCC", AC))
    rig.effect(ev.EnergyServiceSelected(5, 1, True))
    rig.effect(ev.CloseContactors())
    rig.run(0.1)
    rig.effect(ev.SetPowerTarget(230.0, 15.94, 11_000.0))
    rig.t += 0.01
    m = rig.ctl.poll(rig.t)[-1]
    assert isinstance(m, ev.MeasurementsUpdated)
    assert m.present_power == 11_000.0 and m.present_voltage == 230.0
    assert rig.psu.mode is M.OFF  # the DC power stage is not used for AC
    rig.effect(ev.SetPowerTarget(230.0, -10.0, -6_900.0))
    rig.run(0.5)
    assert rig.ctl.energy_out_wh > 0 and rig.ctl.energy_in_wh > 0
    rig.effect(ev.StopPower())
    rig.effect(ev.OpenContactors())
    rig.run(0.1)
    _assert_safe(rig)
