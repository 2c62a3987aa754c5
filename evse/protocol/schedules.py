"""Schedules the SECC offers in ScheduleExchange, in SI units, and the provider hook.

The policy (when to charge or discharge, at what price) lives outside the protocol core:
`SeccConfig.schedule_provider` is any object with a `schedules()` method (see
`evse.energy.schedule.DefaultScheduleProvider`). Without one, `flat_schedules()` offers the
charger's full power until departure, no discharge, no price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from evse.protocol.limits import EvLimits, EvseLimits, cap

PRICE_ALGORITHM_POWER = "urn:iso:std:iso:15118:-20:PriceAlgorithm:1-Power"
DEFAULT_DEPARTURE_S = 12 * 3600


DEFAULT_ENERGY_FEE = 0.30  # currency per kWh when no tariff is configured


@dataclass(frozen=True, slots=True)
class PowerEntry:
    duration: int  # s
    power: float  # W, a magnitude: max charge power (charging) or max discharge power


@dataclass(frozen=True, slots=True)
class PriceRule:
    start: int  # s after the schedule start
    energy_fee: float  # currency per kWh


@dataclass(frozen=True, slots=True)
class PriceSchedule:
    rules: tuple[PriceRule, ...]
    currency: str = "EUR"
    language: str = "ENG"
    price_algorithm: str = PRICE_ALGORITHM_POWER
    schedule_id: int = 1


@dataclass(frozen=True, slots=True)
class Schedules:
    """A charging schedule (max charge power per interval) and, for BPT, a discharging one.

    `start` is on the caller's clock (the `now` given to the provider). An interval where the
    charging power is 0 and the discharging power > 0 asks the EV to discharge.
    """

    start: float
    charging: tuple[PowerEntry, ...]
    discharging: tuple[PowerEntry, ...] = ()
    price: PriceSchedule | None = None
    discharge_price: PriceSchedule | None = None  # what discharged energy earns; else `price`
    # the CSMS's price schedule / sales tariff (evse.protocol.csms_prices.CsmsPrice), sent
    # as given instead of `price` (with the eMSP's header Signature when signed)
    csms_price: Any = None

    def _at(self, entries: tuple[PowerEntry, ...], t: float) -> float:
        offset = t - self.start
        for entry in entries:
            if offset < entry.duration:
                return entry.power
            offset -= entry.duration
        return entries[-1].power if entries else 0.0  # hold the last value

    def limits_at(self, t: float) -> tuple[float, float]:
        """(max charge power, max discharge power) in W at time t."""
        return self._at(self.charging, t), self._at(self.discharging, t)

    def setpoint_at(self, t: float) -> float:
        """The power the schedule asks for at t (negative = discharge)."""
        charge, discharge = self.limits_at(t)
        if charge <= 0 and discharge > 0:
            return -discharge
        return charge


@dataclass(frozen=True, slots=True)
class ScheduleRequest:
    """Everything ScheduleExchangeReq tells about the EV's needs, for a provider with a
    `schedules_for(request)` method (preferred over `schedules(...)` when present).

    `now` is the caller's clock (Schedules.start must be on it); `timestamp` the same instant
    as Unix seconds (TimeAnchor; price curves are on it). Energies in Wh at the battery as
    the EV states them (the minimum may be negative under BPT: energy it can give).
    """

    now: float
    timestamp: float
    departure_time: int | None  # s from now
    ev_limits: EvLimits | None
    evse_limits: EvseLimits
    bpt: bool
    dynamic: bool = False  # Dynamic control mode (else Scheduled)
    minimum_soc: int | None = None  # percent (Dynamic mode)
    target_soc: int | None = None  # percent (Dynamic mode, or the EV's CPD TargetSOC)
    ev_target_energy_wh: float | None = None
    ev_maximum_energy_wh: float | None = None
    ev_minimum_energy_wh: float | None = None
    max_supporting_points: int | None = None  # Scheduled mode
    evcc_id: str = ""


class ScheduleProvider(Protocol):
    def schedules(
        self,
        now: float,
        departure_time: int | None,
        ev_limits: EvLimits | None,
        evse_limits: EvseLimits,
        bpt: bool,
    ) -> Schedules | None:
        """Schedules from `now` until departure (s from now); None = not ready yet (Ongoing)."""
        ...


def flat_schedules(
    now: float,
    departure_time: int | None,
    ev_limits: EvLimits | None,
    evse_limits: EvseLimits,
    bpt: bool = False,
) -> Schedules:
    """Full charge power until departure; with BPT a discharging schedule of zero."""
    duration = max(1, departure_time or DEFAULT_DEPARTURE_S)
    power = cap(evse_limits.max_charge_power, ev_limits.max_charge_power if ev_limits else None)
    discharging = (PowerEntry(duration, 0.0),) if bpt else ()
    # A price schedule is optional in the XSD, but EVs (Josev among them) insist on one.
    price = PriceSchedule(rules=(PriceRule(0, DEFAULT_ENERGY_FEE),))
    return Schedules(start=now, charging=(PowerEntry(duration, power),), discharging=discharging,
                     price=price)
