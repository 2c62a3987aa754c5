"""Bad input and silence: malformed frames, undecodable EXI, sequence and session errors,
timeouts on a fake clock, lost connections. The charger always ends in a safe state."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exi_codec
from evse.protocol import events as ev
from evse.protocol.config import ControlMode, ServiceId
from evse.protocol.iso20.states import State
from evse.protocol.v2gtp import PayloadType, encode_frame
from exi_codec.schemas import iso20, iso20_dc
from tests.protocol.evcc import Ev, R, assert_safe_end, config, dc_to_loop, kinds, of, response
from tests.protocol.requests import build

SCHEDULED = ControlMode.SCHEDULED


def ready() -> Ev:
    x = Ev.connect()
    x.sap()
    x.setup()
    return x


_HEADER = struct.Struct(">BBHI")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(_HEADER.pack(0x02, 0xFD, PayloadType.COMMON, 4) + b"abcd", id="version"),
        pytest.param(_HEADER.pack(0x01, 0xFF, PayloadType.COMMON, 4) + b"abcd", id="inverse"),
        pytest.param(_HEADER.pack(0x01, 0xFE, PayloadType.COMMON, 0), id="empty-payload"),
        pytest.param(encode_frame(PayloadType.SAP, b"\x80\x00"), id="sap-after-negotiation"),
        pytest.param(encode_frame(PayloadType.WPT, b"\x80\x00"), id="wpt-not-offered"),
        pytest.param(encode_frame(PayloadType.SCHEDULE_RENEGOTIATION, b"x"), id="side-stream"),
        pytest.param(encode_frame(PayloadType.SDP_REQ, b"\x10\x00"), id="sdp-on-stream"),
        pytest.param(encode_frame(0x1234, b"junk"), id="unknown-type"),
    ],
)
def test_invalid_v2gtp_header_is_discarded_without_an_answer(bad: bytes) -> None:
    x = ready()
    assert x.feed(bad) == []
    assert not x.conn.closed
    assert x.authorize().response_code == "OK"  # the stream is still in sync


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(encode_frame(PayloadType.COMMON, b"\x80\x00"), id="common-before-sap"),
        pytest.param(encode_frame(PayloadType.DC, b"\x80\x00"), id="dc-before-sap"),
        pytest.param(_HEADER.pack(0x01, 0x01, PayloadType.SAP, 6) + bytes(6), id="inverse"),
        pytest.param(_HEADER.pack(0x01, 0xFE, PayloadType.SAP, 0), id="empty-payload"),
    ],
)
def test_invalid_frame_before_the_negotiation_is_discarded(bad: bytes) -> None:
    x = Ev.connect()
    assert x.feed(bad) == []
    assert x.sap() is not None and x.conn.session is not None


def test_ignored_frames_do_not_reset_the_sequence_timer() -> None:
    x = ready()
    deadline = x.conn.next_deadline()
    x.feed(encode_frame(0x1234, b"junk"), dt=30.0)
    assert x.conn.next_deadline() == deadline


def test_too_many_ignored_frames_close_the_connection_in_a_safe_state() -> None:
    cfg = config(max_ignored_frames=5)
    x = Ev.connect(cfg)
    x.sap()
    x.setup()
    junk = encode_frame(0x1234, b"junk")
    assert x.feed(junk * 5) == []  # the limit itself is still tolerated
    assert x.authorize().response_code == "OK"  # a valid message resets the count
    effects = x.feed(_HEADER.pack(0x02, 0xFD, PayloadType.COMMON, 0) * 6)
    assert kinds(effects) == ["StopPower", "OpenContactors", "SessionEnded", "CloseConnection"]
    close = of(effects, ev.CloseConnection)[0]
    assert close.after_s == 0.0 and "6 V2GTP frames" in close.reason
    assert x.conn.closed and x.feed(junk) == []


def test_too_many_ignored_bytes_close_the_connection() -> None:
    x = Ev.connect(config(max_ignored_bytes=1000))
    x.sap()
    x.setup()
    assert x.feed(encode_frame(0x1234, bytes(992))) == []  # exactly 1000 bytes
    effects = x.feed(encode_frame(0x1234, b"x"))
    assert_safe_end(effects)
    assert "1009 bytes" in of(effects, ev.CloseConnection)[0].reason


def test_junk_before_any_session_closes_without_power_effects() -> None:
    x = Ev.connect()
    effects = x.feed(encode_frame(0x1234, b"") * 65)
    assert kinds(effects) == ["CloseConnection"]


def test_oversized_message_closes() -> None:
    x = ready()
    effects = x.feed(struct.pack(">BBHI", 1, 0xFE, PayloadType.COMMON, 65537))
    assert_safe_end(effects)
    assert effects[-1] == ev.CloseConnection(0.0)


def test_max_payload_comes_from_the_config() -> None:
    x = Ev.connect(config(max_payload=16))
    res = x.sap()  # the SAP request is longer than 16 bytes
    assert res is None and x.conn.closed


def test_message_split_over_many_segments_and_pipelined() -> None:
    x = Ev.connect()
    x.sap()
    frame = encode_frame(
        PayloadType.COMMON, exi_codec.encode(iso20.SessionSetupReq(header=x.header(), evccid="EV"))
    )
    for byte in frame[:-1]:
        assert x.feed(bytes([byte]), dt=0.001) == []
    res = response(x.feed(frame[-1:]))
    assert res.response_code == "OK_NewSessionEstablished"
    x.session_id = bytes(res.header.session_id)
    two = b"".join(
        encode_frame(PayloadType.COMMON, exi_codec.encode(m))
        for m in (
            iso20.AuthorizationSetupReq(header=x.header()),
            iso20.AuthorizationReq(
                header=x.header(),
                selected_authorization_service="EIM",
                eim_a_req_authorization_mode=iso20.EIM_AReqAuthorizationModeType(),
            ),
        )
    )
    effects = x.feed(two)
    assert kinds(effects) == ["SendData", "SendData"] and x.conn.state == State.SERVICE_DISCOVERY


def test_truncated_message_then_silence_is_a_sequence_timeout() -> None:
    x = ready()
    frame = encode_frame(
        PayloadType.COMMON, exi_codec.encode(iso20.AuthorizationSetupReq(header=x.header()))
    )
    assert x.feed(frame[:-3]) == []  # waits for the rest
    deadline = x.conn.next_deadline()
    assert deadline == pytest.approx(0.2 + 60.0)
    assert x.conn.handle_timeout(deadline - 0.01) == []
    effects = x.conn.handle_timeout(deadline)
    assert_safe_end(effects)
    assert "sequence timeout" in of(effects, ev.SessionEnded)[0].reason
    assert effects[-1] == ev.CloseConnection(0.0)


def test_unknown_payload_type_is_skipped() -> None:
    x = ready()
    assert x.feed(encode_frame(0x1234, b"junk")) == []
    assert x.authorize().response_code == "OK"


def test_undecodable_known_request_gets_failed_in_its_message_set() -> None:
    x = ready()
    x.authorize()
    data = exi_codec.encode(build("DC_ChargeLoopReq", x.session_id))[:-4]
    effects = x.feed(encode_frame(PayloadType.DC, data))
    res = response(effects)
    assert type(res).__name__ == "DC_ChargeLoopRes" and res.response_code == "FAILED"
    assert bytes(res.header.session_id) == x.session_id
    assert_safe_end(effects)


def test_garbage_exi_gets_failed_of_the_expected_message_set() -> None:
    x = ready()
    effects = x.feed(encode_frame(PayloadType.COMMON, b"\x80\xff\xff\xff"))
    res = response(effects)
    assert type(res).__name__ == "AuthorizationSetupRes" and res.response_code == "FAILED"
    assert_safe_end(effects)


def test_a_response_from_the_ev_is_not_a_request() -> None:
    x = ready()
    msg = iso20.SessionStopRes(header=x.header(), response_code="OK")
    res = response(x.feed(encode_frame(PayloadType.COMMON, exi_codec.encode(msg))))
    assert type(res).__name__ == "AuthorizationSetupRes" and res.response_code == "FAILED"


def test_undecodable_sap_request_fails_negotiation() -> None:
    x = Ev.connect()
    effects = x.feed(encode_frame(PayloadType.SAP, b"\x80\x00\x01"))
    assert response(effects).response_code == "Failed_NoNegotiation"
    assert kinds(effects) == ["SendData", "CloseConnection"] and x.conn.closed


def test_iso20_needs_tls_unless_allowed() -> None:
    x = Ev.connect(config(allow_plain_tcp_iso20=False))
    assert x.sap().response_code == "Failed_NoNegotiation" and x.conn.closed
    y = Ev.connect(config(allow_plain_tcp_iso20=False), tls=True)
    assert y.sap().response_code == "OK_SuccessfulNegotiation"


def test_out_of_sequence_request() -> None:
    x = ready()
    res, effects = x.dc_loop(SCHEDULED, False)
    assert type(res).__name__ == "DC_ChargeLoopRes"
    assert res.response_code == "FAILED_SequenceError"
    assert_safe_end(effects)


def test_unknown_session_id() -> None:
    x = ready()
    x.session_id = bytes.fromhex("0102030405060708")
    res, effects = x.send(iso20.AuthorizationSetupReq(header=x.header()))
    assert res.response_code == "FAILED_UnknownSession"
    assert bytes(res.header.session_id) == b"\x01" * 8  # ours, not the EV's
    assert_safe_end(effects)


def test_silent_ev_in_the_charge_loop() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, SCHEDULED)
    x.dc_loop(SCHEDULED, False)
    assert x.conn.next_deadline() == pytest.approx(x.now + 0.5)
    effects = x.conn.handle_timeout(x.now + 0.5)
    assert_safe_end(effects)
    assert x.conn.closed and x.conn.next_deadline() is None


def test_late_request_after_the_deadline_is_not_answered() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, SCHEDULED)
    x.dc_loop(SCHEDULED, False)
    res, effects = x.dc_loop(SCHEDULED, False, dt=0.6)
    assert res is None and "sequence timeout" in of(effects, ev.SessionEnded)[0].reason


def test_no_sap_within_communication_setup_time() -> None:
    x = Ev.connect(now=10.0)
    assert x.conn.next_deadline() == 28.0
    assert x.conn.handle_timeout(28.0) == [ev.CloseConnection(0.0)]


def test_no_session_setup_within_communication_setup_time() -> None:
    x = Ev.connect()
    x.sap()
    effects = x.conn.handle_timeout(18.0)
    assert kinds(effects) == ["StopPower", "OpenContactors", "CloseConnection"]


def test_ev_disconnects_mid_loop() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC_BPT, SCHEDULED)
    x.dc_loop(SCHEDULED, True, current=-20)
    effects = x.event(ev.ConnectionLost())
    assert kinds(effects) == ["StopPower", "OpenContactors", "SessionEnded"]
    assert of(effects, ev.SessionEnded) == [ev.SessionEnded("connection lost", True)]
    assert x.event(ev.ConnectionLost()) == []
    assert x.conn.next_deadline() is None


def test_disconnect_after_a_normal_end_is_quiet() -> None:
    x = ready()
    x.session_stop()
    assert x.event(ev.ConnectionLost()) == []


def cable_check_started() -> Ev:
    x = ready()
    x.authorize(), x.select(ServiceId.DC, SCHEDULED), x.dc_cpd(False)
    x.schedule_exchange(SCHEDULED)
    assert x.cable_check().evse_processing == "Ongoing"
    return x


def test_cable_check_timeout() -> None:
    x = cable_check_started()
    started = x.conn.session.cable_check_started
    while x.now < started + 39.5:
        assert x.cable_check().evse_processing == "Ongoing"  # 0.1 s apart
    assert x.conn.next_deadline() == pytest.approx(started + 40.0)
    effects = x.conn.handle_timeout(started + 40.0)
    assert_safe_end(effects) and "cable check" in of(effects, ev.SessionEnded)[0].reason


def test_stale_cable_check_result_is_ignored() -> None:
    x = ready()
    x.event(ev.CableCheckFinished(isolation_ok=True))  # nothing is being checked
    x.authorize(), x.select(ServiceId.DC, SCHEDULED), x.dc_cpd(False)
    x.schedule_exchange(SCHEDULED)
    assert x.cable_check().evse_processing == "Ongoing"
    assert x.cable_check().evse_processing == "Ongoing"


def test_insulation_fault_fails_the_cable_check() -> None:
    x = cable_check_started()
    x.event(ev.CableCheckFinished(isolation_ok=False))
    res, effects = x.send(iso20_dc.DC_CableCheckReq(header=x.header(iso20_dc)))
    assert res.response_code == "FAILED" and res.evse_processing == "Finished"
    assert_safe_end(effects)


def test_ongoing_authorization_times_out() -> None:
    x = Ev.connect(config(auto_authorize=False))
    x.sap(), x.setup(), x.authorize()
    first = x.now
    while x.now < first + 54.5:
        assert x.authorization().evse_processing.startswith("Ongoing")
    effects = x.conn.handle_timeout(first + 55.0)
    assert_safe_end(effects) and "Ongoing" in of(effects, ev.SessionEnded)[0].reason


def test_precharge_target_outside_the_limits_is_clamped() -> None:
    """A 20 kV target (Josev's EV sends one): precharge to the highest voltage both sides allow;
    the power stage is never asked for more, and the session goes on."""
    x = cable_check_started()
    x.event(ev.CableCheckFinished(isolation_ok=True))
    x.cable_check()
    m = iso20_dc
    res, effects = x.send(m.DC_PreChargeReq(
        header=x.header(m), ev_processing="Ongoing", ev_present_voltage=R(m, 380),
        ev_target_voltage=R(m, 20_000)))
    assert res.response_code == "OK"
    assert not x.conn.closed
    [start] = of(effects, ev.StartPreCharge)
    session = x.conn.session
    assert session is not None and session.ev is not None
    highest = min(x.conn.charger.limits.max_voltage, session.ev.max_voltage)
    assert start.target_voltage == highest < 20_000


def test_wrong_service_parameter_set_and_unoffered_service() -> None:
    x = ready()
    x.authorize()
    x.send(iso20.ServiceDiscoveryReq(header=x.header()))
    res, effects = x.send(iso20.ServiceDetailReq(header=x.header(), service_id=3))
    assert res.response_code == "FAILED_ServiceIDInvalid"
    z = ready()
    z.authorize()
    z.send(iso20.ServiceDiscoveryReq(header=z.header()))
    z.send(iso20.ServiceDetailReq(header=z.header(), service_id=2))
    res, _ = z.send(
        iso20.ServiceSelectionReq(
            header=z.header(),
            selected_energy_transfer_service=iso20.SelectedServiceType(
                service_id=2, parameter_set_id=7
            ),
        )
    )
    assert res.response_code == "FAILED_ServiceSelectionInvalid"


def test_timeouts_are_configurable() -> None:
    from evse.protocol.iso20.timeouts import Timeouts

    x = Ev.connect(config(timeouts=Timeouts(sequence=5.0)))
    x.sap()
    assert x.conn.next_deadline() == pytest.approx(x.now + 5.0)


def test_send_data_carries_the_performance_deadline() -> None:
    x = ready()
    x.authorize()
    x.send(iso20.ServiceDiscoveryReq(header=x.header()))
    _, effects = x.send(iso20.ServiceDetailReq(header=x.header(), service_id=2))
    assert of(effects, ev.SendData)[0].deadline == pytest.approx(x.now + 4.5)


def test_a_crashing_schedule_provider_gives_the_default_schedule() -> None:
    """Issue 11 item 4: an energy-policy error never fails the session (it used to: FAILED)."""
    class Broken:
        def schedules(self, *args: object) -> None:
            raise RuntimeError("database down")

    x = Ev.connect(config(schedule_provider=Broken()))
    x.sap(), x.setup(), x.authorize(), x.select(ServiceId.DC, SCHEDULED), x.dc_cpd(False)
    res, effects = x.send(build("ScheduleExchangeReq", x.session_id))
    assert res.response_code == "OK" and res.evse_processing == "Finished"
    assert res.scheduled_se_res_control_mode is not None
    assert not of(effects, ev.SessionEnded) and not x.conn.closed
    (warning,) = of(effects, ev.ReportWarning)
    assert warning.code == "energy_policy" and "database down" in warning.message


@settings(max_examples=200, deadline=None)
@given(
    payload_type=st.sampled_from([PayloadType.COMMON, PayloadType.DC, PayloadType.AC]),
    payload=st.binary(max_size=64),
)
def test_random_payloads_never_crash(payload_type: int, payload: bytes) -> None:
    x = ready()
    effects = x.feed(encode_frame(payload_type, b"\x80" + payload))
    if x.conn.closed:
        assert_safe_end(effects)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_bit_flipped_requests_never_crash(data: st.DataObject) -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC_BPT, SCHEDULED)
    name = data.draw(st.sampled_from(["DC_ChargeLoopReq", "PowerDeliveryReq", "SessionStopReq"]))
    body = bytearray(exi_codec.encode(build(name, x.session_id)))
    for bit in data.draw(st.lists(st.integers(8, len(body) * 8 - 1), min_size=1, max_size=3)):
        body[bit // 8] ^= 1 << (bit % 8)
    pt = PayloadType.DC if name.startswith("DC_") else PayloadType.COMMON
    effects = x.feed(encode_frame(pt, bytes(body)), dt=0.05)
    res = response(effects)
    if x.conn.closed:
        assert_safe_end(effects)
    else:
        assert res is not None and not str(res.response_code).startswith("FAILED")
