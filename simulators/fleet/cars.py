"""The fleet plan: which car visits which station, when, with what battery (seeded).

Time: the run lasts `duration_s` real seconds; the sim HAL runs `speedup` times faster, so a
car that stays `stay_s` real seconds is plugged in for `stay_s * speedup` simulated seconds.
The car tells the charger its departure in real seconds (the charger's clock), so the
`departure_ts` in the MQTT state is the wall-clock time it really leaves.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHEMISTRIES = ("NMC", "LFP")


@dataclass(frozen=True, slots=True)
class Visit:
    """One car plugged in at one station."""

    evcc_id: str
    owner: str
    chemistry: str
    capacity_kwh: float
    soc: float  # percent at arrival
    target_soc: float  # percent, wanted at departure
    min_soc: float  # percent; the car refuses to discharge below it
    arrive_s: float  # real seconds after the start of the run
    stay_s: float  # real seconds plugged in


@dataclass(frozen=True, slots=True)
class StationPlan:
    station_id: str
    visits: tuple[Visit, ...] = field(default_factory=tuple)


def make_fleet(n: int, *, seed: int = 1, duration_s: float = 300.0, speedup: float = 10.0,
               max_power_kw: float = 11.0, leaving_share: float = 0.25) -> list[StationPlan]:
    """`n` stations with one or more car visits each over `duration_s` real seconds.

    A depot in the evening: most cars plug in within the first seconds and stay for hours
    (simulated: 2-14 h, so most stay past the end of the run); `leaving_share` of the
    stations see their car leave during the run (its departure need must be met by then)
    and another car arrive later, so the fleet changes while it is dispatched. Initial SOCs
    are drawn so that the departure target needs at most 60 % of the energy the station
    could put in before departure: the slack is the fleet's flexibility."""
    rng = random.Random(seed)
    plans = []
    for i in range(n):
        visits: list[Visit] = []
        t = rng.uniform(0.0, min(15.0, 0.05 * duration_s))
        k = 0
        leaving = rng.random() < leaving_share
        while t < duration_s * 0.8:
            if leaving and t < 0.5 * duration_s:  # leaves during the run
                stay = rng.uniform(0.3, 0.7) * duration_s
            else:
                stay = rng.uniform(2.0, 14.0) * 3600.0 / speedup
            capacity = rng.choice((40.0, 52.0, 60.0, 77.0, 100.0))
            target = rng.choice((70.0, 80.0, 90.0))
            hours = stay * speedup / 3600.0
            reachable = 0.6 * max_power_kw * hours / capacity * 100.0  # percent points
            soc = max(rng.uniform(30.0, 75.0), target - reachable)
            visits.append(Visit(
                evcc_id=f"WFLEET{i:04d}{k:02d}", owner=f"owner-{i:03d}-{k}",
                chemistry=rng.choice(CHEMISTRIES), capacity_kwh=capacity,
                soc=round(min(soc, 95.0), 1), target_soc=target,
                min_soc=rng.choice((20.0, 25.0, 30.0)), arrive_s=round(t, 2),
                stay_s=round(stay, 2)))
            t += stay + rng.uniform(3.0, max(4.0, 0.1 * duration_s))
            k += 1
        plans.append(StationPlan(f"FLEET-{i:04d}", tuple(visits)))
    return plans


def manifest(plans: list[StationPlan]) -> dict[str, Any]:
    """What the aggregator knows about its customers' cars, by EVCCID (owner contracts):
    owner and chemistry; never the station internals."""
    return {"cars": {v.evcc_id: {"owner": v.owner, "chemistry": v.chemistry,
                                 "capacity_kwh": v.capacity_kwh}
                     for p in plans for v in p.visits}}


def dump_plans(plans: list[StationPlan], path: Path) -> None:
    path.write_text(json.dumps([{"station_id": p.station_id,
                                 "visits": [asdict(v) for v in p.visits]} for p in plans]))


def load_plans(path: Path) -> list[StationPlan]:
    return [StationPlan(d["station_id"], tuple(Visit(**v) for v in d["visits"]))
            for d in json.loads(path.read_text())]
