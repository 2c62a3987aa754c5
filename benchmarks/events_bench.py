"""Session event stream benchmark: SECC charge-loop turnaround (request's last byte in ->
response's first byte out, measured by the server) with no event consumer, with a consumer
that reads everything, and with one that never reads. The never-reading consumer must not
change the turnaround (its queues are bounded; publishing never waits).

    python benchmarks/events_bench.py            # 3 rounds x 3 configurations, ~1 min
    python benchmarks/events_bench.py --quick    # smoke run

Each run is one simulated DC session over loopback TCP against SeccServer on the sim HAL,
with the bus publishing every measurement (measurement_interval 0, the worst case; in
production it is 1 s). The configurations are interleaved round by round, so that load from
other processes spreads over all of them. Prints a table: median and p99 per configuration
and the ratios to "no consumer".
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from evse.aio.app import supply_limits  # noqa: E402
from evse.aio.secc_server import SeccServer, Station  # noqa: E402
from evse.protocol.config import SeccConfig, ServiceId  # noqa: E402
from hal.backends.sim import SimBackend  # noqa: E402
from simulators.ev import BatteryLink, get_scenario  # noqa: E402
from simulators.ev.client import run_session  # noqa: E402

CONFIGS = ("no consumer", "fast consumer", "never reads")


async def one_run(config: str, loops: int) -> tuple[list[int], dict[str, Any]]:
    sim = SimBackend()
    station = Station.from_backends([sim], speedup=10.0)
    station.bus.measurement_interval = 0.0  # publish every measurement: the worst case
    secc = SeccConfig(evse_id="DE*BEN*E0000001", services=(ServiceId.DC,),
                      limits=supply_limits(sim), allow_plain_tcp_iso20=True,
                      auto_authorize=True)
    info: dict[str, Any] = {"received": 0}
    async with SeccServer(secc, station, address="127.0.0.1", port=0,
                          poll_interval=0.005) as server:
        consumer = None
        stream = None
        if config == "fast consumer":
            stream = station.events()

            async def read() -> None:
                assert stream is not None
                async for _ in stream:
                    info["received"] += 1

            consumer = asyncio.create_task(read())
        elif config == "never reads":
            stream = station.events()  # subscribed, never read
        assert server.port is not None
        scenario = get_scenario("dc").replace(loop_interval=0.0, max_loops=loops,
                                              speedup=10.0)
        link = BatteryLink(sim.ev_battery, shared=True,
                           on_contactors=lambda c: setattr(sim, "ev_contactor_closed", c))
        report = await run_session(scenario, host="127.0.0.1", port=server.port, battery=link)
        if not report.success:
            raise SystemExit(f"{config}: the session failed: {report.reason}")
        samples = list(server.turnaround.loop)
        if stream is not None:
            info["dropped"] = stream.dropped_total
            info["queued"] = stream.qsize()
            stream.close()
        if consumer is not None:
            await consumer
        info["published"] = station.bus.published
    return samples, info


def pct(data: list[int], p: float) -> float:
    s = sorted(data)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))] / 1e3  # us


async def main(rounds: int, loops: int) -> None:
    samples: dict[str, list[int]] = {c: [] for c in CONFIGS}
    infos: dict[str, list[dict[str, Any]]] = {c: [] for c in CONFIGS}
    for _ in range(rounds):
        for config in CONFIGS:
            s, info = await one_run(config, loops)
            samples[config] += s
            infos[config].append(info)
    base_med = statistics.median(samples[CONFIGS[0]]) / 1e3
    base_p99 = pct(samples[CONFIGS[0]], 99)
    print(f"charge-loop turnaround, {rounds} sessions x {loops} loops per configuration "
          f"(measurements published every poll)")
    print(f"{'configuration':<15} {'n':>6} {'median us':>10} {'p99 us':>9} "
          f"{'median/base':>12} {'p99/base':>9}  events")
    for config in CONFIGS:
        data = samples[config]
        med, p99 = statistics.median(data) / 1e3, pct(data, 99)
        last = infos[config][-1]
        note = f"published {last['published']}"
        if config == "fast consumer":
            note += f", received {last['received']}"
        if config == "never reads":
            note += f", dropped {last['dropped']}, queued {last['queued']}"
        print(f"{config:<15} {len(data):>6} {med:>10.1f} {p99:>9.1f} "
              f"{med / base_med:>12.2f} {p99 / base_p99:>9.2f}  {note}")


def publish_cost(n: int) -> None:
    """ns per `EventBus.publish` of a Measurement: O(1) per consumer whatever it does."""
    import time

    from evse import events as se

    def run(readers: int, never: int) -> float:
        bus = se.EventBus(measurement_interval=0.0)
        fast = [bus.subscribe() for _ in range(readers)]
        slow = [bus.subscribe() for _ in range(never)]
        events = [se.Measurement("1", float(i), "S", 400.0, 100.0, 40_000.0) for i in range(n)]
        t0 = time.perf_counter_ns()
        for e in events:
            bus.publish(e)
            for f in fast:
                f.get_nowait()
        dt = (time.perf_counter_ns() - t0) / n
        assert all(s.qsize() <= se.DEFAULT_MEASUREMENTS_MAX for s in slow)
        return dt

    print(f"\nEventBus.publish of a Measurement, {n} publishes (queues bounded: memory flat)")
    print(f"{'consumers':<32} {'ns/publish':>10}")
    for label, readers, never in (("none", 0, 0), ("1 fast (reads each)", 1, 0),
                                  ("1 never reads", 0, 1), ("10 never read", 0, 10)):
        print(f"{label:<32} {run(readers, never):>10.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loops", type=int, default=300)
    ns = parser.parse_args()
    if ns.quick:
        ns.rounds, ns.loops = 1, 30
    asyncio.run(main(ns.rounds, ns.loops))
    publish_cost(10_000 if ns.quick else 200_000)

