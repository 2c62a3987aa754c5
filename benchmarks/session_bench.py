"""Session benchmark: SECC turnaround, many EVs at once, memory, CLI start-up.

    python benchmarks/session_bench.py            # full run (about a minute)
    python benchmarks/session_bench.py --quick    # smoke run (a few seconds)

Prints one table:

1. SECC turnaround in the DC charge loop with the SIL (sim HAL + simulated EV sharing one
   battery, in one process over loopback TCP): from the request's last byte in to the
   response's first byte out, measured by the server with time.perf_counter_ns around the
   SECC's read -> write path; p50/p99/max over >= 1000 charge loops (200 with --quick).
2. 20 simulated EVs charging at once against one SECC process (`evse secc` in a subprocess
   with 20 sim connectors): the response times the EVs see (all requests, and the charge
   loop alone), p99 and max, and how many sessions succeeded.
3. The SECC process's RSS (/proc/PID/status VmRSS) after one session, after the 20, and its
   peak (VmHWM).
4. `evse --help` wall time: the median of 5 subprocess runs.

Not a test: numbers depend on the machine. tests/benchmarks/test_session_bench_smoke.py runs
--quick and only checks that the table comes out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"


def _pct(values: list[float], p: float) -> float:
    data = sorted(values)
    rank = max(1, -(-int(round(p * len(data))) // 100))
    return data[min(rank, len(data)) - 1]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


# -- 1. turnaround with the SIL --------------------------------------------------------------


ISO20_LOOP_P99: list[float] = []  # the -20 charge-loop p99 of this run (for the DIN rows)


async def turnaround(loops: int) -> list[tuple[str, str]]:
    from evse.aio.app import supply_limits
    from evse.aio.secc_server import SeccServer, Station
    from evse.control import check_safe_sequence
    from evse.protocol.config import SeccConfig
    from hal.backends.sim import SimBackend
    from simulators.ev import BatteryLink, get_scenario
    from simulators.ev.client import run_session

    scenario = get_scenario("dc", max_loops=loops, loop_interval=0.002, target_soc=100.0,
                            meter_info_every=0)
    battery = scenario.battery.make()
    backend = SimBackend(battery=battery)
    station = Station.from_backends([backend], speedup=1.0)
    link = BatteryLink(battery, shared=True,
                       on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                            closed))
    config = SeccConfig(limits=supply_limits(backend), allow_plain_tcp_iso20=True,
                        auto_authorize=True)
    async with SeccServer(config, station, address=HOST, port=0) as server:
        assert server.port is not None
        report = await run_session(scenario, host=HOST, port=server.port, battery=link)
        samples = [ns / 1e9 for ns in server.turnaround.loop]
        ev_rtts = [rtt for name, rtt in report.rtts if name == "DC_ChargeLoopReq"]
    ok = report.success and check_safe_sequence(station.connectors[0].controller.actions) is None
    n = len(samples)
    ISO20_LOOP_P99.append(_pct(samples, 99))
    return [
        ("SIL session", f"{'OK' if ok else 'FAILED: ' + report.reason}, {report.loops} loops, "
                        f"+{report.energy_charged_wh:.0f} Wh"),
        ("SECC turnaround, DC charge loop, p50", f"{_ms(_pct(samples, 50))} (n={n})"),
        ("SECC turnaround, DC charge loop, p99", _ms(_pct(samples, 99))),
        ("SECC turnaround, DC charge loop, max", _ms(max(samples))),
        ("EV round trip, DC charge loop, p50/p99",
         f"{_ms(_pct(ev_rtts, 50))} / {_ms(_pct(ev_rtts, 99))}"),
    ]


async def din_turnaround(loops: int) -> list[tuple[str, str]]:
    """1b. The same with DIN SPEC 70121 (CurrentDemand), every standard enabled; its p99 must
    stay within 2x the -20 charge loop's of the same run."""
    from evse.aio.app import supply_limits
    from evse.aio.secc_server import SeccServer, Station
    from evse.control import check_safe_sequence
    from evse.protocol.config import SeccConfig
    from evse.protocol.standards import STANDARDS
    from hal.backends.sim import SimBackend
    from simulators.ev import BatteryLink
    from simulators.ev.client import run_session
    from simulators.ev.din_evcc import DinEvcc, get_din_scenario

    scenario = get_din_scenario("din_dc", loops=loops, loop_interval=0.002)
    battery = scenario.battery.make()
    backend = SimBackend(battery=battery)
    station = Station.from_backends([backend], speedup=1.0)
    link = BatteryLink(battery, shared=True,
                       on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                            closed))
    protocols = tuple(n for n in ("iso20", "iso2", "din") if STANDARDS[n].factory is not None)
    config = SeccConfig(limits=supply_limits(backend), allow_plain_tcp_iso20=True,
                        auto_authorize=True, protocols=protocols)
    async with SeccServer(config, station, address=HOST, port=0) as server:
        assert server.port is not None
        evcc = DinEvcc(scenario, battery=link)
        report = await run_session(scenario, host=HOST, port=server.port,  # type: ignore[arg-type]
                                   tls=False, evcc=evcc)  # type: ignore[arg-type]
        samples = [ns / 1e9 for ns in server.turnaround.loop]
        ev_rtts = [rtt for name, rtt in report.rtts if name == "CurrentDemandReq"]
    ok = report.success and check_safe_sequence(station.connectors[0].controller.actions) is None
    p99 = _pct(samples, 99)
    ratio = p99 / ISO20_LOOP_P99[-1] if ISO20_LOOP_P99 else float("nan")
    return [
        ("DIN SIL session", f"{'OK' if ok else 'FAILED: ' + report.reason}, {report.loops} "
                            f"loops, +{report.energy_charged_wh:.0f} Wh"),
        ("SECC turnaround, DIN CurrentDemand, p50", f"{_ms(_pct(samples, 50))} "
                                                    f"(n={len(samples)})"),
        ("SECC turnaround, DIN CurrentDemand, p99",
         f"{_ms(p99)} ({ratio:.2f}x the -20 p99: {'within' if ratio <= 2 else 'OVER'} 2x)"),
        ("SECC turnaround, DIN CurrentDemand, max", _ms(max(samples))),
        ("EV round trip, DIN CurrentDemand, p50/p99",
         f"{_ms(_pct(ev_rtts, 50))} / {_ms(_pct(ev_rtts, 99))}"),
    ]


async def turnaround_iso2(loops: int, energy: str = "dc") -> list[tuple[str, str]]:
    """The same SIL measurement for an ISO 15118-2 session (CurrentDemand / ChargingStatus)."""
    import dataclasses

    from evse.aio.app import supply_limits
    from evse.aio.secc_server import SeccServer, Station
    from evse.control import check_safe_sequence
    from evse.protocol.config import SeccConfig, ServiceId
    from hal.backends.sim import SimBackend
    from simulators.battery import EvBattery
    from simulators.ev.client import Endpoint
    from simulators.ev.iso2_client import drive_iso2
    from simulators.ev.iso2_evcc import ISO2_SCENARIOS, Iso2Evcc

    battery = EvBattery()
    backend = SimBackend(battery=battery)
    station = Station.from_backends([backend], speedup=1.0)
    config = SeccConfig(limits=supply_limits(backend), services=(ServiceId.DC, ServiceId.AC),
                        protocols=("iso20", "iso2"), auto_authorize=True)
    scenario = dataclasses.replace(ISO2_SCENARIOS[f"iso2_{energy}"], loops=loops)
    dc = energy == "dc"
    ev = Iso2Evcc(scenario, battery=battery if dc else None,
                  on_contactors=(lambda closed: setattr(backend, "ev_contactor_closed",
                                                        closed)) if dc else None)
    async with SeccServer(config, station, address=HOST, port=0) as server:
        assert server.port is not None
        run = await drive_iso2(ev, Endpoint(HOST, server.port), repeat_interval=0.002)
        samples = [ns / 1e9 for ns in server.turnaround.loop]
    ok = run.success and check_safe_sequence(station.connectors[0].controller.actions) is None
    loop = "CurrentDemand" if dc else "ChargingStatus"
    label = f"-2 {energy.upper()} {loop}"
    return [
        (f"-2 {energy.upper()} SIL session", f"{'OK' if ok else 'FAILED: ' + run.done.reason}, "
                                             f"{len(samples)} loops"),
        (f"SECC turnaround, {label}, p50", f"{_ms(_pct(samples, 50))} (n={len(samples)})"),
        (f"SECC turnaround, {label}, p99", _ms(_pct(samples, 99))),
        (f"SECC turnaround, {label}, max", _ms(max(samples))),
    ]


def _ratio_row(rows: list[tuple[str, str]], label: str, name: str) -> tuple[str, str]:
    """p99 of `label`'s loop over the -20 DC loop's p99 in the same run (target: <= 2)."""
    values = dict(rows)
    base = float(values["SECC turnaround, DC charge loop, p99"].split()[0])
    other = float(values[f"SECC turnaround, {label}, p99"].split()[0])
    return (f"{name} charge-loop p99 / -20 p99", f"{other / base:.2f} (target <= 2)")


# -- 2./3. many EVs against one SECC process -------------------------------------------------


def _rss_kib(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"VmRSS:\s+(\d+) kB", status)
    hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(rss[1]) if rss else 0, int(hwm[1]) if hwm else 0


def _start_secc(connectors: int, speedup: float) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "evse", "-q", "secc", "--address", HOST, "--port", "0",
         "--allow-plain-tcp-iso20", "--no-sdp", "--connectors", str(connectors),
         "--sim-speedup", str(speedup)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"plain TCP on port (\d+)", line)
    if not m:
        proc.kill()
        err = proc.stderr.read() if proc.stderr is not None else ""
        raise RuntimeError(f"evse secc did not start: {line!r} {err!r}")
    return proc, int(m[1])


async def many_evs(n: int, loops: int, speedup: float) -> list[tuple[str, str]]:
    from simulators.ev import EvTimeouts, get_scenario
    from simulators.ev.client import run_session

    proc, port = _start_secc(n, speedup)
    rows: list[tuple[str, str]] = []
    try:
        one = await run_session(get_scenario("dc", max_loops=5), host=HOST, port=port)
        await asyncio.sleep(0.3)
        rss1, _ = _rss_kib(proc.pid)
        scenario = get_scenario("dc", max_loops=loops, timeouts=EvTimeouts().scaled(3.0))
        t0 = time.perf_counter()
        reports = await asyncio.gather(*(
            run_session(scenario.replace(evcc_id=f"WEVSESTACKSIM{i:04d}"), host=HOST, port=port)
            for i in range(n)))
        wall = time.perf_counter() - t0
        await asyncio.sleep(0.3)
        rss_n, hwm = _rss_kib(proc.pid)
        rtts = [rtt for r in reports for _, rtt in r.rtts]
        loop_rtts = [rtt for r in reports for name, rtt in r.rtts if name.endswith("LoopReq")]
        ok = sum(r.success for r in reports)
        violations = sum(len(r.timing_violations) for r in reports)
        rows += [
            (f"{n} EVs at once: sessions OK",
             f"{ok}/{n} in {wall:.1f} s (a first session alone before: "
             f"{'OK' if one.success else 'FAILED'})"),
            (f"{n} EVs at once: EV-seen response time p50", f"{_ms(_pct(rtts, 50))} "
                                                            f"(n={len(rtts)})"),
            (f"{n} EVs at once: EV-seen response time p99", _ms(_pct(rtts, 99))),
            (f"{n} EVs at once: EV-seen response time max", _ms(max(rtts))),
            (f"{n} EVs at once: charge loop p99 / max",
             f"{_ms(_pct(loop_rtts, 99))} / {_ms(max(loop_rtts))} (limit 250 ms; "
             f"{violations} over a performance time)"),
            ("SECC process RSS after 1 session", f"{rss1 / 1024:.1f} MiB"),
            (f"SECC process RSS after {n} concurrent sessions", f"{rss_n / 1024:.1f} MiB"),
            ("SECC process peak RSS (VmHWM)", f"{hwm / 1024:.1f} MiB"),
        ]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return rows


# -- 4. CLI start-up -------------------------------------------------------------------------


def help_time(runs: int = 5) -> list[tuple[str, str]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "evse", "--help"], cwd=ROOT, env=env,
                       capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return [(f"evse --help wall time (median of {runs})",
             f"{statistics.median(times) * 1e3:.0f} ms (min {min(times) * 1e3:.0f} ms)")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--evs", type=int, default=20, help="EVs at once (default 20)")
    args = parser.parse_args(argv)
    loops = 200 if args.quick else 1000
    ev_loops = 5 if args.quick else 50
    rows: list[tuple[str, str]] = []
    rows += asyncio.run(turnaround(loops))
    rows += asyncio.run(din_turnaround(loops))
    for energy, label in (("dc", "-2 DC CurrentDemand"), ("ac", "-2 AC ChargingStatus")):
        rows += asyncio.run(turnaround_iso2(loops, energy))
        rows.append(_ratio_row(rows, label, f"-2 {energy.upper()}"))
    # --quick runs the simulated hardware 10x faster (cable check, precharge): same protocol
    rows += asyncio.run(many_evs(args.evs, ev_loops, 10.0 if args.quick else 1.0))
    rows += help_time(5)
    import exi_codec

    width = max(len(k) for k, _ in rows)
    print(f"session_bench{' --quick' if args.quick else ''}: Python "
          f"{sys.version.split()[0]}, exi_codec engine {exi_codec.ENGINE}, "
          f"{os.cpu_count()} CPU(s)")
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
