"""Acceptance of issue 10 on real links (root): veth pairs between network namespaces,
created and removed by the tests. The charger (a SeccServer on the sim HAL, one
`ConnectorWiring` per connector) lives in its namespace with one interface per connector;
each car is another process (`python -m simulators.link_ev`) in its own namespace doing
SLAC over an AF_PACKET raw socket, SDP on its interface and the -20 session.

Skipped without root; failed without root when CI=true (tests/aio/netns.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from evse.aio.admission import AdmissionConfig
from evse.aio.connector_link import ConnectorWiring, LinkSpec
from evse.aio.netif import link_local_address
from evse.aio.secc_server import SeccServer, Station
from hal.backends.sim import SimBackend
from hal.interfaces import PilotState
from simulators.ev import Evcc, get_scenario
from tests.aio.helpers import secc_config
from tests.aio.netns import in_netns, require_root

SPEEDUP = 10.0
LOOSE = dict(match_response=1.0, match_sequence=2.0, time_out_units=30)
SAFE_BUDGET = 3.0  # s from the unplug to open contactors (sim board, loaded machine)
EV_TIMEOUT = 120.0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass(frozen=True)
class Topology:
    evse_ns: str
    cars: tuple[tuple[str, str], ...]  # (car namespace, charger-side interface) per connector


@contextlib.contextmanager
def charger_with_cars(n: int) -> Iterator[Topology]:
    """One charger namespace with interfaces plc1..plcN, car i's namespace with plc0 on the
    other end of plc<i>: one PLC link per connector."""
    tag = uuid.uuid4().hex[:6]
    evse_ns = f"evse-{tag}"
    cars = tuple((f"car{i}-{tag}", f"plc{i}") for i in range(1, n + 1))
    made = [evse_ns]
    try:
        _ip("netns", "add", evse_ns)
        for i, (car_ns, evse_if) in enumerate(cars, 1):
            _ip("netns", "add", car_ns)
            made.append(car_ns)
            _ip("link", "add", f"s{i}{tag}", "type", "veth", "peer", "name", f"e{i}{tag}")
            _ip("link", "set", f"s{i}{tag}", "netns", evse_ns, "name", evse_if)
            _ip("link", "set", f"e{i}{tag}", "netns", car_ns, "name", "plc0")
            for ns, ifname in ((evse_ns, evse_if), (car_ns, "plc0")):
                # no duplicate address detection: the link-local address is usable at once
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                                f"net.ipv6.conf.{ifname}.accept_dad=0"],
                               check=True, capture_output=True, timeout=30)
                _ip("-n", ns, "link", "set", ifname, "up")
        with in_netns(evse_ns):
            deadline = time.monotonic() + 10
            for _, evse_if in cars:  # wait for the link-local addresses
                while True:
                    try:
                        link_local_address(evse_if)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
        yield Topology(evse_ns, cars)
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@dataclass
class Charger:
    server: SeccServer
    station: Station
    wirings: list[ConnectorWiring]

    def board(self, i: int) -> object:
        return self.station.connectors[i].backend.board


@contextlib.asynccontextmanager
async def charger(topo: Topology, **server: object) -> AsyncIterator[Charger]:
    station = Station.from_backends([SimBackend(ev_contactor_closed=True) for _ in topo.cars],
                                  speedup=SPEEDUP)  # the car is another process
    for connector, (_, evse_if) in zip(station.connectors, topo.cars, strict=True):
        connector.interface = evse_if
    srv = SeccServer(secc_config(), station, port=0, tls=None, sdp_port=15118,
                     poll_interval=0.01, **server)  # type: ignore[arg-type]
    wirings = [ConnectorWiring(c, srv, LinkSpec(interface=c.interface, modem="simulated",
                                                slac=LOOSE, poll_interval=0.02))
               for c in station.connectors]
    with in_netns(topo.evse_ns):  # listeners, SDP and raw sockets in the charger's namespace
        await srv.start()
        for w in wirings:
            await w.start()
    try:
        yield Charger(srv, station, wirings)
    finally:
        for w in wirings:
            await w.close()
        await srv.close()


async def car(ns: str, *extra: str, code: int = 0) -> dict[str, object]:
    """The car process in its namespace: SLAC, SDP, -20 DC_BPT over plain TCP."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-m", "simulators.link_ev",
        "--interface", "plc0", "--plain", "--scenario", "dc_bpt_scheduled",
        "--loop-interval", "0.05", "--max-loops", "44", "--speedup", str(SPEEDUP),
        "--slack", "4", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), EV_TIMEOUT)
    finally:  # never leave the car process behind (timeout, cancellation)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == code, (proc.returncode, out.decode(), err.decode()[-3000:])
    result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def until(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.01)


def listener_port(srv: SeccServer, interface: str) -> int:
    for name, sock in srv._servers:
        if name == f"tcp@{interface}":
            port: int = sock.getsockname()[1]
            return port
    raise AssertionError(f"no listener on {interface}")


def flood(ns: str, address: str, port: int, n: int) -> list[socket.socket]:
    """`n` idle TCP connections from the car's namespace to the charger's listener."""
    socks = []
    with in_netns(ns):
        scope = socket.if_nametoindex("plc0")
        for _ in range(n):
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect((address, port, 0, scope))
            socks.append(s)
    return socks


def ask_for_a_connector(socks: list[socket.socket], request: bytes) -> int:
    """Each still-open socket sends a supportedAppProtocol request; how many the charger
    closed (refused) within their timeout."""
    closed = 0
    for s in socks:
        try:
            s.sendall(request)
            s.settimeout(5)
            if s.recv(4096) == b"":
                closed += 1
        except (ConnectionError, TimeoutError):
            closed += 1
    return closed


async def test_plug_in_slac_sdp_dc_bpt_session_unplug() -> None:
    require_root()
    with charger_with_cars(1) as topo:
        async with charger(topo) as ch:
            board = ch.board(0)
            board.plug_car()  # type: ignore[attr-defined]  # pilot B: 5 %, SLAC listens
            await until(lambda: board.pwm_duty == 5.0, 10, "5 % duty")  # type: ignore[attr-defined]
            result = await car(topo.cars[0][0])
            assert result["success"], result
            assert result["service_id"] == 6  # DC_BPT
            wiring = ch.wirings[0]
            assert result["nid"] == wiring.slac.core.nid.hex()  # type: ignore[union-attr]
            summary = ch.server.sessions[-1]
            assert summary.connector == "1" and summary.service_id == 6
            assert summary.energy_in_wh > 0 or summary.energy_out_wh > 0
            board.set_ev_pilot_state(PilotState.A)  # type: ignore[attr-defined]  # unplug
            unplugged = time.monotonic()
            ctl = ch.station.connectors[0].controller
            await until(lambda: ctl.safe_state_reached and board.pwm_duty == 100.0,  # type: ignore[attr-defined]
                        SAFE_BUDGET, "safe state after the unplug")
            assert time.monotonic() - unplugged < SAFE_BUDGET
            await until(lambda: summary.unplugged_at is not None, 2, "unplug in the summary")
            assert summary.plugged_at is not None and summary.slac_matched_at is not None
            assert summary.plugged_at < summary.slac_matched_at < summary.unplugged_at  # type: ignore[operator]


async def test_unplug_mid_session_over_veth_gives_the_safe_state_within_budget() -> None:
    require_root()
    with charger_with_cars(1) as topo:
        async with charger(topo) as ch:
            board = ch.board(0)
            board.plug_car()  # type: ignore[attr-defined]
            ctl = ch.station.connectors[0].controller
            session = asyncio.create_task(car(topo.cars[0][0], "--max-loops", "2000"))
            try:
                await until(lambda: ch.station.connectors[0].busy
                            and abs(ctl.hal.power_supply.setpoint[1]) > 0, 60, "charging")
                board.set_ev_pilot_state(PilotState.A)  # type: ignore[attr-defined]
                unplugged = time.monotonic()
                await until(lambda: ctl.safe_state_reached, SAFE_BUDGET, "safe state")
                assert time.monotonic() - unplugged < SAFE_BUDGET
                await until(lambda: not ch.station.connectors[0].busy, 5, "connection closed")
                summary = ch.server.sessions[-1]
                assert summary.unplugged_at is not None and "unplugged" in (summary.reason or "")
            finally:
                with contextlib.suppress(AssertionError, TimeoutError):
                    await asyncio.wait_for(session, 30)  # the car sees its session cut
                session.cancel()


async def test_misbehaving_cars_then_a_good_one_charges() -> None:
    """A car that never answers CM_ATTEN_CHAR.IND, then one with a wrong RunID: no match,
    no V2G connection; the third attempt (a good car) matches and charges."""
    require_root()
    with charger_with_cars(1) as topo:
        async with charger(topo) as ch:
            ch.board(0).plug_car()  # type: ignore[attr-defined]
            car_ns = topo.cars[0][0]
            for flag in ("--no-atten-rsp", "--wrong-run-id"):
                bad = await car(car_ns, flag, "--slac-tries", "1", code=3)
                assert not bad["success"] and "SLAC" in str(bad["reason"]), bad
                assert not ch.wirings[0].session_allowed
            wiring = ch.wirings[0]
            await until(lambda: [e.name for e in wiring.events].count("slac_attempt_failed")
                        == 2, 15, "two failed SLAC attempts")
            assert ch.server.sessions_total == 0
            good = await car(car_ns)
            assert good["success"], good
            assert ch.server.sessions[-1].connector == "1"


async def test_idle_flood_on_one_link_never_blocks_the_other_connector() -> None:
    require_root()
    with charger_with_cars(2) as topo:
        admission = AdmissionConfig(max_presession_per_listener=8, max_presession=64)
        async with charger(topo, admission=admission) as ch:
            (car1, if1), (car2, if2) = topo.cars
            with in_netns(topo.evse_ns):
                addr1 = str(link_local_address(if1))
            # connector 1's link is flooded with idle sockets (more than its listener's cap)
            idle = await asyncio.to_thread(flood, car1, addr1, listener_port(ch.server, if1),
                                           20)
            try:
                await asyncio.sleep(0.5)
                for i in (0, 1):
                    ch.board(i).plug_car()  # type: ignore[attr-defined]
                second = await car(car2)  # a car charges on connector 2 meanwhile
                assert second["success"], second
                assert [s.connector for s in ch.server.sessions] == ["2"]
                # connector 2 is free and its car still matched; requests on connector 1's
                # link (no SLAC match there) get nothing, and never connector 2
                assert ch.wirings[1].session_allowed and not ch.station.connectors[1].busy
                alive = [s for s in idle if s.fileno() >= 0][-6:]
                sap = Evcc(get_scenario("dc")).start(0.0)
                refused = await asyncio.to_thread(ask_for_a_connector, alive, sap)
                assert refused == len(alive)
                assert not ch.station.connectors[1].busy
                first = await car(car1)  # then a car charges on connector 1
                assert first["success"], first
                assert [s.connector for s in ch.server.sessions] == ["2", "1"]
                # each car paired with its own connector's modem
                assert first["nid"] == ch.wirings[0].slac.core.nid.hex()  # type: ignore[union-attr]
                assert second["nid"] == ch.wirings[1].slac.core.nid.hex()  # type: ignore[union-attr]
            finally:
                for s in idle:
                    s.close()


async def test_evse_secc_sim_plugged_pairs_with_a_car_in_another_namespace() -> None:
    """`evse secc --hal sim:plugged` (a process in the charger's namespace): pilot B at
    start, SLAC waits for the car's CM_SLAC_PARM.REQ on the interface, SDP, session."""
    require_root()
    with charger_with_cars(1) as topo:
        (car_ns, evse_if), = topo.cars
        secc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", topo.evse_ns, sys.executable, "-m", "evse", "secc",
            "--hal", "sim:plugged", "--interface", evse_if, "--allow-plain-tcp-iso20",
            "--sim-speedup", str(SPEEDUP), "--discharge-window", "1,2",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            assert secc.stdout is not None
            banner = b""
            while b"evse secc: pilot and SLAC" not in banner:
                line = await asyncio.wait_for(secc.stdout.readline(), 30)
                assert line, banner.decode()
                banner += line
            assert f"connector 1 on {evse_if} (modem simulated, SLAC)".encode() in banner
            result = await car(car_ns)
            assert result["success"] and result["service_id"] == 6, result
        finally:
            secc.terminate()
            out, _ = await asyncio.wait_for(secc.communicate(), 30)
        assert secc.returncode == 0, out.decode()[-3000:]
        assert "stopped after 1 session(s)" in out.decode()


STATION_TOML = """
[station]
id = "DE*EVS*E0000010"

[[connectors]]
id = 1
type = "DC"
services = ["DC", "DC_BPT"]
interface = "{interface}"
modem = "simulated"

[limits]
max_voltage = 500
max_charge_current = 100
max_charge_power = 50000
max_discharge_current = 100
max_discharge_power = 50000

[network]
interface = "{interface}"

[tls]
allow_plain_tcp_iso20 = true
"""


async def test_sim_hw_pilot_slac_sdp_session_unplug_across_processes(tmp_path: Path) -> None:
    """`evse sim-hw` (the MCU on a pty; the car's side of the pilot on its stdin),
    `evse secc --hal serial:...` with [[connectors]] interface in the charger's namespace,
    the car's SLAC + SDP + session in the car's namespace: four processes, one story."""
    require_root()
    link = tmp_path / "mcu"
    log = tmp_path / "secc.log"
    with charger_with_cars(1) as topo:
        (car_ns, evse_if), = topo.cars
        cfg = tmp_path / "station.toml"
        cfg.write_text(STATION_TOML.format(interface=evse_if))
        hw = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "evse", "sim-hw", "--pty-link", str(link), "--can", "none",
            "--ev-pilot", "A", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        secc = None
        assert hw.stdin is not None and hw.stdout is not None

        async def command(text: str, expect: str) -> str:
            assert hw.stdin is not None and hw.stdout is not None
            hw.stdin.write(text.encode() + b"\n")
            await hw.stdin.drain()
            while True:
                line = (await asyncio.wait_for(hw.stdout.readline(), 10)).decode()
                assert line, "sim-hw ended"
                if line.startswith(text.split()[0]) or expect in line:
                    return line

        async def duty(percent: str) -> None:
            deadline = time.monotonic() + 10
            while f"duty {percent} %" not in await command("status", "duty"):
                assert time.monotonic() < deadline, f"duty never {percent} %"
                await asyncio.sleep(0.05)

        try:
            while not link.is_symlink():
                await asyncio.sleep(0.05)
            with open(log, "w") as out:
                secc = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", topo.evse_ns, sys.executable, "-m", "evse", "secc",
                    "--config", str(cfg), "--hal", f"serial:{link},can:virtual+sim,sim",
                    "--allow-simulated-parts", "--allow-plain-tcp-iso20",
                    "--discharge-window", "1,2", stdout=out, stderr=asyncio.subprocess.STDOUT)
            deadline = time.monotonic() + 30
            while "evse secc: pilot and SLAC" not in log.read_text():
                assert secc.returncode is None and time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.05)
            await duty("100")  # no car: no PWM
            await command("plug", "plug")  # B: the charger answers with 5 %
            await duty("5")
            await command("ready", "ready")  # C: the car will ask for energy
            result = await car(car_ns)
            assert result["success"] and result["service_id"] == 6, result
            await command("unplug", "unplug")
            await duty("100")
            text = log.read_text()
            for event in ("pilot plugged", "pilot slac_matched", "pilot unplugged"):
                assert event in text, text
            assert text.index("pilot slac_matched") < text.index("pilot unplugged")
        finally:
            for proc in (secc, hw):
                if proc is not None and proc.returncode is None:
                    proc.terminate()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 10)
        assert secc is not None and secc.returncode == 0, log.read_text()[-3000:]
