"""Safety supervisor: a HalBackend wrapping another, watching it on every poll.

    backend = SafetySupervisor(create_backend_from_spec("serial:/dev/ttymxc2,can:socketcan:can0,"
        "isolation_monitor=modbus-imd:rtu:/dev/ttymxc3,meter=modbus-meter:tcp:10.0.0.7"))
    backend.set_limits(max_voltage=500.0, max_charge_current=200.0, max_discharge_current=100.0)
    ...
    backend.poll(now)
    if backend.tripped:
        reason = backend.trips[0].reason  # the session layer ends the session with it

Control code uses it exactly like the wrapped backend (same parts, same commands). Each
`poll(now)` polls the backend, then checks:

- the power supply's measurement is not older than `stale_after` (1 s);
- measured voltage and current stay within the EV's limits (`set_limits`) and the
  supply's capabilities (plus a tolerance);
- contactor feedback agrees with the command once `contactor_timeout` has passed since
  the command changed (a welded or stuck contactor);
- the isolation monitor reports no device fault and, while measuring, no resistance under
  `isolation_ohm_per_volt` x the voltage limit (IEC 61851-23's 100 ohm/V fault level);
- no part reports a fault (a lost MCU link, all power modules lost);
- no emergency stop.

On the first failed check it trips: the reason (enum + text + time) goes to `trips`, and
it drives the safe state in this order, which `actions` records with times so tests can
assert it: (1) power supply to OFF (setpoint zero first), at once; (2) contactors open
once a measurement taken after (1) shows |I| <= `zero_current`, or after `open_timeout`
without one (then the action is "open_contactors_forced"). While tripped, commands that
would energise (a mode other than OFF, closing contactors) raise `SafetyTripActive`;
`reset(now)` clears the trip when no check fails any more.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hal.interfaces import (
    Board,
    EmergencyStopActive,
    HalBackend,
    IsolationMonitor,
    Measurement,
    Meter,
    PilotState,
    PowerSupplyCapabilities,
    PowerSupplyDC,
    PowerSupplyMode,
    SetpointOutOfRange,
)

log = logging.getLogger(__name__)


class SafetyTripActive(EmergencyStopActive):
    """Energising is refused while the supervisor is tripped (reset it first)."""


class TripReason(StrEnum):
    STALE_MEASUREMENT = "stale_measurement"
    OVER_VOLTAGE = "over_voltage"
    OVER_CURRENT = "over_current"  # charging current above the limit
    OVER_DISCHARGE_CURRENT = "over_discharge_current"
    CONTACTOR_MISMATCH = "contactor_mismatch"  # welded, or did not close
    ISOLATION_FAULT = "isolation_fault"
    LINK_LOST = "link_lost"  # the board's link (safety MCU) reports a fault
    POWER_SUPPLY_FAULT = "power_supply_fault"  # e.g. every power module lost
    EMERGENCY_STOP = "emergency_stop"
    BACKEND_ERROR = "backend_error"  # the backend's poll raised
    REQUESTED = "requested"  # trip() called by control code

    @property
    def emergency(self) -> bool:
        """True for reasons that call for an emergency shutdown notification (the rest
        are malfunctions): the session layer picks the EVSE status code from this."""
        return self in _EMERGENCY


_EMERGENCY = frozenset(
    {
        TripReason.EMERGENCY_STOP,
        TripReason.ISOLATION_FAULT,
        TripReason.OVER_VOLTAGE,
        TripReason.OVER_CURRENT,
        TripReason.OVER_DISCHARGE_CURRENT,
        TripReason.CONTACTOR_MISMATCH,
    }
)


@dataclass(frozen=True, slots=True)
class Trip:
    reason: TripReason
    text: str
    time: float


@dataclass(frozen=True, slots=True)
class SafeStateAction:
    time: float
    action: str  # "power_off", "open_contactors", "open_contactors_forced", "emergency_stop",
    #              "<action>_failed"
    current: float  # the measured current when the action was taken
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Limits:
    max_voltage: float
    max_charge_current: float
    max_discharge_current: float


class _Phase(StrEnum):
    NORMAL = "normal"
    WAIT_ZERO_CURRENT = "wait_zero_current"
    SAFE = "safe"


class SupervisedPowerSupply(PowerSupplyDC):
    """The wrapped supply, refusing to energise while the supervisor is tripped."""

    def __init__(self, supervisor: SafetySupervisor, inner: PowerSupplyDC) -> None:
        super().__init__()
        self._supervisor = supervisor
        self.inner = inner

    @property
    def capabilities(self) -> PowerSupplyCapabilities:
        return self.inner.capabilities

    def measurement(self) -> Measurement:
        return self.inner.measurement()

    @property
    def fault(self) -> str | None:
        return self.inner.fault

    @property
    def mode(self) -> PowerSupplyMode:
        return self.inner.mode

    @property
    def setpoint(self) -> tuple[float, float]:
        return self.inner.setpoint

    def set_mode(self, mode: PowerSupplyMode) -> None:
        if mode is not PowerSupplyMode.OFF:
            self._supervisor._refuse_if_tripped(f"power supply mode {mode}")
        self.inner.set_mode(mode)

    def set_voltage_current(self, volts: float, amps: float) -> None:
        if volts or amps:
            self._supervisor._refuse_if_tripped("a power setpoint")
        self.inner.set_voltage_current(volts, amps)

    def _apply_mode(self, mode: PowerSupplyMode) -> None:  # pragma: no cover - not reached
        self.set_mode(mode)

    def _apply_setpoint(self, volts: float, amps: float) -> None:  # pragma: no cover
        self.set_voltage_current(volts, amps)

    def __getattr__(self, name: str) -> Any:  # backend extras: degraded, events, modules...
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class SupervisedBoard(Board):
    """The wrapped board: closing contactors is refused while tripped; a software
    emergency stop cuts the power first."""

    def __init__(self, supervisor: SafetySupervisor, inner: Board) -> None:
        super().__init__()
        self._supervisor = supervisor
        self.inner = inner

    @property
    def pilot_state(self) -> PilotState:
        return self.inner.pilot_state

    @property
    def contactors_closed(self) -> bool:
        return self.inner.contactors_closed

    @property
    def emergency_stop_active(self) -> bool:
        return self.inner.emergency_stop_active

    @property
    def pwm_duty(self) -> float:
        return self.inner.pwm_duty

    @property
    def contactors_commanded_closed(self) -> bool:
        return self.inner.contactors_commanded_closed

    def set_pwm_duty(self, percent: float) -> None:
        self.inner.set_pwm_duty(percent)

    def close_contactors(self) -> None:
        self._supervisor._refuse_if_tripped("closing the contactors")
        self.inner.close_contactors()

    def open_contactors(self) -> None:
        self.inner.open_contactors()

    def emergency_stop(self) -> None:
        self._supervisor._software_emergency_stop()

    def reset_emergency_stop(self) -> bool:
        return self.inner.reset_emergency_stop()

    def _apply_pwm_duty(self, percent: float) -> None:  # pragma: no cover - not reached
        self.inner.set_pwm_duty(percent)

    def _apply_contactors(self, closed: bool) -> None:  # pragma: no cover
        self.inner.close_contactors() if closed else self.inner.open_contactors()

    def _apply_emergency_stop(self) -> None:  # pragma: no cover
        self.inner.emergency_stop()

    def __getattr__(self, name: str) -> Any:  # backend extras: fault, link_up, ...
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class SafetySupervisor(HalBackend):
    name = "supervised"

    def __init__(
        self,
        backend: HalBackend,
        *,
        stale_after: float = 1.0,
        contactor_timeout: float = 0.3,
        zero_current: float = 1.0,
        open_timeout: float = 0.5,
        voltage_tolerance: float = 10.0,
        current_tolerance: float = 5.0,
        isolation_ohm_per_volt: float = 100.0,
    ) -> None:
        for name, value in (
            ("stale_after", stale_after),
            ("contactor_timeout", contactor_timeout),
            ("zero_current", zero_current),
            ("open_timeout", open_timeout),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number")
        self.backend = backend
        self.stale_after = stale_after
        self.contactor_timeout = contactor_timeout
        self.zero_current = zero_current
        self.open_timeout = open_timeout
        self.voltage_tolerance = voltage_tolerance
        self.current_tolerance = current_tolerance
        self.isolation_ohm_per_volt = isolation_ohm_per_volt
        self._psu = SupervisedPowerSupply(self, backend.power_supply)
        self._board = SupervisedBoard(self, backend.board)
        self.limits: Limits | None = None
        self.trips: list[Trip] = []  # every trip recorded, oldest first (kept after reset)
        self.actions: list[SafeStateAction] = []  # every safe-state action, oldest first
        self._episode: list[Trip] = []  # the trips of the present (unreset) episode
        self._phase = _Phase.NORMAL
        self._power_off_at: float | None = None
        self._started: float | None = None
        self._now = 0.0
        self._cmd_seen: bool | None = None
        self._cmd_changed_at = 0.0

    # ---- HalBackend ----------------------------------------------------------------------

    @property
    def power_supply(self) -> SupervisedPowerSupply:
        return self._psu

    @property
    def board(self) -> SupervisedBoard:
        return self._board

    @property
    def isolation_monitor(self) -> IsolationMonitor:
        return self.backend.isolation_monitor

    @property
    def meter(self) -> Meter:
        return self.backend.meter

    def close(self) -> None:
        try:
            if self._phase is _Phase.NORMAL:
                self._power_off(self._now, "close")
                self._open_contactors(self._now, "open_contactors", "close")
        finally:
            self.backend.close()

    # ---- configuration and state ---------------------------------------------------------

    def set_limits(
        self, max_voltage: float, max_charge_current: float, max_discharge_current: float
    ) -> None:
        """The EV's limits for this session (the supply's capabilities apply as well)."""
        values = (max_voltage, max_charge_current, max_discharge_current)
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise SetpointOutOfRange("limits must be finite and non-negative")
        self.limits = Limits(*map(float, values))

    def clear_limits(self) -> None:
        self.limits = None

    @property
    def tripped(self) -> bool:
        return bool(self._episode)

    @property
    def active_trips(self) -> list[Trip]:
        """The trips since the last reset; the first is the cause, the rest followed."""
        return list(self._episode)

    @property
    def safe_state_reached(self) -> bool:
        return (
            self._phase is _Phase.SAFE
            and self.backend.power_supply.mode is PowerSupplyMode.OFF
            and not self.backend.board.contactors_commanded_closed
        )

    def trip(self, reason: TripReason, text: str, now: float | None = None) -> None:
        """Trip now (from control code, e.g. a protocol error that needs the safe state)."""
        self._record(now if now is not None else self._now, [(reason, text)])

    def acknowledge_faults(self, now: float) -> None:
        """Record what the backend still reports, then let it clear its latched faults
        (control calls this when a new session starts; `reset` clears the trip)."""
        failing = self._checks(now) if self._started is not None else []
        if failing:
            self._record(now, failing)
        self.backend.acknowledge_faults(now)

    def reset(self, now: float) -> bool:
        """Clear the trip if the safe state was reached and no check fails now."""
        if not self._episode:
            return True
        if self._phase is not _Phase.SAFE:
            return False
        failing = self._checks(now)
        if failing:
            log.info("supervisor reset refused: %s", "; ".join(t for _, t in failing))
            return False
        self._episode.clear()
        self._phase = _Phase.NORMAL
        self._power_off_at = None
        log.info("supervisor reset at %.3f", now)
        return True

    # ---- the poll ------------------------------------------------------------------------

    def poll(self, now: float) -> None:
        self._now = now
        if self._started is None:
            self._started = now
        try:
            self.backend.poll(now)
        except Exception as exc:  # a backend must not raise; if it does, that is a fault
            log.exception("backend poll raised")
            self._record(now, [(TripReason.BACKEND_ERROR, f"{type(exc).__name__}: {exc}")])
        failing = self._checks(now)
        if failing:
            self._record(now, failing)
        self._drive_safe_state(now)

    def _checks(self, now: float) -> list[tuple[TripReason, str]]:
        """Every failing condition now, in a fixed order (the first one names the trip)."""
        found: list[tuple[TripReason, str]] = []
        board = self.backend.board
        assert self._started is not None

        if board.emergency_stop_active:
            found.append((TripReason.EMERGENCY_STOP, "emergency stop active"))
        board_fault = _fault_of(board)
        if board_fault:
            found.append((TripReason.LINK_LOST, board_fault))
        if self.backend.power_supply.fault:
            found.append((TripReason.POWER_SUPPLY_FAULT, self.backend.power_supply.fault))
        found += self._measurement_checks(now)
        found += self._contactor_checks(now, trust_feedback=not board_fault)
        found += self._isolation_checks()
        return found

    def _measurement_checks(self, now: float) -> list[tuple[TripReason, str]]:
        """A stale measurement, or voltage / current beyond the supply's and the limits'."""
        assert self._started is not None
        psu = self.backend.power_supply
        m = psu.measurement()
        age = now - m.timestamp
        if age > self.stale_after:
            if now - self._started > self.stale_after:
                return [(TripReason.STALE_MEASUREMENT, f"measurement {age:.3f} s old at {now:.3f}")]
            return []
        caps = psu.capabilities
        limits = self.limits
        v_max = caps.max_voltage if limits is None else min(caps.max_voltage, limits.max_voltage)
        i_max = caps.max_charge_current
        d_max = caps.max_discharge_current
        if limits is not None:
            i_max = min(i_max, limits.max_charge_current)
            d_max = min(d_max, limits.max_discharge_current)
        found: list[tuple[TripReason, str]] = []
        if m.voltage > v_max + self.voltage_tolerance:
            found.append((TripReason.OVER_VOLTAGE, f"{m.voltage:.1f} V > {v_max:.1f} V"))
        if m.current > i_max + self.current_tolerance:
            found.append((TripReason.OVER_CURRENT, f"{m.current:.1f} A > {i_max:.1f} A"))
        if -m.current > d_max + self.current_tolerance:
            found.append((TripReason.OVER_DISCHARGE_CURRENT,
                          f"discharging {-m.current:.1f} A > {d_max:.1f} A"))
        return found

    def _contactor_checks(self, now: float, *, trust_feedback: bool
                          ) -> list[tuple[TripReason, str]]:
        """Feedback differing from the command for longer than the contactor timeout (only
        with a trustworthy feedback: not without the link)."""
        board = self.backend.board
        commanded = board.contactors_commanded_closed
        if commanded != self._cmd_seen:
            self._cmd_seen = commanded
            self._cmd_changed_at = now
        feedback = board.contactors_closed
        if (
            trust_feedback
            and feedback != commanded
            and now - self._cmd_changed_at > self.contactor_timeout
        ):
            what = "welded: closed" if feedback else "stuck: open"
            return [(TripReason.CONTACTOR_MISMATCH,
                     f"contactor {what} {now - self._cmd_changed_at:.3f} s after the command")]
        return []

    def _isolation_checks(self) -> list[tuple[TripReason, str]]:
        """The monitor's own fault, or a resistance below ohm-per-volt x the maximum voltage."""
        imd = self.backend.isolation_monitor
        found: list[tuple[TripReason, str]] = []
        if imd.fault:
            found.append((TripReason.ISOLATION_FAULT, f"isolation monitor: {imd.fault}"))
        reading = imd.reading() if imd.measuring else None
        if reading is not None:
            v_ref = (self.limits.max_voltage if self.limits is not None
                     else self.backend.power_supply.capabilities.max_voltage)
            threshold = self.isolation_ohm_per_volt * v_ref
            if reading.resistance_ohm < threshold:
                found.append((TripReason.ISOLATION_FAULT,
                              f"insulation {reading.resistance_ohm:.0f} ohm < {threshold:.0f} ohm"))
        return found

    # ---- trips and the safe state --------------------------------------------------------

    def _record(self, now: float, failing: list[tuple[TripReason, str]]) -> None:
        known = {t.reason for t in self._episode}
        first = not self._episode
        for reason, text in failing:
            if reason in known:
                continue
            known.add(reason)
            trip = Trip(reason, text, now)
            self._episode.append(trip)
            self.trips.append(trip)
            log.error("safety trip at %.3f: %s: %s", now, reason, text)
        if first and self._episode:
            self._power_off(now, self._episode[0].reason.value)
            self._phase = _Phase.WAIT_ZERO_CURRENT

    def _drive_safe_state(self, now: float) -> None:
        psu = self.backend.power_supply
        if self._phase is _Phase.WAIT_ZERO_CURRENT:
            assert self._power_off_at is not None
            m = psu.measurement()
            fresh = m.timestamp > self._power_off_at and now - m.timestamp <= self.stale_after
            if fresh and abs(m.current) <= self.zero_current:
                self._open_contactors(now, "open_contactors", f"current {m.current:.2f} A")
                self._phase = _Phase.SAFE
            elif now - self._power_off_at >= self.open_timeout - 1e-9:
                self._open_contactors(
                    now,
                    "open_contactors_forced",
                    f"no zero-current reading {now - self._power_off_at:.3f} s after power off "
                    f"(last {m.current:.2f} A at {m.timestamp:.3f})",
                )
                self._phase = _Phase.SAFE
        elif self._phase is _Phase.SAFE:
            # Hold it: nothing may have energised behind the supervisor's back.
            if psu.mode is not PowerSupplyMode.OFF:
                self._power_off(now, "re-assert")
            if self.backend.board.contactors_commanded_closed:
                self._open_contactors(now, "open_contactors", "re-assert")

    def _power_off(self, now: float, why: str) -> None:
        psu = self.backend.power_supply
        current = _current(psu)
        try:
            psu.set_mode(PowerSupplyMode.OFF)  # the setpoint drops to (0, 0) first
        except Exception as exc:
            self.actions.append(SafeStateAction(now, "power_off_failed", current, str(exc)))
            log.error("power off failed: %s", exc)
        else:
            self.actions.append(SafeStateAction(now, "power_off", current, why))
        self._power_off_at = now

    def _open_contactors(self, now: float, action: str, detail: str) -> None:
        current = _current(self.backend.power_supply)
        try:
            self.backend.board.open_contactors()
        except Exception as exc:
            self.actions.append(SafeStateAction(now, f"{action}_failed", current, str(exc)))
            log.error("opening the contactors failed: %s", exc)
        else:
            self.actions.append(SafeStateAction(now, action, current, detail))

    def _software_emergency_stop(self) -> None:
        now = self._now
        self._record(now, [(TripReason.EMERGENCY_STOP, "software emergency stop")])
        if self._power_off_at != now:
            self._power_off(now, "emergency stop")
        current = _current(self.backend.power_supply)
        self.backend.board.emergency_stop()
        self.actions.append(SafeStateAction(now, "emergency_stop", current, "software"))
        self._phase = _Phase.SAFE

    def _refuse_if_tripped(self, what: str) -> None:
        if self._episode:
            first = self._episode[0]
            raise SafetyTripActive(f"{what} refused: tripped on {first.reason} ({first.text})")


def _fault_of(part: object) -> str | None:
    fault = getattr(part, "fault", None)
    return fault if isinstance(fault, str) and fault else None


def _current(psu: PowerSupplyDC) -> float:
    try:
        return psu.measurement().current
    except Exception:  # reporting only
        return math.nan
