"""Power targets: what the EV asks (or the charger wants) clamped to every limit.

Pure functions over SI floats. Limits are magnitudes; the returned current/power is signed
(negative = the EV discharges). Discharge needs a BPT service, discharge limits on both sides
and no PowerDelivery BPT_ChannelSelection=Charge; charge is refused under "Discharge".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evse.protocol.limits import EvLimits, EvseLimits, cap

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class DcTarget:
    voltage: float
    current: float
    power_limited: bool
    current_limited: bool
    voltage_limited: bool

    @property
    def power(self) -> float:
        return self.voltage * self.current


def _direction_caps(
    discharge: bool,
    evse: EvseLimits,
    ev: EvLimits,
    schedule: tuple[float, float] | None,
    bpt: bool,
    channel: str | None,
) -> tuple[float, float]:
    """(max current, max power) magnitudes for one direction."""
    sched_charge, sched_discharge = schedule if schedule is not None else (None, None)
    if discharge:
        if not bpt or channel == "Charge":
            return 0.0, 0.0
        return (
            cap(evse.max_discharge_current, ev.max_discharge_current),
            cap(evse.max_discharge_power, ev.max_discharge_power, sched_discharge),
        )
    if channel == "Discharge":
        return 0.0, 0.0
    return (
        cap(evse.max_charge_current, ev.max_charge_current),
        cap(evse.max_charge_power, ev.max_charge_power, sched_charge),
    )


def dc_target(
    voltage: float,
    current: float,
    *,
    present_voltage: float,
    evse: EvseLimits,
    ev: EvLimits,
    schedule: tuple[float, float] | None = None,
    bpt: bool = False,
    channel: str | None = None,
) -> DcTarget:
    """Clamp an EV (or charger) request of `voltage`/`current` to the limits.

    Power is checked at `present_voltage` (the battery voltage the current flows at), or at
    the target voltage while nothing is measured yet.
    """
    v_max = cap(evse.max_voltage, ev.max_voltage)
    v = min(max(voltage, evse.min_voltage), v_max)
    discharge = current < 0
    i_max, p_max = _direction_caps(discharge, evse, ev, schedule, bpt, channel)
    magnitude = abs(current)
    current_limited = magnitude > i_max + _EPS
    magnitude = min(magnitude, i_max)
    at = present_voltage if present_voltage > 1.0 else v
    power_limited = at > 0 and magnitude * at > p_max + _EPS
    if power_limited:
        magnitude = p_max / at
    return DcTarget(
        voltage=v,
        current=-magnitude if discharge and magnitude else magnitude,
        power_limited=power_limited,
        current_limited=current_limited,
        voltage_limited=abs(v - voltage) > _EPS,
    )


def ac_target(
    power: float,
    *,
    evse: EvseLimits,
    ev: EvLimits,
    schedule: tuple[float, float] | None = None,
    bpt: bool = False,
    channel: str | None = None,
) -> tuple[float, bool]:
    """(clamped signed active power, whether a limit applied)."""
    discharge = power < 0
    _, p_max = _direction_caps(discharge, evse, ev, schedule, bpt, channel)
    magnitude = min(abs(power), p_max)
    limited = abs(power) > p_max + _EPS
    return (-magnitude if discharge and magnitude else magnitude), limited


def current_for_power(power: float, voltage: float) -> float:
    return power / voltage if voltage > 1.0 and math.isfinite(power) else 0.0
