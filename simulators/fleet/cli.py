"""`evse fleet-sim N`: N stations behind one broker, optionally driven by the example
aggregator; prints the tracking and owners' tables and the CPU and memory per station."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simulators.fleet.aggregator import (
    DEFAULT_PROFILE,
    Aggregator,
    host_port,
    parse_profile,
    print_report,
)
from simulators.fleet.broker import Mosquitto
from simulators.fleet.cars import StationPlan, dump_plans, make_fleet, manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stations", type=int, metavar="N", help="number of stations")
    p.add_argument("--broker", type=host_port, metavar="HOST:PORT",
                   help="an MQTT broker to use (default: start a mosquitto on a free port)")
    p.add_argument("--processes", type=int, default=2, metavar="K",
                   help="worker processes the stations are spread over (default 2: one per "
                   "core of a small machine)")
    p.add_argument("--seed", type=int, default=1, help="fleet RNG seed (default 1)")
    p.add_argument("--speedup", type=float, default=10.0,
                   help="simulated seconds per real second (sim HAL; default 10)")
    p.add_argument("--duration", type=float,
                   help="real seconds to run (default: the aggregator's profile, or 300)")
    p.add_argument("--power-kw", type=float, default=11.0,
                   help="each station's rating, both directions (default 11)")
    p.add_argument("--loop-interval", type=float, default=0.25,
                   help="real seconds between a car's ChargeLoopReqs (default 0.25)")
    p.add_argument("--charge-loop-timeout", type=float, default=2.0, metavar="S",
                   help="the chargers' wait for the next ChargeLoopReq (default 2 s: many "
                   "chargers share a core here; 0.5 = ISO 15118-20)")
    p.add_argument("--no-aggregator", dest="aggregator", action="store_false",
                   help="only run the fleet (an external aggregator may drive it)")
    p.add_argument("--profile", default=DEFAULT_PROFILE,
                   help=f"the aggregator's request, KW:MINUTES[@PRICE],... in simulated "
                   f"minutes (default {DEFAULT_PROFILE}); negative kW: deliver")
    p.add_argument("--interval", type=float, default=1.0,
                   help="the aggregator's dispatch interval, real s (default 1)")
    p.add_argument("--settle", type=float, default=60.0,
                   help="real seconds not counted in the tracking figures (default 60)")
    p.add_argument("--manifest", type=Path,
                   help="write the fleet's cars (owner contracts by EVCCID) here")
    p.add_argument("--json", type=Path, help="write the run's report as JSON here")


def split_plans(plans: list[StationPlan], k: int) -> list[list[StationPlan]]:
    k = max(1, min(k, len(plans)))
    return [plans[i::k] for i in range(k)]


@contextlib.contextmanager
def _broker(ns: argparse.Namespace, directory: Path) -> Iterator[tuple[str, int, Any]]:
    if ns.broker is not None:
        yield ns.broker[0], ns.broker[1], None
        return
    with Mosquitto(directory) as m:
        yield m.host, m.port, m


def run(ns: argparse.Namespace) -> int:
    if ns.stations < 1 or ns.processes < 1 or ns.speedup <= 0:
        print("evse fleet-sim: N, --processes and --speedup must be > 0", file=sys.stderr)
        return 2
    profile = parse_profile(ns.profile)
    duration = ns.duration
    if duration is None:
        duration = profile[-1].end_min * 60.0 / ns.speedup if ns.aggregator else 300.0
    plans = make_fleet(ns.stations, seed=ns.seed, duration_s=duration, speedup=ns.speedup,
                       max_power_kw=ns.power_kw)
    cars = manifest(plans)
    if ns.manifest is not None:
        ns.manifest.write_text(json.dumps(cars, indent=1) + "\n")
    with tempfile.TemporaryDirectory(prefix="evse-fleet-") as tmp, \
            _broker(ns, Path(tmp)) as (host, port, mosquitto):
        d = Path(tmp)
        t0 = time.time()
        workers = _start_workers(ns, plans, d, t0, host, port)
        print(f"evse fleet-sim: {ns.stations} stations in {len(workers)} processes, broker "
              f"{host}:{port}, sim HAL at {ns.speedup:g}x, {duration:.0f} s", flush=True)
        report: dict[str, Any] = {}
        try:
            if ns.aggregator:
                agg = Aggregator(host, port, speedup=ns.speedup, profile=profile,
                                 interval_s=ns.interval, settle_s=ns.settle, cars=cars["cars"])
                asyncio.run(agg.run(duration_s=duration))
                report = agg.report()
            else:
                _wait(workers, t0 + duration)
        except KeyboardInterrupt:
            pass
        finally:
            _stop_workers(workers)
        broker_cpu = mosquitto.cpu_seconds() if mosquitto is not None else None
        stats = [json.loads(p.read_text()) for p in sorted(d.glob("stats*.json"))]
    report["fleet"] = resources(stats, ns.stations, broker_cpu)
    if ns.aggregator:
        print_report(report, sys.stdout)
    print_resources(report["fleet"])
    if ns.json is not None:
        ns.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if len(stats) == len(workers) and all(
        s["station_errors"] == 0 for s in stats) else 1


def _start_workers(ns: argparse.Namespace, plans: Any, d: Path, t0: float, host: str,
                   port: int) -> list[subprocess.Popen[bytes]]:
    """One worker process per share of the stations (simulators.fleet.worker)."""
    workers = []
    for i, share in enumerate(split_plans(plans, ns.processes)):
        dump_plans(share, d / f"plans{i}.json")
        (d / f"options{i}.json").write_text(json.dumps({
            "t0": t0, "broker_host": host, "broker_port": port, "speedup": ns.speedup,
            "power_kw": ns.power_kw, "loop_interval": ns.loop_interval,
            "charge_loop_timeout": ns.charge_loop_timeout,
            "log_level": "WARNING" if getattr(ns, "verbose", 0) else "ERROR"}))
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "simulators.fleet.worker", str(d / f"plans{i}.json"),
             str(d / f"options{i}.json"), str(d / f"stats{i}.json")],
            env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}))
    return workers


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (they end their sessions and write their stats), then a kill after 60 s."""
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(timeout=60)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def _wait(workers: list[subprocess.Popen[bytes]], until: float) -> None:
    while time.time() < until and any(w.poll() is None for w in workers):
        time.sleep(0.5)


def resources(stats: list[dict[str, Any]], n: int, broker_cpu: float | None
              ) -> dict[str, Any]:
    cpu = sum(s["cpu_s"] for s in stats)
    wall = max((s["wall_s"] for s in stats), default=0.0)
    rss = sum(s["max_rss_kib"] for s in stats) / 1024.0
    return {
        "stations": n, "processes": len(stats),
        "sessions": sum(s["sessions"] for s in stats),
        "failed_sessions": sum(s["failed"] for s in stats),
        "station_errors": sum(s["station_errors"] for s in stats),
        "session_ends": _merge([s["reasons"] for s in stats]),
        "wall_s": wall, "cpu_s": cpu, "cpu_share_per_station": cpu / wall / n if wall else None,
        "rss_mib": rss, "rss_mib_per_station": rss / n,
        "broker_cpu_s": broker_cpu,
        "max_loop_lag_s": max((s.get("max_loop_lag_s", 0.0) for s in stats), default=None),
        "late_wakeups": sum(s.get("late_wakeups", 0) for s in stats),
    }


def _merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def print_resources(f: dict[str, Any]) -> None:
    share = f["cpu_share_per_station"]
    print(f"\nFleet: {f['stations']} stations in {f['processes']} processes, "
          f"{f['sessions']} car sessions ({f['failed_sessions']} failed), "
          f"{f['station_errors']} station errors", flush=True)
    print(f"  CPU {f['cpu_s']:.1f} s over {f['wall_s']:.0f} s = "
          f"{'n/a' if share is None else f'{100 * share:.2f} %'} of a core per station; "
          f"peak RSS {f['rss_mib']:.0f} MiB = {f['rss_mib_per_station']:.2f} MiB per station"
          + ("" if f["broker_cpu_s"] is None else f"; mosquitto CPU {f['broker_cpu_s']:.1f} s"),
          flush=True)
    print(f"  session ends: {f['session_ends']}; worst event-loop lag "
          f"{1000 * (f['max_loop_lag_s'] or 0.0):.0f} ms ({f['late_wakeups']} wake-ups > 250 ms "
          "late)", flush=True)


def main(ns: argparse.Namespace) -> int:
    return run(ns)
