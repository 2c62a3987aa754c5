"""Vehicle-to-home during a grid outage: the EV feeds the house until the reserve (pure).

During an outage the charger runs islanded: it can only discharge as much as the house draws
(there is no grid to export to), never more than the EV's and the EVSE's discharge limits,
and never below the owner's reserve SOC. The caller measures the house load, reads the EV's
SOC and applies the returned setpoint every control step (for example every second); the
returned power is negative (DESIGN 5: discharge).

When the SOC reaches the reserve the setpoint drops to 0 and `reserve_reached` is set. It
stays latched until the SOC rises `resume_hysteresis_soc` above the reserve (for example
after the grid is back and the EV has charged), so the converter does not chatter on and off
around the reserve with the SOC's rounding.

With `capacity_kwh` and the step length `dt` known, the power of the last step before the
reserve is reduced so that the step ends exactly on the reserve instead of overshooting it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["V2hController", "V2hSettings", "V2hSetpoint", "v2h_setpoint"]

_SOC_EPS = 1e-6  # percent: an SOC this close to the reserve is at the reserve
_MIN_POWER_W = 1.0  # headroom below one watt: the reserve is reached


@dataclass(frozen=True, slots=True)
class V2hSettings:
    reserve_soc: float  # percent: never discharge below
    max_discharge_w: float  # magnitude: min(EV, EVSE) discharge limit
    min_discharge_w: float = 0.0  # below this the converter cannot run: setpoint 0
    resume_hysteresis_soc: float = 1.0  # percent above the reserve to resume after a stop
    capacity_kwh: float | None = None  # usable battery energy (with dt: no overshoot)
    discharge_efficiency: float = 1.0  # cells -> house

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"V2hSettings.{name}: must be {rule}, got {getattr(self, name)!r}")

        if not (math.isfinite(self.reserve_soc) and 0 <= self.reserve_soc <= 100):
            raise bad("reserve_soc", "in [0, 100]")
        for name in ("max_discharge_w", "min_discharge_w", "resume_hysteresis_soc"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise bad(name, "a finite number >= 0")
        if self.min_discharge_w > self.max_discharge_w:
            raise bad("min_discharge_w", "<= max_discharge_w")
        if self.capacity_kwh is not None and not (math.isfinite(self.capacity_kwh)
                                                  and self.capacity_kwh > 0):
            raise bad("capacity_kwh", "> 0")
        if not (0 < self.discharge_efficiency <= 1):
            raise bad("discharge_efficiency", "in (0, 1]")


@dataclass(frozen=True, slots=True)
class V2hSetpoint:
    power_w: float  # <= 0: discharge power for the house; 0 = stopped
    reserve_reached: bool
    unmet_load_w: float  # house load the EV does not cover (>= 0): shed it or accept a blackout

    @property
    def discharging(self) -> bool:
        return self.power_w < 0


def v2h_setpoint(home_load_w: float, soc: float, settings: V2hSettings, *,
                 dt: float | None = None, reserve_reached: bool = False) -> V2hSetpoint:
    """The discharge setpoint for one control step.

    `home_load_w`: the house's consumption (W, >= 0; negative values, e.g. solar surplus,
    count as 0). `soc`: the EV's SOC in percent. `dt`: the step length in seconds (optional,
    see the module docstring). `reserve_reached`: the latched flag of the previous step.
    """
    if not math.isfinite(home_load_w):
        raise ValueError(f"home_load_w must be finite, got {home_load_w!r}")
    if not (math.isfinite(soc) and 0 <= soc <= 100):
        raise ValueError(f"soc must be in [0, 100], got {soc!r}")
    if dt is not None and not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be > 0, got {dt!r}")
    load = max(home_load_w, 0.0)
    s = settings
    if reserve_reached and soc < s.reserve_soc + s.resume_hysteresis_soc:
        return V2hSetpoint(0.0, True, load)
    if soc <= s.reserve_soc + _SOC_EPS:
        return V2hSetpoint(0.0, True, load)
    headroom = math.inf  # the power that would take the SOC exactly to the reserve in dt
    if s.capacity_kwh is not None and dt is not None:
        energy_j = (soc - s.reserve_soc) / 100.0 * s.capacity_kwh * 3.6e6
        headroom = energy_j * s.discharge_efficiency / dt
    if load > 0 and headroom < max(s.min_discharge_w, _MIN_POWER_W):
        return V2hSetpoint(0.0, True, load)  # the last bit above the reserve: stop here
    power = min(load, s.max_discharge_w, headroom)
    if power <= 0 or power < s.min_discharge_w:
        return V2hSetpoint(0.0, False, load)  # too little load to run the converter
    return V2hSetpoint(-power, False, load - power)


class V2hController:
    """v2h_setpoint with the latched `reserve_reached` flag kept between steps."""

    def __init__(self, settings: V2hSettings) -> None:
        self.settings = settings
        self.reserve_reached = False

    def step(self, home_load_w: float, soc: float, dt: float | None = None) -> V2hSetpoint:
        result = v2h_setpoint(home_load_w, soc, self.settings, dt=dt,
                              reserve_reached=self.reserve_reached)
        self.reserve_reached = result.reserve_reached
        return result

    def reset(self) -> None:
        """Forget the latch (a new outage, a new EV)."""
        self.reserve_reached = False
