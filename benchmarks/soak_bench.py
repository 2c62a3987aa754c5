"""Soak benchmark: does the charger's memory grow with every session?

    python benchmarks/soak_bench.py                  # 1,000 sequential sessions
    python benchmarks/soak_bench.py --sessions 300 --every 50

Starts `evse secc` in a subprocess (plain TCP on loopback, one sim connector, the HAL 10x
faster so cable check and precharge take a fraction of a second) and runs N sequential
sessions of the simulated EV against it (-20 DC, a few charge loops each, in turn plain,
EV-stopped and paused/resumed, so the paused-session store is exercised too). Every
`--every` sessions it reads the process's RSS (/proc/PID/status VmRSS) after a short pause
and prints it. At the end it prints the least-squares
slope of RSS per session over the samples after the warm-up (the first `--warmup` sessions,
default half: the bounded histories fill first, the last being the controller's action log
of 4,096 entries at ~10 per session, full after ~420 sessions): a charger that runs for months
needs it flat within noise.

Not a test: numbers depend on the machine. The in-memory bounds themselves are tested by
count in tests/aio/test_bounded_records.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(m[1]) if m else 0


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope (y per x) of (x, y) points."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def start_secc(extra: list[str]) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "evse", "-q", "secc", "--address", HOST, "--port", "0",
         "--allow-plain-tcp-iso20", "--no-sdp", "--connectors", "1", "--sim-speedup", "10",
         *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"plain TCP on port (\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"evse secc did not start: {line!r}")
    return proc, int(m[1])


async def soak(sessions: int, every: int, warmup: int, extra: list[str]) -> int:
    from simulators.ev import EvTimeouts, get_scenario
    from simulators.ev.client import run_session

    timeouts = EvTimeouts().scaled(3.0)
    kinds = [get_scenario(name, max_loops=5, timeouts=timeouts, speedup=10.0,
                          pause_duration=0.05)
             for name in ("dc", "ev_stop", "pause_resume")]
    proc, port = start_secc(extra)
    points: list[tuple[int, int]] = []
    failed = 0
    t0 = time.perf_counter()
    print(f"soak_bench: {sessions} sequential sessions against evse secc (pid {proc.pid}), "
          f"Python {sys.version.split()[0]}")
    print(f"{'sessions':>8}  {'RSS MiB':>8}  {'failed':>6}  {'wall s':>7}")
    try:
        for i in range(1, sessions + 1):
            scenario = kinds[i % len(kinds)].replace(evcc_id=f"WSOAK{i:012d}")
            report = await asyncio.wait_for(run_session(scenario, host=HOST, port=port), 60)
            failed += not report.success
            if i % every == 0 or i == sessions:
                await asyncio.sleep(0.3)  # the connector is released, the log flushed
                rss = rss_kib(proc.pid)
                points.append((i, rss))
                print(f"{i:>8}  {rss / 1024:>8.2f}  {failed:>6}  "
                      f"{time.perf_counter() - t0:>7.1f}", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    after = [(i, kib * 1024) for i, kib in points if i > warmup]
    per_session = slope(after)
    print(f"RSS slope after {warmup} warm-up sessions: {per_session:.0f} bytes/session "
          f"({len(after)} samples; first {points[0][1] / 1024:.2f} MiB, "
          f"last {points[-1][1] / 1024:.2f} MiB); {failed} session(s) failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=1000, help="sessions (default 1000)")
    parser.add_argument("--every", type=int, default=50, help="RSS sample interval (sessions)")
    parser.add_argument("--warmup", type=int, help="sessions before the slope (default half)")
    parser.add_argument("secc_args", nargs="*", help="extra `evse secc` arguments (after --)")
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else args.sessions // 2
    return asyncio.run(soak(args.sessions, args.every, warmup, args.secc_args))


if __name__ == "__main__":
    sys.exit(main())
