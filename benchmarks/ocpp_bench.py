"""OCPP benchmark: what OCPP costs the charge loop, and the durable queue's throughput.

    python benchmarks/ocpp_bench.py            # full run (well under a minute)
    python benchmarks/ocpp_bench.py --quick    # smoke run

Prints one table:

1. SECC turnaround in the DC charge loop (server-side, request's last byte in to response's
   first byte out, as in session_bench.py) for the same SIL session twice, alternating, in one
   process: without OCPP, and with the full OCPP path running (the event bridge consuming
   every Measurement, sampled TransactionEvents every 0.1 s committed to SQLite and sent to
   the CSMS simulator over a loopback WebSocket). p50/p99 of each.
2. The durable queue: storing N TransactionEvents (each its own fsynced commit), then N
   replayed to the CSMS simulator after it comes back (one CALL and answer each, in order);
   events per second of each.

Not a test: numbers depend on the machine (and on the disk for the fsyncs).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
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


async def _session(loops: int, with_ocpp: bool, tmp: Path) -> tuple[list[float], int]:
    from evse.aio.app import supply_limits
    from evse.aio.ocpp_client import OcppClient
    from evse.aio.ocpp_events import OcppEventBridge
    from evse.aio.secc_server import SeccServer, Station
    from evse.config import OcppConfig
    from evse.ocpp.queue import DurableQueue
    from evse.ocpp.station import OcppStation
    from evse.protocol.config import SeccConfig
    from hal.backends.sim import SimBackend
    from simulators.csms import CsmsSimulator
    from simulators.ev import BatteryLink, get_scenario
    from simulators.ev.client import run_session

    scenario = get_scenario("dc", max_loops=loops, loop_interval=0.002, target_soc=100.0,
                            meter_info_every=0)
    battery = scenario.battery.make()
    backend = SimBackend(battery=battery)
    station = Station.from_backends([backend], speedup=1.0)
    station.bus.measurement_interval = 0.0  # the bridge sees every reading: the worst case
    link = BatteryLink(battery, shared=True,
                       on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                            closed))
    config = SeccConfig(limits=supply_limits(backend), allow_plain_tcp_iso20=True,
                        auto_authorize=True)
    csms = client = bridge = None
    if with_ocpp:
        csms = CsmsSimulator()
        await csms.start()
        st = OcppStation(vendor="bench", model="SIL")
        st.add_connector(1, 1)
        client = OcppClient(OcppConfig(url=csms.url, station_id="B1", password="p" * 16,
                                       sampled_interval_s=0.1),
                            st, queue=DurableQueue(tmp / f"q{time.monotonic_ns()}.db"))
        bridge = OcppEventBridge(client, station.events, {"1": 1})
        client.start()
        bridge.start()
        await asyncio.wait_for(client.accepted.wait(), 30)
    try:
        async with SeccServer(config, station, address=HOST, port=0) as server:
            assert server.port is not None
            report = await run_session(scenario, host=HOST, port=server.port, battery=link)
            assert report.success, report.reason
            samples = [ns / 1e9 for ns in server.turnaround.loop]
        sent = 0
        if csms is not None:
            await asyncio.sleep(0.5)
            sent = len(csms.calls("B1", "TransactionEvent"))
        return samples, sent
    finally:
        if bridge is not None:
            await bridge.stop()
        if client is not None:
            await client.stop()
            client.queue.close()
        if csms is not None:
            await csms.stop()


async def loop_cost(loops: int, rounds: int, tmp: Path) -> list[tuple[str, str]]:
    plain: list[float] = []
    ocpp: list[float] = []
    events = 0
    for _ in range(rounds):  # alternate, so drift in machine load hits both alike
        s, _n = await _session(loops, False, tmp)
        plain += s
        s, n = await _session(loops, True, tmp)
        ocpp += s
        events += n
    rows = [
        ("DC charge loop turnaround without OCPP, p50/p99",
         f"{_ms(_pct(plain, 50))} / {_ms(_pct(plain, 99))} (n={len(plain)})"),
        ("DC charge loop turnaround with OCPP, p50/p99",
         f"{_ms(_pct(ocpp, 50))} / {_ms(_pct(ocpp, 99))} (n={len(ocpp)})"),
        ("difference of the medians", _ms(statistics.median(ocpp) - statistics.median(plain))),
        ("TransactionEvents sent during the OCPP sessions", str(events)),
    ]
    return rows


async def queue_throughput(n: int, tmp: Path) -> list[tuple[str, str]]:
    from evse.aio.ocpp_client import OcppClient
    from evse.config import OcppConfig
    from evse.ocpp.queue import DurableQueue
    from evse.ocpp.station import OcppStation
    from evse.ocpp.transactions import MeterSample
    from simulators.csms import CsmsSimulator

    csms = CsmsSimulator()
    await csms.start()
    url = csms.url
    await csms.stop()  # the CSMS is away while the events pile up
    st = OcppStation(vendor="bench", model="SIL")
    st.add_connector(1, 1)
    client = OcppClient(OcppConfig(url=url, station_id="B1", password="p" * 16,
                                   sampled_interval_s=0.0, reconnect_min_s=0.05,
                                   reconnect_max_s=0.1),
                        st, queue=DurableQueue(tmp / "throughput.db"))
    t = time.perf_counter()
    client.transaction_started("tx", 1, 1, "EVDetected", MeterSample(0.0))
    for i in range(n - 2):
        client.meter_sample("tx", MeterSample(float(i), 0.0, power_w=-1000.0))
        client.transaction_updated("tx", "MeterValuePeriodic", with_meter=True)
    client.transaction_ended("tx", "EVDeparted", "EVDisconnected", MeterSample(float(n), 0.0))
    stored = time.perf_counter() - t
    client.start()
    await csms.start()
    t = time.perf_counter()
    while len(client.queue):
        await asyncio.sleep(0.01)
    replayed = time.perf_counter() - t
    seqs = [e["seq_no"] for e in csms.calls("B1", "TransactionEvent")]
    await client.stop()
    await csms.stop()
    ok = seqs == list(range(n))
    return [
        (f"store {n} TransactionEvents (fsync each)",
         f"{stored:.2f} s, {n / stored:,.0f} events/s"),
        (f"replay {n} queued events to the CSMS",
         f"{replayed:.2f} s, {n / replayed:,.0f} events/s, "
         f"{'all once, in order' if ok else 'ORDER/COUNT WRONG'}"),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    loops, rounds, n = (100, 1, 500) if args.quick else (500, 3, 10_000)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = asyncio.run(loop_cost(loops, rounds, tmp))
        rows += asyncio.run(queue_throughput(n, tmp))
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
