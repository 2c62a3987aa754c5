"""The optimizer as the SECC's ScheduleProvider: cost-optimal schedules in ScheduleExchange.

    provider = PlanningScheduleProvider(prices, EnergyPolicy.from_config(cfg.energy))
    SeccConfig(..., schedule_provider=provider)
    provider.set_prices(curve)              # the MQTT `prices` command (next ScheduleExchange)
    plan = provider.replan(...)             # Dynamic mode: a new plan mid-session

Pure (no clock, no I/O): ScheduleExchange hands over `ScheduleRequest` (evse.protocol.schedules)
with `now` on the SECC's clock and `timestamp`, the same instant in Unix seconds. Plans are made
on the Unix clock (price curves, TimeAnchor); the returned `Schedules` start at `now`.

What the plan is made of, and where each input comes from:

- prices: the connector's price curve (`[tariffs]`, or the last MQTT `prices` command);
- departure: the EV's DepartureTime, else `EnergyPolicy.default_departure_s`;
- SOC now: EVTargetEnergyRequest and the target SOC with the capacity estimate (the plan then
  needs exactly the energy the EV asks for); EVMaximumEnergyRequest when the EV is at or
  above its target; else `unknown_soc`;
- target SOC: the EV's TargetSOC (Dynamic ScheduleExchange, else ChargeParameterDiscovery),
  else the policy's; never above `max_soc`;
- reserve SOC: the larger of the policy's reserve and the EV's MinimumSOC;
- capacity: `EnergyPolicy.capacity_kwh` (the EV's BatteryEnergyCapacity for replans);
- power limits: the EV's and the charger's (the smaller in each direction); discharging only
  with BPT and `v2g`;
- wear: the chemistry's table model (`EnergyPolicy.wear_model`), the same one the reports
  use; `degradation_cost` (flat per kWh discharged) overrides it when set;
- owner policy: reserve SOC (plus `outage_reserve_soc` while `outage_possible`), V2G on/off,
  `max_discharge_kwh_per_day` (per started day of the plan), departure and target.

Scheduled mode: the plan becomes the ChargingSchedule (charge power per interval, 0 where it
idles or discharges), the DischargingSchedule (BPT: discharge power, 0 elsewhere), the buy
price schedule and, for the DischargingSchedule, the sell price schedule. Dynamic mode: the
same Schedules, whose `setpoint_at(t)` is `optimizer.setpoint_at(plan, t)`: the charge loop
follows it unless the charger has a setpoint (SetpointUpdated, e.g. from MQTT).

At equal prices the optimizer is indifferent to *when* it charges (it would charge at the
last moment); `early_bias` adds a negligible price ramp (default 1e-6 per kWh and hour) to
the buy prices it plans with, so that it charges as early as equal prices allow. The plan's
slots and money summary are given back with the true prices.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from evse.energy.exchange import (
    MAX_ENTRIES,
    MIN_SUPPORTING_POINTS,
    scheduled_content,
    to_protocol_schedules,
)
from evse.energy.optimizer import Plan, PowerLimits, money_summary, plan, plan_wear
from evse.energy.prices import PriceCurve, PriceSlot
from evse.energy.wear import DEFAULT_REPLACEMENT_COST_PER_KWH, WearModel
from evse.protocol.limits import EvLimits, EvseLimits
from evse.protocol.schedules import PriceRule, PriceSchedule, ScheduleRequest, Schedules

__all__ = ["EnergyPolicy", "PlanningScheduleProvider", "estimate_soc"]


@dataclass(frozen=True, slots=True)
class EnergyPolicy:
    """The station's energy policy (`[energy]` of the config; SOCs in percent)."""

    reserve_soc: float = 20.0  # never discharge below
    target_soc: float = 80.0  # at departure, when the EV does not say
    max_soc: float = 100.0
    default_departure_s: float = 8 * 3600.0
    capacity_kwh: float = 60.0  # battery capacity estimate when the EV does not tell
    # Wear: the chemistry's BLAST-Lite tables (evse.energy.wear) price every cycle as lost
    # capacity x `replacement_cost` per kWh; `degradation_cost` (a flat price per kWh
    # discharged, the old model) overrides them when set.
    chemistry: str = "nmc"
    replacement_cost: float = DEFAULT_REPLACEMENT_COST_PER_KWH  # currency per kWh of battery
    battery_temperature_c: float = 20.0
    degradation_cost: float | None = None  # deprecated override: flat per kWh discharged
    max_discharge_kwh_per_day: float | None = None  # owner's cap on V2G energy (at the meter)
    outage_reserve_soc: float = 0.0  # never planned below this while an outage is possible
    outage_possible: bool = False  # e.g. a storm warning: keep `outage_reserve_soc` for V2H
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    v2g: bool = True  # False: smart charging only
    slot_s: float = 900.0
    unknown_soc: float = 50.0  # assumed when the EV tells nothing about its SOC
    early_bias: float = 1e-6  # currency per kWh and hour: at equal prices, charge early

    @classmethod
    def from_config(cls, energy: Any) -> EnergyPolicy:
        """From an `evse.config.EnergyConfig`."""
        return cls(reserve_soc=energy.reserve_soc, target_soc=energy.target_soc,
                   max_soc=energy.max_soc,
                   default_departure_s=energy.default_departure_h * 3600.0,
                   capacity_kwh=energy.battery_capacity_kwh,
                   degradation_cost=energy.degradation_cost,
                   chemistry=energy.chemistry, replacement_cost=energy.replacement_cost,
                   battery_temperature_c=energy.battery_temperature_c,
                   max_discharge_kwh_per_day=energy.max_discharge_kwh_per_day,
                   outage_reserve_soc=energy.outage_reserve_soc,
                   outage_possible=energy.outage_possible,
                   charge_efficiency=energy.charge_efficiency,
                   discharge_efficiency=energy.discharge_efficiency, v2g=energy.v2g,
                   slot_s=energy.slot_minutes * 60.0)

    def wear_model(self, capacity_kwh: float | None = None) -> WearModel | None:
        """The wear model planner and reports share; None with the flat override."""
        if self.degradation_cost is not None:
            return None
        return WearModel.for_chemistry(self.chemistry,
                                       capacity_kwh=capacity_kwh or self.capacity_kwh,
                                       replacement_cost_per_kwh=self.replacement_cost,
                                       temperature_c=self.battery_temperature_c)

    @property
    def flat_degradation_cost(self) -> float:
        return self.degradation_cost or 0.0

    def planning_reserve(self, reserve: float) -> float:
        """The reserve the planner keeps: the outage reserve too while one is possible."""
        return max(reserve, self.outage_reserve_soc) if self.outage_possible else reserve


def _clamp(x: float, lo: float = 0.0, hi: float = 100.0) -> float:
    return min(hi, max(lo, x))


def estimate_soc(*, capacity_kwh: float, target_soc: float | None = None,
                 target_energy_wh: float | None = None, maximum_energy_wh: float | None = None,
                 present_soc: float | None = None) -> float | None:
    """The EV's SOC in percent from what it said; None when it said nothing useful.

    The energy to the target (EVTargetEnergyRequest) and the target SOC give the SOC to a
    fraction of a percent with the capacity estimate; DisplayParameters' PresentSOC is a whole
    percent and wins when the two disagree by more than 1 (a wrong capacity estimate)."""
    cap_wh = capacity_kwh * 1000.0
    precise = None
    if target_soc is not None and target_energy_wh is not None and target_energy_wh > 0:
        precise = _clamp(target_soc - target_energy_wh / cap_wh * 100.0)
    elif maximum_energy_wh is not None and maximum_energy_wh >= 0:
        precise = _clamp(100.0 - maximum_energy_wh / cap_wh * 100.0)
    if present_soc is None:
        return precise
    if precise is not None and abs(precise - present_soc) <= 1.0:
        return precise
    return _clamp(float(present_soc))


def _biased(prices: PriceCurve, now: float, departure: float, slot_s: float,
            bias: float) -> PriceCurve:
    """The curve over [now, departure), cut at the plan's slot grid, buy prices raised by
    `bias` per hour from now (a tie-break towards early charging)."""
    if bias <= 0 or not departure > now:
        return prices
    edges = {now, departure, *prices.breakpoints(now, departure)}
    k = math.floor(now / slot_s) + 1
    while k * slot_s < departure:
        edges.add(k * slot_s)
        k += 1
    ordered = sorted(edges)
    slots = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        p = prices.at(a)
        slots.append(PriceSlot(a, b, p.buy + bias * (a - now) / 3600.0, p.sell))
    return PriceCurve(tuple(slots), prices.currency)


def _power_limits(ev: EvLimits | None, evse: EvseLimits, bpt: bool) -> tuple[PowerLimits,
                                                                              PowerLimits]:
    def finite(x: float | None, default: float) -> float:
        return default if x is None or not math.isfinite(x) else max(0.0, x)

    evse_pl = PowerLimits(finite(evse.max_charge_power, 0.0),
                          finite(evse.max_discharge_power, 0.0) if bpt else 0.0)
    if ev is None:
        return evse_pl, evse_pl
    ev_pl = PowerLimits(finite(ev.max_charge_power, evse_pl.max_charge_w),
                        finite(ev.max_discharge_power, 0.0) if bpt else 0.0)
    return ev_pl, evse_pl


def _price_schedule(entries: Any, currency: str, schedule_id: int,
                    language: str, algorithm: str) -> PriceSchedule:
    rules, offset = [], 0
    for e in entries:
        rules.append(PriceRule(offset, e.energy_fee))
        offset += e.duration_s
    return PriceSchedule(tuple(rules), currency=currency, language=language,
                         price_algorithm=algorithm, schedule_id=schedule_id)


class PlanningScheduleProvider:
    """A ScheduleProvider (with `schedules_for`) planning with `optimizer.plan` over the
    connector's price curve. One per connector: `set_prices` changes that connector's curve.
    `last_plan` is the plan of the latest ScheduleExchange (reports, Dynamic mode)."""

    def __init__(self, prices: PriceCurve, policy: EnergyPolicy | None = None) -> None:
        self._prices = prices
        self.policy = policy or EnergyPolicy()
        self.last_plan: Plan | None = None
        self.last_request: ScheduleRequest | None = None

    @property
    def prices(self) -> PriceCurve:
        return self._prices

    def set_prices(self, prices: PriceCurve) -> None:
        self._prices = prices

    # -- planning ----------------------------------------------------------------------------

    def make_plan(self, *, now: float, departure: float, soc: float, target_soc: float | None,
                  minimum_soc: float | None, ev_limits: EvLimits | None,
                  evse_limits: EvseLimits, bpt: bool,
                  capacity_kwh: float | None = None) -> Plan:
        """A plan on the Unix clock (`now`, `departure`: Unix seconds)."""
        pol = self.policy
        target = _clamp(pol.target_soc if target_soc is None else float(target_soc),
                        0.0, pol.max_soc)
        reserve = _clamp(pol.planning_reserve(max(pol.reserve_soc, float(minimum_soc or 0.0))),
                         0.0, pol.max_soc)
        ev_pl, evse_pl = _power_limits(ev_limits, evse_limits, bpt)
        allow = bpt and pol.v2g and min(ev_pl.max_discharge_w, evse_pl.max_discharge_w) > 0
        curve = _biased(self._prices, now, departure, pol.slot_s, pol.early_bias)
        cap = capacity_kwh or pol.capacity_kwh
        wear = pol.wear_model(cap)
        cap_kwh = None
        if pol.max_discharge_kwh_per_day is not None:  # per started day of the plan
            cap_kwh = pol.max_discharge_kwh_per_day * max(1, math.ceil((departure - now)
                                                                        / 86400.0))
        result = plan(curve, now=now, departure=departure, soc=_clamp(soc), target_soc=target,
                      capacity_kwh=cap, ev_limits=ev_pl,
                      evse_limits=evse_pl, reserve_soc=reserve, max_soc=pol.max_soc,
                      charge_efficiency=pol.charge_efficiency,
                      discharge_efficiency=pol.discharge_efficiency,
                      degradation_cost=pol.flat_degradation_cost, allow_discharge=allow,
                      slot_s=pol.slot_s, wear=wear, max_discharge_kwh=cap_kwh)
        if curve is self._prices:
            return result
        true_slots = tuple(dataclasses.replace(s, buy=self._prices.buy_at(s.start),
                                               sell=self._prices.sell_at(s.start))
                           for s in result.slots)
        money = money_summary(true_slots, currency=self._prices.currency,
                              degradation_cost=pol.flat_degradation_cost,
                              discharge_efficiency=pol.discharge_efficiency,
                              wear=None if wear is None else plan_wear(true_slots, wear))
        return dataclasses.replace(result, slots=true_slots, money=money)

    def plan_for(self, req: ScheduleRequest) -> Plan:
        pol = self.policy
        departure = req.departure_time if req.departure_time is not None else (
            pol.default_departure_s)
        target = req.target_soc
        if target is None and req.ev_limits is not None:
            target = req.ev_limits.target_soc
        soc = estimate_soc(capacity_kwh=pol.capacity_kwh,
                           target_soc=target if target is not None else pol.target_soc,
                           target_energy_wh=req.ev_target_energy_wh,
                           maximum_energy_wh=req.ev_maximum_energy_wh)
        return self.make_plan(now=req.timestamp, departure=req.timestamp + max(1.0, departure),
                              soc=pol.unknown_soc if soc is None else soc, target_soc=target,
                              minimum_soc=req.minimum_soc, ev_limits=req.ev_limits,
                              evse_limits=req.evse_limits, bpt=req.bpt)

    def to_schedules(self, p: Plan, *, now: float, bpt: bool,
                     max_points: int | None = None) -> Schedules:
        """The plan as Schedules starting at `now` (the SECC's clock)."""
        points = MAX_ENTRIES if max_points is None else int(
            _clamp(max_points, MIN_SUPPORTING_POINTS, MAX_ENTRIES))
        out = to_protocol_schedules(p, bpt=bpt, max_entries=points)
        discharge_price = None
        if bpt and out.price is not None:
            content = scheduled_content(p, max_entries=points, discharging=True)
            sell = content.discharging.price_schedule if content.discharging else None
            if sell is not None:
                discharge_price = _price_schedule(sell.entries, sell.currency,
                                                  sell.price_schedule_id, sell.language,
                                                  sell.price_algorithm)
        return dataclasses.replace(out, start=now, discharge_price=discharge_price)

    # -- the ScheduleProvider hooks ----------------------------------------------------------

    def schedules_for(self, req: ScheduleRequest) -> Schedules | None:
        p = self.plan_for(req)
        self.last_plan, self.last_request = p, req
        if not p.slots:
            return None
        return self.to_schedules(p, now=req.now, bpt=req.bpt,
                                 max_points=req.max_supporting_points)

    def schedules(self, now: float, departure_time: int | None, ev_limits: EvLimits | None,
                  evse_limits: EvseLimits, bpt: bool) -> Schedules | None:
        """The plain ScheduleProvider call: `now` must then be Unix seconds."""
        return self.schedules_for(ScheduleRequest(now=now, timestamp=now,
                                                  departure_time=departure_time,
                                                  ev_limits=ev_limits, evse_limits=evse_limits,
                                                  bpt=bpt))

