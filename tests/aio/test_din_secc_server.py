"""DIN SPEC 70121 over real loopback TCP against SeccServer (all three standards enabled,
the EV offering DIN only): a full DC session on the sim HAL, and bad input in the charge
loop (the power stage reaches the safe state, the next session succeeds)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import exi_codec
from evse.protocol.secc import SeccConnection
from evse.protocol.standards import DIN, STANDARDS
from evse.protocol.v2gtp import PayloadType, V2GTPReassembler, encode_frame
from exi_codec.schemas import din
from simulators.ev.client import run_session
from simulators.ev.din_evcc import DinEvcc, get_din_scenario
from simulators.ev.evcc import Failed, Finished, SendData
from tests.aio.helpers import HOST, Rig, assert_safe_sequence, read_until_eof, running

PROTOCOLS = tuple(n for n in ("iso20", "iso2", "din") if STANDARDS[n].factory is not None)


def fast(**kw: Any) -> Any:
    base: dict[str, Any] = dict(loop_interval=0.02, ongoing_interval=0.01, loops=10,
                                msg_timeout=8.0, loop_timeout=2.0)  # a loaded CI machine
    base.update(kw)
    return get_din_scenario("din_dc", **base)


async def din_session(rig: Rig, **kw: Any) -> Any:
    evcc = DinEvcc(fast(**kw), battery=rig.link())
    return await asyncio.wait_for(
        run_session(evcc.scenario, host=HOST, port=rig.port, tls=False,  # type: ignore[arg-type]
                    evcc=evcc), 30)  # type: ignore[arg-type]


async def test_din_dc_session_over_tcp_with_every_standard_enabled() -> None:
    async with running(protocols=PROTOCOLS) as rig:
        report = await din_session(rig)
        assert report.success, report.summary()
        assert report.protocol == DIN and report.energy_charged_wh > 0
        assert all(str(m.response_code).startswith("OK") for m in report.messages)
        await rig.wait_safe()
        assert_safe_sequence(rig)
        last = rig.server.sessions[-1]
        assert last.protocol == DIN and not last.failed
        assert last.energy_in_wh > 0
        assert last.to_report_record("S1").protocol.startswith("DIN SPEC 70121")
        assert rig.server.turnaround.loop  # CurrentDemand counted as the charge loop


async def _until_loop(rig: Rig, loops: int) -> tuple[DinEvcc, Any, Any, bytes]:
    """Run a DIN EV until its CurrentDemandReq number `loops + 1` is due; return it unsent."""
    loop = asyncio.get_running_loop()
    evcc = DinEvcc(fast(loops=50), battery=rig.link())
    reader, writer = await asyncio.open_connection(HOST, rig.port)
    writer.write(evcc.start(loop.time()))
    while True:
        deadline = evcc.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            data = await asyncio.wait_for(reader.read(65536), timeout)
        except TimeoutError:
            effects = evcc.handle_timeout(loop.time())
        else:
            effects = evcc.receive_data(data, loop.time())
        for e in effects:
            assert not isinstance(e, (Failed, Finished)), e
            assert isinstance(e, SendData)
            if e.message == "CurrentDemandReq" and evcc.loops >= loops:
                return evcc, reader, writer, e.data
            writer.write(e.data)


def _response_code(data: bytes) -> str:
    frames = [f for f in V2GTPReassembler(max_payload=65536).frames(data)
              if not isinstance(f, Exception)]
    msg = exi_codec.decode(frames[-1].payload, "din")
    body = next(v for v in msg.body if v is not None)
    return str(body.response_code)


def _with_session_id(frame: bytes, session_id: bytes) -> bytes:
    msg = exi_codec.decode(frame[8:], "din")
    msg = msg.replace(header=din.MessageHeaderType(session_id=session_id))
    return encode_frame(PayloadType.SAP, exi_codec.encode(msg))


@pytest.mark.parametrize("fault", ["undecodable_exi", "out_of_sequence", "unknown_session_id"])
async def test_bad_din_input_in_the_loop_leaves_the_charger_safe_and_ready(fault: str) -> None:
    async with running(protocols=PROTOCOLS) as rig:
        evcc, reader, writer, next_req = await _until_loop(rig, 3)
        ctl = rig.connector().controller
        assert ctl.status().contactors_closed and ctl.status().current > 1.0  # under load
        t_sent = time.monotonic()
        if fault == "undecodable_exi":
            writer.write(encode_frame(PayloadType.SAP, b"\x80\x9a\xff\xfe\xfd\xfc\x00\x01"))
            expect = "FAILED"
        elif fault == "out_of_sequence":
            req = din.V2G_Message(header=din.MessageHeaderType(session_id=evcc.session_id),
                                  body=din.BodyType(cable_check_req=din.CableCheckReqType(
                                      dc_ev_status=evcc._ev_status())))
            writer.write(encode_frame(PayloadType.SAP, exi_codec.encode(req)))
            expect = "FAILED_SequenceError"
        else:
            writer.write(_with_session_id(next_req, b"\x13" * 8))
            expect = "FAILED_UnknownSession"
        rest = await read_until_eof(reader)
        assert _response_code(rest).startswith(expect)
        assert time.monotonic() - t_sent >= 0.25  # closed after close_after_session_stop
        writer.close()
        await rig.wait_safe()
        assert_safe_sequence(rig)
        assert rig.server.sessions[-1].failed
        assert rig.server.errors == 0
        report = await din_session(rig)  # the same connector serves the next car
        assert report.success, report.summary()
        await rig.wait_safe()


def test_din_is_refused_over_tls() -> None:
    """DIN has no TLS: an EV offering only DIN over TLS gets Failed_NoNegotiation."""
    from tests.aio.helpers import secc_config

    conn = SeccConnection(secc_config(protocols=PROTOCOLS), tls=True, now=0.0)
    evcc = DinEvcc(fast())
    effects = conn.receive_data(evcc.start(0.0), 0.0)
    sent = [e for e in effects if hasattr(e, "data")]
    res = exi_codec.decode(sent[0].data[8:], "sap")
    assert str(res.response_code) == "Failed_NoNegotiation" and conn.closed


async def test_demo_runs_a_din_session_end_to_end(tmp_path: Any) -> None:
    import io

    from evse.aio.demo import DemoOptions, run_demo

    out = io.StringIO()
    code = await asyncio.wait_for(run_demo(DemoOptions(
        protocol="din", loops=5, loop_interval=0.02, speedup=20.0, quiet=True,
        reports=tmp_path), out), 60)
    text = out.getvalue()
    assert code == 0, text
    assert "Summary" in text and "DIN SPEC 70121" in text
    assert "bidirectional power transfer is ISO 15118-20 only" in text
    assert "result                   OK" in text


async def test_evse_ev_protocol_din_against_the_server(capsys: Any) -> None:
    from simulators.ev.client import add_ev_arguments, main_ev

    async with running(protocols=PROTOCOLS) as rig:
        import argparse

        # the stand-alone EV's side of the cable: current flows, its DC session moves energy
        rig.connector().backend.ev_contactor_closed = True

        ns = add_ev_arguments(argparse.ArgumentParser()).parse_args(
            ["--protocol", "din", "--host", HOST, "--port", str(rig.port), "--loops", "3",
             "--loop-interval", "0.02", "--timeout-scale", "4"])
        assert await asyncio.wait_for(main_ev(ns), 30) == 0
        await rig.wait_safe()
    assert "scenario din_dc: OK" in capsys.readouterr().out
