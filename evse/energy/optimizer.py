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

Wear (evse.energy.wear): with a `WearModel` a kWh drawn by discharging costs the wear of the
cycle it makes, from BLAST-Lite-derived tables by depth, mean SOC, C-rate and temperature.
That cost depends on the depth the plan chooses, so `plan` solves with the per-kWh cost of a
few depths, re-solves once at the depth each solution shows, and keeps the solution whose
true cost (rainflow-counted cycles and calendar ageing of its SOC trajectory, priced as
lost capacity x replacement cost) is lowest, the plan without discharge included: a
discharge survives only when it pays after efficiency and wear. The depth search is a
heuristic (wear that grows with depth makes the problem non-convex): every plan it returns
is priced exactly, but a better one may exist (benchmarks/planner_bench.py shows a 48-h case
where a discharge cap found one 0.10 EUR cheaper). Discharge power comes in C-rate tiers,
each kWh of a higher tier dearer by the wear of the higher C-rate (`wear_tiers`). Each slot says why
(`PlanSlot.reason`; discharges give `margin`, the expected gain per kWh sold).

Flat alternative (no wear model): `degradation_cost` is charged per kWh *discharged*, measured
at the battery (|P| * dt / discharge_efficiency). The charging needed to reach the departure target
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

import dataclasses
import math
from bisect import insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evse.energy.prices import PriceCurve
from evse.energy.wear import WearCost, WearModel

__all__ = ["MoneySummary", "Plan", "PlanSlot", "PowerLimits", "money_summary", "plan",
           "plan_wear", "setpoint_at"]

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
    reason: str = ""  # why the plan does this (a discharge gives its expected margin)
    margin: float | None = None  # discharges: expected margin per kWh sold (currency)

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
    degradation: float  # wear: cycles + calendar (wear model), else flat per kWh discharged

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
                  discharge_efficiency: float = 1.0, wear: WearCost | None = None
                  ) -> MoneySummary:
    """The money of a sequence of slots (also what `plan` reports); with `wear` its cost
    is the degradation, else `degradation_cost` per kWh drawn by discharging."""
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
    degradation = wear.total if wear is not None else degradation_cost * drawn
    return MoneySummary(currency, bought, sold, cost, revenue, degradation)


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

    def convolve_slot(self, charge: float, a: float,
                      discharge: Sequence[tuple[float, float]]) -> _Pwl:
        """min over the move y - x in [-sum(discharge), +charge] of slotcost(y - x) + f(y), as
        a function of x (the infimal convolution with the slot's cost g(z) = c(-z));
        `discharge`: (kWh, value per kWh) tiers, values non-increasing and <= a."""
        segs = list(self.segs)
        if charge > 0:
            insort(segs, (charge, -a), key=lambda s: s[1])
        total = 0.0
        for length, b in discharge:
            if length > 0:
                insort(segs, (length, -b), key=lambda s: s[1])
                total += length
        return _Pwl(self.lo - charge, self.hi + total, self.v_lo + a * charge, segs)

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


def _check_plan_inputs(*, now: float, departure: float, soc: float, target_soc: float,
                       capacity_kwh: float, reserve_soc: float, max_soc: float,
                       charge_efficiency: float, discharge_efficiency: float,
                       degradation_cost: float, slot_s: float,
                       max_discharge_kwh: float | None) -> None:
    _check_plan_inputs(now=now, departure=departure, soc=soc, target_soc=target_soc,
                       capacity_kwh=capacity_kwh, reserve_soc=reserve_soc, max_soc=max_soc,
                       charge_efficiency=charge_efficiency,
                       discharge_efficiency=discharge_efficiency,
                       degradation_cost=degradation_cost, slot_s=slot_s,
                       max_discharge_kwh=max_discharge_kwh)


_Solution = tuple[list[PlanSlot], MoneySummary]


def _solve_with_wear(solve: Callable[[Tiers | None], _Solution], wear: WearModel, *,
                     crate: float, mean: float, deepest: float) -> _Solution:
    """The wear of a kWh depends on the depth of the cycles the plan makes, which depends
    on the wear: start from a few depths, re-plan once at the depth each plan shows, and
    keep the plan whose true money (cycles rainflow-counted) is the lowest, the plan
    without discharge included. So a discharge is kept only when it pays after efficiency
    and wear."""
    best = solve(None)  # no discharge
    tried: set[float] = set()
    for dod in (0.1, 0.3, deepest):
        for _ in range(2):
            key = round(dod, 2)
            if key in tried:  # the same depth gives the same plan
                break
            tried.add(key)
            cand = solve(wear_tiers(wear, dod, mean, crate))
            if cand[1].net < best[1].net - 1e-9:
                best = cand
            dod = _deepest_discharge(cand[0])
            if dod <= 0:
                break
    return best


def plan(prices: PriceCurve, *, now: float, departure: float, soc: float, target_soc: float,
         capacity_kwh: float, ev_limits: PowerLimits, evse_limits: PowerLimits | None = None,
         reserve_soc: float = 0.0, max_soc: float = 100.0, charge_efficiency: float = 1.0,
         discharge_efficiency: float = 1.0, degradation_cost: float = 0.0,
         allow_discharge: bool = True, slot_s: float = 900.0, wear: WearModel | None = None,
         max_discharge_kwh: float | None = None) -> Plan:
    """The cheapest power per slot from `now` to `departure` (see the module docstring).

    SOCs are percentages (0-100) like ISO 15118-20's PercentValueType; `capacity_kwh` is the
    usable battery energy; `allow_discharge=False` plans smart charging only (no V2G).
    Wear: with `wear` (evse.energy.wear) discharging is charged what the cycles it adds cost
    (see "Wear" above) and `Plan.money.degradation` is the plan's wear (cycles + calendar);
    without it, the flat `degradation_cost` per kWh discharged (at the battery).
    `max_discharge_kwh`: at most this much energy discharged (at the meter) over the plan.
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
    if max_discharge_kwh is not None:
        _check("max_discharge_kwh", max_discharge_kwh, 0.0)
    if not (math.isfinite(now) and math.isfinite(departure)):
        raise ValueError("now and departure must be finite times")
    if target_soc > max_soc:
        raise ValueError(f"target_soc {target_soc} is above max_soc {max_soc}")
    if reserve_soc > max_soc:
        raise ValueError(f"reserve_soc {reserve_soc} is above max_soc {max_soc}")
    limits = ev_limits if evse_limits is None else ev_limits.combine(evse_limits)
    p_discharge = limits.max_discharge_w if allow_discharge else 0.0
    if max_discharge_kwh is not None and max_discharge_kwh <= 0:
        p_discharge = 0.0
    problem = _Problem(prices, now, departure, soc, target_soc, capacity_kwh,
                       limits.max_charge_w, p_discharge, reserve_soc, max_soc,
                       charge_efficiency, discharge_efficiency, slot_s)
    if departure <= now:
        return Plan(now, departure, (), capacity_kwh, target_soc, reserve_soc,
                    problem.e0 >= problem.e_target - _EPS_E,
                    money_summary((), currency=prices.currency, degradation_cost=0.0))

    def cost_of(slots: list[PlanSlot]) -> MoneySummary:
        if wear is None:
            return money_summary(slots, currency=prices.currency,
                                 degradation_cost=degradation_cost,
                                 discharge_efficiency=discharge_efficiency)
        return money_summary(slots, currency=prices.currency, degradation_cost=0.0,
                             wear=plan_wear(slots, wear))

    def solve(tiers: Tiers | None) -> _Solution:
        slots = problem.solve(tiers, max_discharge_kwh)
        return slots, cost_of(slots)

    if wear is None or p_discharge <= 0:
        slots, money = solve([(1.0, degradation_cost)])
    else:
        slots, money = _solve_with_wear(
            solve, wear, crate=p_discharge / 1000.0 / capacity_kwh,
            mean=(reserve_soc + max(soc, target_soc)) / 200.0,
            deepest=max(0.05, (max_soc - reserve_soc) / 100.0))
    slots = _explain(slots, charge_efficiency, discharge_efficiency, capacity_kwh, wear,
                     degradation_cost, target_soc, reserve_soc)
    return Plan(now, departure, tuple(slots), capacity_kwh, target_soc, reserve_soc,
                problem.feasible, money)


def plan_wear(slots: Sequence[PlanSlot], wear: WearModel) -> WearCost:
    """The wear of a plan's SOC trajectory (cycles rainflow-counted, calendar ageing)."""
    if not slots:
        return wear.trajectory_cost([], [])
    return wear.trajectory_cost([slots[0].start, *(s.end for s in slots)],
                                [slots[0].soc_start, *(s.soc_end for s in slots)])


Tiers = list[tuple[float, float]]  # (upper bound, fraction of max discharge; wear per kWh)
_TIER_CRATES = (0.1, 0.25, 0.5, 1.0)


def wear_tiers(wear: WearModel, dod: float, mean: float, crate_max: float) -> Tiers:
    """Discharge power in tiers by C-rate, each with the marginal wear per kWh drawn: a slot
    that draws E at C-rate c wears E x w(c), so the kWh between two tiers costs
    (E2 w(c2) - E1 w(c1)) / (E2 - E1). Higher power, dearer kWh: the planner spreads a
    discharge at lower power when the wear of the higher C-rate outweighs the price."""
    if crate_max <= 0:
        return [(1.0, 0.0)]
    rates = [c for c in _TIER_CRATES if c < crate_max] + [crate_max]
    tiers: Tiers = []
    prev_e = prev_cost = marginal = 0.0
    for c in rates:
        e = c / crate_max
        total = e * wear.cost_per_kwh(dod, mean, c)
        marginal = max(marginal, (total - prev_cost) / (e - prev_e))  # keep it convex
        tiers.append((e, marginal))
        prev_e, prev_cost = e, total
    return tiers


def _deepest_discharge(slots: Sequence[PlanSlot]) -> float:
    """The largest SOC drop (fraction) of a run of discharging slots."""
    deepest = run = 0.0
    for s in slots:
        if s.power_w < 0:
            run += (s.soc_start - s.soc_end) / 100.0
            deepest = max(deepest, run)
        elif s.power_w > 0:
            run = 0.0
    return deepest


def _explain(slots: list[PlanSlot], eta_c: float, eta_d: float, cap: float,
             wear: WearModel | None, flat: float, target_soc: float,
             reserve_soc: float) -> list[PlanSlot]:
    """Each slot with why it does what it does; a discharge with its expected margin per kWh
    sold: sell price - the cheapest later charge to put the energy back (after losses) -
    the wear of the cycle (at the depth and C-rate the plan makes)."""
    depth = _deepest_discharge(slots)
    out = []
    cheapest_after = math.inf
    later: list[float] = []
    for s in reversed(slots):  # the cheapest buy price after each slot
        later.append(cheapest_after)
        cheapest_after = min(cheapest_after, s.buy)
    later.reverse()
    for i, s in enumerate(slots):
        if s.power_w < 0:
            crate = -s.power_w / 1000.0 / cap
            per_kwh = flat if wear is None else wear.cost_per_kwh(
                depth, (s.soc_start + s.soc_end) / 200.0, crate)
            refill = later[i] if math.isfinite(later[i]) else 0.0
            wear_sold = per_kwh / eta_d
            refill_sold = refill / (eta_c * eta_d)
            margin = s.sell - refill_sold - wear_sold
            reason = (f"discharge: sells at {s.sell:.4f}, refill {refill_sold:.4f} (later "
                      f"{refill:.4f} after losses), wear {wear_sold:.4f}: margin "
                      f"{margin:+.4f} per kWh")
            out.append(dataclasses.replace(s, margin=margin, reason=reason))
        elif s.power_w > 0:
            why = ("charge: up to the reserve SOC first" if s.soc_start < reserve_soc - 1e-6
                   else f"charge: among the cheapest slots for {target_soc:g} % at departure"
                   if s.soc_end <= target_soc + 1e-6 else
                   "charge: cheaper now than later (stored for a later discharge)")
            out.append(dataclasses.replace(s, reason=why))
        elif s.soc_start < target_soc - 1e-6 and later[i] < s.buy:
            out.append(dataclasses.replace(
                s, reason=f"idle: cheaper hours later ({later[i]:.4f} against {s.buy:.4f})"))
        else:
            out.append(dataclasses.replace(s, reason="idle: nothing pays now"))
    return out


class _Problem:
    """One planning problem; `solve(per_kwh)` runs the exact DP with a wear cost per kWh
    drawn from the battery (inf: no discharge)."""

    def __init__(self, prices: PriceCurve, now: float, departure: float, soc: float,
                 target_soc: float, cap: float, p_charge: float, p_discharge: float,
                 reserve_soc: float, max_soc: float, eta_c: float, eta_d: float,
                 slot_s: float) -> None:
        self.cap = cap
        self.e0 = e0 = cap * soc / 100.0
        self.e_max = e_max = max(cap * max_soc / 100.0, e0)
        self.e_res = e_res = cap * reserve_soc / 100.0
        self.e_target = cap * target_soc / 100.0
        self.eta_c, self.eta_d = eta_c, eta_d
        self.p_charge, self.p_discharge = p_charge, p_discharge
        self.feasible = True
        if departure <= now:
            return
        self.bounds = bounds = _boundaries(prices, now, departure, slot_s)
        self.n = n = len(bounds) - 1
        self.dt_h = dt_h = [(bounds[i + 1] - bounds[i]) / 3600.0 for i in range(n)]
        self.price = price = [prices.at(bounds[i]) for i in range(n)]
        self.c_max = c_max = [p_charge * h / 1000.0 * eta_c for h in dt_h]
        self.d_max = [p_discharge * h / 1000.0 / eta_d for h in dt_h]
        self.a = [p.buy / eta_c for p in price]  # cost per kWh stored
        # SOC bounds per slot boundary: the reserve (reached at full power when below).
        self.lower = lower = [e0] * (n + 1)
        reach = e0
        for t in range(1, n + 1):
            reach = min(e_max, reach + c_max[t - 1])
            lower[t] = e_res if e0 >= e_res else min(e_res, reach)
        self.feasible = reach >= self.e_target - _EPS_E

    def solve(self, tiers: Tiers | None, max_discharge_kwh: float | None) -> list[PlanSlot]:
        slots = self._solve(tiers)
        if max_discharge_kwh is None or _sold(slots) <= max_discharge_kwh + 1e-6:
            return slots
        # The cap: keep the discharge of the uncapped plan where it sells dearest, up to the
        # cap, and re-plan with those amounts as the slots' discharge limits (exact when the
        # plan stays the same elsewhere; always within the cap and the SOC constraints).
        left = max_discharge_kwh
        d_cap = [0.0] * self.n
        order = sorted(range(self.n), key=lambda t: -slots[t].sell)
        for t in order:
            sold = -slots[t].energy_kwh if slots[t].power_w < 0 else 0.0
            take = min(sold, left)
            if take > 0:
                d_cap[t] = take / self.eta_d
                left -= take
        return self._solve(tiers, d_cap)

    def _solve(self, tiers: Tiers | None, d_cap: list[float] | None = None) -> list[PlanSlot]:
        dis = self._discharge_steps(tiers, d_cap)
        energies = self._energies(dis) if self.feasible else self._full_charge()
        return self._slots(energies, d_cap)

    def _discharge_steps(self, tiers: Tiers | None,
                         d_cap: list[float] | None) -> list[list[tuple[float, float]]]:
        """Per slot, the discharge tiers as (kWh at the battery, value per kWh)."""
        a, eta_d = self.a, self.eta_d
        dis: list[list[tuple[float, float]]] = [[] for _ in range(self.n)]
        if tiers is None or self.p_discharge <= 0:
            return dis
        for t, p in enumerate(self.price):
            room = self.d_max[t] if d_cap is None else min(self.d_max[t], d_cap[t])
            prev = 0.0
            for frac, cost in tiers:
                length = min((frac - prev) * self.d_max[t], room)
                if length > 0:
                    dis[t].append((length, min(p.sell * eta_d - cost, a[t])))
                    room -= length
                prev = frac
        return dis

    def _full_charge(self) -> list[float]:
        """Infeasible target: charge at full power, to get as close to it as possible."""
        energies = [self.e0]
        for t in range(self.n):
            energies.append(min(self.e_max, energies[-1] + self.c_max[t]))
        return energies

    def _energies(self, dis: list[list[tuple[float, float]]]) -> list[float]:
        """The optimal battery energy per slot boundary: the value functions backwards, then
        the best move forwards."""
        n, e_max, c_max, a, lower = self.n, self.e_max, self.c_max, self.a, self.lower
        values: list[_Pwl] = [None] * (n + 1)  # type: ignore[list-item]
        lo_n = max(self.e_target, lower[n])
        values[n] = _Pwl(lo_n, e_max, 0.0, [(e_max - lo_n, 0.0)] if e_max > lo_n else [])
        for t in range(n - 1, 0, -1):
            conv = values[t + 1].convolve_slot(c_max[t], a[t], dis[t])
            restricted = conv.restrict(lower[t], e_max)
            if restricted is None:  # pragma: no cover - excluded by the feasibility check
                raise AssertionError("empty SOC range in a feasible plan")
            values[t] = restricted
        energies = [self.e0]
        for t in range(n):
            energies.append(_best_move(values[t + 1], energies[-1], c_max[t], a[t], dis[t]))
        return energies

    def _slots(self, energies: list[float], d_cap: list[float] | None) -> list[PlanSlot]:
        """The plan slots (power within the limits) that move the battery along `energies`."""
        cap, eta_c, eta_d = self.cap, self.eta_c, self.eta_d
        p_charge, p_discharge = self.p_charge, self.p_discharge
        slots: list[PlanSlot] = []
        e = self.e0
        for t in range(self.n):
            delta = energies[t + 1] - energies[t]
            h = self.dt_h[t]
            if delta > _EPS_E:
                power = min(delta / eta_c / h * 1000.0, p_charge)
            elif delta < -_EPS_E:
                power = -min(-delta * eta_d / h * 1000.0, p_discharge)
            else:
                power = 0.0
            if d_cap is not None and power < 0:  # no rounding past the slot's share of the cap
                power = max(power, -d_cap[t] * eta_d / h * 1000.0)
            e_next = e + (power * h / 1000.0 * eta_c if power >= 0
                          else power * h / 1000.0 / eta_d)
            e_next = min(max(e_next, 0.0), cap)
            slots.append(PlanSlot(self.bounds[t], self.bounds[t + 1], power, 100.0 * e / cap,
                                  100.0 * e_next / cap, self.price[t].buy,
                                  self.price[t].sell))
            e = e_next
        return slots


def _sold(slots: Sequence[PlanSlot]) -> float:
    return sum(-s.energy_kwh for s in slots if s.power_w < 0)


def _best_move(nxt: _Pwl, e: float, charge: float, a: float,
               discharge: Sequence[tuple[float, float]]) -> float:
    """The next energy y in [e - sum(discharge), e + charge] minimising slotcost(y - e) +
    nxt(y); among equal costs the smallest move. Discharge tiers: (kWh, value per kWh)."""
    candidates: list[tuple[float, float, float]] = []  # (cost, |move|, y)
    lo, hi = max(e, nxt.lo), min(e + charge, nxt.hi)
    if lo <= hi + _EPS_E:
        hi = max(lo, hi)
        y = min(max(nxt.argmin_with(a, rightmost=False), lo), hi)
        candidates.append((a * (y - e) + nxt.value(y), y - e, y))
    top, earned = e, 0.0  # each tier: y in [top - length, top], linear in y
    for length, b in discharge:
        if length <= 0:
            continue
        lo, hi = max(top - length, nxt.lo), min(top, nxt.hi)
        if lo <= hi + _EPS_E:
            lo = min(lo, hi)
            y = min(max(nxt.argmin_with(b, rightmost=True), lo), hi)
            candidates.append((-earned + b * (y - top) + nxt.value(y), e - y, y))
        earned += b * length
        top -= length
    if not candidates:  # pragma: no cover - e is always inside the feasible range
        raise AssertionError(f"no feasible move from {e} kWh")
    best = min(c[0] for c in candidates)
    tol = 1e-9 * max(1.0, abs(best))
    return min((c for c in candidates if c[0] <= best + tol), key=lambda c: c[1])[2]
