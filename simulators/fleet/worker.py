"""A fleet worker process: runs its share of the stations in one asyncio loop.

    python -m simulators.fleet.worker PLANS.json OPTIONS.json STATS.json

SIGTERM / SIGINT end the run (the cars stop, the chargers close, the bridges say
`offline`). At the end it writes its CPU time and peak memory to STATS.json.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

from simulators.fleet.cars import load_plans
from simulators.fleet.station import StationOptions, run_station


async def run_worker(plans_file: Path, options: StationOptions, t0: float) -> dict[str, object]:
    plans = load_plans(plans_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    results = await asyncio.gather(*(run_station(p, options, t0=t0, stop=stop) for p in plans),
                                   return_exceptions=True)
    sessions = failed = errors = 0
    reasons: dict[str, int] = {}
    for r in results:
        if isinstance(r, BaseException):
            errors += 1
            logging.getLogger(__name__).error("station failed: %r", r)
            continue
        sessions += r.sessions
        failed += r.failed
        for k, v in r.reasons.items():
            reasons[k] = reasons.get(k, 0) + v
    return {"stations": len(plans), "sessions": sessions, "failed": failed,
            "station_errors": errors, "reasons": reasons}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    plans_file, options_file, stats_file = (Path(a) for a in args[:3])
    spec = json.loads(options_file.read_text())
    t0 = float(spec.pop("t0"))
    logging.basicConfig(level=getattr(logging, spec.pop("log_level", "WARNING")),
                        format="%(asctime)s worker %(levelname)s %(name)s: %(message)s")
    options = StationOptions(**spec)
    wall = time.monotonic()
    result = asyncio.run(run_worker(plans_file, options, t0))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.update(cpu_s=usage.ru_utime + usage.ru_stime, wall_s=time.monotonic() - wall,
                  max_rss_kib=usage.ru_maxrss, options=asdict(options))
    stats_file.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
