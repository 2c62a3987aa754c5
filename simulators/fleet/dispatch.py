"""Split a fleet power request among the cars: pure functions, no I/O, no clock.

Sign convention (DESIGN 5): + = the fleet absorbs (cars charge), - = it delivers (cars
discharge). Time in *simulated* hours (the energy the cars move); kW, kWh, percent.

Each car gets bounds for the next dispatch interval `dt_h`:

- `hi`: its charge headroom (the station's limit, the EV's own limit), and no more than
  fills the battery in one interval;
- `lo`: its discharge headroom, and no deeper than its minimum SOC in one interval;
- the departure floor: whatever it does now, the energy still needed before departure
  must stay reachable at `margin` x its charge power in the time left after this interval
  (so `lo` rises to that floor, up to full charge power when the time is short);
- `pref`: the even rate that reaches the target exactly at departure (what it would get
  with nobody asking anything of the fleet);
- with `lead_h`, the car is meant to be done that long before departure, and in that last
  stretch takes only what it still needs: its leaving is then no step for the fleet.

The request is met by moving every car from `pref` by `lambda x weight` clipped to its
bounds, with the one `lambda` (found by bisection) that makes the sum equal the request, or
the closest bound when the fleet cannot. Upwards a car's weight is its room (hi - pref);
downwards its room (pref - lo) divided by (1 + its marginal wear cost over the fleet's
mean): a car whose discharged kWh wear more gives less. `marginal_wear` prices a discharged
kWh with the planner's degradation model (evse.energy.wear) at a typical V2G swing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evse.energy.wear import CHEMISTRIES, WearModel

# Relative wear per discharged kWh by chemistry, for a flat cost override only: LFP cells are
# commonly rated for more full cycles than NMC ones. Unknown: 1.
CHEMISTRY_WEAR_FACTOR: Mapping[str, float] = {"NMC": 1.0, "LFP": 0.5}
# The typical V2G swing the aggregator prices a discharged kWh at: a 20 % cycle around 60 %
# SOC at about 0.2 C (11 kW from a 55 kWh pack).
TYPICAL_DOD, TYPICAL_MEAN_SOC, TYPICAL_CRATE = 0.2, 0.6, 0.2


def marginal_wear(chemistry: str | None, cost_per_kwh: float | None = None) -> float:
    """Money per kWh discharged from this car. Without a flat `cost_per_kwh`: the
    usage-dependent model the planner and the reports use (evse.energy.wear, BLAST-Lite
    tables) at a typical V2G swing (unknown chemistry: NMC); with one: that cost times the
    chemistry's factor."""
    if cost_per_kwh is not None:
        return cost_per_kwh * CHEMISTRY_WEAR_FACTOR.get((chemistry or "").upper(), 1.0)
    name = (chemistry or "nmc").lower()
    model = WearModel.for_chemistry(name if name in CHEMISTRIES else "nmc", capacity_kwh=55.0)
    return model.cost_per_kwh(TYPICAL_DOD, TYPICAL_MEAN_SOC, TYPICAL_CRATE)


@dataclass(frozen=True, slots=True)
class CarView:
    """What the aggregator knows of one plugged-in car (from the MQTT state + contracts)."""

    key: str  # "<station>/<connector>"
    soc: float  # percent
    capacity_kwh: float
    target_soc: float  # percent at departure
    minimum_soc: float  # percent; no discharge below
    time_left_h: float  # until departure (simulated hours)
    max_charge_kw: float  # station limit and EV limit, the smaller
    max_discharge_kw: float
    wear_per_kwh: float = 0.0
    energy_needed_kwh: float | None = None  # None: from the SOCs and the capacity

    @property
    def need_kwh(self) -> float:
        if self.energy_needed_kwh is not None:
            return max(0.0, self.energy_needed_kwh)
        return max(0.0, (self.target_soc - self.soc) / 100.0 * self.capacity_kwh)


@dataclass(frozen=True, slots=True)
class Bounds:
    lo: float
    hi: float
    pref: float


def bounds(car: CarView, dt_h: float, *, margin: float = 0.85, lead_h: float = 0.0) -> Bounds:
    """The car's power range for the next `dt_h` hours and its preferred power (kW).

    `lead_h`: the car should be done that long before its departure; in that last stretch
    it only takes what it still needs, so that its leaving is no step for the fleet."""
    if dt_h <= 0:
        raise ValueError("dt_h must be > 0")
    to_full = max(0.0, (100.0 - car.soc) / 100.0 * car.capacity_kwh)
    above_min = max(0.0, (car.soc - car.minimum_soc) / 100.0 * car.capacity_kwh)
    hi = max(0.0, min(car.max_charge_kw, to_full / dt_h))
    lo = -max(0.0, min(car.max_discharge_kw, above_min / dt_h))
    need = car.need_kwh
    left = car.time_left_h - lead_h
    if left <= 0:  # winding down before departure
        p = min(hi, need / dt_h)
        return Bounds(p, p, p)
    after = max(0.0, left - dt_h)
    floor = (need - margin * hi * after) / dt_h  # what must go in now to stay feasible
    lo = max(lo, min(floor, hi))
    pref = need / left
    return Bounds(lo, hi, min(hi, max(lo, pref)))


def _bounds_all(cars: Sequence[CarView], dt_h: float, margin: float, lead_h: float
                ) -> dict[str, Bounds]:
    return {c.key: bounds(c, dt_h, margin=margin, lead_h=lead_h) for c in cars}


def split(cars: Sequence[CarView], request_kw: float, dt_h: float, *,
          margin: float = 0.85, lead_h: float = 0.0) -> dict[str, float]:
    """Power per car (kW, signed) whose sum is `request_kw`, or as close as the fleet's
    bounds allow; see the module docstring."""
    if not cars:
        return {}
    b = _bounds_all(cars, dt_h, margin, lead_h)
    lo_sum = sum(x.lo for x in b.values())
    hi_sum = sum(x.hi for x in b.values())
    target = min(hi_sum, max(lo_sum, request_kw))
    mean_wear = sum(c.wear_per_kwh for c in cars) / len(cars)
    factor = {c.key: 1.0 + (c.wear_per_kwh / mean_wear if mean_wear > 0 else 0.0) for c in cars}
    up = {c.key: b[c.key].hi - b[c.key].pref for c in cars}
    down = {c.key: (b[c.key].pref - b[c.key].lo) / factor[c.key] for c in cars}

    def power(lam: float) -> dict[str, float]:
        out = {}
        for key, x in b.items():
            w = up[key] if lam >= 0 else down[key]
            out[key] = min(x.hi, max(x.lo, x.pref + lam * w))
        return out

    # sum(power(lam)) is monotone in lam; lam = 1 puts every car at hi, lam = -max(factor)
    # every car at lo
    big = max(factor.values()) + 1.0
    lo_lam, hi_lam = -big, big
    for _ in range(100):
        mid = 0.5 * (lo_lam + hi_lam)
        if sum(power(mid).values()) < target:
            lo_lam = mid
        else:
            hi_lam = mid
        if hi_lam - lo_lam < 1e-12 * big:
            break
    result = power(0.5 * (lo_lam + hi_lam))
    return {k: (0.0 if math.isclose(v, 0.0, abs_tol=1e-9) else v) for k, v in result.items()}


def fleet_range(cars: Sequence[CarView], dt_h: float, *, margin: float = 0.85,
                lead_h: float = 0.0) -> tuple[float, float]:
    """(lowest, highest) total power the fleet can follow now (kW)."""
    bs = _bounds_all(cars, dt_h, margin, lead_h).values()
    return sum(x.lo for x in bs), sum(x.hi for x in bs)
