"""A simple default schedule policy for ScheduleExchange (SI units).

- Charge at a flat power limit (the smaller of the configured power, the charger's and the
  EV's maximum) from now until departure.
- With BPT and a `discharge_window=(t0, t1)` (seconds after the schedule start), charge until
  t0, discharge between t0 and t1, charge again afterwards: the demo shows both directions.
- One absolute price (currency per kWh) for the whole schedule.

The interface is deliberately small (`ScheduleProvider.schedules(...) -> Schedules`); the
energy-management work will replace the policy, not the interface.
"""

from __future__ import annotations

from dataclasses import dataclass

from evse.protocol.limits import EvLimits, EvseLimits, cap
from evse.protocol.schedules import (
    DEFAULT_DEPARTURE_S,
    DEFAULT_ENERGY_FEE,
    PowerEntry,
    PriceRule,
    PriceSchedule,
    ScheduleProvider,
    Schedules,
)


def _entries(parts: list[tuple[int, float]]) -> tuple[PowerEntry, ...]:
    return tuple(PowerEntry(duration, power) for duration, power in parts if duration > 0)


@dataclass(frozen=True, slots=True)
class DefaultScheduleProvider:
    charge_power: float | None = None  # W; None: as much as charger and EV allow
    discharge_window: tuple[int, int] | None = None  # (t0, t1) s after the start, BPT only
    discharge_power: float | None = None  # W magnitude; None: as much as both allow
    energy_fee: float | None = DEFAULT_ENERGY_FEE  # currency per kWh; None: no price schedule
    currency: str = "EUR"
    default_departure: int = DEFAULT_DEPARTURE_S

    def schedules(
        self,
        now: float,
        departure_time: int | None,
        ev_limits: EvLimits | None,
        evse_limits: EvseLimits,
        bpt: bool,
    ) -> Schedules:
        horizon = max(1, departure_time if departure_time else self.default_departure)
        charge = cap(
            self.charge_power,
            evse_limits.max_charge_power,
            ev_limits.max_charge_power if ev_limits else None,
        )
        discharge = cap(
            self.discharge_power,
            evse_limits.max_discharge_power,
            ev_limits.max_discharge_power if ev_limits else None,
        )
        charging = _entries([(horizon, charge)])
        discharging: tuple[PowerEntry, ...] = _entries([(horizon, 0.0)]) if bpt else ()
        if bpt and self.discharge_window is not None and discharge > 0:
            t0 = min(max(0, self.discharge_window[0]), horizon)
            t1 = min(max(t0, self.discharge_window[1]), horizon)
            if t1 > t0:
                charging = _entries([(t0, charge), (t1 - t0, 0.0), (horizon - t1, charge)])
                discharging = _entries([(t0, 0.0), (t1 - t0, discharge), (horizon - t1, 0.0)])
        price = None
        if self.energy_fee is not None:
            price = PriceSchedule(rules=(PriceRule(0, self.energy_fee),), currency=self.currency)
        return Schedules(start=now, charging=charging, discharging=discharging, price=price)


_check: ScheduleProvider = DefaultScheduleProvider()  # structural typing check for mypy
