"""What smart charging and V2G gained the owner against charging on arrival (pure).

The baseline is the same energy charged the simple way: the battery ends the session with the
same SOC, charged at full power from arrival (no waiting, no discharge). Both sides pay their
energy and their wear with the same model (evse.energy.wear: cycles rainflow-counted, plus
calendar ageing over the session):

    actual    = cost bought - revenue sold + wear(actual SOC history)
    baseline  = cost of (SOC end - SOC start) x capacity / charge_efficiency bought from
                arrival at `max_charge_w`  + wear(baseline SOC history)
    net benefit = baseline - actual        (> 0: the owner gained)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evse.energy.wear import WearModel

__all__ = ["SessionValue", "baseline_charge", "session_value"]

PriceLookup = Callable[[float], tuple[float, float]]  # Unix time -> (buy, sell) per kWh


@dataclass(frozen=True, slots=True)
class SessionValue:
    currency: str
    energy_bought_kwh: float
    energy_sold_kwh: float
    cost_bought: float
    revenue_sold: float
    wear_cost: float
    baseline_energy_kwh: float
    baseline_cost: float
    baseline_wear_cost: float
    baseline_profile: tuple[tuple[float, float], ...] = ()  # (t, power W) steps

    @property
    def net_cost(self) -> float:
        return self.cost_bought - self.revenue_sold + self.wear_cost

    @property
    def baseline_net_cost(self) -> float:
        return self.baseline_cost + self.baseline_wear_cost

    @property
    def net_benefit(self) -> float:
        return self.baseline_net_cost - self.net_cost

    def to_dict(self) -> dict[str, Any]:
        return {"currency": self.currency, "energy_bought_kwh": self.energy_bought_kwh,
                "energy_sold_kwh": self.energy_sold_kwh, "cost_bought": self.cost_bought,
                "revenue_sold": self.revenue_sold, "wear_cost": self.wear_cost,
                "net_cost": self.net_cost, "baseline_energy_kwh": self.baseline_energy_kwh,
                "baseline_cost": self.baseline_cost,
                "baseline_wear_cost": self.baseline_wear_cost,
                "baseline_net_cost": self.baseline_net_cost, "net_benefit": self.net_benefit,
                "baseline_profile": [list(p) for p in self.baseline_profile]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionValue:
        return cls(d["currency"], d["energy_bought_kwh"], d["energy_sold_kwh"],
                   d["cost_bought"], d["revenue_sold"], d["wear_cost"],
                   d["baseline_energy_kwh"], d["baseline_cost"], d["baseline_wear_cost"],
                   tuple((float(t), float(p)) for t, p in d.get("baseline_profile", ())))


def baseline_charge(prices: PriceLookup, *, start: float, end: float, soc_start: float,
                    soc_end: float, capacity_kwh: float, max_charge_w: float,
                    charge_efficiency: float = 1.0, step_s: float = 60.0
                    ) -> tuple[float, float, list[float], list[float], list[tuple[float, float]]]:
    """(energy kWh at the meter, cost, times, SOCs %, power steps) of charging from
    `soc_start` to `soc_end` at full power from `start`; the SOC then rests until `end`."""
    need = max(0.0, (soc_end - soc_start) / 100.0 * capacity_kwh)  # into the cells
    meter = need / charge_efficiency
    times, socs = [start], [soc_start]
    profile: list[tuple[float, float]] = []
    cost = 0.0
    if meter > 0 and max_charge_w > 0:
        duration = meter / (max_charge_w / 1000.0) * 3600.0
        profile = [(start, max_charge_w), (start + duration, 0.0)]
        t = start
        while t < start + duration - 1e-9:
            t_next = min(t + step_s, start + duration)
            kwh = max_charge_w / 1000.0 * (t_next - t) / 3600.0
            cost += prices((t + t_next) / 2)[0] * kwh
            times.append(t_next)
            socs.append(socs[-1] + kwh * charge_efficiency / capacity_kwh * 100.0)
            t = t_next
    if end > times[-1]:
        times.append(end)
        socs.append(socs[-1])
    return meter, cost, times, socs, profile


def session_value(*, currency: str, prices: PriceLookup, samples: Sequence[tuple[float, float]],
                  soc_log: Sequence[tuple[float, float]], start: float, end: float,
                  energy_in_kwh: float, energy_out_kwh: float, wear: WearModel,
                  max_charge_w: float, charge_efficiency: float = 1.0,
                  crate: float | None = None) -> SessionValue:
    """`samples`: (t, power W at the meter, negative = discharge), each holding until the
    next (the last until `end`); `soc_log`: (t, SOC %); `crate`: the C-rate to price the
    session's cycles at (None: from the SOC log). Energy is priced per sample interval
    and scaled to the metered totals (as evse.energy.accounting does)."""
    pts = sorted(samples)
    w_in = w_out = cost_w = rev_w = 0.0
    for i, (t, p) in enumerate(pts):
        t_next = pts[i + 1][0] if i + 1 < len(pts) else max(end, t)
        wh = p * (t_next - t) / 3600.0
        buy, sell = prices((t + t_next) / 2)
        if wh > 0:
            w_in += wh
            cost_w += buy * wh
        elif wh < 0:
            w_out -= wh
            rev_w -= sell * wh
    # without samples in a direction (a session too short to sample): the average price
    n = 24
    avg = [prices(start + (end - start) * (i + 0.5) / n) for i in range(n)]
    buy_price = cost_w / w_in if w_in > 0 else sum(p[0] for p in avg) / n
    sell_price = rev_w / w_out if w_out > 0 else sum(p[1] for p in avg) / n
    cost = buy_price * max(0.0, energy_in_kwh)
    revenue = sell_price * max(0.0, energy_out_kwh)
    log = sorted(soc_log)
    if log:
        actual = wear.trajectory_cost([t for t, _ in log], [s for _, s in log],
                                      crate=crate).total
        soc0, soc1 = log[0][1], log[-1][1]
    else:
        actual, soc0, soc1 = 0.0, 0.0, 0.0
    energy, b_cost, times, socs, profile = baseline_charge(
        prices, start=start, end=end, soc_start=soc0, soc_end=soc1,
        capacity_kwh=wear.capacity_kwh, max_charge_w=max_charge_w,
        charge_efficiency=charge_efficiency)
    b_crate = max_charge_w / 1000.0 / wear.capacity_kwh
    b_wear = wear.trajectory_cost(times, socs, crate=b_crate).total if len(times) > 1 else 0.0
    return SessionValue(currency, energy_in_kwh, energy_out_kwh, cost, revenue, actual,
                        energy, b_cost, b_wear, tuple(profile))
