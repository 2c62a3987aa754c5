"""The asyncio EV client over real sockets: a tiny in-test SECC on loopback answers with the
scripted responder (plain TCP, TLS 1.3 with the test PKI, SDP over ::1, reconnects)."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from evse.protocol.sdp import SdpServerConfig, answer
from simulators.ev import EvTimeouts, get_scenario
from simulators.ev.client import (
    EvClientError,
    add_ev_arguments,
    discover_secc,
    main_ev,
    make_ssl_context,
    run_session,
)
from tests.simulators.scripted_secc import ScriptedSecc

SLACK = EvTimeouts().scaled(6.0)  # loaded CI machines: no spurious EV timeouts


def scenario(name: str = "dc", **kw: Any) -> Any:
    kw.setdefault("max_loops", 3)
    kw.setdefault("loop_interval", 0.01)
    kw.setdefault("ongoing_interval", 0.01)
    kw.setdefault("precharge_interval", 0.01)
    kw.setdefault("loop_sim_seconds", 30.0)
    kw.setdefault("timeouts", SLACK)
    return get_scenario(name, **kw)


@dataclass
class FakeServer:
    secc: ScriptedSecc
    server: asyncio.base_events.Server
    host: str
    port: int
    connections: int = 0
    close_on: str | None = None  # close the connection on receiving this request
    peers: list[Any] = field(default_factory=list)


async def start_secc(
    secc: ScriptedSecc | None = None,
    *,
    host: str = "127.0.0.1",
    ssl_ctx: ssl.SSLContext | None = None,
    close_on: str | None = None,
) -> FakeServer:
    state: dict[str, FakeServer] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fake = state["fake"]
        fake.connections += 1
        fake.secc.new_connection()
        fake.peers.append(writer.get_extra_info("peername"))
        try:
            while data := await reader.read(65536):
                out = fake.secc.feed(data)
                if fake.close_on and fake.secc.names and fake.secc.names[-1] == fake.close_on:
                    break
                if out:
                    writer.write(out)
                    await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, 0, ssl=ssl_ctx)
    port = server.sockets[0].getsockname()[1]
    fake = FakeServer(secc or ScriptedSecc(), server, host, port, close_on=close_on)
    state["fake"] = fake
    return fake


@pytest.fixture
async def secc_server() -> AsyncIterator[FakeServer]:
    fake = await start_secc()
    yield fake
    fake.server.close()
    await fake.server.wait_closed()


async def test_dc_session_over_tcp(secc_server: FakeServer) -> None:
    report = await run_session(scenario(), host=secc_server.host, port=secc_server.port)
    assert report.success, report.reason
    assert report.loops == 3
    assert report.request_sequence == secc_server.secc.names
    assert all(rtt >= 0 for _, rtt in report.rtts)
    assert len(report.rtts) == len(report.messages)
    assert report.duration > 0
    assert report.energy_charged_wh > 0
    assert report.session_id == "2EFA1894DC7B9011"
    # Header TimeStamps are wall-clock Unix seconds.
    import time

    stamp = secc_server.secc.requests[1].header.time_stamp
    assert abs(stamp - time.time()) < 60


async def test_ac_bpt_session_over_tcp(secc_server: FakeServer) -> None:
    report = await run_session(scenario("ac_bpt", max_loops=14, loop_sim_seconds=10.0),
                               host=secc_server.host, port=secc_server.port)
    assert report.success, report.reason
    assert report.energy_discharged_wh > 0


async def test_pause_resume_opens_a_new_connection(secc_server: FakeServer) -> None:
    report = await run_session(scenario("pause_resume", max_loops=6, pause_duration=0.05),
                               host=secc_server.host, port=secc_server.port)
    assert report.success, report.reason
    assert secc_server.connections == 2
    assert report.connections == 2
    assert len(set(secc_server.peers)) == 2  # a new TCP connection, not the old one


async def test_charge_loop_pacing_is_real_time(secc_server: FakeServer) -> None:
    report = await run_session(scenario(max_loops=4, loop_interval=0.1),
                               host=secc_server.host, port=secc_server.port)
    sends = [m.sent_at for m in report.messages if m.request == "DC_ChargeLoopReq"]
    gaps = [b - a for a, b in zip(sends, sends[1:], strict=False)]
    assert all(g >= 0.099 for g in gaps), gaps


async def test_secc_closing_the_connection_fails_the_session() -> None:
    fake = await start_secc(close_on="DC_CableCheckReq")
    try:
        report = await run_session(scenario(), host=fake.host, port=fake.port)
    finally:
        fake.server.close()
    assert not report.success
    assert report.reason == "connection closed by the SECC in CableCheck"


async def test_secc_not_answering_the_loop_times_out() -> None:
    fake = await start_secc(ScriptedSecc(silent={"DC_ChargeLoopReq"}))
    try:
        report = await run_session(scenario(timeouts=EvTimeouts(charge_loop=0.3)),
                                   host=fake.host, port=fake.port)
    finally:
        fake.server.close()
    assert not report.success
    assert report.reason.startswith("no DC_ChargeLoopRes within 0.3 s")


async def test_connection_refused_is_a_failed_report() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = await run_session(scenario(), host="127.0.0.1", port=port)
    assert not report.success and report.reason.startswith("cannot connect")


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from certs.make_pki import make_pki

    return make_pki(tmp_path_factory.mktemp("ev_tls"), "secp521r1")


def secc_tls_context(pki: Any) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(pki.secc_chain, pki.secc_key)
    return ctx


async def test_tls13_session_trusting_the_v2g_root(pki: Any) -> None:
    fake = await start_secc(ssl_ctx=secc_tls_context(pki))
    try:
        report = await run_session(scenario(), host=fake.host, port=fake.port, tls=True,
                                   ca_file=pki.root_cert)
    finally:
        fake.server.close()
    assert report.success, report.reason


async def test_tls_with_an_untrusted_root_fails(pki: Any, tmp_path: Path) -> None:
    from certs.make_pki import make_pki

    other = make_pki(tmp_path, "secp521r1")
    fake = await start_secc(ssl_ctx=secc_tls_context(pki))
    try:
        report = await run_session(scenario(), host=fake.host, port=fake.port, tls=True,
                                   ca_file=other.root_cert)
    finally:
        fake.server.close()
    assert not report.success and "cannot connect" in report.reason
    assert "CERTIFICATE_VERIFY_FAILED" in report.reason


def test_ssl_context_is_tls13_only(pki: Any) -> None:
    ctx = make_ssl_context(pki.root_cert)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3
    assert ctx.maximum_version is ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode is ssl.CERT_REQUIRED


async def test_tls_without_ca_is_refused() -> None:
    with pytest.raises(EvClientError, match="V2G root CA"):
        await run_session(scenario(), host="127.0.0.1", port=1, tls=True)


# -- SDP ------------------------------------------------------------------------------------------


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")


class _SdpResponder(asyncio.DatagramProtocol):
    def __init__(self, config: SdpServerConfig, drop_first: int = 0) -> None:
        self.config = config
        self.drop = drop_first
        self.requests = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.requests += 1
        if self.drop > 0:
            self.drop -= 1
            return
        reply = answer(data, self.config)
        if reply is not None:
            self.transport.sendto(reply, addr)


@needs_ipv6
async def test_sdp_then_tcp_over_ipv6_loopback() -> None:
    import ipaddress

    fake = await start_secc(host="::1")
    loop = asyncio.get_running_loop()
    cfg = SdpServerConfig(ipaddress.IPv6Address("::1"), fake.port, tls_available=False,
                          plain_allowed=True)
    transport, responder = await loop.create_datagram_endpoint(
        lambda: _SdpResponder(cfg, drop_first=2), local_addr=("::1", 0))
    sdp_port = transport.get_extra_info("sockname")[1]
    try:
        report = await run_session(scenario(), sdp_address="::1", sdp_port=sdp_port)
    finally:
        transport.close()
        fake.server.close()
    assert report.success, report.reason
    assert responder.requests == 3  # two unanswered requests were retried


@needs_ipv6
async def test_sdp_tls_required_but_only_plain_offered() -> None:
    import ipaddress

    loop = asyncio.get_running_loop()
    cfg = SdpServerConfig(ipaddress.IPv6Address("::1"), 4242, tls_available=False,
                          plain_allowed=True)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _SdpResponder(cfg), local_addr=("::1", 0))
    sdp_port = transport.get_extra_info("sockname")[1]
    try:
        res = await discover_secc(None, address="::1", port=sdp_port)
        assert res.port == 4242
        with pytest.raises(EvClientError, match="TLS required"):
            await run_session(scenario(), tls=True, sdp_address="::1", sdp_port=sdp_port,
                              ca_file="unused.pem")
    finally:
        transport.close()


@needs_ipv6
async def test_sdp_gives_up() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))  # nobody answers on this port
        port = s.getsockname()[1]
        with pytest.raises(EvClientError, match="no SDP response after 3 requests"):
            await discover_secc(None, address="::1", port=port, timeout=0.02, retries=3)


# -- CLI ------------------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    return add_ev_arguments(argparse.ArgumentParser()).parse_args(argv)


async def test_main_ev_runs_a_scenario_and_writes_json(
    secc_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    ns = parse([
        "--host", secc_server.host, "--port", str(secc_server.port), "--scenario", "ev_stop",
        "--loop-interval", "0.01", "--loop-sim-seconds", "60", "--soc", "40",
        "--timeout-scale", "6", "--json", str(out),
    ])
    assert await main_ev(ns) == 0
    data = json.loads(out.read_text())
    assert data["success"] is True and data["scenario"] == "ev_stop"
    assert data["initial_soc"] == pytest.approx(40.0)
    assert data["rtts"] and data["states"][-1] == "Finished"
    assert "scenario ev_stop: OK" in capsys.readouterr().out


async def test_main_ev_exit_codes(secc_server: FakeServer) -> None:
    assert await main_ev(parse(["--scenario", "dc"])) == 2  # neither SDP interface nor host
    assert await main_ev(parse(["--host", "127.0.0.1"])) == 2  # host without port
    secc_server.secc.overrides["ServiceDetailReq"] = lambda req, res: res.replace(
        response_code="FAILED")
    ns = parse(["--host", secc_server.host, "--port", str(secc_server.port),
                "--timeout-scale", "6"])
    assert await main_ev(ns) == 1


async def test_main_ev_lists_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert await main_ev(parse(["--list-scenarios"])) == 0
    assert "dc_bpt_scheduled" in capsys.readouterr().out


def test_scenario_from_args_overrides() -> None:
    from simulators.ev.client import scenario_from_args

    cfg = scenario_from_args(parse([
        "--scenario", "dc_bpt_dynamic", "--control-mode", "scheduled", "--loops", "7",
        "--target-soc", "90", "--capacity", "80", "--random-session-id", "--evcc-id", "X1",
        "--speedup", "30",
    ]))
    assert cfg.control_mode == "scheduled" and cfg.max_loops == 7
    assert cfg.target_soc == 90 and cfg.battery.capacity_kwh == 80
    assert cfg.zero_session_id is False and cfg.evcc_id == "X1" and cfg.speedup == 30
