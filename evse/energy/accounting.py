"""What a finished session cost and earned: metered energy priced with the price curve (pure).

The meter gives the totals (energy to the EV, energy from the EV); the session's power samples
say *when* the energy flowed. Each direction's total is spread over the sampling intervals in
proportion to the energy the samples show in that direction, and each part is priced at its
interval's buy (charging) or sell (discharging) price, so the money follows the meter exactly
while the timing follows the samples. Without samples in a direction (a session too short to
sample) its energy is priced at the average price over the session.

    cost bought   = sum(buy  * energy to the EV)
    revenue sold  = sum(sell * energy from the EV)
    degradation   = degradation_cost * energy from the EV / discharge_efficiency
                    (per kWh drawn from the battery, as the optimizer counts it)
    net           = cost bought - revenue sold + degradation
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from evse.energy.optimizer import MoneySummary
from evse.energy.prices import PriceCurve

__all__ = ["PriceLookup", "curve_lookup", "session_money"]

PriceLookup = Callable[[float], tuple[float, float]]  # Unix time -> (buy, sell) per kWh


def curve_lookup(curve: PriceCurve) -> PriceLookup:
    return lambda t: (curve.buy_at(t), curve.sell_at(t))


def _average(lookup: PriceLookup, t0: float, t1: float, n: int = 24) -> tuple[float, float]:
    if not t1 > t0:
        return lookup(t0)
    points = [lookup(t0 + (t1 - t0) * (i + 0.5) / n) for i in range(n)]
    return (sum(p[0] for p in points) / n, sum(p[1] for p in points) / n)


def session_money(samples: Sequence[tuple[float, float]], *, energy_in_kwh: float,
                  energy_out_kwh: float, prices: PriceLookup, currency: str,
                  degradation_cost: float = 0.0, discharge_efficiency: float = 1.0,
                  started_at: float | None = None, ended_at: float | None = None
                  ) -> MoneySummary:
    """`samples`: (Unix time, power W at the meter, negative = discharge), in time order;
    each power holds until the next sample (the last one until `ended_at`)."""
    if not 0 < discharge_efficiency <= 1:
        raise ValueError(f"discharge_efficiency must be in (0, 1], got {discharge_efficiency}")
    if degradation_cost < 0:
        raise ValueError(f"degradation_cost must be >= 0, got {degradation_cost}")
    pts = sorted(samples)
    t_start = started_at if started_at is not None else (pts[0][0] if pts else 0.0)
    t_end = ended_at if ended_at is not None else (pts[-1][0] if pts else t_start)
    w_in = w_out = cost_w = revenue_w = 0.0
    for i, (t, power) in enumerate(pts):
        t_next = pts[i + 1][0] if i + 1 < len(pts) else max(t_end, t)
        wh = power * (t_next - t) / 3600.0
        if wh == 0:
            continue
        buy, sell = prices((t + t_next) / 2.0)
        if wh > 0:
            w_in += wh
            cost_w += buy * wh
        else:
            w_out -= wh
            revenue_w -= sell * wh
    avg_buy, avg_sell = _average(prices, t_start, t_end)
    buy_price = cost_w / w_in if w_in > 0 else avg_buy
    sell_price = revenue_w / w_out if w_out > 0 else avg_sell
    e_in, e_out = max(0.0, energy_in_kwh), max(0.0, energy_out_kwh)
    return MoneySummary(currency, e_in, e_out, buy_price * e_in, sell_price * e_out,
                        degradation_cost * e_out / discharge_efficiency)
