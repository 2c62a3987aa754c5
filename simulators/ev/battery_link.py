"""The EV's view of its traction battery.

The EVCC reads voltage, SOC and limits from here and reports what flowed. Two set-ups:

- stand-alone (`shared=False`, the default): the EV talks to a charger it shares nothing with
  (a third-party SECC over TCP). The only knowledge of the current is what the charger reports
  (DC: EVSEPresentCurrent; AC: the active power), so `apply_current()` steps the battery model
  with it for the simulated interval.
- shared (`shared=True`): in-process SIL, where the `sim` HAL backend's power stage already
  steps the same `EvBattery` with the physical current. The link then only reads the battery
  and counts energy; stepping it again would count the charge twice.

Sign convention (ISO 15118-20): current and power are negative while the EV discharges.
`on_contactors` lets an in-process set-up close/open the EV-side contactors (the `sim`
backend's `ev_contactor_closed`) when the EVCC does.
"""

from __future__ import annotations

from collections.abc import Callable

from simulators.battery import EvBattery


class BatteryLink:
    def __init__(
        self,
        battery: EvBattery,
        *,
        shared: bool = False,
        on_contactors: Callable[[bool], None] | None = None,
    ) -> None:
        self.battery = battery
        self.shared = shared
        self._on_contactors = on_contactors
        self.contactors_closed = False
        self.energy_charged_wh = 0.0
        self.energy_discharged_wh = 0.0
        self.last_current = 0.0
        self.initial_soc = battery.soc

    # -- readings --------------------------------------------------------------------------

    @property
    def soc(self) -> float:
        """State of charge, 0..1."""
        return self.battery.soc

    @property
    def soc_percent(self) -> int:
        return max(0, min(100, round(self.battery.soc * 100)))

    def present_voltage(self) -> float:
        """Terminal voltage at the last current (the EV's EVPresentVoltage)."""
        if self.shared:
            return self.battery.terminal_voltage
        return self.battery.terminal_voltage_at(self.last_current)

    def open_circuit_voltage(self) -> float:
        return self.battery.ocv

    def charge_current_limit(self) -> float:
        return self.battery.charge_current_limit()

    def discharge_current_limit(self) -> float:
        return self.battery.discharge_current_limit()

    def energy_wh_to(self, soc_percent: float) -> float:
        """Energy (Wh) to bring the battery from its SOC to `soc_percent` (negative: surplus)."""
        return (soc_percent / 100.0 - self.battery.soc) * self.battery.capacity_kwh * 1000.0

    @property
    def capacity_wh(self) -> float:
        return self.battery.capacity_kwh * 1000.0

    # -- actions ---------------------------------------------------------------------------

    def apply_current(self, current: float, dt: float, voltage: float | None = None) -> None:
        """`current` (A, signed) flowed for `dt` simulated seconds at `voltage` (or ours)."""
        if dt < 0:
            raise ValueError("dt must be >= 0")
        if voltage is None or voltage <= 0:
            voltage = self.battery.terminal_voltage_at(current)
        self._count(voltage * current * dt / 3600.0)
        self.last_current = current
        if not self.shared:
            self.battery.step(current, dt)

    def apply_power(self, power: float, dt: float) -> None:
        """`power` (W, signed) flowed into the battery for `dt` simulated seconds (AC)."""
        voltage = self.battery.terminal_voltage_at(self.last_current) or 1.0
        self.apply_current(power / voltage, dt, voltage)

    def set_contactors(self, closed: bool) -> None:
        self.contactors_closed = closed
        if not closed:
            self.last_current = 0.0
        if self._on_contactors is not None:
            self._on_contactors(closed)

    def _count(self, wh: float) -> None:
        if wh >= 0:
            self.energy_charged_wh += wh
        else:
            self.energy_discharged_wh -= wh
