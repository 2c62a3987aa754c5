"""Load benchmark: one car charging while N idle, N stalled-TLS and N junk connections come.

    python benchmarks/load_bench.py                  # N = 334 of each kind (~1,000), 20 s flood
    python benchmarks/load_bench.py --n 1000         # 3,000 hostile connections
    python benchmarks/load_bench.py --quick          # smoke run (a few seconds)

`evse secc` runs in a subprocess (sim HAL, `--connectors` connectors (2: junk can hold the
second while the car charges on the first), TLS 1.3 with a test PKI from
`certs.make_pki`, plus plain TCP for the hostile plain connections). A simulated EV charges
over TLS (DC, sessions back to back) in this process; the hostile clients run in a second
subprocess so that their work does not delay the EV's own measurements:

- idle: plain TCP, connect and send nothing;
- stalled TLS: connect to the TLS port, half of them send a ClientHello, then nothing;
- junk: plain TCP, a stream of small V2GTP frames with an unknown payload type (0x8105).

Each hostile client reconnects when the charger closes it, until the flood ends, so the
flood keeps the charger's admission caps full for its whole length. Phases: `before` (the
car alone), `during` (the flood), `after` (flood stopped, stalled handshakes timed out).
Per phase the table shows the car's charge-loop round trip (DC_ChargeLoopReq -> Res as the
EV sees it, p50/p99), the sessions that succeeded, and the charger's RSS (VmRSS, the phase's
maximum) and CPU (utime + stime over the phase's wall time). Targets (issue 11): p99 < 20 ms
and RSS < baseline + 32 MB with 1,000 hostile connections.

Loopback only; every loop is bounded by the phase deadlines. Not a test: numbers depend on
the machine (and on what else runs on it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
JUNK_TYPE = 0x8105  # not a payload type of -20: ignored by the charger


# -- the hostile side (its own process) --------------------------------------------------------


def client_hello() -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_side=False)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


async def _hostile_slot(kind: str, i: int, port: int, deadline: float, stats: dict[str, int],
                        hello: bytes) -> None:
    frame = b"\x01\xfe" + struct.pack(">HI", JUNK_TYPE, 8) + os.urandom(8)
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 3.0)
        except (OSError, TimeoutError):
            stats["connect_failed"] += 1
            await asyncio.sleep(0.1)
            continue
        stats[f"{kind}_connects"] += 1
        stats["open"] += 1
        stats["max_open"] = max(stats["max_open"], stats["open"])
        try:
            if kind == "stalled" and i % 2:
                writer.write(hello)
            while time.monotonic() < deadline:
                if kind == "junk":
                    writer.write(frame * 4)
                    await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        if not await asyncio.wait_for(reader.read(4096), 0.02):
                            break  # closed by the charger
                elif not await asyncio.wait_for(reader.read(4096),
                                                max(0.01, deadline - time.monotonic())):
                    break
        except (OSError, TimeoutError):
            pass
        finally:
            stats["open"] -= 1
            writer.close()
        await asyncio.sleep(0.05)


async def hostile(tcp_port: int, tls_port: int, n: int, duration: float) -> dict[str, int]:
    stats = dict.fromkeys(("open", "max_open", "connect_failed", "idle_connects",
                           "stalled_connects", "junk_connects"), 0)
    deadline = time.monotonic() + duration
    hello = client_hello()
    tasks = []
    for i in range(n):  # interleaved, so that every kind is there from the start
        for kind, port in (("idle", tcp_port), ("stalled", tls_port), ("junk", tcp_port)):
            tasks.append(asyncio.create_task(_hostile_slot(kind, i, port, deadline, stats,
                                                           hello)))
        if i % 20 == 19:
            await asyncio.sleep(0.01)
    await asyncio.gather(*tasks, return_exceptions=True)
    return stats


# -- the charger and the car -------------------------------------------------------------------


def _proc(pid: int) -> tuple[int, int]:
    """(VmRSS KiB, utime + stime clock ticks) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"VmRSS:\s+(\d+) kB", status)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(rss[1]) if rss else 0), int(fields[11]) + int(fields[12])


def start_secc(pki: Path, log: Path, extra: list[str]) -> tuple[subprocess.Popen[str], int, int]:
    cmd = [sys.executable, "-m", "evse", "secc", "--address", HOST, "--port", "0",
           "--tls-port", "0", "--pki", str(pki), "--allow-plain-tcp-iso20", "--no-sdp",
           "--sim-speedup", "10", *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err,
                                text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    tls = re.search(r"TLS 1.3 on port (\d+)", line)
    tcp = re.search(r"plain TCP on port (\d+)", line)
    if not (tls and tcp):
        proc.kill()
        raise SystemExit(f"evse secc did not start: {line!r}\n{log.read_text()[-2000:]}")
    return proc, int(tcp[1]), int(tls[1])


async def car(port: int, root: Path, until: float, loop_rtts: list[tuple[float, float]],
              sessions: list[tuple[float, bool]]) -> None:
    """DC sessions over TLS back to back until `until` (monotonic)."""
    from simulators.ev import get_scenario
    from simulators.ev.client import make_ssl_context, run_session

    scenario = get_scenario("dc").replace(loop_interval=0.05, max_loops=60, speedup=10.0)
    ctx = make_ssl_context(root)
    while time.monotonic() < until:
        offset = time.monotonic() - asyncio.get_running_loop().time()
        try:
            report = await asyncio.wait_for(
                run_session(scenario, host=HOST, port=port, tls=True, ssl_context=ctx), 60)
        except Exception:  # noqa: BLE001 - a failed connect counts as a failed session
            sessions.append((time.monotonic(), False))
            await asyncio.sleep(0.5)
            continue
        sessions.append((time.monotonic(), report.success))
        for m in report.messages:
            if m.request == "DC_ChargeLoopReq" and m.rtt is not None:
                loop_rtts.append((m.sent_at + offset, m.rtt))
        await asyncio.sleep(0.05)


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    return data[min(len(data) - 1, max(0, round(p / 100 * len(data) + 0.5) - 1))]


async def run(args: argparse.Namespace) -> int:
    from certs.make_pki import make_pki

    tmp = Path(tempfile.mkdtemp(prefix="load_bench_"))
    files = make_pki(tmp / "pki")
    log = tmp / "secc.log"
    proc, tcp_port, tls_port = start_secc(
        tmp / "pki", log, ["--connectors", str(args.connectors), *args.secc_args])
    hz = os.sysconf("SC_CLK_TCK")
    samples: list[tuple[float, int, int]] = []  # monotonic, RSS KiB, CPU ticks
    loop_rtts: list[tuple[float, float]] = []
    sessions: list[tuple[float, bool]] = []
    try:
        t0 = time.monotonic()
        phases = {"before": (t0 + 1.0, t0 + 1.0 + args.before)}
        flood_at = phases["before"][1]
        phases["during"] = (flood_at + 1.0, flood_at + args.duration)
        after = flood_at + args.duration + args.settle
        phases["after"] = (after, after + args.after)
        end = phases["after"][1]

        async def sample() -> None:
            while time.monotonic() < end:
                rss, ticks = _proc(proc.pid)
                samples.append((time.monotonic(), rss, ticks))
                await asyncio.sleep(0.25)

        async def flood() -> dict[str, Any]:
            await asyncio.sleep(max(0.0, flood_at - time.monotonic()))
            child = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--hostile", str(tcp_port), str(tls_port),
                "--n", str(args.n), "--duration", str(args.duration),
                stdout=subprocess.PIPE)
            out, _ = await child.communicate()
            return dict(json.loads(out.decode() or "{}"))

        results = await asyncio.gather(sample(), car(tls_port, files.root_cert, end,
                                                     loop_rtts, sessions), flood())
        stats = results[2]
    finally:
        proc.send_signal(2)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    print(f"load_bench: N = {args.n} idle + {args.n} stalled-TLS + {args.n} junk, flood "
          f"{args.duration:g} s, {args.connectors} connector(s); charger log {log}")
    print(f"{'phase':<8} {'loop p50 ms':>11} {'loop p99 ms':>11} {'loops':>6} "
          f"{'sessions ok/all':>15} {'RSS MB':>8} {'CPU %':>6}")
    base_rss = None
    for name, (a, b) in phases.items():
        rtts = [r * 1e3 for t, r in loop_rtts if a <= t < b]
        done = [ok for t, ok in sessions if a <= t < b + 5.0]
        window = [s for s in samples if a <= s[0] <= b]
        rss = max((s[1] for s in window), default=0) / 1024
        cpu = 0.0
        if len(window) >= 2:
            cpu = (window[-1][2] - window[0][2]) / hz / (window[-1][0] - window[0][0]) * 100
        base_rss = rss if base_rss is None else base_rss
        p50, p99 = _pct(rtts, 50), _pct(rtts, 99)
        print(f"{name:<8} {p50 or 0:>11.2f} {p99 or 0:>11.2f} {len(rtts):>6} "
              f"{sum(done):>7}/{len(done):<7} {rss:>8.1f} {cpu:>6.1f}")
    text = log.read_text()
    reasons: dict[str, int] = {}
    for m in re.finditer(r"closed: ([a-zA-Z /-]+)", text):
        key = m[1].split(":")[0].strip()[:40]
        reasons[key] = reasons.get(key, 0) + 1
    print("hostile clients:", json.dumps(stats))
    print("charger closes by reason:", json.dumps(dict(sorted(reasons.items(),
                                                             key=lambda kv: -kv[1]))))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--n", type=int, default=334, help="connections of each hostile kind")
    p.add_argument("--duration", type=float, default=20.0, help="flood length (s)")
    p.add_argument("--before", type=float, default=8.0)
    p.add_argument("--after", type=float, default=8.0)
    p.add_argument("--settle", type=float, default=6.0,
                   help="wait after the flood before the `after` phase (s)")
    p.add_argument("--connectors", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--hostile", nargs=2, type=int, metavar=("TCP_PORT", "TLS_PORT"),
                   help=argparse.SUPPRESS)
    p.add_argument("secc_args", nargs="*", help="extra `evse secc` arguments (after --)")
    args = p.parse_args()
    if args.hostile:
        tcp_port, tls_port = args.hostile
        stats = asyncio.run(hostile(tcp_port, tls_port, args.n, args.duration))
        print(json.dumps(stats))
        return 0
    if args.quick:
        args.n, args.duration, args.before, args.after, args.settle = 20, 4.0, 3.0, 3.0, 5.0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
