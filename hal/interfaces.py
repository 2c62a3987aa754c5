"""Hardware abstraction: what charger logic may command and read. No ISO messages here.

Conventions every backend follows:

- SI units: volts, amps, watts, ohms, watt-hours; time in seconds.
- Sign: current and power are positive while energy flows to the EV and negative while the
  EV discharges (ISO 15118-20 convention).
- Synchronous and non-blocking, with time passed in. Commands (`set_*`, `close_*`, ...)
  validate, record the intent and return at once; readings return the latest known value
  with the `now` at which it was taken. `HalBackend.poll(now)` does the work: it talks to
  the hardware, or advances the simulated physics, and refreshes readings. `now` is a
  monotonic clock in seconds; the caller owns it, so control logic runs unchanged on a
  fake clock in tests (the same rule as `evse/protocol`). Why not async: a setpoint must
  never wait on I/O inside the control loop, and an explicit `now` keeps tests exact.
- Every part says whether it is a simulation (`simulated`); `hal.compose` builds a backend
  from four explicitly assigned parts (hal/parts.py).
- Invalid commands raise (`SetpointOutOfRange`, `EmergencyStopActive`); they are bugs in
  the caller or safety interlocks, never silently clamped.

The ABCs validate in their public methods and hand the backend a narrow `_apply_*` hook
(python-can's BusABC pattern), so every backend enforces the same limits.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import ClassVar, Self


class HalError(Exception):
    """Base class of hardware abstraction errors."""


class SetpointOutOfRange(HalError, ValueError):
    """A command outside the device's capabilities or the present mode."""


class EmergencyStopActive(HalError):
    """Energising anything is refused while the emergency stop is latched."""


class PowerSupplyMode(StrEnum):
    """Operating mode of a DC power supply. Export/import are seen from the supply."""

    OFF = "off"  # output disabled
    EXPORT = "export"  # charging: regulate current >= 0 up to a voltage limit
    IMPORT = "import"  # discharging (bidirectional only): sink current <= 0 down to a floor
    PRECHARGE = "precharge"  # regulate voltage to the EV's, current limited (a few amps)
    CABLECHECK = "cablecheck"  # regulate voltage for the isolation test, current limited


class PilotState(StrEnum):
    """IEC 61851-1 control pilot states as the EVSE measures them."""

    A = "A"  # +12 V: no EV connected
    B = "B"  # +9 V: EV connected, not ready
    C = "C"  # +6 V: EV ready, energy transfer allowed
    D = "D"  # +3 V: ready, ventilation required
    E = "E"  # 0 V: pilot shorted or no supply
    F = "F"  # -12 V: EVSE not available


@dataclass(frozen=True, slots=True)
class PowerSupplyCapabilities:
    """What a DC supply can do; currents and powers are magnitudes (>= 0)."""

    bidirectional: bool
    min_voltage: float
    max_voltage: float
    max_charge_current: float
    max_charge_power: float
    max_discharge_current: float = 0.0
    max_discharge_power: float = 0.0
    min_charge_current: float = 0.0
    min_discharge_current: float = 0.0

    def __post_init__(self) -> None:
        values = (
            self.min_voltage,
            self.max_voltage,
            self.max_charge_current,
            self.max_charge_power,
            self.max_discharge_current,
            self.max_discharge_power,
            self.min_charge_current,
            self.min_discharge_current,
        )
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError("capabilities must be finite and non-negative")
        if self.min_voltage > self.max_voltage:
            raise ValueError("min_voltage > max_voltage")
        if self.min_charge_current > self.max_charge_current:
            raise ValueError("min_charge_current > max_charge_current")
        if self.min_discharge_current > self.max_discharge_current:
            raise ValueError("min_discharge_current > max_discharge_current")
        if not self.bidirectional and (self.max_discharge_current or self.max_discharge_power):
            raise ValueError("a unidirectional supply cannot discharge")


@dataclass(frozen=True, slots=True)
class Measurement:
    """Voltage and current at the supply's output, taken at `timestamp` (the poll's now)."""

    voltage: float
    current: float
    timestamp: float

    @property
    def power(self) -> float:
        return self.voltage * self.current


@dataclass(frozen=True, slots=True)
class IsolationReading:
    """One insulation resistance reading of the isolation monitor (ohm, at `timestamp`)."""

    resistance_ohm: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class MeterReading:
    """Energy registers of the meter at the charger's output.

    Imported = energy delivered to the EV (ISO 15118-20 MeterReadingCharged, OCPP
    Energy.Active.Import.Register); exported = energy taken from the EV
    (MeterReadingDischarged). Both only ever grow. `signature` is whatever the meter signs
    (format backend-specific), None for unsigned meters.
    """

    meter_id: str
    energy_imported_wh: float
    energy_exported_wh: float
    voltage: float
    current: float
    timestamp: float
    signature: bytes | None = None


def _check_finite(*values: float) -> None:
    if not all(math.isfinite(v) for v in values):
        raise SetpointOutOfRange("setpoints must be finite numbers")


class PowerSupplyDC(ABC):
    """A DC power supply (rectifier or bidirectional converter) for the EV's battery."""

    # True for a simulation: composed backends announce it (hal.parts.describe) and refuse
    # real power hardware beside a simulated isolation monitor unless allowed.
    simulated: bool = False

    def __init__(self) -> None:
        self._mode = PowerSupplyMode.OFF
        self._setpoint = (0.0, 0.0)

    @property
    @abstractmethod
    def capabilities(self) -> PowerSupplyCapabilities: ...

    @abstractmethod
    def measurement(self) -> Measurement:
        """Latest measured output voltage and current (refreshed by poll, >= 1 Hz)."""

    @property
    @abstractmethod
    def fault(self) -> str | None:
        """A latched device fault, or None."""

    @abstractmethod
    def _apply_mode(self, mode: PowerSupplyMode) -> None: ...

    @abstractmethod
    def _apply_setpoint(self, volts: float, amps: float) -> None: ...

    @property
    def mode(self) -> PowerSupplyMode:
        return self._mode

    @property
    def setpoint(self) -> tuple[float, float]:
        """The commanded (volts, amps)."""
        return self._setpoint

    def set_mode(self, mode: PowerSupplyMode) -> None:
        """Switch mode; the setpoint falls back to (0 V, 0 A) so no stale target carries over."""
        if mode is PowerSupplyMode.IMPORT and not self.capabilities.bidirectional:
            raise SetpointOutOfRange("this supply cannot import (not bidirectional)")
        self._apply_setpoint(0.0, 0.0)
        self._setpoint = (0.0, 0.0)
        self._apply_mode(mode)
        self._mode = mode

    def set_voltage_current(self, volts: float, amps: float) -> None:
        """Command a setpoint; its meaning depends on the mode.

        EXPORT: regulate `amps` >= 0, never above `volts`.
        IMPORT: regulate `amps` <= 0 (the EV gives energy), never below `volts`.
        PRECHARGE / CABLECHECK: regulate `volts`, current limited to `amps` >= 0.
        OFF accepts only (0, 0). The supply limits power to its capabilities itself.
        """
        _check_finite(volts, amps)
        volts, amps = float(volts), float(amps)
        caps = self.capabilities
        mode = self._mode
        if mode is PowerSupplyMode.OFF:
            if volts or amps:
                raise SetpointOutOfRange("set a mode before a setpoint")
        else:
            if not caps.min_voltage <= volts <= caps.max_voltage:
                raise SetpointOutOfRange(
                    f"{volts} V outside {caps.min_voltage}..{caps.max_voltage} V"
                )
            if mode is PowerSupplyMode.IMPORT:
                if not -caps.max_discharge_current <= amps <= 0:
                    raise SetpointOutOfRange(
                        f"import needs -{caps.max_discharge_current}..0 A, got {amps}"
                    )
            elif not 0 <= amps <= caps.max_charge_current:
                raise SetpointOutOfRange(f"{mode} needs 0..{caps.max_charge_current} A, got {amps}")
        self._apply_setpoint(volts, amps)
        self._setpoint = (volts, amps)


class Board(ABC):
    """The charger's board: control pilot, output contactors, emergency stop."""

    # True for a simulation: composed backends announce it (hal.parts.describe) and refuse
    # real power hardware beside a simulated isolation monitor unless allowed.
    simulated: bool = False

    def __init__(self) -> None:
        self._pwm_duty = 100.0
        self._contactors_commanded = False

    @property
    @abstractmethod
    def pilot_state(self) -> PilotState:
        """Pilot state as last measured."""

    @property
    @abstractmethod
    def contactors_closed(self) -> bool:
        """Feedback (auxiliary contacts): True if the contactors are actually closed.

        Differing from `contactors_commanded_closed` after the switching time means a
        welded or stuck contactor; detecting that is the control layer's job.
        """

    @property
    @abstractmethod
    def emergency_stop_active(self) -> bool:
        """Latched emergency stop, from the button or from `emergency_stop()`."""

    @abstractmethod
    def _apply_pwm_duty(self, percent: float) -> None: ...

    @abstractmethod
    def _apply_contactors(self, closed: bool) -> None: ...

    @abstractmethod
    def _apply_emergency_stop(self) -> None:
        """Open contactors and cut power at once, and latch."""

    @abstractmethod
    def reset_emergency_stop(self) -> bool:
        """Unlatch if the cause has gone (button released); True if now clear."""

    @property
    def pwm_duty(self) -> float:
        return self._pwm_duty

    @property
    def contactors_commanded_closed(self) -> bool:
        return self._contactors_commanded

    def set_pwm_duty(self, percent: float) -> None:
        """Pilot PWM duty in percent: 5 = high-level communication required.

        100 means a steady +12 V (no PWM); 0 a steady -12 V (state F, EVSE unavailable).
        """
        _check_finite(percent)
        if not 0.0 <= percent <= 100.0:
            raise SetpointOutOfRange(f"duty {percent}% outside 0..100")
        self._apply_pwm_duty(percent)
        self._pwm_duty = percent

    def close_contactors(self) -> None:
        if self.emergency_stop_active:
            raise EmergencyStopActive("contactors stay open during an emergency stop")
        self._apply_contactors(True)
        self._contactors_commanded = True

    def open_contactors(self) -> None:
        self._apply_contactors(False)
        self._contactors_commanded = False

    def emergency_stop(self) -> None:
        self._contactors_commanded = False
        self._apply_emergency_stop()


class IsolationMonitor(ABC):
    """Insulation monitoring device (IMD) for the DC output."""

    # True for a simulation: composed backends announce it (hal.parts.describe) and refuse
    # real power hardware beside a simulated isolation monitor unless allowed.
    simulated: bool = False

    @abstractmethod
    def start(self) -> None:
        """Begin measuring; readings follow after the device's measuring time."""

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def start_self_test(self) -> None: ...

    @property
    @abstractmethod
    def measuring(self) -> bool: ...

    @property
    @abstractmethod
    def self_test_passed(self) -> bool | None:
        """Result of the last self-test; None while running or if never run."""

    @abstractmethod
    def reading(self) -> IsolationReading | None:
        """Latest resistance measured since `start()`, or None if none yet."""

    @property
    @abstractmethod
    def fault(self) -> str | None:
        """A device fault (not a low resistance: judging that is control's job)."""


class Meter(ABC):
    """The (possibly calibration-law) energy meter at the charger's output."""

    # True for a simulation: composed backends announce it (hal.parts.describe) and refuse
    # real power hardware beside a simulated isolation monitor unless allowed.
    simulated: bool = False

    @property
    @abstractmethod
    def meter_id(self) -> str: ...

    @abstractmethod
    def reading(self) -> MeterReading: ...


class HalBackend(ABC):
    """One set of hardware, created by name through `hal.registry.create_backend`."""

    name: ClassVar[str]

    @property
    @abstractmethod
    def power_supply(self) -> PowerSupplyDC: ...

    @property
    @abstractmethod
    def board(self) -> Board: ...

    @property
    @abstractmethod
    def isolation_monitor(self) -> IsolationMonitor: ...

    @property
    @abstractmethod
    def meter(self) -> Meter: ...

    @abstractmethod
    def poll(self, now: float) -> None:
        """Do pending I/O (or advance physics) up to `now` and refresh every reading."""

    def acknowledge_faults(self, now: float) -> None:
        """Control acknowledges latched faults at the start of a new session (e.g. a lost
        MCU link that is back up). A fault whose cause is still present stays. Default:
        nothing is latched."""
        return None

    def close(self) -> None:
        """Leave the hardware safe and release it. Default: open contactors, supply off."""
        self.power_supply.set_mode(PowerSupplyMode.OFF)
        self.board.open_contactors()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
