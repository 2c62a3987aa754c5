"""MQTT bridge benchmark against a local mosquitto: command round trip, pipelined command
throughput, state publication, reconnect after a broker restart, and what the charger pays to
call the bridge while the broker is away. Prints a plain-text table.

A second table measures the whole path with the real charger: an aggregator publishes a
`setpoint`, and the clock stops when the new target leaves in the next ChargeLoopRes (our
SeccServer on loopback with the sim HAL, SeccStationPort + MqttBridge, the simulated EV in a
Dynamic BPT session): DC_BPT at the SECC (the SetPowerTarget handed to the power stage while
the DC_ChargeLoopRes is sent), AC_BPT at the EV (EVSETargetActivePower in the
AC_ChargeLoopRes it receives). Most of it is the wait for the EV's next ChargeLoopReq: the
floor is set by the EV's loop interval (`--loop-interval`, default 50 ms).

    python benchmarks/mqtt_bench.py            # full run (a few seconds)
    python benchmarks/mqtt_bench.py --quick    # smoke run
    python benchmarks/mqtt_bench.py --mosquitto /usr/sbin/mosquitto

Needs the mosquitto binary (apt-get install mosquitto); it is started on 127.0.0.1 with a free
port and a throw-away config, and killed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiomqtt  # noqa: E402

from evse._mqtt_api import ConnectorLimits, ConnectorState, LimitsUpdate, Topics  # noqa: E402
from evse.aio.mqtt_bridge import MqttBridge  # noqa: E402
from evse.config import MqttConfig  # noqa: E402
from evse.energy.prices import PriceCurve  # noqa: E402

STATION = "bench"


class Port:
    """A StationPort that only counts."""

    def __init__(self) -> None:
        self.state_ = ConnectorState("charging", ConnectorLimits(11000.0, 11000.0),
                                     control_mode="Dynamic", soc=50.0, voltage=400.0,
                                     current=10.0, power=4000.0)
        self.setpoints = 0

    def connectors(self) -> Sequence[str]:
        return ["1"]

    def state(self, connector: str) -> ConnectorState:
        return self.state_

    def authorize(self, connector: str, id_token: str, granted: bool) -> None:
        pass

    def set_setpoint(self, connector: str, watts: float) -> None:
        self.setpoints += 1

    def set_limits(self, connector: str, limits: LimitsUpdate) -> None:
        pass

    def set_prices(self, connector: str, prices: PriceCurve) -> None:
        pass

    def stop(self, connector: str) -> None:
        pass

    def pause(self, connector: str) -> None:
        pass


class Broker:
    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             "persistence false\nlog_dest none\nset_tcp_nodelay true\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.01)
        raise SystemExit("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return (f"{statistics.median(values) * 1e3:8.2f} {p95 * 1e3:8.2f} "
            f"{values[-1] * 1e3:8.2f}")


async def run(broker: Broker, n: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    topics = Topics(STATION)
    port = Port()
    config = MqttConfig(host="127.0.0.1", port=broker.port, reconnect_min_s=0.05,
                        reconnect_max_s=0.2, state_interval_s=0.01, telemetry_interval_s=1.0)
    bridge = MqttBridge(port, config, STATION)
    bridge.start()
    await asyncio.wait_for(bridge.connected.wait(), 5)
    replies: asyncio.Queue[bytes] = asyncio.Queue()
    states: asyncio.Queue[float] = asyncio.Queue()
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="bench-agg",
                              socket_options=nodelay) as agg:
        await agg.subscribe(topics.reply("1", "setpoint"), qos=1)
        await agg.subscribe(topics.state("1"), qos=1)

        async def pump() -> None:
            async for m in agg.messages:
                if m.topic.value.endswith("/state"):
                    states.put_nowait(time.perf_counter())
                else:
                    replies.put_nowait(m.payload if isinstance(m.payload, bytes) else b"")

        pumper = asyncio.create_task(pump())
        await asyncio.wait_for(states.get(), 5)  # the retained state
        cmd = topics.command("1", "setpoint")

        rtt = []
        for i in range(n):
            t0 = time.perf_counter()
            await agg.publish(cmd, json.dumps({"request_id": i, "power_kw": 5}), qos=1)
            await asyncio.wait_for(replies.get(), 5)
            rtt.append(time.perf_counter() - t0)
        rows.append((f"command round trip, sequential (n={n})", _ms(rtt)))

        t0 = time.perf_counter()
        await asyncio.gather(*(agg.publish(cmd, json.dumps({"request_id": i, "power_kw": -3}),
                                           qos=1) for i in range(n)))
        for _ in range(n):
            await asyncio.wait_for(replies.get(), 10)
        elapsed = time.perf_counter() - t0
        rows.append((f"commands pipelined (n={n})", f"{n / elapsed:8.0f} commands/s"))

        lat = []
        for i in range(min(n, 50)):
            while not states.empty():
                states.get_nowait()
            t0 = time.perf_counter()
            port.state_ = dataclasses.replace(port.state_, soc=50.0 + (i + 1) / 100)
            bridge.notify_state()
            lat.append(await asyncio.wait_for(states.get(), 5) - t0)
        rows.append(("state change -> subscriber (notify_state)", _ms(lat)))
        pumper.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await pumper

    broker.stop()
    await asyncio.sleep(0.2)
    calls = []
    for i in range(1000):
        t0 = time.perf_counter()
        bridge.post_event("1", "fault", {"n": i})
        bridge.notify_state()
        calls.append(time.perf_counter() - t0)
    rows.append(("post_event + notify_state, broker down",
                 f"{statistics.median(calls) * 1e6:8.1f} us median, "
                 f"{max(calls) * 1e6:.0f} us max"))
    t0 = time.perf_counter()
    broker.start()
    await asyncio.wait_for(bridge.connected.wait(), 10)
    rows.append(("broker restart -> bridge online again",
                 f"{(time.perf_counter() - t0) * 1e3:8.0f} ms (backoff 0.05-0.2 s)"))
    await bridge.stop()
    if port.setpoints != 2 * n:
        raise SystemExit(f"lost commands: {port.setpoints} of {2 * n}")
    return rows


# -- setpoint -> next ChargeLoopRes, with the real charger ------------------------------------


def _pct(values: list[float], p: float) -> float:
    data = sorted(values)
    rank = max(1, -(-int(p * len(data)) // 100))
    return data[min(rank, len(data)) - 1]


def _lat_row(values: list[float]) -> str:
    return (f"{_pct(values, 50) * 1e3:8.2f} {_pct(values, 99) * 1e3:8.2f} "
            f"{max(values) * 1e3:8.2f}")


async def setpoint_latency(broker: Broker, n: int, loop_interval: float
                           ) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for service in ("DC_BPT", "AC_BPT"):
        rows += await _one_service(broker, service, n, loop_interval)
    return rows


async def _one_service(broker: Broker, service: str, n: int, loop_interval: float
                       ) -> list[tuple[str, str]]:
    from evse.aio.app import supply_limits
    from evse.aio.secc_server import SeccServer, Station
    from evse.aio.station_port import SeccStationPort
    from evse.protocol import events as ev
    from evse.protocol.config import SeccConfig, ServiceId
    from hal.backends.sim import SimBackend
    from simulators.ev import BatteryLink, Evcc, get_scenario
    from simulators.ev.client import run_session
    from simulators.ev.messages import maybe_value

    backend = SimBackend()
    station = Station.from_backends([backend], speedup=10.0)
    config = SeccConfig(evse_id="DE*BEN*E0000001", services=(ServiceId[service],),
                        limits=supply_limits(backend), allow_plain_tcp_iso20=True,
                        auto_authorize=True)
    server = SeccServer(config, station, address="127.0.0.1", port=0, poll_interval=0.01)
    port = SeccStationPort(server, station_id=STATION, plan_schedules=False)
    mqtt = MqttConfig(host="127.0.0.1", port=broker.port, reconnect_min_s=0.05,
                      reconnect_max_s=0.2, state_interval_s=0.5, telemetry_interval_s=5.0)
    bridge = MqttBridge(port, mqtt, STATION)
    port.bridge = bridge
    targets: list[tuple[float, float]] = []  # (perf_counter, target W)
    commanded: list[float] = []  # perf_counter when the port got the setpoint
    set_setpoint = port.set_setpoint

    def spy_setpoint(connector: str, watts: float | None) -> None:
        commanded.append(time.perf_counter())
        set_setpoint(connector, watts)

    port.set_setpoint = spy_setpoint  # type: ignore[method-assign]
    battery: Any = None
    if service == "DC_BPT":  # at the SECC: the target handed over with the ChargeLoopRes
        ctl = station.connectors[0].controller
        handle = ctl.handle_effect

        def spy_effect(effect: Any, now: float) -> Any:
            if isinstance(effect, ev.SetPowerTarget):
                targets.append((time.perf_counter(), effect.power))
            return handle(effect, now)

        ctl.handle_effect = spy_effect  # type: ignore[method-assign]
        battery = BatteryLink(backend.ev_battery, shared=True, on_contactors=lambda c:
                              setattr(backend, "ev_contactor_closed", c))
        scenario = get_scenario("dc_bpt_dynamic")
        ev_class: Any = Evcc
    else:  # at the EV: EVSETargetActivePower in the AC_ChargeLoopRes it received
        scenario = get_scenario("ac_bpt_dynamic")

        class AcEv(Evcc):
            def _on_AC_ChargeLoopRes(self, msg: Any, now: float) -> None:  # noqa: N802
                mode = (msg.bpt_dynamic_ac_cl_res_control_mode
                        or msg.dynamic_ac_cl_res_control_mode)
                target = maybe_value(getattr(mode, "evse_target_active_power", None))
                if target is not None:
                    targets.append((time.perf_counter(), target))
                super()._on_AC_ChargeLoopRes(msg, now)

        ev_class = AcEv
    scenario = scenario.replace(loop_interval=loop_interval, max_loops=1_000_000,
                                target_soc=99.0, min_soc=1.0, speedup=1.0,
                                ongoing_interval=0.01, precharge_interval=0.01)
    await server.start()
    port.start()
    bridge.start()
    await asyncio.wait_for(bridge.connected.wait(), 5)
    loop = asyncio.get_running_loop()
    ev_client = ev_class(scenario, battery=battery, epoch_offset=time.time() - loop.time())
    assert server.port is not None
    session = asyncio.create_task(run_session(scenario, host="127.0.0.1", port=server.port,
                                              evcc=ev_client))
    topics = Topics(STATION)
    latencies: list[float] = []
    to_charger: list[float] = []
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    try:
        deadline = time.monotonic() + 10
        while not targets and time.monotonic() < deadline:  # until the charge loop runs
            await asyncio.sleep(0.01)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"lat-{service}",
                                  socket_options=nodelay) as agg:
            for i in range(n):
                watts = (4000.0 + 10.0 * i) * (1 if i % 2 == 0 else -1)
                # publish at varying phases of the EV's loop (no lock-step with it)
                await asyncio.sleep(loop_interval * (0.37 + (i * 0.61) % 1.0))
                mark = len(targets)
                t0 = time.perf_counter()
                await agg.publish(topics.command("1", "setpoint"),
                                  json.dumps({"request_id": i, "power_kw": watts / 1000}),
                                  qos=1)
                end = time.monotonic() + 5
                while time.monotonic() < end:
                    hit = next((t for t, w in targets[mark:]
                                if abs(w - watts) <= 0.01 * abs(watts)), None)
                    if hit is not None:
                        latencies.append(hit - t0)
                        to_charger.append(commanded[-1] - t0)
                        break
                    await asyncio.sleep(0.0005)
                else:
                    raise SystemExit(f"{service}: target {watts} W never arrived")
    finally:
        session.cancel()
        with contextlib.suppress(BaseException):
            await session
        await server.close()
        await port.close()
        await bridge.stop()
    where = ("SetPowerTarget with the DC_ChargeLoopRes" if service == "DC_BPT"
             else "EVSETargetActivePower at the EV")
    return [(f"{service}: publish -> {where} (n={n})", _lat_row(latencies)),
            (f"{service}: publish -> charger has the setpoint", _lat_row(to_charger))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few repeats (smoke run)")
    ap.add_argument("--mosquitto", default=None, help="path of the mosquitto binary")
    ap.add_argument("--loop-interval", type=float, default=0.05,
                    help="the simulated EV's ChargeLoopReq period in s (default 0.05)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # no reconnect warnings in the table
    logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt: "pending publish calls"
    binary = args.mosquitto or next(
        (p for p in ("/usr/sbin/mosquitto",) if os.access(p, os.X_OK)),
        shutil.which("mosquitto"))
    if not binary:
        raise SystemExit("mosquitto not found: apt-get install mosquitto (or --mosquitto PATH)")
    n = 50 if args.quick else 1000
    n_loop = 20 if args.quick else 200
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(binary, Path(tmp))
        broker.start()
        try:
            rows = asyncio.run(run(broker, n))
            loop_rows = asyncio.run(setpoint_latency(broker, n_loop, args.loop_interval))
        finally:
            broker.stop()
    version = subprocess.run([binary, "-h"], capture_output=True, text=True).stdout
    print(f"MQTT bridge benchmark: Python {platform.python_version()}, aiomqtt "
          f"{aiomqtt.__version__ if hasattr(aiomqtt, '__version__') else '?'}, "
          f"{version.splitlines()[0] if version else 'mosquitto'}, {os.cpu_count()} CPUs")
    print()
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'median':>8} {'p95':>8} {'max':>8}  (ms, or as given)")
    print("-" * (width + 40))
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print()
    print(f"Setpoint -> next ChargeLoopRes with the real charger and the simulated EV "
          f"(EV loop interval {args.loop_interval * 1e3:g} ms)")
    width = max(len(r[0]) for r in loop_rows)
    print(f"{'measurement':<{width}}  {'p50':>8} {'p99':>8} {'max':>8}  (ms)")
    print("-" * (width + 40))
    for label, value in loop_rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
