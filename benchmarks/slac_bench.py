"""SLAC benchmark: time from pilot B to the SLAC match in SIL, and the charger's CPU per match.

    python benchmarks/slac_bench.py            # in-process medium (+ veth pair when root)
    python benchmarks/slac_bench.py --quick    # smoke run: few repeats, no veth

Rows:
- "B -> match (in-process)": the whole asyncio stack (ConnectorLink polling a simulated board
  every 20 ms, SlacLink, the simulated modem, the simulated car with its 20 ms batch
  interval), wall time from setting the car's pilot to B until `SessionAllowed("hlc")`.
  The standard's own timings (CM_SLAC_PARM.CNF 200 ms, sounding window 600 ms) are used.
- "B -> match (veth, raw sockets)": the same over AF_PACKET on a veth pair between two
  network namespaces (root only).
- "core CPU per match": process CPU time of `SlacEvse` alone (start, PARM, START_ATTEN x3,
  10 sounds + 10 profiles, ATTEN_CHAR.RSP, MATCH) on pre-built frames, no I/O.
- "B -> first V2G message (...)": the charger as `evse secc` wires it (a SeccServer on the sim
  HAL, `ConnectorWiring`: pilot, SLAC, the simulated modem), the car's pilot set to B, the
  car's SLAC, then (veth) SDP on the car's interface, TCP, supportedAppProtocolReq; wall time
  from B until the car has the supportedAppProtocolRes (SLAC budget included). In process the
  car connects over loopback without SDP (no IPv6 link there).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from evse.aio.slac_link import (  # noqa: E402
    ConnectorLink,
    FrameTransport,
    InProcessMedium,
    RawSocketTransport,
    SlacLink,
)
from evse.link import pilot as pl  # noqa: E402
from evse.link import slac_messages as m  # noqa: E402
from evse.link.slac import SlacConfig, SlacEvse  # noqa: E402
from hal.backends.sim import SimBackend  # noqa: E402
from hal.interfaces import PilotState  # noqa: E402
from simulators.plc_modem import PlcModemSim, SimulatedModemTransport  # noqa: E402
from simulators.slac_ev import ev_slac  # noqa: E402

EVSE_MAC = bytes.fromhex("020000000e5e")
CAR_MAC = bytes.fromhex("0a0000000ca1")
MODEM_MAC = bytes.fromhex("00b0520000aa")


async def plug_to_match(wire: FrameTransport, car: FrameTransport) -> float:
    backend = SimBackend()
    host = SimulatedModemTransport(wire, PlcModemSim(host_mac=wire.mac))
    async with SlacLink(host) as slac, \
            ConnectorLink(backend.board, slac, poll_interval=0.02) as link:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        backend.board.set_ev_pilot_state(PilotState.B)
        while backend.board.pwm_duty != 5.0:
            await asyncio.sleep(0.005)
        ev = asyncio.create_task(ev_slac(car))
        while not isinstance(await link.events.get(), pl.SessionAllowed):
            pass
        t1 = loop.time()
        await ev
    car.close()
    return t1 - t0


def in_process(repeats: int) -> list[float]:
    async def one() -> float:
        medium = InProcessMedium()
        return await plug_to_match(medium.port(EVSE_MAC), medium.port(CAR_MAC))
    return [asyncio.run(one()) for _ in range(repeats)]


def over_veth(repeats: int) -> list[float] | None:
    if os.geteuid() != 0:
        return None
    sys.path.insert(0, str(REPO))
    from tests.aio.netns import in_netns, veth_pair

    async def one() -> float:
        with veth_pair() as pair:
            with in_netns(pair.evse_ns):
                wire = RawSocketTransport(pair.evse_if)
            with in_netns(pair.ev_ns):
                car = RawSocketTransport(pair.ev_if)
            car.mac = CAR_MAC
            return await plug_to_match(wire, car)
    return [asyncio.run(one()) for _ in range(repeats)]


async def _charger(linked_if: str | None, wire: FrameTransport) -> tuple[object, object]:
    from evse.aio.connector_link import ConnectorWiring, LinkSpec
    from evse.aio.secc_server import SeccServer, Station
    from tests.aio.helpers import secc_config

    station = Station.from_backends([SimBackend(ev_contactor_closed=True)])
    station.connectors[0].interface = linked_if
    server = SeccServer(secc_config(), station, address=None if linked_if else "127.0.0.1",
                        port=0, sdp_port=15118 if linked_if else None, poll_interval=0.01)
    await server.start()
    wiring = ConnectorWiring(station.connectors[0], server,
                             LinkSpec(linked_if, "simulated", poll_interval=0.02),
                             transport=wire)
    await wiring.start()
    return server, wiring


async def _sap_exchange(host: str, port: int) -> None:
    from simulators.ev import Evcc, get_scenario

    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(Evcc(get_scenario("dc")).start(loop.time()))
    data = await asyncio.wait_for(reader.read(65536), 10)
    assert data, "no supportedAppProtocolRes"
    writer.close()


async def _plug_to_first(server: object, wiring: object, car: FrameTransport,
                         endpoint: object) -> float:
    backend = wiring.connector.backend  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    backend.board.set_ev_pilot_state(PilotState.B)
    while backend.board.pwm_duty != 5.0:
        await asyncio.sleep(0.002)
    await ev_slac(car)
    host, port = await endpoint()  # type: ignore[operator]
    await _sap_exchange(host, port)
    t1 = loop.time()
    car.close()
    await wiring.close()  # type: ignore[attr-defined]
    await server.close()  # type: ignore[attr-defined]
    return t1 - t0


def first_message_in_process(repeats: int) -> list[float]:
    async def one() -> float:
        medium = InProcessMedium()
        server, wiring = await _charger(None, medium.port(EVSE_MAC))

        async def endpoint() -> tuple[str, int]:
            return "127.0.0.1", server.port  # type: ignore[attr-defined]
        return await _plug_to_first(server, wiring, medium.port(CAR_MAC), endpoint)
    return [asyncio.run(one()) for _ in range(repeats)]


def first_message_over_veth(repeats: int) -> list[float] | None:
    if os.geteuid() != 0:
        return None
    import subprocess

    from evse.protocol.sdp import Security
    from simulators.ev.client import discover_secc
    from tests.aio.netns import in_netns, veth_pair

    async def one() -> float:
        with veth_pair() as pair:
            for ns, name in ((pair.evse_ns, pair.evse_if), (pair.ev_ns, pair.ev_if)):
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                                f"net.ipv6.conf.{name}.accept_dad=0"], check=True)
                subprocess.run(["ip", "-n", ns, "link", "set", name, "down"], check=True)
                subprocess.run(["ip", "-n", ns, "link", "set", name, "up"], check=True)
            await asyncio.sleep(0.2)
            with in_netns(pair.evse_ns):
                server, wiring = await _charger(pair.evse_if,
                                                RawSocketTransport(pair.evse_if))

            async def endpoint() -> tuple[str, int]:
                res = await discover_secc(pair.ev_if, security=Security.NONE)
                return f"{res.address}%{pair.ev_if}", res.port

            # the car's sockets (raw, SDP, TCP) are created in its namespace: this thread
            # stays there until the exchange is over (the charger's sockets exist already)
            with in_netns(pair.ev_ns):
                return await _plug_to_first(server, wiring, RawSocketTransport(pair.ev_if),
                                            endpoint)
    return [asyncio.run(one()) for _ in range(repeats)]


def core_frames() -> list[bytes]:
    run = b"\x42" * 8
    ev = lambda dst, msg: m.encode_frame(dst, CAR_MAC, msg)  # noqa: E731
    frames = [ev(m.BROADCAST, m.SlacParmReq(0, 0, run))]
    frames += [ev(m.BROADCAST, m.StartAttenCharInd(0, 0, 10, 6, 1, CAR_MAC, run))] * 3
    profile = m.encode_frame(EVSE_MAC, MODEM_MAC, m.AttenProfileInd(CAR_MAC, (20,) * 58))
    for left in range(9, -1, -1):
        frames.append(ev(m.BROADCAST, m.MnbcSoundInd(0, 0, m.Z17, left, run, m.Z8, b"r" * 16)))
        frames.append(profile)
    frames.append(ev(EVSE_MAC, m.AttenCharRsp(0, 0, CAR_MAC, run, m.Z17, m.Z17, 0)))
    frames.append(ev(EVSE_MAC, m.SlacMatchReq(0, 0, 0x3E, m.Z17, CAR_MAC, m.Z17, EVSE_MAC,
                                              run)))
    return frames


def core_cpu(matches: int) -> float:
    frames = core_frames()
    entropy = os.urandom(20)
    start = time.process_time()
    for _ in range(matches):
        slac = SlacEvse(SlacConfig(evse_mac=EVSE_MAC))
        slac.start(0.0, entropy)
        for i, frame in enumerate(frames):
            slac.receive_frame(frame, 0.01 * i)
        assert slac.matched is not None
    return (time.process_time() - start) / matches


def row(name: str, values: list[float] | None, unit: str, scale: float) -> str:
    if not values:
        return f"{name:<34} {'n/a':>10} {'n/a':>10} {'n/a':>10} {unit:>5}"
    return (f"{name:<34} {statistics.median(values) * scale:>10.1f} "
            f"{min(values) * scale:>10.1f} {max(values) * scale:>10.1f} {unit:>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 2 if args.quick else 10
    cpu = [core_cpu(20 if args.quick else 200) for _ in range(3)]
    inproc = in_process(repeats)
    veth = None if args.quick else over_veth(repeats)
    first = first_message_in_process(repeats)
    first_veth = None if args.quick else first_message_over_veth(repeats)
    print(f"SLAC benchmark ({'quick' if args.quick else 'full'}; python "
          f"{sys.version.split()[0]}; {os.cpu_count()} cpus; "
          f"load {os.getloadavg()[0]:.1f}; root={os.geteuid() == 0})")
    print(f"{'measure':<34} {'median':>10} {'min':>10} {'max':>10} {'unit':>5}")
    print(row("B -> match (in-process)", inproc, "ms", 1e3))
    print(row("B -> match (veth, raw sockets)", veth, "ms", 1e3))
    print(row("core CPU per match", cpu, "us", 1e6))
    print(row("B -> first V2G message (in-process)", first, "ms", 1e3))
    print(row("B -> first V2G msg (veth, SDP)", first_veth, "ms", 1e3))


if __name__ == "__main__":
    main()
