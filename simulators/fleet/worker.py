"""A fleet worker process: runs its share of the stations in one asyncio loop.

    python -m simulators.fleet.worker PLANS.json OPTIONS.json STATS.json

SIGTERM / SIGINT end the run (the cars stop, the chargers close, the bridges say
`offline`). At the end it writes its CPU time and peak memory to STATS.json.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import resource
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulators.fleet.cars import load_plans
from simulators.fleet.station import StationOptions, run_station

SHUTDOWN_GRACE_S = 20.0


class LagMonitor:
    """How late the event loop runs: a charger whose loop lags more than the charge loop's
    sequence timeout (0.5 s) ends its sessions, so this is the figure that says whether a
    process carries its stations."""

    def __init__(self, period: float = 0.05) -> None:
        self.period = period
        self.max_lag = 0.0
        self.late = 0  # wake-ups more than 0.25 s late

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.period)
            lag = loop.time() - t - self.period
            self.max_lag = max(self.max_lag, lag)
            if lag > 0.25:
                self.late += 1
                logging.getLogger(__name__).warning("event loop %.3f s late", lag)


async def run_worker(plans_file: Path, options: StationOptions, t0: float) -> dict[str, object]:
    plans = load_plans(plans_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    lag = LagMonitor()
    monitor = asyncio.create_task(lag.run())
    # A full collection over the heap of dozens of chargers stops every one of them at once;
    # what exists after start-up (modules, codec tables) need not be scanned again.
    gc.freeze()
    tasks = [asyncio.create_task(run_station(p, options, t0=t0, stop=stop), name=p.station_id)
             for p in plans]
    everything = asyncio.gather(*tasks, return_exceptions=True)
    stopping = asyncio.create_task(stop.wait())
    waits: list[asyncio.Future[Any]] = [everything, stopping]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    stuck: list[str] = []
    if not everything.done():  # stopping: the stations get a grace period, then are cancelled
        done, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
        for task in pending:
            stuck.append(task.get_name())
            buf = io.StringIO()
            task.print_stack(file=buf)
            logging.getLogger(__name__).error("station %s did not stop:\n%s",
                                              task.get_name(), buf.getvalue())
            task.cancel()
    results = await everything
    monitor.cancel()
    sessions = failed = errors = 0
    reasons: dict[str, int] = {}
    for r in results:
        if isinstance(r, asyncio.CancelledError):
            continue  # stuck at the stop: named in stuck_at_stop
        if isinstance(r, BaseException):
            errors += 1
            logging.getLogger(__name__).error("station failed: %r", r)
            continue
        sessions += r.sessions
        failed += r.failed
        for k, v in r.reasons.items():
            reasons[k] = reasons.get(k, 0) + v
    return {"stations": len(plans), "sessions": sessions, "failed": failed,
            "station_errors": errors, "reasons": reasons, "max_loop_lag_s": lag.max_lag,
            "late_wakeups": lag.late, "stuck_at_stop": stuck}


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
