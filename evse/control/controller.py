"""`ChargerController`: the seam between the sans-IO SECC and the hardware (sans-IO too).

    ctl = ChargerController(backend, now=t)
    events = ctl.handle_effect(effect, t)   # an SECC effect -> HAL commands (+ SECC inputs)
    events = ctl.poll(t)                    # poll the HAL -> SECC inputs (measurements, ...)

Time enters as `now` (the HAL's clock, any monotonic origin), so the controller runs
unchanged on a fake clock in tests; it never reads a clock and never blocks. Inputs for the
SECC (`CableCheckFinished`, `MeasurementsUpdated`, `EmergencyStop`) are returned, never
pushed: the caller hands them to `SeccConnection.handle_event`.

What each SECC effect does (DC):

- `StartCableCheck(V)`: supply in CABLECHECK mode at V (clamped to the supply's range),
  current-limited to `cable_check_current`; once the output is at V the isolation monitor
  starts; the first reading taken after that start decides (`judge_isolation`), then
  `CableCheckFinished(ok)`. Timeouts for the ramp and the measurement give `ok=False`.
- `StartPreCharge(V, I)`: PRECHARGE mode, regulate to V with the current limit I.
- `CloseContactors` / `OpenContactors`: the board's contactors. Opening waits until the
  measured current is ~0 (`zero_current`), or `open_timeout` at most ("contactors_open_forced").
- `SetPowerTarget(V, I, P)`: EXPORT for I >= 0 (V is the voltage limit), IMPORT for I < 0
  (bidirectional supplies and BPT sessions only; the floor is the EV's minimum voltage).
  The setpoint is clamped to the supply's capabilities (current and power at the measured
  voltage) and never exceeds them; every clamp is logged as an action.
- `StopPower`: current to zero first, supply OFF once the current is ~0 (or `off_timeout`).

The safe state (`safe_state(reason, now)`) is StopPower + OpenContactors in that order: it
is entered on `SessionEnded(failed=True)`, on HAL faults (supply fault, emergency stop,
contactor feedback, isolation monitor fault, a HAL command that raises) and by the adapter
on lost connections, timeouts and crashes. A board emergency stop is reported to the SECC
once as `EmergencyStop`.

AC sessions: the HAL models a DC power stage only; for AC the EV's on-board charger does the
conversion, so the controller switches the contactors and reports the commanded AC power as
the present power while they are closed (an AC meter backend would replace that estimate).

`actions` records every HAL action with its time and the measured current, so tests can
assert the ordering (current zero before the contactors open).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from evse.protocol import events as ev
from evse.protocol.limits import EvLimits
from hal.interfaces import HalBackend, HalError, PowerSupplyCapabilities, PowerSupplyMode

log = logging.getLogger(__name__)

# Insulation resistance thresholds, IEC 61851-23 (DC EV supply equipment): above 500 ohm per
# volt of test voltage the insulation is good; between 100 and 500 ohm/V it is a warning
# (charging may go on, the fault is reported); below 100 ohm/V it is an insulation fault.
ISOLATION_FAULT_OHM_PER_VOLT = 100.0
ISOLATION_WARNING_OHM_PER_VOLT = 500.0

_ENERGISED = (PowerSupplyMode.EXPORT, PowerSupplyMode.IMPORT)


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    zero_current: float = 1.0  # A: |I| at or below this counts as "no current"
    open_timeout: float = 1.0  # s: longest wait for zero current before opening anyway
    off_timeout: float = 1.0  # s: longest wait for zero current before the supply goes OFF
    cable_check_current: float = 2.0  # A: current limit of the insulation test voltage
    cable_check_voltage_tolerance: float = 0.03  # of the test voltage (and >= 5 V)
    cable_check_ramp_timeout: float = 15.0  # s for the output to reach the test voltage
    cable_check_measure_timeout: float = 15.0  # s for the isolation monitor's first reading
    isolation_fault_ohm_per_volt: float = ISOLATION_FAULT_OHM_PER_VOLT
    isolation_warning_ohm_per_volt: float = ISOLATION_WARNING_OHM_PER_VOLT
    contactor_timeout: float = 0.5  # s for the feedback to follow a command
    action_log_size: int = 4096  # oldest actions are dropped beyond this


@dataclass(frozen=True, slots=True)
class Action:
    """One thing the controller did to the hardware (or decided), for logs and tests."""

    time: float
    name: str
    detail: str = ""
    current: float = 0.0  # measured output current when it happened


@dataclass(frozen=True, slots=True)
class IsolationVerdict:
    ok: bool
    warning: bool
    ohm_per_volt: float


def judge_isolation(
    resistance_ohm: float,
    voltage: float,
    *,
    fault_ohm_per_volt: float = ISOLATION_FAULT_OHM_PER_VOLT,
    warning_ohm_per_volt: float = ISOLATION_WARNING_OHM_PER_VOLT,
) -> IsolationVerdict:
    """IEC 61851-23 verdict on an insulation resistance measured at `voltage`."""
    per_volt = resistance_ohm / max(voltage, 1.0)
    ok = per_volt >= fault_ohm_per_volt
    return IsolationVerdict(ok=ok, warning=ok and per_volt < warning_ohm_per_volt,
                            ohm_per_volt=per_volt)


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    """A snapshot for progress displays and the MQTT/report layers."""

    voltage: float
    current: float
    power: float
    mode: str
    contactors_closed: bool
    phase: str  # idle, cable_check, precharge, energy, stopping, safe
    fault: str | None


class _Prefixed(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        prefix = self.extra["prefix"] if self.extra else ""
        return f"{prefix}{msg}", kwargs


class ChargerController:
    def __init__(
        self,
        hal: HalBackend,
        *,
        now: float = 0.0,
        config: ControllerConfig | None = None,
        name: str = "1",
    ) -> None:
        self.hal = hal
        self.config = config or ControllerConfig()
        self.name = name
        self.actions: deque[Action] = deque(maxlen=self.config.action_log_size)
        self._log = _Prefixed(log, {"prefix": f"connector {name}: "})
        self.fault: str | None = None  # the latest HAL fault that forced the safe state
        self.safe_reason: str | None = None
        # the connector's pilot lifecycle (evse/aio/connector_link.py): False while the car
        # is not in C (or D with ventilation); None: no pilot wiring (energy as the SECC says)
        self.energy_permitted: Callable[[], bool] | None = None
        self._reset_session()
        # sequences that outlive a session
        self._zero_since: float | None = None  # StopPower: waiting for |I| ~ 0, then OFF
        self._open_since: float | None = None  # OpenContactors: waiting for |I| ~ 0
        self._contactor_cmd_at: float | None = None
        self._energised = False  # our last supply command was not "zero"/"off"
        self._we_closed = False  # we closed the contactors and have not opened them
        self._estop_reported = False
        self._fault_reported = False
        # measured values, refreshed by poll()
        self._voltage = 0.0
        self._current = 0.0
        self.energy_in_wh = 0.0  # integrated from the measurements (AC estimate included)
        self.energy_out_wh = 0.0
        self._last_poll: float | None = now

    def _reset_session(self) -> None:
        self.kind: str | None = None  # "dc" / "ac" once known
        self.bidirectional = False
        self.ev_limits: EvLimits | None = None
        self._cc_voltage: float | None = None  # cable check test voltage
        self._cc_phase: str | None = None  # "ramp" / "measure"
        self._cc_since = 0.0
        self._cc_result: bool | None = None
        self._ac_target: tuple[float, float, float] = (0.0, 0.0, 0.0)  # V, A per phase, W
        self._phase = "idle"

    # -- session bracket -----------------------------------------------------------------

    def begin_session(self, now: float) -> None:
        """A new EV connection: forget the last session's service, limits and results.

        Running safety sequences (a contactor opening after the previous session) go on.
        """
        self._reset_session()
        self.safe_reason = None
        # The HAL's latched faults (a lost MCU link that came back) belonged to the last
        # session; a fault still present is found (and reported) at the next poll.
        acknowledge = getattr(self.hal, "acknowledge_faults", None)  # duck-typed test HALs
        if callable(acknowledge):
            try:
                acknowledge(now)
            except Exception as exc:  # the next poll judges the hardware
                self._record(now, "hal_error", f"acknowledge_faults: {exc!r}")
        self.fault = None
        self._fault_reported = False
        self._estop_reported = False

    # -- SECC effects --------------------------------------------------------------------

    def handle_effects(self, effects: Iterable[ev.Effect], now: float) -> list[ev.Event]:
        out: list[ev.Event] = []
        for effect in effects:
            out += self.handle_effect(effect, now)
        return out

    def handle_effect(self, effect: ev.Effect, now: float) -> list[ev.Event]:
        """Carry out one SECC effect; returns inputs for the SECC (usually none)."""
        try:
            return self._handle(effect, now)
        except HalError as exc:
            name = type(effect).__name__
            self._record(now, "hal_error", f"{name}: {exc}")
            return self._hal_fault(f"{name} refused by the hardware: {exc}", now)

    def _handle(self, effect: ev.Effect, now: float) -> list[ev.Event]:
        if isinstance(effect, ev.SetPowerTarget):
            self._set_power_target(effect, now)
        elif isinstance(effect, ev.StartCableCheck):
            self._start_cable_check(effect.voltage, now)
        elif isinstance(effect, ev.StartPreCharge):
            self._start_precharge(effect, now)
        elif isinstance(effect, ev.CloseContactors):
            self._close_contactors(now)
        elif isinstance(effect, ev.StopPower):
            self._stop_power(now)
        elif isinstance(effect, ev.OpenContactors):
            self._request_open(now)
        else:
            self._follow_session(effect, now)
        return []

    def _follow_session(self, effect: ev.Effect, now: float) -> None:
        """The session effects that set what the hardware serves (or end it)."""
        if isinstance(effect, ev.SessionStarted):
            if "-20:AC" in effect.protocol:
                self.kind = "ac"
            elif "-20:DC" in effect.protocol:
                self.kind = "dc"
        elif isinstance(effect, ev.EnergyServiceSelected):
            self.kind = "ac" if effect.service_id in (1, 5) else "dc"
            self.bidirectional = effect.bidirectional
        elif isinstance(effect, ev.EvLimitsReported):
            self.ev_limits = effect.limits
        elif isinstance(effect, ev.SessionEnded):
            if effect.failed:
                self.safe_state(f"session failed: {effect.reason}", now)
            else:
                self._stop_power(now)
                self._request_open(now)
        # SendData, CloseConnection, RequestAuthorization: not the hardware's business

    # -- cable check, precharge ----------------------------------------------------------

    @property
    def caps(self) -> PowerSupplyCapabilities:
        return self.hal.power_supply.capabilities

    def _clamp_voltage(self, volts: float, what: str, now: float) -> float:
        caps = self.caps
        clamped = min(max(volts, caps.min_voltage), caps.max_voltage)
        if clamped != volts:
            self._record(now, "clamp", f"{what} {volts:.1f} V -> {clamped:.1f} V")
        return clamped

    def _start_cable_check(self, voltage: float, now: float) -> None:
        psu = self.hal.power_supply
        volts = self._clamp_voltage(voltage, "cable check", now)
        amps = min(self.config.cable_check_current, self.caps.max_charge_current)
        psu.set_mode(PowerSupplyMode.CABLECHECK)
        psu.set_voltage_current(volts, amps)
        self._record(now, "cable_check_voltage", f"{volts:.1f} V, {amps:.1f} A limit")
        self._cc_voltage, self._cc_phase, self._cc_since = volts, "ramp", now
        self._energised = True
        self._cc_result = None
        self._zero_since = None
        self._phase = "cable_check"

    def _start_precharge(self, effect: ev.StartPreCharge, now: float) -> None:
        psu = self.hal.power_supply
        volts = self._clamp_voltage(effect.target_voltage, "precharge", now)
        amps = min(max(effect.max_current, 0.0), self.caps.max_charge_current)
        if psu.mode is not PowerSupplyMode.PRECHARGE:
            psu.set_mode(PowerSupplyMode.PRECHARGE)
        psu.set_voltage_current(volts, amps)
        self._record(now, "precharge", f"{volts:.1f} V, {amps:.1f} A limit")
        self._energised = True
        self._cc_phase = None
        self._zero_since = None
        self._phase = "precharge"

    def _poll_cable_check(self, now: float) -> list[ev.Event]:
        volts = self._cc_voltage
        if self._cc_phase is None or volts is None:
            return []
        imd = self.hal.isolation_monitor
        cfg = self.config
        if imd.fault is not None:
            return self._cable_check_done(False, f"isolation monitor fault: {imd.fault}", now)
        if self._cc_phase == "ramp":
            tolerance = max(5.0, cfg.cable_check_voltage_tolerance * volts)
            if abs(self._voltage - volts) <= tolerance:
                imd.stop()  # a fresh cycle: only a reading at the test voltage counts
                imd.start()
                self._cc_phase, self._cc_since = "measure", now
                self._record(now, "isolation_monitor_start", f"at {self._voltage:.1f} V")
            elif now - self._cc_since > cfg.cable_check_ramp_timeout:
                return self._cable_check_done(
                    False, f"output stuck at {self._voltage:.1f} V (test voltage {volts:.1f} V)",
                    now)
            return []
        reading = imd.reading()
        if reading is None or reading.timestamp < self._cc_since:
            if now - self._cc_since > cfg.cable_check_measure_timeout:
                return self._cable_check_done(False, "no isolation reading", now)
            return []
        verdict = judge_isolation(
            reading.resistance_ohm, volts,
            fault_ohm_per_volt=cfg.isolation_fault_ohm_per_volt,
            warning_ohm_per_volt=cfg.isolation_warning_ohm_per_volt,
        )
        detail = f"{reading.resistance_ohm:.0f} ohm at {volts:.0f} V = {verdict.ohm_per_volt:.0f}"
        if verdict.warning:
            self._log.warning("insulation resistance low (warning level): %s ohm/V", detail)
        return self._cable_check_done(verdict.ok, detail + " ohm/V", now)

    def _cable_check_done(self, ok: bool, detail: str, now: float) -> list[ev.Event]:
        self._cc_phase = None
        self._cc_result = ok
        self._record(now, "cable_check_ok" if ok else "cable_check_failed", detail)
        if not ok:
            self._log.error("cable check failed: %s", detail)
            self.safe_state(f"cable check failed: {detail}", now)
        return [ev.CableCheckFinished(isolation_ok=ok)]

    # -- energy transfer -----------------------------------------------------------------

    def _set_power_target(self, effect: ev.SetPowerTarget, now: float) -> None:
        if self.kind == "ac":
            if self.energy_permitted is not None and not self.energy_permitted():
                self._record(now, "clamp", "AC target refused: pilot not in C/D")
                effect = ev.SetPowerTarget(effect.voltage, 0.0, 0.0)
            self._ac_target = (effect.voltage, effect.current, effect.power)
            self._phase = "energy"
            return
        psu = self.hal.power_supply
        caps = self.caps
        amps = effect.current
        if amps != 0.0 and self.energy_permitted is not None and not self.energy_permitted():
            # IEC 61851-1: energy flows only in C/D, whatever the EV asks over the link
            self._record(now, "clamp", f"{amps:.1f} A refused: pilot not in C/D")
            amps = 0.0
        # the power limit applies at the voltage the current flows at (the measured one)
        v_ref = self._voltage if self._voltage > 1.0 else max(effect.voltage, caps.min_voltage)
        if amps < 0 and not (caps.bidirectional and self.bidirectional):
            self._record(now, "clamp", f"discharge {amps:.1f} A refused: not bidirectional")
            amps = 0.0
        if amps < 0:
            mode = PowerSupplyMode.IMPORT
            floor = caps.min_voltage
            if self.ev_limits is not None and self.ev_limits.min_voltage is not None:
                floor = max(floor, self.ev_limits.min_voltage)
            volts = min(floor, caps.max_voltage)
            limit = min(caps.max_discharge_current, caps.max_discharge_power / v_ref)
            if -amps > limit:
                self._record(now, "clamp", f"discharge {amps:.1f} A -> {-limit:.1f} A")
                amps = -limit
        else:
            mode = PowerSupplyMode.EXPORT
            volts = self._clamp_voltage(effect.voltage, "voltage limit", now)
            limit = min(caps.max_charge_current, caps.max_charge_power / v_ref)
            if amps > limit:
                self._record(now, "clamp", f"charge {amps:.1f} A -> {limit:.1f} A")
                amps = limit
        if psu.mode is not mode:
            psu.set_mode(mode)
            self._record(now, "supply_mode", str(mode))
        previous = psu.setpoint
        psu.set_voltage_current(volts, amps)
        if (volts, amps) != previous:
            self._record(now, "current_zero" if amps == 0.0 else "setpoint",
                         f"{volts:.1f} V, {amps:.1f} A")
        self._energised = amps != 0.0
        self._zero_since = None
        self._phase = "energy"

    def _stop_power(self, now: float) -> None:
        """Current to zero now; the supply goes OFF once the current is ~0 (poll)."""
        if self.kind == "ac" and self._ac_target[1:] != (0.0, 0.0):
            self._ac_target = (self._ac_target[0], 0.0, 0.0)
            self._record(now, "current_zero", "AC target 0 W")
        psu = self.hal.power_supply
        self._cc_phase = None
        if psu.mode is PowerSupplyMode.OFF:
            self._zero_since = None
            if self._energised:  # the supply switched itself off (a trip, an interlock)
                self._energised = False
                self._record(now, "supply_off", "found off (tripped)")
            return
        if psu.mode in _ENERGISED:
            volts, amps = psu.setpoint
            if amps != 0.0:
                psu.set_voltage_current(volts, 0.0)
                self._record(now, "current_zero", f"{volts:.1f} V, 0 A")
            self._energised = False
            if self._zero_since is None:
                self._zero_since = now
        else:  # precharge / cable check: a voltage source with a few amps: off at once
            mode = psu.mode
            psu.set_mode(PowerSupplyMode.OFF)
            self._record(now, "current_zero", f"from {mode}")
            self._record(now, "supply_off")
            self._energised = False
            self._zero_since = None
        if self._phase != "safe":
            self._phase = "stopping"

    def _close_contactors(self, now: float) -> None:
        board = self.hal.board
        self._open_since = None
        if not board.contactors_commanded_closed:
            board.close_contactors()
            self._contactor_cmd_at = now
            self._we_closed = True
            self._record(now, "contactors_close")

    def _request_open(self, now: float) -> None:
        """Open the contactors once the current is ~0 (at once if it already is)."""
        board = self.hal.board
        if not board.contactors_commanded_closed:
            self._open_since = None
            return
        psu = self.hal.power_supply
        if (psu.mode in _ENERGISED and psu.setpoint[1] != 0.0) or self._ac_target[1] != 0.0:
            self._stop_power(now)  # never open under a current command
        if self._open_since is None:
            self._open_since = now
        self._try_open(now)

    def _try_open(self, now: float) -> None:
        if self._open_since is None:
            return
        board = self.hal.board
        zero = abs(self._present_current()) <= self.config.zero_current
        if zero or now - self._open_since >= self.config.open_timeout:
            board.open_contactors()
            self._contactor_cmd_at = now
            self._we_closed = False
            self._record(now, "contactors_open" if zero else "contactors_open_forced",
                         "" if zero else f"current still {self._present_current():.1f} A")
            self._open_since = None

    def _present_current(self) -> float:
        if self.kind == "ac":
            return self._ac_target[1] if self.hal.board.contactors_closed else 0.0
        return self._current

    # -- safe state ----------------------------------------------------------------------

    def safe_state(self, reason: str, now: float) -> None:
        """Current to zero, supply off, contactors open (after zero current or a timeout).

        Idempotent; HAL errors on the way are logged and the remaining steps still run.
        """
        psu, board = self.hal.power_supply, self.hal.board
        already_safe = (psu.mode is PowerSupplyMode.OFF and not board.contactors_commanded_closed
                        and self._ac_target[1] == 0.0)
        if not already_safe and self._phase != "safe":
            if self.safe_reason is None:
                self.safe_reason = reason
            self._record(now, "safe_state", reason)
            self._log.warning("safe state: %s", reason)
        self._cc_phase = None
        try:
            self._stop_power(now)
        except HalError as exc:
            self._record(now, "current_zero_failed", str(exc))
            self._force_off(now)
        try:
            self._request_open(now)
        except HalError as exc:
            self._record(now, "contactors_open_failed", str(exc))
        self._phase = "safe"

    def _force_off(self, now: float) -> None:
        try:
            self.hal.power_supply.set_mode(PowerSupplyMode.OFF)
            self._energised = False
            self._record(now, "supply_off", "forced")
        except HalError as exc:
            self._record(now, "supply_off_failed", str(exc))
        self._zero_since = None

    @property
    def safe_state_reached(self) -> bool:
        """Supply off (or no current command) and the contactors open (feedback)."""
        psu, board = self.hal.power_supply, self.hal.board
        return (psu.mode is PowerSupplyMode.OFF and not board.contactors_commanded_closed
                and not board.contactors_closed and self._open_since is None)

    def _hal_fault(self, reason: str, now: float) -> list[ev.Event]:
        self.fault = reason
        self.safe_state(reason, now)
        if self._fault_reported:
            return []
        self._fault_reported = True
        return [ev.EmergencyStop(reason)]

    # -- polling -------------------------------------------------------------------------

    def poll(self, now: float) -> list[ev.Event]:
        """Poll the HAL at `now`, advance the sequences, return inputs for the SECC.

        Always ends with a `MeasurementsUpdated` (unless the HAL could not be read).
        """
        out: list[ev.Event] = []
        try:
            self.hal.poll(now)
            m = self.hal.power_supply.measurement()
        except Exception as exc:  # a backend bug or a lost link: the hardware is unknown
            self._record(now, "hal_error", f"poll: {exc!r}")
            try:
                return self._hal_fault(f"HAL poll failed: {exc!r}", now)
            except Exception:  # the hardware does not even take the safe state commands
                self._log.exception("safe state commands failed")
                return []
        self._integrate(now)
        self._voltage, self._current = m.voltage, m.current
        out += self._check_faults(now)
        try:
            out += self._poll_cable_check(now)
            self._advance_stop(now)
            self._try_open(now)
            if self._phase == "stopping" and self.safe_state_reached:
                self._phase = "idle"
        except HalError as exc:
            self._record(now, "hal_error", str(exc))
            out += self._hal_fault(f"hardware refused a command: {exc}", now)
        out.append(self._measurements())
        return out

    def _integrate(self, now: float) -> None:
        last, self._last_poll = self._last_poll, now
        if last is None or now <= last:
            return
        power = self._power()
        wh = power * (now - last) / 3600.0
        if wh >= 0:
            self.energy_in_wh += wh
        else:
            self.energy_out_wh -= wh

    def _power(self) -> float:
        if self.kind == "ac":
            return self._ac_target[2] if self.hal.board.contactors_closed else 0.0
        return self._voltage * self._current

    def _measurements(self) -> ev.MeasurementsUpdated:
        meter = None
        try:
            meter = self.hal.meter.reading()
        except Exception as exc:  # a meter hiccup must not stop the measurements
            self._log.debug("meter reading failed: %r", exc)
        imported = meter.energy_imported_wh if meter is not None else None
        exported = meter.energy_exported_wh if meter is not None else None
        signature = meter.signature if meter is not None else None
        if self.kind == "ac":
            closed = self.hal.board.contactors_closed
            volts, amps, watts = self._ac_target if closed else (self._ac_target[0], 0.0, 0.0)
            return ev.MeasurementsUpdated(volts, amps, present_power=watts,
                                          imported_wh=imported, exported_wh=exported,
                                          meter_signature=signature)
        return ev.MeasurementsUpdated(self._voltage, self._current,
                                      imported_wh=imported, exported_wh=exported,
                                      meter_signature=signature)

    def _advance_stop(self, now: float) -> None:
        if self._zero_since is None:
            return
        psu = self.hal.power_supply
        zero = abs(self._current) <= self.config.zero_current
        if zero or now - self._zero_since >= self.config.off_timeout:
            psu.set_mode(PowerSupplyMode.OFF)
            self._record(now, "supply_off", "" if zero else "forced: current did not fall")
            self._zero_since = None

    def _check_faults(self, now: float) -> list[ev.Event]:
        if self.hal.board.emergency_stop_active:
            return self._emergency_stop(now)
        reasons = [*self._hardware_faults(), *self._isolation_faults(),
                   *self._contactor_faults(now)]
        if not reasons:
            return []
        reason = "; ".join(reasons)
        if self.fault != reason:
            self._record(now, "fault", reason)
        return self._hal_fault(reason, now)

    def _emergency_stop(self, now: float) -> list[ev.Event]:
        """The board's emergency stop: safe state and one EmergencyStop for the SECC."""
        if self._estop_reported:
            return []
        board = self.hal.board
        self._estop_reported = True
        self._fault_reported = True
        self.fault = "emergency stop"
        self._record(now, "emergency_stop", "board emergency stop latched")
        self.safe_state("emergency stop", now)
        if self._we_closed and not board.contactors_commanded_closed:
            self._we_closed = False  # the board's interlock opened them, not us
            self._record(now, "contactors_open_emergency", "by the emergency stop")
        return [ev.EmergencyStop("emergency stop button")]

    def _hardware_faults(self) -> list[str]:
        """Faults the supply, the backend or a safety supervisor wrapping it report."""
        hal = self.hal
        reasons = []
        if hal.power_supply.fault is not None:
            reasons.append(f"power supply fault: {hal.power_supply.fault}")
        backend_fault = getattr(hal, "fault", None)
        if isinstance(backend_fault, str) and backend_fault:
            reasons.append(f"HAL fault: {backend_fault}")
        if getattr(hal, "tripped", False) is True:  # a safety supervisor wrapping the backend
            first = next(iter(getattr(hal, "active_trips", None) or ()), None)
            reasons.append("safety supervisor tripped" if first is None else
                           f"safety supervisor tripped ({first.reason}: {first.text})")
        return reasons

    def _isolation_faults(self) -> list[str]:
        """While the output may be live: the monitor's own fault, or the insulation falling
        below the limit for the cable check's voltage."""
        if self._phase not in ("cable_check", "precharge", "energy"):
            return []
        imd = self.hal.isolation_monitor
        reasons = []
        if imd.fault is not None and self._cc_phase is None:
            reasons.append(f"isolation monitor fault: {imd.fault}")
        if self._cc_result and self._cc_voltage and imd.measuring:
            reading = imd.reading()
            if reading is not None and not judge_isolation(
                reading.resistance_ohm, self._cc_voltage,
                fault_ohm_per_volt=self.config.isolation_fault_ohm_per_volt,
            ).ok:
                reasons.append(f"insulation fault: {reading.resistance_ohm:.0f} ohm")
        return reasons

    def _contactor_faults(self, now: float) -> list[str]:
        """Contactors not in the commanded state once the timeout has passed."""
        cmd_at, board = self._contactor_cmd_at, self.hal.board
        if cmd_at is None or now - cmd_at <= self.config.contactor_timeout:
            return []
        if board.contactors_closed != board.contactors_commanded_closed:
            state = "welded" if board.contactors_closed else "did not close"
            return [f"contactor {state}"]
        self._contactor_cmd_at = None
        return []

    # -- bookkeeping ---------------------------------------------------------------------

    def _record(self, now: float, name: str, detail: str = "") -> None:
        self.actions.append(Action(now, name, detail, self._present_current()))
        self._log.debug("%s %s", name, detail)

    def status(self) -> ControllerStatus:
        return ControllerStatus(
            voltage=self._ac_target[0] if self.kind == "ac" else self._voltage,
            current=self._present_current(),
            power=self._power(),
            mode=str(self.hal.power_supply.mode),
            contactors_closed=self.hal.board.contactors_closed,
            phase=self._phase,
            fault=self.fault,
        )

    def action_names(self) -> list[str]:
        return [a.name for a in self.actions]


def check_safe_sequence(actions: Iterable[Action], zero_current: float = 1.0) -> str | None:
    """None if every contactor opening came after a zero-current command and with |I| ~ 0
    (or was a bounded-wait "forced" opening); else what is wrong. For tests and reports."""
    zero_commanded = False
    for a in actions:
        if a.name in ("current_zero", "supply_off", "safe_state"):
            zero_commanded = zero_commanded or a.name != "safe_state"
        elif a.name in ("setpoint", "precharge", "cable_check_voltage"):
            zero_commanded = False
        elif a.name == "contactors_open":
            if not zero_commanded:
                return f"contactors opened at t={a.time:.3f} without a zero-current command"
            if abs(a.current) > zero_current or math.isnan(a.current):
                return f"contactors opened at t={a.time:.3f} under {a.current:.1f} A"
    return None
