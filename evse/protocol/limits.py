"""Charger (EVSE) and vehicle (EV) limits in SI units.

Limits are magnitudes (>= 0) in both directions; only flows (targets, present values) are
signed: positive while energy goes to the EV, negative while the EV discharges (DESIGN 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True, slots=True)
class EvseLimits:
    """What the charger can do right now (static rating or the energy manager's limit).

    DC uses voltages, currents and powers; AC uses the powers (total over all phases) plus the
    nominal voltage, frequency and phase count. Discharge values > 0 make it bidirectional.
    """

    max_charge_power: float
    max_charge_current: float
    max_voltage: float
    min_charge_power: float = 0.0
    min_charge_current: float = 0.0
    min_voltage: float = 0.0
    max_discharge_power: float = 0.0
    min_discharge_power: float = 0.0
    max_discharge_current: float = 0.0
    min_discharge_current: float = 0.0
    power_ramp_limit: float | None = None  # W/s, DC only
    nominal_voltage: float = 230.0  # AC, per phase
    nominal_frequency: float = 50.0  # AC
    phases: int = 3  # AC

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "phases":
                continue
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"EvseLimits.{f.name} must be a finite magnitude >= 0")
        if self.phases not in (1, 2, 3):
            raise ValueError("EvseLimits.phases must be 1, 2 or 3")
        if self.min_voltage > self.max_voltage:
            raise ValueError("EvseLimits.min_voltage above max_voltage")

    @property
    def bidirectional(self) -> bool:
        return self.max_discharge_power > 0 and self.max_discharge_current > 0


@dataclass(frozen=True, slots=True)
class EvLimits:
    """What the EV announced in ChargeParameterDiscovery (updated by the charge loop)."""

    max_charge_power: float
    min_charge_power: float = 0.0
    max_charge_current: float | None = None  # DC only
    min_charge_current: float | None = None
    max_voltage: float | None = None
    min_voltage: float | None = None
    max_discharge_power: float = 0.0
    min_discharge_power: float = 0.0
    max_discharge_current: float | None = None
    min_discharge_current: float | None = None
    target_soc: int | None = None

    @property
    def bidirectional(self) -> bool:
        return self.max_discharge_power > 0


def cap(*values: float | None) -> float:
    """The smallest of the given limits, ignoring None (inf when none is given)."""
    present = [v for v in values if v is not None]
    return min(present) if present else math.inf


def bounded(limits: EvseLimits, max_charge_power: float | None,
            max_discharge_power: float | None) -> EvseLimits:
    """`limits` with their powers capped by an outside bound (None: that direction not
    bounded); a minimum above its capped maximum comes down with it."""
    charge = cap(limits.max_charge_power, max_charge_power)
    discharge = cap(limits.max_discharge_power, max_discharge_power)
    if charge == limits.max_charge_power and discharge == limits.max_discharge_power:
        return limits
    return replace(limits, max_charge_power=max(0.0, charge),
                   min_charge_power=min(limits.min_charge_power, max(0.0, charge)),
                   max_discharge_power=max(0.0, discharge),
                   min_discharge_power=min(limits.min_discharge_power, max(0.0, discharge)))


def clamp_setpoint(power_w: float, limits: EvseLimits) -> float:
    """A setpoint (negative: discharge) within [-max discharge, max charge]."""
    return max(-limits.max_discharge_power, min(limits.max_charge_power, power_w))
