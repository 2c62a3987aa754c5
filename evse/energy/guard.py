"""An energy-policy error never fails a charging session.

    provider = GuardedScheduleProvider(planner, on_error=lambda why: ...)
    SeccConfig(..., schedule_provider=provider)

The planner runs inside ScheduleExchange: if it raises, or returns schedules the
ScheduleExchangeRes cannot carry or the charger must not offer (a power above the charger's
limits, a price beyond `MAX_SCHEDULE_PRICE`, a negative or non-integer duration), the EV gets
the default schedule (`flat_schedules`: the charger's power until departure, no discharge)
and `on_error` is told why. The session charges on; the station reports the fault
(`SeccStationPort`: a `warning` event on MQTT).

Pure: no clock, no I/O.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

from evse.protocol.limits import EvLimits, EvseLimits
from evse.protocol.schedules import (
    PowerEntry,
    PriceSchedule,
    ScheduleRequest,
    Schedules,
    flat_schedules,
)

__all__ = ["MAX_SCHEDULE_PRICE", "GuardedScheduleProvider", "ScheduleCheckError",
           "check_schedules"]

# Far beyond any tariff, far below what a RationalNumber (a short times 10^127) can carry:
# a price beyond it is a bug in the policy, not a price.
MAX_SCHEDULE_PRICE = 1e6  # currency per kWh
MAX_DURATION_S = 2**32 - 1  # xs:unsignedInt
_TOLERANCE_W = 1e-6


class ScheduleCheckError(ValueError):
    """Schedules a provider returned that must not reach the EV."""


def _check_entries(name: str, entries: tuple[PowerEntry, ...], max_w: float) -> None:
    total = 0
    for i, e in enumerate(entries):
        if isinstance(e.duration, bool) or not isinstance(e.duration, int) or e.duration < 0:
            raise ScheduleCheckError(f"{name}[{i}].duration: must be an integer >= 0 s, got "
                                     f"{e.duration!r}")
        total += e.duration
        if not (math.isfinite(e.power) and 0.0 <= e.power <= max_w + _TOLERANCE_W):
            raise ScheduleCheckError(f"{name}[{i}].power: {e.power!r} W outside [0, {max_w:g}] W")
    if total > MAX_DURATION_S:
        raise ScheduleCheckError(f"{name}: spans {total} s, more than {MAX_DURATION_S} s")


def _check_price(name: str, price: PriceSchedule | None) -> None:
    if price is None:
        return
    if not price.rules:
        raise ScheduleCheckError(f"{name}: no price rules")
    for i, rule in enumerate(price.rules):
        if not (math.isfinite(rule.energy_fee) and abs(rule.energy_fee) <= MAX_SCHEDULE_PRICE):
            raise ScheduleCheckError(f"{name}.rules[{i}].energy_fee: {rule.energy_fee!r} outside "
                                     f"+-{MAX_SCHEDULE_PRICE:g} per kWh")
        if not isinstance(rule.start, int) or not 0 <= rule.start <= MAX_DURATION_S:
            raise ScheduleCheckError(f"{name}.rules[{i}].start: {rule.start!r} is not an "
                                     "offset in seconds")


def check_schedules(s: Schedules, evse_limits: EvseLimits, bpt: bool) -> None:
    """Raise ScheduleCheckError when `s` must not be offered to the EV (see the module
    docstring); the message names the offending entry."""
    if not math.isfinite(s.start):
        raise ScheduleCheckError(f"start: {s.start!r} is not a time")
    _check_entries("charging", s.charging, evse_limits.max_charge_power)
    if s.discharging and not bpt:
        raise ScheduleCheckError("discharging: a schedule for a session without BPT")
    _check_entries("discharging", s.discharging, evse_limits.max_discharge_power)
    _check_price("price", s.price)
    _check_price("discharge_price", s.discharge_price)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class GuardedScheduleProvider:
    """A ScheduleProvider around another one (`schedules_for` or `schedules`) that answers
    with the default schedule when the inner one fails (see the module docstring).
    `on_error(message)` is called once per failure; it must return at once."""

    def __init__(self, inner: Any, on_error: Callable[[str], None] | None = None) -> None:
        self.inner = inner
        self.on_error = on_error
        self.failures = 0
        self.last_error: str | None = None

    def _fallback(self, why: str, now: float, departure_time: int | None,
                  ev_limits: EvLimits | None, evse_limits: EvseLimits, bpt: bool) -> Schedules:
        self.failures += 1
        self.last_error = why
        if self.on_error is not None:
            with contextlib.suppress(Exception):  # a failing reporter must not fail it either
                self.on_error(why)
        return flat_schedules(now, departure_time, ev_limits, evse_limits, bpt)

    def _checked(self, call: Callable[[], Schedules | None], now: float,
                 departure_time: int | None, ev_limits: EvLimits | None,
                 evse_limits: EvseLimits, bpt: bool) -> Schedules | None:
        try:
            result = call()
            if result is not None:
                check_schedules(result, evse_limits, bpt)
            return result
        except Exception as exc:  # any policy failure: the default schedule, never FAILED
            return self._fallback(f"energy policy failed, default schedule offered: "
                                  f"{_describe(exc)}", now, departure_time, ev_limits,
                                  evse_limits, bpt)

    def _ask(self, req: ScheduleRequest) -> Schedules | None:
        detailed = getattr(self.inner, "schedules_for", None)
        result: Schedules | None = (
            detailed(req) if detailed is not None else self.inner.schedules(
                req.now, req.departure_time, req.ev_limits, req.evse_limits, req.bpt))
        return result

    def schedules_for(self, req: ScheduleRequest) -> Schedules | None:
        return self._checked(lambda: self._ask(req), req.now, req.departure_time,
                             req.ev_limits, req.evse_limits, req.bpt)

    def schedules(self, now: float, departure_time: int | None, ev_limits: EvLimits | None,
                  evse_limits: EvseLimits, bpt: bool) -> Schedules | None:
        req = ScheduleRequest(now=now, timestamp=now, departure_time=departure_time,
                              ev_limits=ev_limits, evse_limits=evse_limits, bpt=bpt)
        return self.schedules_for(req)
