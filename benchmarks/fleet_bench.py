"""Fleet simulation: CPU and memory per station, and how closely the fleet follows.

    python benchmarks/fleet_bench.py                    # 100 stations, 2 processes
    python benchmarks/fleet_bench.py --sizes 25,100 --processes 1,2,4

Each run is `evse fleet-sim N` (a real mosquitto, N chargers with their simulated cars in K
worker processes, the example aggregator asking for 200 kW delivered then 150 kW absorbed):
it prints one table row per run. CPU is the workers' user + system time over the run's wall
time (a share of one core per station); memory is the workers' peak RSS summed; the lag is
the worst event-loop delay in a worker (above the 0.5 s charge-loop sequence timeout of
ISO 15118-20 the chargers end their sessions). Tracking: share of the 1 s intervals after
the first minute within 5 % of the request, and the mean error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(n: int, k: int, speedup: float, extra: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fleet.json"
        subprocess.run([sys.executable, "-m", "evse", "fleet-sim", str(n), "--processes",
                        str(k), "--speedup", str(speedup), "--json", str(out), *extra],
                       check=False, stdout=subprocess.DEVNULL,
                       env=os.environ | {"PYTHONWARNINGS": "ignore"})
        return json.loads(out.read_text()) if out.exists() else {}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100", help="station counts, comma separated")
    p.add_argument("--processes", default="2", help="worker process counts, comma separated")
    p.add_argument("--speedup", type=float, default=20.0)
    ns, extra = p.parse_known_args()
    print(f"{'stations':>8} {'procs':>5} {'CPU %core/st':>12} {'RSS MiB/st':>10} "
          f"{'broker CPU s':>12} {'sessions':>8} {'failed':>6} {'max lag ms':>10} "
          f"{'within 5%':>9} {'mean err':>8}", flush=True)
    for n in (int(x) for x in ns.sizes.split(",")):
        for k in (int(x) for x in ns.processes.split(",")):
            r = run(n, k, ns.speedup, extra)
            f = r.get("fleet", {})
            t = r.get("tracking", {})
            if not f:
                print(f"{n:>8} {k:>5}  (run failed)", flush=True)
                continue

            def pct(x: object) -> str:
                return "n/a" if not isinstance(x, int | float) else f"{100 * x:.1f} %"

            print(f"{n:>8} {k:>5} {100 * f['cpu_share_per_station']:>11.2f}% "
                  f"{f['rss_mib_per_station']:>10.2f} {f['broker_cpu_s'] or 0:>12.1f} "
                  f"{f['sessions']:>8} {f['failed_sessions']:>6} "
                  f"{1000 * (f.get('max_loop_lag_s') or 0):>10.0f} "
                  f"{pct(t.get('share_within_5_percent')):>9} {pct(t.get('mean_error')):>8}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
