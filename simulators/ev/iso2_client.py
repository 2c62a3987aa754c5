"""The simulated -2 EV over real connections: SDP (or --host/--port), plain TCP, the sans-IO
`Iso2Evcc` driven until it is done. `evse ev --protocol iso2` runs it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time

from evse.protocol.v2gtp import HEADER_SIZE
from simulators.ev.client import Endpoint, _close, _connect, _resolve_endpoint
from simulators.ev.evcc import Reconnect, SendData
from simulators.ev.iso2_evcc import ISO2_SCENARIOS, Done, Iso2Evcc, Iso2Scenario

log = logging.getLogger(__name__)
LOOP_REQUESTS = frozenset({"CurrentDemandReq", "ChargingStatusReq"})


class Iso2Run:
    """The outcome of one run: the EV's verdict and the response times it measured."""

    def __init__(self, done: Done, rtts: list[tuple[str, float]], connections: int) -> None:
        self.done = done
        self.rtts = rtts
        self.connections = connections

    @property
    def success(self) -> bool:
        return self.done.success

    def summary(self) -> str:
        loop = sorted(t for name, t in self.rtts if name in LOOP_REQUESTS)
        p99 = loop[min(len(loop) - 1, int(len(loop) * 0.99))] * 1e3 if loop else 0.0
        lines = [f"ISO 15118-2 session: {'OK' if self.success else 'FAILED'} "
                 f"({self.done.reason})",
                 f"  requests {len(self.rtts)}, charge loop {len(loop)}, "
                 f"loop response p99 {p99:.1f} ms, connections {self.connections}"]
        lines += [f"  {req:32} {code}" for req, code in self.done.log]
        return "\n".join(lines)


async def drive_iso2(evcc: Iso2Evcc, endpoint: Endpoint, *, connect_timeout: float = 5.0,
                     response_timeout: float = 2.0, repeat_interval: float = 0.02) -> Iso2Run:
    """Run `evcc` against `endpoint` until it is done. A repeated request (Ongoing, PreCharge,
    the charge loop) waits `repeat_interval` first, as real EVs pace them."""
    loop = asyncio.get_running_loop()
    rtts: list[tuple[str, float]] = []
    writer = None
    try:
        reader, writer = await _connect(endpoint, connect_timeout)
        outbox: list[SendData] = [SendData(evcc.start(loop.time()), "supportedAppProtocolReq")]
        last = ""
        while True:
            out = outbox.pop(0)
            if out.message == last and out.message:
                await asyncio.sleep(repeat_interval)
            last = out.message
            writer.write(out.data)
            await writer.drain()
            sent = loop.time()
            header = await asyncio.wait_for(reader.readexactly(HEADER_SIZE),
                                            response_timeout)
            length = int.from_bytes(header[4:8], "big")
            body = await asyncio.wait_for(reader.readexactly(length), response_timeout)
            rtts.append((out.message, loop.time() - sent))
            for effect in evcc.receive_data(header + body, loop.time()):
                if isinstance(effect, Done):
                    return Iso2Run(effect, rtts, evcc.connections)
                if isinstance(effect, SendData):
                    outbox.append(effect)
                elif isinstance(effect, Reconnect):
                    await _close(writer)
                    await asyncio.sleep(effect.delay)
                    reader, writer = await _connect(endpoint, connect_timeout)
                    outbox.append(SendData(evcc.start(loop.time()), "supportedAppProtocolReq"))
            if not outbox:
                return Iso2Run(Done(False, "no request to send", tuple(evcc.log)), rtts,
                               evcc.connections)
    except (TimeoutError, asyncio.IncompleteReadError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Iso2Run(Done(False, reason, tuple(evcc.log)), rtts, evcc.connections)
    finally:
        await _close(writer)


async def run_iso2_session(scenario: Iso2Scenario, *, host: str | None, port: int | None,
                           interface: str | None = None, response_timeout: float = 2.0,
                           repeat_interval: float = 0.02) -> Iso2Run:
    endpoint = await _resolve_endpoint(
        host=host, port=port, interface=interface, tls=False, ssl_context=None, ca_file=None,
        cert_file=None, key_file=None, server_hostname=None, sdp_address=None, sdp_port=15118,
        sdp_retries=3)
    log.info("EV (ISO 15118-2) scenario %s -> %s:%d", scenario.name, endpoint.host,
             endpoint.port)
    return await drive_iso2(Iso2Evcc(scenario), endpoint, response_timeout=response_timeout,
                            repeat_interval=repeat_interval)


async def main_iso2_ev(ns: argparse.Namespace) -> int:
    """`evse ev --protocol iso2`: 0 ok, 1 session failed, 2 not run."""
    import sys

    name = ns.scenario if ns.scenario in ISO2_SCENARIOS else "iso2_dc"
    if ns.scenario not in (None, "dc") and ns.scenario not in ISO2_SCENARIOS:
        print(f"evse ev: -2 scenarios are {', '.join(ISO2_SCENARIOS)}", file=sys.stderr)
        return 2
    scenario = ISO2_SCENARIOS[name]
    if ns.loops:
        from dataclasses import replace

        scenario = replace(scenario, loops=ns.loops)
    started = time.monotonic()
    try:
        run = await run_iso2_session(scenario, host=ns.host, port=ns.port,
                                     interface=ns.interface,
                                     response_timeout=2.0 * ns.timeout_scale)
    except OSError as exc:
        print(f"evse ev: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(Exception):
        log.info("session took %.2f s", time.monotonic() - started)
    print(run.summary())
    return 0 if run.success else 1
