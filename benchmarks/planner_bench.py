"""Planner benchmark: `optimizer.plan` time over 24 h and 48 h of 15-minute slots, with the
flat degradation cost (the old model) and with the wear tables (cycle depth iterations, C-rate
tiers, rainflow-counted money), with and without a daily discharge cap. Prints medians.

    python benchmarks/planner_bench.py            # full run (about 20 s)
    python benchmarks/planner_bench.py --quick    # smoke run

Prices: the bundled Belgian day-ahead days (evse.energy.data.be_2024) with the default retail
adders, repeated to cover the horizon; 60 kWh battery, 11 kW both ways, arrival at 18:00.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from evse.energy.data.be_2024 import DAYS
from evse.energy.optimizer import PowerLimits, plan
from evse.energy.tariff import RetailTariff
from evse.energy.wear import WearModel

H = 3600.0


def _curve(hours: int) -> object:
    prices = [p for d in ("2024-06-14", "2024-06-15", "2024-03-20", "2024-03-21")
              for p in DAYS[d]]
    prices = (prices * (hours // len(prices) + 2))[: hours + 24]
    return RetailTariff().curve(0.0, H, prices)


def _time(fn: object, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, min(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeat = 5 if args.quick else 40
    rows = []
    for hours in (24, 48):
        curve = _curve(hours)
        lim = PowerLimits(11_000.0, 11_000.0)
        base = dict(now=18 * H, departure=(18 + hours) * H, soc=50.0, target_soc=80.0,
                    capacity_kwh=60.0, ev_limits=lim, reserve_soc=20.0,
                    charge_efficiency=0.95, discharge_efficiency=0.95, slot_s=900.0)
        cases = {
            "flat 0.05/kWh (old model)": dict(degradation_cost=0.05),
            "wear tables NMC": dict(wear=WearModel.for_chemistry("nmc", capacity_kwh=60.0)),
            "wear tables LFP": dict(wear=WearModel.for_chemistry("lfp", capacity_kwh=60.0)),
            "wear NMC + cap 10 kWh/day": dict(
                wear=WearModel.for_chemistry("nmc", capacity_kwh=60.0),
                max_discharge_kwh=10.0 * hours / 24),
        }
        for name, extra in cases.items():
            kw = {**base, **extra}
            p = plan(curve, **kw)  # type: ignore[arg-type]
            med, best = _time(lambda kw=kw, c=curve: plan(c, **kw), repeat)  # type: ignore[misc]
            rows.append((f"{hours} h", len(p.slots), name, med, best,
                         p.money.energy_sold_kwh, p.money.net))
    print(f"planner benchmark - Python {platform.python_version()}, {platform.machine()}, "
          f"{repeat} runs each")
    print(f"{'horizon':>7} {'slots':>5}  {'model':<28} {'median ms':>9} {'min ms':>7} "
          f"{'sold kWh':>8} {'net EUR':>8}")
    for h, n, name, med, best, sold, net in rows:
        print(f"{h:>7} {n:>5}  {name:<28} {med:9.2f} {best:7.2f} {sold:8.2f} {net:8.2f}")


if __name__ == "__main__":
    main()
