"""A Plan as ISO 15118-20 ScheduleExchangeRes content, in SI units (pure).

Two shapes, both plain dataclasses that the protocol layer turns into EXI types:

- `to_protocol_schedules(plan)` -> `evse.protocol.schedules.Schedules`: what the SECC's
  `ScheduleProvider` hook returns today (charging and discharging power entries, the buy
  price schedule). This is the seam to use first.
- `scheduled_content(plan)` -> `ScheduleTupleContent`: the whole ScheduleTupleType as the
  XSD has it (V2G_CI_CommonMessages.xsd), including the *sell* price schedule that belongs to
  the DischargingSchedule; `dynamic_content(plan, now=...)` -> Dynamic_SEResControlMode
  content; `price_level_schedule(plan)` for EVs that take price levels.

Conventions (the same as evse.protocol.schedules): power entries are magnitudes (W, >= 0).
The ChargingSchedule gives the planned charge power per interval (0 where the plan idles or
discharges, so the EV does not charge there); the DischargingSchedule the planned discharge
power (0 where the plan does not discharge). An interval with charge 0 and discharge > 0 asks
the EV to discharge (DESIGN 5 signs flows, not limits; the protocol layer applies whatever
sign the wire format wants). In Dynamic mode the charge loop follows
`optimizer.setpoint_at(plan, now)` instead.

Durations are whole seconds (xs:unsignedInt) from the schedule's TimeAnchor (the plan's start
rounded to a second), rounded cumulatively so they add up to the plan's length; neighbours
with equal values are merged, and a list longer than the EV's MaximumSupportingPoints
(12-1024) is shortened by merging the most similar neighbours (energy-preserving: the merged
value is the duration-weighted mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from evse.energy.optimizer import Plan
from evse.protocol import schedules as proto

__all__ = ["PRICE_ALGORITHM_POWER", "AbsolutePriceSchedule", "ChargingScheduleContent",
           "DynamicContent", "PowerSchedule", "PowerScheduleEntry", "PriceLevelSchedule",
           "PriceLevelEntry", "PriceEntry", "ScheduleTupleContent", "dynamic_content",
           "price_level_schedule", "scheduled_content", "to_protocol_schedules"]

PRICE_ALGORITHM_POWER = proto.PRICE_ALGORITHM_POWER
MAX_ENTRIES = 1024  # PowerScheduleEntry / PriceRuleStack / PriceLevelScheduleEntry maxOccurs
MIN_SUPPORTING_POINTS = 12  # maxSupportingPointsScheduleTupleType minInclusive


@dataclass(frozen=True, slots=True)
class PowerScheduleEntry:
    duration_s: int
    power_w: float  # magnitude >= 0 (charge power, or discharge power in a discharging one)


@dataclass(frozen=True, slots=True)
class PowerSchedule:
    time_anchor: int  # Unix seconds
    entries: tuple[PowerScheduleEntry, ...]
    available_energy_wh: float | None = None


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One PriceRuleStack with a single PriceRule (EnergyFee from power 0)."""

    duration_s: int
    energy_fee: float  # currency per kWh
    power_range_start_w: float = 0.0


@dataclass(frozen=True, slots=True)
class AbsolutePriceSchedule:
    time_anchor: int
    price_schedule_id: int
    currency: str
    entries: tuple[PriceEntry, ...]
    language: str = "ENG"
    price_algorithm: str = PRICE_ALGORITHM_POWER


@dataclass(frozen=True, slots=True)
class PriceLevelEntry:
    duration_s: int
    price_level: int  # 0 = cheapest


@dataclass(frozen=True, slots=True)
class PriceLevelSchedule:
    time_anchor: int
    price_schedule_id: int
    number_of_price_levels: int
    entries: tuple[PriceLevelEntry, ...]


@dataclass(frozen=True, slots=True)
class ChargingScheduleContent:
    power_schedule: PowerSchedule
    price_schedule: AbsolutePriceSchedule | None


@dataclass(frozen=True, slots=True)
class ScheduleTupleContent:
    schedule_tuple_id: int
    charging: ChargingScheduleContent
    discharging: ChargingScheduleContent | None


@dataclass(frozen=True, slots=True)
class DynamicContent:
    departure_time_s: int | None  # seconds from now
    minimum_soc: int | None  # percent
    target_soc: int | None
    price_schedule: AbsolutePriceSchedule | None


def _durations(starts_ends: Sequence[tuple[float, float]], anchor: int) -> list[int]:
    """Whole-second durations rounded cumulatively from the anchor (may contain zeros)."""
    out = []
    for start, end in starts_ends:
        out.append(round(end - anchor) - round(start - anchor))
    return out


def _merge_runs(durations: Sequence[int], values: Sequence[float]) -> list[tuple[int, float]]:
    runs: list[tuple[int, float]] = []
    for d, v in zip(durations, values, strict=True):
        if d <= 0:
            continue
        if runs and runs[-1][1] == v:
            runs[-1] = (runs[-1][0] + d, v)
        else:
            runs.append((d, v))
    return runs


def _shorten(runs: list[tuple[int, float]], max_entries: int) -> list[tuple[int, float]]:
    """Merge neighbours (least energy change first) until at most max_entries remain."""
    runs = list(runs)
    while len(runs) > max_entries:
        best_i, best_cost = 0, math.inf
        for i in range(len(runs) - 1):
            (d1, v1), (d2, v2) = runs[i], runs[i + 1]
            cost = abs(v1 - v2) * d1 * d2 / (d1 + d2)
            if cost < best_cost:
                best_i, best_cost = i, cost
        (d1, v1), (d2, v2) = runs[best_i], runs[best_i + 1]
        runs[best_i:best_i + 2] = [(d1 + d2, (v1 * d1 + v2 * d2) / (d1 + d2))]
    return runs


def _check_points(max_entries: int) -> None:
    if not MIN_SUPPORTING_POINTS <= max_entries <= MAX_ENTRIES:
        raise ValueError(f"max_entries must be in [{MIN_SUPPORTING_POINTS}, {MAX_ENTRIES}], "
                         f"got {max_entries}")


def _power_schedule(plan: Plan, anchor: int, values: Sequence[float],
                    max_entries: int) -> PowerSchedule:
    durations = _durations([(s.start, s.end) for s in plan.slots], anchor)
    runs = _shorten(_merge_runs(durations, values), max_entries)
    return PowerSchedule(anchor, tuple(PowerScheduleEntry(d, v) for d, v in runs))


def _price_schedule(plan: Plan, anchor: int, schedule_id: int, sell: bool,
                    max_entries: int) -> AbsolutePriceSchedule:
    durations = _durations([(s.start, s.end) for s in plan.slots], anchor)
    values = [s.sell if sell else s.buy for s in plan.slots]
    runs = _shorten(_merge_runs(durations, values), max_entries)
    return AbsolutePriceSchedule(anchor, schedule_id, plan.money.currency,
                                 tuple(PriceEntry(d, v) for d, v in runs))


def scheduled_content(plan: Plan, *, schedule_tuple_id: int = 1, max_entries: int = MAX_ENTRIES,
                      with_prices: bool = True, discharging: bool | None = None,
                      price_schedule_ids: tuple[int, int] = (1, 2)) -> ScheduleTupleContent:
    """A ScheduleTuple for Scheduled mode. `max_entries`: the EV's MaximumSupportingPoints.
    `discharging`: None = a DischargingSchedule only when the plan discharges somewhere."""
    _check_points(max_entries)
    if not plan.slots:
        raise ValueError("an empty plan (departure not after now) has no schedule")
    anchor = round(plan.start)
    charge = [max(s.power_w, 0.0) for s in plan.slots]
    discharge = [max(-s.power_w, 0.0) for s in plan.slots]
    want_discharge = any(p > 0 for p in discharge) if discharging is None else discharging
    charging = ChargingScheduleContent(
        _power_schedule(plan, anchor, charge, max_entries),
        _price_schedule(plan, anchor, price_schedule_ids[0], False, max_entries)
        if with_prices else None)
    dis = ChargingScheduleContent(
        _power_schedule(plan, anchor, discharge, max_entries),
        _price_schedule(plan, anchor, price_schedule_ids[1], True, max_entries)
        if with_prices else None) if want_discharge else None
    return ScheduleTupleContent(schedule_tuple_id, charging, dis)


def dynamic_content(plan: Plan, *, now: float, minimum_soc: float | None = None,
                    with_prices: bool = True, price_schedule_id: int = 1,
                    max_entries: int = MAX_ENTRIES) -> DynamicContent:
    """Dynamic_SEResControlMode content: departure (s from now), minimum SOC (default: the
    plan's reserve), target SOC and the buy price schedule."""
    _check_points(max_entries)
    minimum = plan.reserve_soc if minimum_soc is None else minimum_soc
    prices = None
    if with_prices and plan.slots:
        prices = _price_schedule(plan, round(plan.start), price_schedule_id, False,
                                 max_entries)
    departure = max(0, round(plan.departure - now))
    return DynamicContent(departure, round(minimum) if minimum > 0 else None,
                          round(plan.target_soc), prices)


def price_level_schedule(plan: Plan, *, levels: int = 3, schedule_id: int = 1,
                         max_entries: int = MAX_ENTRIES) -> PriceLevelSchedule:
    """Buy prices as levels 0 (cheapest) .. levels-1 (dearest), equal-width bands between
    the plan's cheapest and dearest price; for EVs that only understand price levels."""
    _check_points(max_entries)
    if not 1 <= levels <= 255:
        raise ValueError(f"levels must be in [1, 255], got {levels}")
    if not plan.slots:
        raise ValueError("an empty plan has no price levels")
    anchor = round(plan.start)
    buys = [s.buy for s in plan.slots]
    lo, hi = min(buys), max(buys)
    width = (hi - lo) / levels if hi > lo else 1.0
    level = [min(levels - 1, int((b - lo) / width)) for b in buys]
    durations = _durations([(s.start, s.end) for s in plan.slots], anchor)
    runs = _merge_runs(durations, [float(x) for x in level])
    runs = _shorten(runs, max_entries)
    return PriceLevelSchedule(anchor, schedule_id, levels,
                              tuple(PriceLevelEntry(d, round(v)) for d, v in runs))


def to_protocol_schedules(plan: Plan, *, bpt: bool, with_prices: bool = True,
                          max_entries: int = MAX_ENTRIES, price_schedule_id: int = 1
                          ) -> proto.Schedules:
    """The plan as the protocol core's `Schedules` (what a ScheduleProvider returns).

    `bpt`: the session is bidirectional (a discharging schedule is sent, zeros where the plan
    does not discharge). Without BPT a plan that discharges is an error: plan such sessions
    with `allow_discharge=False`. The price schedule carries the buy prices; Schedules has no
    place for the sell prices yet (see scheduled_content for the full ScheduleTuple).
    """
    content = scheduled_content(plan, max_entries=max_entries, with_prices=with_prices,
                                discharging=bpt, price_schedule_ids=(price_schedule_id,
                                                                     price_schedule_id + 1))
    if not bpt and any(s.power_w < 0 for s in plan.slots):
        raise ValueError("the plan discharges but the session is not bidirectional (BPT)")
    charging = tuple(proto.PowerEntry(e.duration_s, e.power_w)
                     for e in content.charging.power_schedule.entries)
    discharging: tuple[proto.PowerEntry, ...] = ()
    if content.discharging is not None:
        discharging = tuple(proto.PowerEntry(e.duration_s, e.power_w)
                            for e in content.discharging.power_schedule.entries)
    price = None
    buy = content.charging.price_schedule
    if buy is not None:
        rules = []
        offset = 0
        for e in buy.entries:
            rules.append(proto.PriceRule(offset, e.energy_fee))
            offset += e.duration_s
        price = proto.PriceSchedule(tuple(rules), currency=buy.currency, language=buy.language,
                                    price_algorithm=buy.price_algorithm,
                                    schedule_id=buy.price_schedule_id)
    return proto.Schedules(start=plan.start,
                           charging=charging, discharging=discharging, price=price)
