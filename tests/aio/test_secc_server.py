"""SeccServer over real loopback sockets: the simulated EV runs every scenario (TCP, and
TLS 1.3 for -20 DC and DC_BPT), SDP discovery, several connectors, and bad input from the
EV (each time the power stage reaches the safe state and the next session succeeds)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import exi_codec
from certs.make_pki import PkiFiles, make_pki
from evse.aio.netif import InterfaceError, link_local_address, parse_if_inet6
from evse.aio.secc_server import SeccServer, Station, TurnaroundStats
from evse.aio.tls import secc_context
from evse.protocol import events as ev
from evse.protocol.secc import SeccConnection
from evse.protocol.v2gtp import PayloadType, V2GTPReassembler, encode_frame
from hal.backends.sim import SimBackend
from simulators.ev import scenario_names
from simulators.ev.client import make_ssl_context, run_session
from simulators.ev.messages import frame as ev_frame
from tests.aio.helpers import (
    HOST,
    Rig,
    assert_safe_sequence,
    ev_until_loop,
    fast_scenario,
    read_until_eof,
    running,
    secc_config,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def _session(rig: Rig, name: str, *, i: int = 0, **kw: Any) -> Any:
    scenario = fast_scenario(name)
    link = rig.link(i, dc=scenario.service.is_dc)
    return await asyncio.wait_for(
        run_session(scenario, host=HOST, port=rig.port, battery=link, **kw), 30)


async def _press_estop_in_the_loop(rig: Rig) -> None:
    """The operator hits the emergency stop once the charge loop runs."""
    while True:
        conn = rig.server.connection("1")
        if conn is not None and "ChargeLoop" in str(conn.state):
            await asyncio.sleep(0.15)
            rig.connector().backend.board.press_emergency_stop_button()
            return
        await asyncio.sleep(0.01)


# -- every scenario ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", scenario_names())
async def test_every_scenario_over_tcp(name: str) -> None:
    async with running() as rig:
        press = None
        if fast_scenario(name).expect_evse_stop:
            press = asyncio.create_task(_press_estop_in_the_loop(rig))
        report = await _session(rig, name)
        assert report.success, report.summary()
        if press is not None:
            await press
            assert report.reason == "evse_terminate"
        await rig.wait_safe()
        assert_safe_sequence(rig)
        sessions = list(rig.server.sessions)
        assert sessions and sessions[-1].evcc_id == "WEVSESTACKSIM0001"
        assert sessions[-1].failed is (name == "emergency_stop")
        if name == "pause_resume":
            assert [s.paused for s in sessions] == [True, False] and sessions[1].resumed
        if name == "dc_renegotiation":  # EV-initiated: a second ScheduleExchange mid-session
            assert report.request_sequence.count("ScheduleExchangeReq") == 2
        assert report.energy_charged_wh > 0
        if fast_scenario(name).expect_discharge:
            assert report.energy_discharged_wh > 0
            assert sum(s.energy_out_wh for s in sessions) > 0  # the meter saw it too
        assert rig.server.errors == 0
        assert len(rig.server.turnaround) >= len(report.messages) - 1


@pytest.mark.parametrize("name", ["dc", "dc_bpt_scheduled"])
async def test_dc_and_dc_bpt_over_tls13(name: str, pki: PkiFiles) -> None:
    ctx = secc_context(pki.secc_chain, pki.secc_key).context
    async with running(tls=ctx, plain=False, allow_plain_tcp_iso20=False) as rig:
        report = await _session(rig, name, tls=True,
                                ssl_context=make_ssl_context(pki.root_cert))
        assert report.success, report.summary()
        assert rig.server.sessions[-1].tls
        if name == "dc_bpt_scheduled":
            assert report.energy_discharged_wh > 0 and report.energy_charged_wh > 0
        await rig.wait_safe()
        assert_safe_sequence(rig)


async def test_plain_tcp_iso20_is_refused_unless_allowed() -> None:
    async with running(allow_plain_tcp_iso20=False) as rig:
        report = await _session(rig, "dc")
        assert not report.success
        assert not rig.server.sessions  # no session started: the SAP answer was FAILED


async def test_sdp_announces_the_server_and_the_ev_finds_it() -> None:
    station = Station.from_backends([SimBackend()], speedup=10.0)
    server = SeccServer(secc_config(), station, address="::1", port=0, sdp_port=0,
                        sdp_bind="::1", poll_interval=0.01)
    async with server:
        assert server.sdp_port
        scenario = fast_scenario("dc", max_loops=3)
        # the EV's battery is the one the station's power stage charges (a DC session must
        # move energy to pass)
        report = await asyncio.wait_for(run_session(
            scenario, sdp_address="::1", sdp_port=server.sdp_port, sdp_retries=20,
            battery=Rig(server, station).link()), 20)
        assert report.success, report.summary()
        assert server.sessions[-1].peer.startswith("[::1]")


# -- several connectors ------------------------------------------------------------------------


async def test_two_evs_at_once_on_two_connectors_and_a_third_is_refused() -> None:
    async with running(2) as rig:
        scenario = fast_scenario("dc", max_loops=15)
        runs = [asyncio.create_task(run_session(scenario, host=HOST, port=rig.port,
                                                battery=rig.link(i))) for i in (0, 1)]
        # both carry a session (SessionSetup done): never evicted for a newcomer
        while not all(c.handler is not None and c.handler.summary is not None
                      for c in rig.station.connectors):
            await asyncio.sleep(0.005)
        third = await asyncio.wait_for(run_session(fast_scenario("dc"), host=HOST,
                                                   port=rig.port), 10)
        assert not third.success and rig.server.refused == 1
        reports = await asyncio.gather(*runs)
        assert all(r.success for r in reports), [r.summary() for r in reports]
        assert {s.connector for s in rig.server.sessions} == {"1", "2"}
        for i in (0, 1):
            await rig.wait_safe(i)
            assert_safe_sequence(rig, i)


# -- bad input from the EV ---------------------------------------------------------------------


def _frame(payload_type: int, payload: bytes) -> bytes:
    return encode_frame(PayloadType(payload_type), payload)


def _with_session_id(data: bytes, session_id: bytes) -> bytes:
    frames = list(V2GTPReassembler().frames(data))
    msg = exi_codec.decode(frames[0].payload, "iso20_dc")  # type: ignore[union-attr]
    msg = msg.replace(header=msg.header.replace(session_id=session_id))
    return _frame(PayloadType.DC, exi_codec.encode(msg))


def _failed_code(data: bytes) -> str:
    frames = [f for f in V2GTPReassembler().frames(data) if not isinstance(f, Exception)]
    assert frames, data
    msg = exi_codec.decode(frames[-1].payload, "iso20_dc")
    return str(msg.response_code)


FAULTS = ["malformed_header", "truncated_then_disconnect", "oversized", "undecodable_exi",
          "out_of_sequence", "unknown_session_id", "silent_ev", "disconnect_mid_loop"]


@pytest.mark.parametrize("fault", FAULTS)
async def test_bad_input_leaves_the_charger_safe_and_ready(fault: str) -> None:
    async with running() as rig:
        scenario = fast_scenario("dc", max_loops=50)
        evcc, reader, writer, next_req = await ev_until_loop(rig, scenario, 3, rig.link())
        ctl = rig.connector().controller
        assert ctl.status().contactors_closed and ctl.status().current > 1.0  # under load
        t_sent = time.monotonic()
        expect_code = None
        if fault == "malformed_header":
            writer.write(b"\x02\xfd\x80\x04\x00\x00\x00\x04abcd")
        elif fault == "truncated_then_disconnect":
            writer.write(next_req[: len(next_req) // 2])
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
        elif fault == "oversized":
            writer.write(b"\x01\xfe\x80\x04" + (1 << 24).to_bytes(4, "big") + b"x" * 1000)
        elif fault == "undecodable_exi":
            writer.write(_frame(PayloadType.DC, b"\x80\xff\xfe\xfd\xfc\x00\x01"))
            expect_code = "FAILED"
        elif fault == "out_of_sequence":
            writer.write(ev_frame(evcc._req_cable_check(asyncio.get_running_loop().time())))
            expect_code = "FAILED_SequenceError"
        elif fault == "unknown_session_id":
            writer.write(_with_session_id(next_req, b"\x13" * 8))
            expect_code = "FAILED_UnknownSession"
        elif fault == "silent_ev":
            pass  # the SECC's charge-loop sequence timeout must fire
        elif fault == "disconnect_mid_loop":
            writer.close()
        rest = b""
        if not writer.is_closing():
            rest = await read_until_eof(reader)
            closed_after = time.monotonic() - t_sent
            if expect_code is not None:
                assert _failed_code(rest).startswith(expect_code)
                # after a FAILED response the SECC waits close_after_session_stop (0.3 s)
                assert closed_after >= 0.25
            else:
                assert rest == b""
            writer.close()
        await rig.wait_safe()
        assert_safe_sequence(rig)
        last = rig.server.sessions[-1]
        assert last.failed, last
        assert rig.server.errors == 0
        # the same connector serves a new session
        report = await _session(rig, "dc")
        assert report.success, report.summary()
        await rig.wait_safe()
        assert_safe_sequence(rig)


async def test_secc_closes_no_earlier_than_close_after_session_stop() -> None:
    """An EV that stays connected after SessionStopRes is closed by the SECC after
    `close_after_session_stop` (5 s by the standard, 0.3 s in these tests), not before."""
    from simulators.ev import Evcc, Failed, Finished, SendData

    async with running() as rig:
        loop = asyncio.get_running_loop()
        evcc = Evcc(fast_scenario("dc", max_loops=3), battery=rig.link(),
                    epoch_offset=time.time() - loop.time())
        reader, writer = await asyncio.open_connection(HOST, rig.port)
        writer.write(evcc.start(loop.time()))
        finished_at = None
        while finished_at is None:
            deadline = evcc.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                effects = evcc.handle_timeout(loop.time())
            else:
                assert data, "closed before SessionStopRes"
                effects = evcc.receive_data(data, loop.time())
            for e in effects:
                if isinstance(e, SendData):
                    writer.write(e.data)
                elif isinstance(e, Finished):
                    finished_at = time.monotonic()
                elif isinstance(e, Failed):
                    raise AssertionError(e.reason)
        assert await read_until_eof(reader) == b""
        waited = time.monotonic() - finished_at
        writer.close()
        assert 0.25 <= waited < 2.0, waited
        await rig.wait_safe()
        assert not rig.server.sessions[-1].failed


async def test_a_crash_inside_one_connection_is_isolated(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    original = SeccConnection.receive_data
    armed = {"on": False}

    def exploding(self: SeccConnection, data: bytes, now: float) -> list[ev.Effect]:
        if armed["on"]:
            raise RuntimeError("bug in the protocol core")
        return original(self, data, now)

    monkeypatch.setattr(SeccConnection, "receive_data", exploding)
    async with running() as rig:
        evcc, reader, writer, next_req = await ev_until_loop(rig, fast_scenario("dc"), 2,
                                                             rig.link())
        armed["on"] = True
        writer.write(next_req)
        assert await read_until_eof(reader) == b""
        writer.close()
        await rig.wait_safe()
        assert_safe_sequence(rig)
        assert rig.server.errors == 1
        assert "internal error" in (rig.server.sessions[-1].reason or "")
        armed["on"] = False
        report = await _session(rig, "dc")
        assert report.success, report.summary()


async def test_graceful_close_puts_a_charging_connector_in_the_safe_state() -> None:
    async with running() as rig:
        evcc, reader, writer, _ = await ev_until_loop(rig, fast_scenario("dc"), 2, rig.link())
        await rig.server.close()
        assert await read_until_eof(reader) == b""
        writer.close()
        ctl = rig.connector().controller
        assert ctl.safe_state_reached
        assert_safe_sequence(rig)
        assert rig.server.sessions[-1].failed


async def test_authorization_hook_can_grant_later_or_deny() -> None:
    async def slow_yes(request: ev.RequestAuthorization, connector: str) -> bool:
        assert request.method == "EIM" and connector == "1"
        await asyncio.sleep(0.2)
        return True

    async with running(auto_authorize=False) as rig:
        rig.server.authorize = slow_yes
        report = await _session(rig, "dc")
        assert report.success
        assert report.request_sequence.count("AuthorizationReq") >= 2  # Ongoing first
        rig.server.authorize = lambda request, connector: False
        report = await _session(rig, "dc")
        assert not report.success and "authorization refused" in report.reason


async def test_session_record_turns_into_a_report(tmp_path: Path) -> None:
    async with running() as rig:
        report = await _session(rig, "dc_bpt_scheduled")
        assert report.success
        summary = rig.server.sessions[-1]
        assert summary.energy_in_wh > 0 and summary.energy_out_wh > 0
        assert summary.service_id == 6 and summary.bidirectional
        assert summary.requests == len(report.messages) - 1  # all but supportedAppProtocol
        assert summary.turnaround(50) is not None and summary.samples
        record = summary.to_report_record("DE*EVS*E0000001")
        assert record.energy_in_kwh == pytest.approx(summary.energy_in_wh / 1000)
        assert record.protocol == "ISO15118-20 DC_BPT"
        assert summary.to_dict()["turnaround_p99_ms"] > 0


# -- small parts -------------------------------------------------------------------------------


def test_turnaround_percentiles() -> None:
    stats = TurnaroundStats()
    for ns in range(1, 101):
        stats.add(ns * 1000, charge_loop=ns > 50)
    assert stats.percentile(50) == pytest.approx(50e-6)
    assert stats.percentile(99) == pytest.approx(99e-6)
    assert stats.percentile(50, charge_loop=True) == pytest.approx(75e-6)
    assert TurnaroundStats().percentile(50) is None


def test_link_local_address_from_proc(tmp_path: Path) -> None:
    text = (
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe80000000000000020000fffe000001 02 40 20 c0     eth1\n"
        "20010db8000000000000000000000001 02 40 00 80     eth1\n"
        "fe80000000000000020000fffe000002 02 40 20 40     eth1\n"  # tentative
    )
    found = parse_if_inet6(text, "eth1")
    assert [str(a) for a in found] == ["fe80::200:ff:fe00:1", "fe80::200:ff:fe00:2"]
    assert parse_if_inet6(text, "lo") == []
    with pytest.raises(InterfaceError):
        link_local_address("no-such-if0")
    proc = tmp_path / "if_inet6"
    proc.write_text(text.replace("eth1", "lo"))
    with pytest.raises(InterfaceError):  # lo has only ::1, no link-local address
        link_local_address("lo", proc_file=tmp_path / "missing")
