"""EV traction battery model for software-in-the-loop runs.

Equivalent circuit: an open-circuit voltage source that depends on state of charge, in series
with an internal resistance. Terminal voltage = OCV(SOC) + I * R, with I > 0 while charging
and I < 0 while the EV discharges (ISO 15118-20 sign convention). SOC integrates the current
(Coulomb counting); the charge capacity in Ah is the energy capacity over the nominal
voltage, so `capacity_kwh` means what a spec sheet means by it.

Physics only: the model does not enforce its own current limits (a real cell does not
either); the EV simulator reads `charge_current_limit()` / `discharge_current_limit()` to
ask for what the battery may take, and tests compare `current` against them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

__all__ = [
    "DEFAULT_OCV_TABLE",
    "EvBattery",
    "OcvCurve",
    "current_for_power",
    "discharge_current_for_power",
]

# (SOC, volts) of a 96-cell NMC pack, ~3.45-4.27 V per cell: a typical 400 V-class EV.
DEFAULT_OCV_TABLE: tuple[tuple[float, float], ...] = (
    (0.0, 331.0),
    (0.1, 353.0),
    (0.2, 361.0),
    (0.5, 375.0),
    (0.8, 392.0),
    (0.9, 398.0),
    (1.0, 410.0),
)


class OcvCurve:
    """Piecewise-linear OCV(SOC), flat beyond the table's ends."""

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        if len(points) < 2:
            raise ValueError("an OCV curve needs at least two points")
        socs = [float(s) for s, _ in points]
        if any(b <= a for a, b in zip(socs, socs[1:], strict=False)):
            raise ValueError("OCV table SOCs must be strictly increasing")
        self._socs = socs
        self._volts = [float(v) for _, v in points]

    def __call__(self, soc: float) -> float:
        socs, volts = self._socs, self._volts
        if soc <= socs[0]:
            return volts[0]
        if soc >= socs[-1]:
            return volts[-1]
        i = bisect.bisect_right(socs, soc)
        s0, s1, v0, v1 = socs[i - 1], socs[i], volts[i - 1], volts[i]
        return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


def current_for_power(ocv: float, resistance: float, power: float) -> float:
    """Largest charging current whose terminal power I * (OCV + I*R) stays <= `power`."""
    if resistance <= 0:
        return power / ocv if ocv > 0 else math.inf
    return (-ocv + math.sqrt(ocv * ocv + 4 * resistance * power)) / (2 * resistance)


def discharge_current_for_power(ocv: float, resistance: float, power: float) -> float:
    """Largest discharge magnitude |I| with |I| * (OCV - |I|*R) <= `power`."""
    if resistance <= 0:
        return power / ocv if ocv > 0 else math.inf
    disc = ocv * ocv - 4 * resistance * power
    if disc < 0:  # the terminal power never reaches `power`
        return math.inf
    return (ocv - math.sqrt(disc)) / (2 * resistance)


class EvBattery:
    """The battery both the sim power stage and the EV simulator act on."""

    def __init__(
        self,
        *,
        capacity_kwh: float = 60.0,
        soc: float = 0.5,
        ocv_table: Sequence[tuple[float, float]] = DEFAULT_OCV_TABLE,
        internal_resistance_ohm: float = 0.1,
        nominal_voltage: float | None = None,
        max_charge_current: float = 250.0,
        max_discharge_current: float = 150.0,
        max_charge_power: float = 120_000.0,
        max_discharge_power: float = 50_000.0,
        min_voltage: float = 300.0,
        max_voltage: float = 420.0,
    ) -> None:
        if capacity_kwh <= 0 or internal_resistance_ohm < 0 or not 0.0 <= soc <= 1.0:
            raise ValueError("capacity > 0, resistance >= 0 and 0 <= soc <= 1 required")
        self.ocv_curve = OcvCurve(ocv_table)
        self.capacity_kwh = capacity_kwh
        self.nominal_voltage = nominal_voltage or self.ocv_curve(0.5)
        self.capacity_ah = capacity_kwh * 1000.0 / self.nominal_voltage
        self.internal_resistance_ohm = internal_resistance_ohm
        self.max_charge_current = max_charge_current
        self.max_discharge_current = max_discharge_current
        self.max_charge_power = max_charge_power
        self.max_discharge_power = max_discharge_power
        self.min_voltage = min_voltage
        self.max_voltage = max_voltage
        self.soc = soc
        self.current = 0.0  # of the last step

    @property
    def ocv(self) -> float:
        return self.ocv_curve(self.soc)

    @property
    def terminal_voltage(self) -> float:
        return self.terminal_voltage_at(self.current)

    def terminal_voltage_at(self, current: float) -> float:
        return self.ocv + current * self.internal_resistance_ohm

    def step(self, current: float, dt: float) -> None:
        """Carry `current` for `dt` seconds. SOC saturates at 0 and 1 (the BMS's job)."""
        if dt < 0:
            raise ValueError("dt must be >= 0")
        self.current = current
        self.soc = min(1.0, max(0.0, self.soc + current * dt / 3600.0 / self.capacity_ah))

    def charge_current_limit(self) -> float:
        """What the battery may take now: 0 when full, else current/power/voltage bound."""
        if self.soc >= 1.0:
            return 0.0
        ocv, r = self.ocv, self.internal_resistance_ohm
        by_voltage = (self.max_voltage - ocv) / r if r > 0 else math.inf
        by_power = current_for_power(ocv, r, self.max_charge_power)
        return max(0.0, min(self.max_charge_current, by_power, by_voltage))

    def discharge_current_limit(self) -> float:
        """Magnitude the battery may give now: 0 when empty."""
        if self.soc <= 0.0:
            return 0.0
        ocv, r = self.ocv, self.internal_resistance_ohm
        by_voltage = (ocv - self.min_voltage) / r if r > 0 else math.inf
        by_power = discharge_current_for_power(ocv, r, self.max_discharge_power)
        return max(0.0, min(self.max_discharge_current, by_power, by_voltage))
