"""How a wear table is derived from a BLAST-Lite cell model.

BLAST-Lite's models integrate capacity fade as power laws of time (calendar) and of
equivalent full cycles (cycling), with rates that depend on the stressors of each stretch of
SOC history: temperature, average SOC (or anode potential), depth of discharge, C-rate. The
fade caused by *one more* cycle therefore depends on how old the battery already is. The
tables give that marginal fade for a battery at a reference age (`REFERENCE`: a few years of
ordinary driving), which makes the cost of a cycle a fixed number the planner can use:

- cycle[T][crate][mean][dod]: capacity fraction lost by one full cycle (down by `dod` and up
  again, centred on the SOC `mean`) at C-rate `crate` and temperature T, minus the calendar
  fade of the same time spent at the SOC `mean` (so calendar fade is never counted twice);
- calendar[T][soc]: capacity fraction lost per day resting at `soc` and T.

Each value comes from the library's own `update_battery_state` (rainflow counting, stressor
extraction, rate laws and state update are all BLAST-Lite's) on a deep copy of a model aged
to the reference. A cycle whose window would leave [0, 1] is centred as close to `mean` as
the window allows (the table stays rectangular).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Grids: small on purpose (a few kB per chemistry); the runtime interpolates linearly.
TEMPERATURES_C = (5.0, 15.0, 25.0, 35.0)
CRATES = (0.1, 0.25, 0.5, 1.0)
MEANS = (0.3, 0.5, 0.7)
DODS = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8)
CAL_SOCS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


@dataclass(frozen=True, slots=True)
class Reference:
    """The battery age the marginal costs are taken at."""

    years: float = 3.0
    efc_per_year: float = 50.0  # ~15,000 km a year on a 60 kWh pack
    dod: float = 0.5
    mean_soc: float = 0.55
    temperature_c: float = 20.0


REFERENCE = Reference()

# chemistry -> (BLAST-Lite class name, why this model)
MODELS = {
    "nmc": ("Nmc622_Gr_DENSO50Ah_Battery",
            "NMC622-graphite 50 Ah (DENSO): fade depends on DoD, C-rate, temperature, SOC"),
    "lfp": ("Lfp_Gr_250AhPrismatic",
            "LFP-graphite 250 Ah prismatic: fade depends on DoD, C-rate, temperature, SOC"),
}


def model_class(name: str) -> Any:
    import blast.models

    return getattr(blast.models, name)


def aged(cls: Any, ref: Reference = REFERENCE) -> Any:
    """A model after `ref.years` of zig-zag cycling (depth `ref.dod` about `ref.mean_soc`)."""
    model = cls()
    cycles = max(1, round(ref.years * ref.efc_per_year / ref.dod))
    n = 2 * cycles + 1
    hi, lo = ref.mean_soc + ref.dod / 2, ref.mean_soc - ref.dod / 2
    soc = np.where(np.arange(n) % 2 == 0, hi, lo).astype(float)
    t = np.linspace(0.0, ref.years * 365.0 * 86400.0, n)
    model.update_battery_state(t, soc, np.full(n, ref.temperature_c))
    return model


def _fade(model: Any, t: np.ndarray, soc: np.ndarray, temperature_c: float) -> float:
    m = copy.deepcopy(model)
    q0 = float(m.outputs["q"][-1])
    m.update_battery_state(t, soc, np.full(len(t), temperature_c))
    return q0 - float(m.outputs["q"][-1])


def window(mean: float, dod: float) -> tuple[float, float]:
    lo = min(max(mean - dod / 2, 0.0), 1.0 - dod)
    return lo, lo + dod


def cycle_fade(model: Any, temperature_c: float, crate: float, mean: float,
               dod: float) -> float:
    """Capacity fraction lost by one full cycle, calendar fade of the same time removed."""
    lo, hi = window(mean, dod)
    hours = 2.0 * dod / crate
    k = 8  # points per half cycle (constant current: SOC linear in time)
    down = np.linspace(hi, lo, k + 1)
    soc = np.concatenate([down, down[-2::-1]])
    t = np.linspace(0.0, hours * 3600.0, len(soc))
    total = _fade(model, t, soc, temperature_c)
    rest = _fade(model, np.array([0.0, hours * 3600.0]), np.array([(lo + hi) / 2] * 2),
                 temperature_c)
    return max(0.0, total - rest)


def calendar_fade(model: Any, temperature_c: float, soc: float) -> float:
    """Capacity fraction lost per day at rest."""
    return _fade(model, np.array([0.0, 86400.0]), np.array([soc, soc]), temperature_c)


def derive(chemistry: str) -> dict[str, Any]:
    cls_name, why = MODELS[chemistry]
    model = aged(model_class(cls_name))
    cycle = [[[[cycle_fade(model, t, c, m, d) for d in DODS] for m in MEANS] for c in CRATES]
             for t in TEMPERATURES_C]
    calendar = [[calendar_fade(model, t, s) for s in CAL_SOCS] for t in TEMPERATURES_C]
    for row in calendar:
        if not all(math.isfinite(x) and x >= 0 for x in row):
            raise ValueError(f"{chemistry}: calendar fade out of range: {row}")
    return {"chemistry": chemistry, "model": cls_name, "model_note": why,
            "reference_soh": float(model.outputs["q"][-1]),
            "temperatures_c": TEMPERATURES_C, "crates": CRATES, "means": MEANS, "dods": DODS,
            "cal_socs": CAL_SOCS, "cycle": cycle, "calendar": calendar}
