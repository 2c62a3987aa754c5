"""Cost-optimal charge/discharge plan from now to the EV's departure (pure, no I/O).

The model
---------
Time is cut into slots: boundaries every `slot_s` seconds (aligned to multiples of `slot_s`
on the caller's clock, so 15-min slots start at :00/:15/:30/:45 on the epoch), plus every
price change, `now` and `departure`. Inside a slot prices and power are constant.

`P` is the power at the charger's grid connection (W): > 0 charges the EV, < 0 discharges it
(DESIGN 5). All power limits apply to P; the EV's and the EVSE's limits combine (the smaller
one wins, in each direction). Efficiencies are the losses between the meter and the cells:

    charging:     battery energy += P * dt * charge_efficiency
    discharging:  battery energy -= |P| * dt / discharge_efficiency

Money (all energies in kWh at the meter, prices per kWh):

    cost bought   = sum(buy_t  * max(P_t, 0) * dt)
    revenue sold  = sum(sell_t * max(-P_t, 0) * dt)
    degradation   = degradation_cost * (energy drawn from the battery by discharging)
    net           = cost bought - revenue sold + degradation   (minimised)

Degradation choice: `degradation_cost` is charged per kWh *discharged*, measured at the
battery (|P| * dt / discharge_efficiency). The charging needed to reach the departure target
happens anyway; what V2G adds is the extra cycle, and every kWh taken out must be put back
later, so one cycle is counted once, at the discharge. Consequence, with efficiencies of 1:
a discharge at sell price s refilled at buy price b pays off exactly when s - b exceeds the
degradation cost (with efficiencies: s * eta_d - b / eta_c > degradation_cost).

Constraints:
- SOC never above `max_soc` (an EV arriving above it never goes above its arrival SOC);
- the reserve: never discharge below `reserve_soc`. An EV that arrives below the reserve is
  first charged at full power up to the reserve (ISO 15118-20's MinimumSOC semantics: the
  energy to the minimum SOC is delivered as soon as possible); from then on it never goes
  below it;
- SOC at departure >= `target_soc`: a hard constraint when reachable. When it is not, the plan
  charges at full power in every slot (until max_soc) and `Plan.target_feasible` is False.

The algorithm
-------------
An exact dynamic programme over a *continuous* battery energy, not a discretised one: the
cost of a slot is piecewise linear and convex in the energy moved (slope buy/eta_c when
charging, sell*eta_d - degradation when discharging), so every cost-to-go V_t(E) is a convex
piecewise-linear function, represented by its breakpoints. The Bellman step is an infimal
convolution, which for convex piecewise-linear functions is a merge of segments sorted by
slope, followed by a cut to the slot's SOC bounds. The forward pass picks, for each slot, the
point where the marginal value of stored energy crosses the slot's prices. Exact (an LP
optimum), O(n^2) for n slots with tiny constants: well under 10 ms for 24 h of 15-min slots.

One approximation: a slot whose discharge value exceeds its charge cost
(sell * eta_d - degradation > buy / eta_c, i.e. selling dearer than buying in the *same*
slot) makes the slot cost concave. There the discharge value is capped to the charge cost,
which keeps the problem convex; such tariffs are rare (and a grid-tied charger cannot both
buy and sell at once anyway). The money summary always uses the true prices.
"""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass

from evse.energy.prices import PriceCurve

__all__ = ["MoneySummary", "Plan", "PlanSlot", "PowerLimits", "plan", "setpoint_at",
           "money_summary"]

_EPS_PRICE = 1e-12  # slope comparisons (currency per kWh)
_EPS_E = 1e-9  # kWh


@dataclass(frozen=True, slots=True)
class PowerLimits:
    """Power magnitudes (W, >= 0) in each direction; discharge 0 = unidirectional."""

    max_charge_w: float
    max_discharge_w: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_charge_w", "max_discharge_w"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"PowerLimits.{name} must be a finite number >= 0, "
                                 f"got {value!r}")

    def combine(self, other: PowerLimits) -> PowerLimits:
        """The limits both sides can do (the smaller one in each direction)."""
        return PowerLimits(min(self.max_charge_w, other.max_charge_w),
                           min(self.max_discharge_w, other.max_discharge_w))


@dataclass(frozen=True, slots=True)
class PlanSlot:
    start: float  # s
    end: float  # s
    power_w: float  # > 0 charge, < 0 discharge (at the meter)
    soc_start: float  # percent
    soc_end: float  # percent
    buy: float  # price per kWh during the slot
    sell: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def energy_kwh(self) -> float:
        """Signed energy at the meter during the slot (> 0 bought, < 0 sold)."""
        return self.power_w * (self.end - self.start) / 3.6e6


@dataclass(frozen=True, slots=True)
class MoneySummary:
    currency: str
    energy_bought_kwh: float  # at the meter
    energy_sold_kwh: float  # at the meter
    cost_bought: float
    revenue_sold: float
    degradation: float

    @property
    def net(self) -> float:
        """What the session costs the owner: bought - sold + degradation."""
        return self.cost_bought - self.revenue_sold + self.degradation


@dataclass(frozen=True, slots=True)
class Plan:
    start: float
    departure: float
    slots: tuple[PlanSlot, ...]
    capacity_kwh: float
    target_soc: float
    reserve_soc: float
    target_feasible: bool  # False: the target cannot be reached, the plan charges at max
    money: MoneySummary

    @property
    def powers(self) -> tuple[float, ...]:
        return tuple(s.power_w for s in self.slots)

    @property
    def soc(self) -> tuple[float, ...]:
        """SOC trajectory in percent at every slot boundary (len(slots) + 1 values)."""
        if not self.slots:
            return ()
        return (self.slots[0].soc_start, *(s.soc_end for s in self.slots))

    @property
    def final_soc(self) -> float:
        return self.slots[-1].soc_end if self.slots else math.nan


def setpoint_at(plan: Plan, t: float) -> float:
    """The planned power (W) at time t, for the Dynamic-mode charge loop; 0 outside the plan."""
    slots = plan.slots
    if not slots or t < slots[0].start or t >= slots[-1].end:
        return 0.0
    lo, hi = 0, len(slots) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if slots[mid].end <= t:
            lo = mid + 1
        else:
            hi = mid
    return slots[lo].power_w


def money_summary(slots: Sequence[PlanSlot], *, currency: str, degradation_cost: float,
                  discharge_efficiency: float = 1.0) -> MoneySummary:
    """The money of a sequence of slots (also what `plan` reports)."""
    bought = sold = cost = revenue = drawn = 0.0
    for s in slots:
        e = s.energy_kwh
        if e > 0:
            bought += e
            cost += s.buy * e
        elif e < 0:
            sold -= e
            revenue -= s.sell * e
            drawn -= e / discharge_efficiency
    return MoneySummary(currency, bought, sold, cost, revenue, degradation_cost * drawn)


# -- convex piecewise-linear cost-to-go -----------------------------------------------------


class _Pwl:
    """A convex piecewise-linear function on [lo, hi]: value at lo plus (length, slope)
    segments with non-decreasing slopes."""

    __slots__ = ("lo", "hi", "v_lo", "segs")

    def __init__(self, lo: float, hi: float, v_lo: float, segs: list[tuple[float, float]]):
        self.lo = lo
        self.hi = hi
        self.v_lo = v_lo
        self.segs = segs  # sorted by slope (the second item)

    def value(self, x: float) -> float:
        v, pos = self.v_lo, self.lo
        for length, slope in self.segs:
            if x <= pos + length:
                return v + slope * (x - pos)
            v += slope * length
            pos += length
        return v

    def argmin_with(self, linear: float, *, rightmost: bool) -> float:
        """A minimiser of f(x) + linear * x on [lo, hi] (rightmost or leftmost one)."""
        pos = self.lo
        for length, slope in self.segs:
            s = slope + linear
            if s < -_EPS_PRICE or (rightmost and s <= _EPS_PRICE):
                pos += length
            else:
                break
        return min(pos, self.hi)

    def convolve_slot(self, charge: float, discharge: float, a: float, b: float) -> _Pwl:
        """min over the move y - x in [-discharge, +charge] of slotcost(y - x) + f(y), as a
        function of x (the infimal convolution with the slot's cost g(z) = c(-z))."""
        segs = list(self.segs)
        if charge > 0:
            insort(segs, (charge, -a), key=lambda s: s[1])
        if discharge > 0:
            insort(segs, (discharge, -b), key=lambda s: s[1])
        return _Pwl(self.lo - charge, self.hi + discharge, self.v_lo + a * charge, segs)

    def restrict(self, lo: float, hi: float) -> _Pwl | None:
        lo, hi = max(lo, self.lo), min(hi, self.hi)
        if lo > hi + _EPS_E:
            return None
        hi = max(hi, lo)
        segs: list[tuple[float, float]] = []
        v, pos = self.v_lo, self.lo
        for length, slope in self.segs:
            a, b = max(pos, lo), min(pos + length, hi)
            if pos < lo:
                v += slope * (min(pos + length, lo) - pos)
            if b - a > 0:
                if segs and abs(segs[-1][1] - slope) <= _EPS_PRICE:
                    segs[-1] = (segs[-1][0] + b - a, segs[-1][1])
                else:
                    segs.append((b - a, slope))
            pos += length
            if pos >= hi:
                break
        return _Pwl(lo, hi, v, segs)


# -- the planner ----------------------------------------------------------------------------


def _boundaries(prices: PriceCurve, now: float, departure: float, slot_s: float) -> list[float]:
    points = {now, departure}
    k = math.floor(now / slot_s) + 1
    while k * slot_s < departure:
        points.add(k * slot_s)
        k += 1
    points.update(prices.breakpoints(now, departure))
    ordered = sorted(points)
    out = [ordered[0]]
    for p in ordered[1:]:
        if p - out[-1] > 1e-6:
            out.append(p)
    out[-1] = departure
    return out


def _check(name: str, value: float, lo: float, hi: float = math.inf, *,
           lo_open: bool = False) -> None:
    ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        rng = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"{name} must be in {rng}, got {value!r}")


# TODO(coordinator): split below the ruff complexity limit after merging (issue 12).
def plan(prices: PriceCurve, *, now: float, departure: float, soc: float, target_soc: float,  # noqa: C901
         capacity_kwh: float, ev_limits: PowerLimits, evse_limits: PowerLimits | None = None,
         reserve_soc: float = 0.0, max_soc: float = 100.0, charge_efficiency: float = 1.0,
         discharge_efficiency: float = 1.0, degradation_cost: float = 0.0,
         allow_discharge: bool = True, slot_s: float = 900.0) -> Plan:
    """The cheapest power per slot from `now` to `departure` (see the module docstring).

    SOCs are percentages (0-100) like ISO 15118-20's PercentValueType; `capacity_kwh` is the
    usable battery energy; `degradation_cost` is per kWh discharged (at the battery);
    `allow_discharge=False` plans smart charging only (no V2G).
    Raises ValueError on nonsensical inputs (naming the parameter).
    """
    _check("soc", soc, 0.0, 100.0)
    _check("target_soc", target_soc, 0.0, 100.0)
    _check("reserve_soc", reserve_soc, 0.0, 100.0)
    _check("max_soc", max_soc, 0.0, 100.0)
    _check("capacity_kwh", capacity_kwh, 0.0, lo_open=True)
    _check("charge_efficiency", charge_efficiency, 0.0, 1.0, lo_open=True)
    _check("discharge_efficiency", discharge_efficiency, 0.0, 1.0, lo_open=True)
    _check("degradation_cost", degradation_cost, 0.0)
    _check("slot_s", slot_s, 0.0, lo_open=True)
    if not (math.isfinite(now) and math.isfinite(departure)):
        raise ValueError("now and departure must be finite times")
    if target_soc > max_soc:
        raise ValueError(f"target_soc {target_soc} is above max_soc {max_soc}")
    if reserve_soc > max_soc:
        raise ValueError(f"reserve_soc {reserve_soc} is above max_soc {max_soc}")
    limits = ev_limits if evse_limits is None else ev_limits.combine(evse_limits)
    p_charge = limits.max_charge_w
    p_discharge = limits.max_discharge_w if allow_discharge else 0.0

    cap = capacity_kwh
    e0 = cap * soc / 100.0
    e_max = max(cap * max_soc / 100.0, e0)
    e_res = cap * reserve_soc / 100.0
    e_target = cap * target_soc / 100.0
    eta_c, eta_d = charge_efficiency, discharge_efficiency

    if departure <= now:
        return Plan(now, departure, (), cap, target_soc, reserve_soc, e0 >= e_target - _EPS_E,
                    money_summary((), currency=prices.currency, degradation_cost=0.0))

    bounds = _boundaries(prices, now, departure, slot_s)
    n = len(bounds) - 1
    dt_h = [(bounds[i + 1] - bounds[i]) / 3600.0 for i in range(n)]
    price = [prices.at(bounds[i]) for i in range(n)]
    c_max = [p_charge * h / 1000.0 * eta_c for h in dt_h]  # kWh into the cells per slot
    d_max = [p_discharge * h / 1000.0 / eta_d for h in dt_h]  # kWh out of the cells per slot
    a = [p.buy / eta_c for p in price]  # cost per kWh stored
    b = [min(p.sell * eta_d - degradation_cost, a[i]) for i, p in enumerate(price)]

    # SOC bounds per slot boundary: the reserve (reached at full power when starting below).
    lower = [e0] * (n + 1)
    reach = e0
    for t in range(1, n + 1):
        reach = min(e_max, reach + c_max[t - 1])
        lower[t] = e_res if e0 >= e_res else min(e_res, reach)
    feasible = reach >= e_target - _EPS_E

    energies = [e0]
    if not feasible:  # charge at full power: get as close to the target as possible
        for t in range(n):
            energies.append(min(e_max, energies[-1] + c_max[t]))
    else:
        values: list[_Pwl] = [None] * (n + 1)  # type: ignore[list-item]
        lo_n = max(e_target, lower[n])
        values[n] = _Pwl(lo_n, e_max, 0.0, [(e_max - lo_n, 0.0)] if e_max > lo_n else [])
        for t in range(n - 1, 0, -1):
            conv = values[t + 1].convolve_slot(c_max[t], d_max[t], a[t], b[t])
            restricted = conv.restrict(lower[t], e_max)
            if restricted is None:  # pragma: no cover - excluded by the feasibility check
                raise AssertionError("empty SOC range in a feasible plan")
            values[t] = restricted
        for t in range(n):
            e = energies[-1]
            nxt = values[t + 1]
            y = _best_move(nxt, e, c_max[t], d_max[t], a[t], b[t])
            energies.append(y)

    slots: list[PlanSlot] = []
    e = e0
    for t in range(n):
        delta = energies[t + 1] - energies[t]
        h = dt_h[t]
        if delta > _EPS_E:
            power = min(delta / eta_c / h * 1000.0, p_charge)
        elif delta < -_EPS_E:
            power = -min(-delta * eta_d / h * 1000.0, p_discharge)
        else:
            power = 0.0
        e_next = e + (power * h / 1000.0 * eta_c if power >= 0 else power * h / 1000.0 / eta_d)
        e_next = min(max(e_next, 0.0), cap)
        slots.append(PlanSlot(bounds[t], bounds[t + 1], power, 100.0 * e / cap,
                              100.0 * e_next / cap, price[t].buy, price[t].sell))
        e = e_next
    money = money_summary(slots, currency=prices.currency, degradation_cost=degradation_cost,
                          discharge_efficiency=eta_d)
    return Plan(now, departure, tuple(slots), cap, target_soc, reserve_soc, feasible, money)


def _best_move(nxt: _Pwl, e: float, charge: float, discharge: float, a: float,
               b: float) -> float:
    """The next energy y in [e - discharge, e + charge] minimising slotcost(y - e) + nxt(y);
    among equal costs the smallest move."""
    candidates: list[tuple[float, float, float]] = []  # (cost, |move|, y)
    lo, hi = max(e, nxt.lo), min(e + charge, nxt.hi)
    if lo <= hi + _EPS_E:
        hi = max(lo, hi)
        y = min(max(nxt.argmin_with(a, rightmost=False), lo), hi)
        candidates.append((a * (y - e) + nxt.value(y), y - e, y))
    lo, hi = max(e - discharge, nxt.lo), min(e, nxt.hi)
    if lo <= hi + _EPS_E:
        lo = min(lo, hi)
        y = min(max(nxt.argmin_with(b, rightmost=True), lo), hi)
        candidates.append((b * (y - e) + nxt.value(y), e - y, y))
    if not candidates:  # pragma: no cover - e is always inside the feasible range
        raise AssertionError(f"no feasible move from {e} kWh")
    best = min(c[0] for c in candidates)
    tol = 1e-9 * max(1.0, abs(best))
    return min((c for c in candidates if c[0] <= best + tol), key=lambda c: c[1])[2]
