"""SIL physics of a DC charger's output: converter, output contactors, energy counters.

One electrical node: the charger output (what the supply and the meter measure). It reaches
the EV battery only while the charger's contactors *and* the EV's own contactors are closed.

- Connected: the battery fixes V = OCV + I*R, so the converter sets the current. In export
  and import it regulates current toward the setpoint within its voltage limit and power
  capability; in precharge/cablecheck it regulates voltage with the current clamped to
  `precharge_current_limit` (and the setpoint's amps).
- Open: no current; in precharge/cablecheck/export the output voltage ramps toward the
  voltage setpoint (export runs into its voltage limit with no load); off or import, the
  output discharges through the bleeder at `discharge_rate`.

Current magnitude rises at most `current_ramp` A/s and voltage (open output) changes at most
`voltage_ramp` V/s; a falling current magnitude follows at once (converters cut current much
faster than they raise it, and a limit must never be overshot).

Commands take effect from the previous `step()`; `step(now)` integrates up to `now`.
"""

from __future__ import annotations

import math

from hal.interfaces import PowerSupplyCapabilities, PowerSupplyMode
from hal.sim.battery import EvBattery, current_for_power, discharge_current_for_power

__all__ = ["TIME_EPSILON", "Clocked", "Contactor", "DcPowerStage"]

_VOLTAGE_MODES = (PowerSupplyMode.PRECHARGE, PowerSupplyMode.CABLECHECK)


# Tolerance for comparing accumulated float time against a duration.
TIME_EPSILON = 1e-9


def _toward(value: float, target: float, max_delta: float) -> float:
    if abs(target - value) <= max_delta:
        return target
    return value + math.copysign(max_delta, target - value)


class Clocked:
    """Keeps the last step time; rejects clocks that run backwards."""

    def __init__(self) -> None:
        self.last_now: float | None = None

    def _advance(self, now: float) -> float:
        if not math.isfinite(now):
            raise ValueError("now must be finite")
        if self.last_now is not None and now < self.last_now:
            raise ValueError(f"clock went backwards: {now} < {self.last_now}")
        dt = 0.0 if self.last_now is None else now - self.last_now
        self.last_now = now
        return dt


class Contactor(Clocked):
    """A contactor pair with auxiliary-contact feedback and an injectable weld."""

    def __init__(self, switch_time: float = 0.03) -> None:
        super().__init__()
        self.switch_time = switch_time
        self.commanded_closed = False
        self.closed = False  # the real contact state, which the feedback reports
        self.weld_on_close = False
        self.welded = False
        self._pending_for = 0.0

    def command(self, closed: bool) -> None:
        if closed != self.commanded_closed:
            self._pending_for = 0.0
        self.commanded_closed = closed

    def inject_weld(self) -> None:
        """Weld now if closed, else at the next closing: it will never open again."""
        self.weld_on_close = True
        if self.closed:
            self.welded = True

    def step(self, now: float) -> None:
        dt = self._advance(now)
        if self.commanded_closed == self.closed or self.welded:
            return
        self._pending_for += dt
        if self._pending_for >= self.switch_time - TIME_EPSILON:
            self.closed = self.commanded_closed
            self.welded = self.closed and self.weld_on_close


class DcPowerStage(Clocked):
    def __init__(
        self,
        capabilities: PowerSupplyCapabilities,
        battery: EvBattery | None,
        *,
        contactor: Contactor | None = None,
        voltage_ramp: float = 200.0,
        current_ramp: float = 100.0,
        precharge_current_limit: float = 2.0,
        discharge_rate: float = 500.0,
    ) -> None:
        super().__init__()
        self.capabilities = capabilities
        self.battery = battery
        self.contactor = contactor if contactor is not None else Contactor()
        self.voltage_ramp = voltage_ramp
        self.current_ramp = current_ramp
        self.precharge_current_limit = precharge_current_limit
        self.discharge_rate = discharge_rate
        self.ev_contactor_closed = False  # the EV's own contactors, driven by the EV sim
        self.mode = PowerSupplyMode.OFF
        self.voltage_setpoint = 0.0
        self.current_setpoint = 0.0
        self.voltage = 0.0  # at the output node
        self.current = 0.0
        self.energy_imported_wh = 0.0  # delivered to the EV
        self.energy_exported_wh = 0.0  # taken from the EV

    @property
    def connected(self) -> bool:
        return self.battery is not None and self.contactor.closed and self.ev_contactor_closed

    def command(self, mode: PowerSupplyMode, volts: float, amps: float) -> None:
        self.mode = mode
        self.voltage_setpoint = volts
        self.current_setpoint = amps

    def _target_current(self, ocv: float, r: float) -> float:
        caps, mode = self.capabilities, self.mode
        v_set, i_set = self.voltage_setpoint, self.current_setpoint
        by_voltage = (v_set - ocv) / r if r > 0 else math.copysign(math.inf, v_set - ocv)
        if mode in _VOLTAGE_MODES:
            return min(max(0.0, by_voltage), min(i_set, self.precharge_current_limit))
        if mode is PowerSupplyMode.EXPORT:
            by_power = current_for_power(ocv, r, caps.max_charge_power)
            return max(0.0, min(i_set, by_voltage, by_power))
        if mode is PowerSupplyMode.IMPORT:
            by_power = discharge_current_for_power(ocv, r, caps.max_discharge_power)
            return min(0.0, max(i_set, by_voltage, -by_power))
        return 0.0

    def _ramp_current(self, target: float, dt: float) -> float:
        present = self.current
        same_side = present * target > 0
        if same_side and abs(target) <= abs(present):
            return target  # reductions are immediate
        start = present if same_side else 0.0
        return _toward(start, target, self.current_ramp * dt)

    def step(self, now: float) -> None:
        """Advance the physics to `now`: contactors, operating point, battery, energy."""
        self.contactor.step(now)
        dt = self._advance(now)
        battery = self.battery
        if battery is not None and self.connected:
            ocv, r = battery.ocv, battery.internal_resistance_ohm
            self.current = self._ramp_current(self._target_current(ocv, r), dt)
            self.voltage = ocv + self.current * r
            battery.step(self.current, dt)
        else:
            self.current = 0.0
            if self.mode in _VOLTAGE_MODES or self.mode is PowerSupplyMode.EXPORT:
                self.voltage = _toward(self.voltage, self.voltage_setpoint, self.voltage_ramp * dt)
            else:
                self.voltage = _toward(self.voltage, 0.0, self.discharge_rate * dt)
            if battery is not None:
                battery.step(0.0, dt)
        energy_wh = self.voltage * self.current * dt / 3600.0
        if energy_wh > 0:
            self.energy_imported_wh += energy_wh
        else:
            self.energy_exported_wh -= energy_wh
