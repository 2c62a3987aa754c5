"""Battery wear in money: cycle and calendar ageing from the generated tables (pure, no numpy).

    model = WearModel.for_chemistry("nmc", capacity_kwh=60, replacement_cost_per_kwh=110)
    cost = model.trajectory_cost(times, socs)          # a session's SOC history
    model.cost_per_kwh(dod=0.3, mean_soc=0.5, crate=0.12)  # what the planner charges a kWh

The tables (`evse/energy/wear_tables/<chemistry>.py`) are derived from NREL's BLAST-Lite cell
models by `python -m tools.weartables`, at a reference battery age (see their headers):

- cycle fade: capacity fraction lost by one full cycle, by depth of discharge, mean SOC,
  C-rate and temperature;
- calendar fade: capacity fraction lost per day at rest, by SOC and temperature.

A SOC history is cut into cycles by rainflow counting (ASTM E1049 three-point method, as the
`rainflow` package and BLAST-Lite do): a half cycle counts 0.5. Every cycle is priced at the
history's C-rate (mean |power| over the time the battery moved), and calendar fade follows
the SOC over time. Money = lost capacity fraction x capacity (kWh) x replacement cost per kWh.

Interpolation is multilinear inside the grids; outside them the nearest grid value holds,
except depth, which is interpolated linearly down to 0 below the smallest tabled depth (no
swing, no cycle fade) and extrapolated along the last segment above the largest.
"""

from __future__ import annotations

import importlib
import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["CHEMISTRIES", "DEFAULT_REPLACEMENT_COST_PER_KWH", "Cycle", "WearCost", "WearModel",
           "rainflow_cycles"]

CHEMISTRIES = ("nmc", "lfp")
# BloombergNEF, "Lithium-ion battery pack price survey" (December 2024): volume-weighted
# average pack price US$115/kWh, about 110 EUR/kWh (docs/config.md).
DEFAULT_REPLACEMENT_COST_PER_KWH = 110.0


@dataclass(frozen=True, slots=True)
class Cycle:
    """One rainflow cycle of a SOC history (fractions 0-1)."""

    depth: float  # SOC range
    mean: float  # SOC in the middle of the range
    count: float  # 1.0 full cycle, 0.5 half cycle
    start: int  # index of the reversal that opens it
    end: int  # index of the reversal that closes it


@dataclass(frozen=True, slots=True)
class WearCost:
    cycle_fade: float  # capacity fraction
    calendar_fade: float
    cycle_cost: float  # currency
    calendar_cost: float
    crate: float  # the C-rate the cycles were priced at
    cycles: tuple[Cycle, ...]

    @property
    def fade(self) -> float:
        return self.cycle_fade + self.calendar_fade

    @property
    def total(self) -> float:
        return self.cycle_cost + self.calendar_cost


def _reversals(values: Sequence[float]) -> list[tuple[int, float]]:
    """The turning points (first and last points included); flat stretches collapse."""
    out: list[tuple[int, float]] = []
    direction = 0
    for i, v in enumerate(values):
        if not out:
            out.append((i, v))
            continue
        d = v - out[-1][1]
        if d == 0:
            if len(out) > 1:
                out[-1] = (i, v)  # a flat stretch: the turning point is its last sample
            continue
        step = 1 if d > 0 else -1
        if len(out) > 1 and step == direction:
            out[-1] = (i, v)  # still going the same way: move the turning point
        else:
            out.append((i, v))
        direction = step
    return out


def rainflow_cycles(values: Sequence[float]) -> Iterator[Cycle]:
    """Rainflow cycles of a series (ASTM E1049 three-point counting)."""
    stack: list[tuple[int, float]] = []
    for point in _reversals(values):
        stack.append(point)
        while len(stack) >= 3:
            x = abs(stack[-1][1] - stack[-2][1])
            y = abs(stack[-2][1] - stack[-3][1])
            if x < y:
                break
            a, b = stack[-3], stack[-2]
            if len(stack) == 3:  # the range holds the start of the series: half a cycle
                yield Cycle(y, (a[1] + b[1]) / 2, 0.5, a[0], b[0])
                stack.pop(0)
            else:
                yield Cycle(y, (a[1] + b[1]) / 2, 1.0, a[0], b[0])
                last = stack.pop()
                stack.pop()
                stack.pop()
                stack.append(last)
    for a, b in zip(stack, stack[1:], strict=False):
        yield Cycle(abs(b[1] - a[1]), (a[1] + b[1]) / 2, 0.5, a[0], b[0])


def _locate(grid: Sequence[float], x: float) -> tuple[int, float]:
    """(i, w): x lies between grid[i] and grid[i+1] at weight w (clamped to the grid)."""
    if len(grid) == 1 or x <= grid[0]:
        return 0, 0.0
    if x >= grid[-1]:
        return len(grid) - 2, 1.0
    i = bisect_right(grid, x) - 1
    return i, (x - grid[i]) / (grid[i + 1] - grid[i])


def _lerp(row: Sequence[Any], i: int, w: float) -> Any:
    return row[i] if w == 0.0 else row[i] * (1 - w) + row[i + 1] * w


@dataclass(frozen=True, slots=True)
class WearModel:
    """Wear of one battery: its chemistry's tables, capacity, replacement cost, temperature."""

    chemistry: str
    capacity_kwh: float
    replacement_cost_per_kwh: float = DEFAULT_REPLACEMENT_COST_PER_KWH
    temperature_c: float = 20.0
    tables: Any = None  # the generated module; filled in by for_chemistry

    @classmethod
    def for_chemistry(cls, chemistry: str, *, capacity_kwh: float,
                      replacement_cost_per_kwh: float = DEFAULT_REPLACEMENT_COST_PER_KWH,
                      temperature_c: float = 20.0) -> WearModel:
        if chemistry not in CHEMISTRIES:
            raise ValueError(f"chemistry must be one of {', '.join(CHEMISTRIES)}, "
                             f"got {chemistry!r}")
        if not (math.isfinite(capacity_kwh) and capacity_kwh > 0):
            raise ValueError(f"capacity_kwh must be > 0, got {capacity_kwh!r}")
        if not (math.isfinite(replacement_cost_per_kwh) and replacement_cost_per_kwh >= 0):
            raise ValueError("replacement_cost_per_kwh must be >= 0, got "
                             f"{replacement_cost_per_kwh!r}")
        if not math.isfinite(temperature_c):
            raise ValueError(f"temperature_c must be finite, got {temperature_c!r}")
        return cls(chemistry, float(capacity_kwh), float(replacement_cost_per_kwh),
                   float(temperature_c), _tables(chemistry))

    @property
    def money_per_fade(self) -> float:
        """Currency per unit of capacity fraction lost."""
        return self.capacity_kwh * self.replacement_cost_per_kwh

    # -- the tables ----------------------------------------------------------------------

    def cycle_fade(self, dod: float, mean_soc: float, crate: float) -> float:
        """Capacity fraction lost by one full cycle (fractions: dod, mean_soc in 0-1)."""
        t: ModuleType = self.tables
        if dod <= 0:
            return 0.0
        ti, tw = _locate(t.TEMPERATURES_C, self.temperature_c)
        ci, cw = _locate(t.CRATES, abs(crate))
        mi, mw = _locate(t.MEANS, mean_soc)

        def at_depth(d: int) -> float:
            value = 0.0
            for a, wa in ((ti, 1 - tw), (ti + 1, tw)):
                if wa == 0:
                    continue
                for b, wb in ((ci, 1 - cw), (ci + 1, cw)):
                    if wb == 0:
                        continue
                    for c, wc in ((mi, 1 - mw), (mi + 1, mw)):
                        if wc == 0:
                            continue
                        value += wa * wb * wc * t.CYCLE[a][b][c][d]
            return value

        dods: tuple[float, ...] = t.DODS
        if dod <= dods[0]:
            return at_depth(0) * dod / dods[0]
        i = min(bisect_right(dods, dod) - 1, len(dods) - 2)
        w = (dod - dods[i]) / (dods[i + 1] - dods[i])  # > 1 above the grid: extrapolate
        lo, hi = at_depth(i), at_depth(i + 1)
        return max(0.0, lo + (hi - lo) * w)

    def calendar_fade_per_day(self, soc: float) -> float:
        t: ModuleType = self.tables
        ti, tw = _locate(t.TEMPERATURES_C, self.temperature_c)
        si, sw = _locate(t.CAL_SOCS, soc)
        row = _lerp(t.CALENDAR, ti, tw) if tw == 0 else [
            a * (1 - tw) + b * tw for a, b in zip(t.CALENDAR[ti], t.CALENDAR[ti + 1],
                                                  strict=True)]
        return float(_lerp(row, si, sw))

    # -- money -----------------------------------------------------------------------------

    def cycle_cost(self, dod: float, mean_soc: float, crate: float) -> float:
        return self.cycle_fade(dod, mean_soc, crate) * self.money_per_fade

    def cost_per_kwh(self, dod: float, mean_soc: float, crate: float) -> float:
        """Wear per kWh drawn from the battery, for cycles of depth `dod` (a full cycle of
        depth d draws d x capacity)."""
        if dod <= 0:
            dod = self.tables.DODS[0]  # the marginal cost of a tiny swing
        return self.cycle_cost(dod, mean_soc, crate) / (dod * self.capacity_kwh)

    def trajectory_cost(self, times: Sequence[float], socs: Sequence[float], *,
                        crate: float | None = None) -> WearCost:
        """The wear of a SOC history: `times` in seconds, `socs` in percent (0-100).
        `crate`: the C-rate to price the cycles at; None: from the history itself."""
        if len(times) != len(socs):
            raise ValueError("times and socs must have the same length")
        fr = [min(1.0, max(0.0, s / 100.0)) for s in socs]
        if crate is None:
            crate = _history_crate(times, fr)
        cycles = tuple(c for c in rainflow_cycles(fr) if c.depth > 0)
        cyc = sum(c.count * self.cycle_fade(c.depth, c.mean, crate) for c in cycles)
        cal = 0.0
        for i in range(len(times) - 1):
            days = (times[i + 1] - times[i]) / 86400.0
            if days > 0:
                cal += days * self.calendar_fade_per_day((fr[i] + fr[i + 1]) / 2)
        k = self.money_per_fade
        return WearCost(cyc, cal, cyc * k, cal * k, crate, cycles)


def _history_crate(times: Sequence[float], fr: Sequence[float]) -> float:
    """Mean C-rate over the time the SOC moved (1/h), as BLAST-Lite weighs it."""
    moved = hours = 0.0
    for i in range(len(times) - 1):
        dt_h = (times[i + 1] - times[i]) / 3600.0
        d = abs(fr[i + 1] - fr[i])
        if dt_h > 0 and d > 0:
            moved += d
            hours += dt_h
    return moved / hours if hours > 0 else 0.0


_CACHE: dict[str, ModuleType] = {}


def _tables(chemistry: str) -> ModuleType:
    module = _CACHE.get(chemistry)
    if module is None:
        module = _CACHE[chemistry] = importlib.import_module(
            f"evse.energy.wear_tables.{chemistry}")
    return module
