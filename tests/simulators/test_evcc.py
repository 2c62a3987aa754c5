"""The sans-IO EVCC against scripted SECC responses (generated classes and real vectors)."""

from __future__ import annotations

from typing import Any

import pytest

from evse.protocol.v2gtp import PayloadType, encode_frame
from exi_codec.schemas import iso20, iso20_dc, sap
from simulators.ev import (
    BatteryParams,
    Evcc,
    EvState,
    EvTimeouts,
    Failed,
    Finished,
    SendData,
    get_scenario,
)
from simulators.ev.messages import decode_payload, frame, rational, value_of
from tests.conftest import load_vectors
from tests.simulators.scripted_secc import (
    SESSION_ID,
    ScriptedSecc,
    SequenceSecc,
    drive,
    hdr,
    vector_message,
    vector_record,
    with_session,
)

HAVE_VECTORS = bool(load_vectors())
needs_vectors = pytest.mark.skipif(not HAVE_VECTORS, reason="../shared/vectors not available")

DC_FLOW = [
    "supportedAppProtocolReq", "SessionSetupReq", "AuthorizationSetupReq", "AuthorizationReq",
    "AuthorizationReq", "ServiceDiscoveryReq", "ServiceDetailReq", "ServiceSelectionReq",
    "DC_ChargeParameterDiscoveryReq", "ScheduleExchangeReq", "ScheduleExchangeReq",
    "DC_CableCheckReq", "DC_CableCheckReq", "DC_CableCheckReq",
]


def dc(**kw: Any) -> Any:
    kw.setdefault("loop_sim_seconds", 10.0)
    return get_scenario("dc", **kw)


def frames_of(data: bytes) -> list[Any]:
    from evse.protocol.v2gtp import V2GTPReassembler

    return list(V2GTPReassembler().frames(data))


# -- the first frame and byte-exact requests --------------------------------------------------


def test_start_sends_supported_app_protocol_offering_20_dc() -> None:
    ev = Evcc(dc())
    data = ev.start(0.0)
    (fr,) = frames_of(data)
    assert fr.payload_type is PayloadType.SAP
    req = decode_payload(fr.payload_type, fr.payload)
    assert type(req).__name__ == "supportedAppProtocolReq"
    (offer,) = req.app_protocol
    assert offer.protocol_namespace == "urn:iso:std:iso:15118:-20:DC"
    assert (offer.version_number_major, offer.version_number_minor) == (1, 0)
    assert offer.priority == 1
    assert ev.state is EvState.SUPPORTED_APP_PROTOCOL
    assert ev.next_deadline() == pytest.approx(2.0)  # V2G_EVCC_Msg_Timeout


def test_ac_scenario_offers_the_ac_namespace_and_both_when_configured() -> None:
    from simulators.ev.scenarios import NAMESPACE_AC, NAMESPACE_DC, AppProtocolOffer

    req = decode_payload(PayloadType.SAP, Evcc(get_scenario("ac")).start(0.0)[8:])
    assert [p.protocol_namespace for p in req.app_protocol] == [NAMESPACE_AC]
    both = (AppProtocolOffer(NAMESPACE_DC, 1, 1), AppProtocolOffer(NAMESPACE_AC, 2, 2))
    req = decode_payload(PayloadType.SAP, Evcc(dc(app_protocols=both)).start(0.0)[8:])
    assert [(p.schema_id, p.priority) for p in req.app_protocol] == [(1, 1), (2, 2)]


@needs_vectors
def test_session_setup_and_authorization_requests_match_real_vectors_byte_for_byte() -> None:
    setup = vector_record("iso20-SessionSetupReq-001")
    auth = vector_record("iso20-AuthorizationReq-001")
    ts = setup["decoded"]["SessionSetupReq"]["Header"]["TimeStamp"]
    ev = Evcc(dc(evcc_id="WMIV1234567890ABCDEX"), epoch_offset=ts - 10.0)
    ev.start(10.0)
    sap_res = sap.supportedAppProtocolRes(response_code="OK_SuccessfulNegotiation", schema_id=1)
    (out,) = ev.receive_data(frame(sap_res), 10.0)
    assert isinstance(out, SendData)
    assert out.data[:8] == encode_frame(PayloadType.COMMON, b"")[:4] + out.data[4:8]
    assert out.data[8:].hex() == setup["hex"]

    # AuthorizationReq-001 was sent in session F21915B9DDDC12D1 at 1691411798.
    a = auth["decoded"]["AuthorizationReq"]["Header"]
    sid = bytes.fromhex(a["SessionID"])
    ev2 = Evcc(dc(), epoch_offset=a["TimeStamp"] - 20.0)
    ev2.start(20.0)
    ev2.receive_data(frame(sap_res), 20.0)
    ev2.receive_data(frame(iso20.SessionSetupRes(
        header=hdr(iso20, sid), response_code="OK_NewSessionEstablished", evseid="X")), 20.0)
    auth_setup_res = with_session(vector_message("iso20-AuthorizationSetupRes-001"), sid)
    (out,) = ev2.receive_data(frame(auth_setup_res), 20.0)
    assert out.data[8:].hex() == auth["hex"]


@needs_vectors
def test_full_dc_session_against_real_response_vectors() -> None:
    """Responses are real -20 vectors (header SessionID aligned); ScheduleExchange (Scheduled)
    and the final CableCheck/PreCharge are built, since no vector has them."""

    def v(vid: str, **changes: Any) -> Any:
        msg = with_session(vector_message(vid))
        return msg.replace(**changes) if changes else msg

    schedule = iso20.ScheduleExchangeRes(
        header=hdr(iso20), response_code="OK", evse_processing="Finished",
        scheduled_se_res_control_mode=iso20.Scheduled_SEResControlModeType(schedule_tuple=(
            iso20.ScheduleTupleType(
                schedule_tuple_id=1,
                charging_schedule=iso20.ChargingScheduleType(power_schedule=iso20.PowerScheduleType(
                    time_anchor=0,
                    power_schedule_entries=iso20.PowerScheduleEntryListType(power_schedule_entry=(
                        iso20.PowerScheduleEntryType(duration=3600, power=rational(iso20, 1000)),
                    )),
                )),
            ),
        )),
    )
    responses = [
        vector_message("sap-supportedAppProtocolRes-001"),
        vector_message("iso20-SessionSetupRes-001"),  # assigns 2EFA1894DC7B9011
        v("iso20-AuthorizationSetupRes-001"),
        v("iso20-AuthorizationRes-003"),  # Ongoing
        v("iso20-AuthorizationRes-001"),  # Finished
        v("iso20-ServiceDiscoveryRes-001"),  # services 2 and 6
        v("iso20-ServiceDetailRes-003"),  # set 0 Dynamic, set 1 Scheduled
        v("iso20-ServiceSelectionRes-001"),
        v("iso20_dc-DC_ChargeParameterDiscoveryRes-002"),
        schedule,
        v("iso20_dc-DC_CableCheckRes-001"),  # Ongoing
        v("iso20_dc-DC_CableCheckRes-001", evse_processing="Finished"),
        v("iso20_dc-DC_PreChargeRes-001"),  # 400 V
        v("iso20_dc-DC_PreChargeRes-001"),
        v("iso20-PowerDeliveryRes-001"),
        v("iso20_dc-DC_ChargeLoopRes-004"),
        v("iso20_dc-DC_ChargeLoopRes-001"),
        v("iso20_dc-DC_ChargeLoopRes-004"),
        v("iso20-PowerDeliveryRes-002"),
        v("iso20_dc-DC_WeldingDetectionRes-001"),  # 0 V
        v("iso20_dc-DC_WeldingDetectionRes-003"),
        v("iso20-SessionStopRes-001"),
    ]
    secc = SequenceSecc(responses)
    # OCV 398 V at 90 % SOC: within 10 V of the vector's 400 V precharge voltage.
    scenario = dc(max_loops=3, target_soc=95.0, battery=BatteryParams(soc=0.9))
    out = drive(Evcc(scenario), secc)
    assert isinstance(out.effect, Finished), out.effect
    assert secc.names == [
        "supportedAppProtocolReq", "SessionSetupReq", "AuthorizationSetupReq",
        "AuthorizationReq", "AuthorizationReq", "ServiceDiscoveryReq", "ServiceDetailReq",
        "ServiceSelectionReq", "DC_ChargeParameterDiscoveryReq", "ScheduleExchangeReq",
        "DC_CableCheckReq", "DC_CableCheckReq", "DC_PreChargeReq", "DC_PreChargeReq",
        "PowerDeliveryReq", "DC_ChargeLoopReq", "DC_ChargeLoopReq", "DC_ChargeLoopReq",
        "PowerDeliveryReq", "DC_WeldingDetectionReq", "DC_WeldingDetectionReq",
        "SessionStopReq",
    ]
    reqs = secc.requests
    assert all(r.header.session_id == SESSION_ID for r in reqs[2:])
    assert reqs[1].header.session_id == bytes(8)
    selection = reqs[7].selected_energy_transfer_service
    assert (selection.service_id, selection.parameter_set_id) == (2, 1)
    assert [r.ev_processing for r in reqs[12:14]] == ["Ongoing", "Finished"]
    assert [r.charge_progress for r in (reqs[14], reqs[18])] == ["Start", "Stop"]
    assert reqs[14].ev_power_profile.scheduled_evppt_control_mode.selected_schedule_tuple_id == 1
    loop_req = reqs[15]
    assert loop_req.scheduled_dc_cl_req_control_mode is not None
    # The vector's EVSE allows 100 A / 1 kW: 1 kW at ~398 V is ~2.5 A.
    assert value_of(loop_req.scheduled_dc_cl_req_control_mode.ev_target_current) == (
        pytest.approx(1000 / 398, rel=0.02)
    )
    assert reqs[-1].charging_session == "Terminate"
    report = out.report
    assert report.success and report.reason == "max_loops"
    assert report.evse_id == "DE*PNX*E12345*1"
    assert report.session_id == "2EFA1894DC7B9011"
    assert report.loops == 3
    assert len(report.rtts) == len(responses)
    assert report.states[-1] == "Finished"


# -- the scripted SECC: normal flows -----------------------------------------------------------


def test_dc_request_sequence_and_report() -> None:
    secc = ScriptedSecc()
    out = drive(Evcc(dc(max_loops=3)), secc)
    assert isinstance(out.effect, Finished)
    assert secc.names[: len(DC_FLOW)] == DC_FLOW
    tail = secc.names[len(DC_FLOW):]
    assert tail == [
        "DC_PreChargeReq", "DC_PreChargeReq", "DC_PreChargeReq", "DC_PreChargeReq",
        "PowerDeliveryReq", "DC_ChargeLoopReq", "DC_ChargeLoopReq", "DC_ChargeLoopReq",
        "PowerDeliveryReq", "DC_WeldingDetectionReq", "DC_WeldingDetectionReq",
        "SessionStopReq",
    ]
    report = out.report
    assert report.states == (
        "SupportedAppProtocol", "SessionSetup", "AuthorizationSetup", "Authorization",
        "ServiceDiscovery", "ServiceDetail", "ServiceSelection", "ChargeParameterDiscovery",
        "ScheduleExchange", "CableCheck", "PreCharge", "PowerDeliveryStart", "ChargeLoop",
        "PowerDeliveryStop", "WeldingDetection", "SessionStop", "Finished",
    )
    assert report.request_sequence == secc.names
    assert all(m.response == m.request[:-3] + "Res" for m in report.messages)
    assert report.energy_charged_wh > 0 and report.energy_discharged_wh == 0
    assert report.final_soc > report.initial_soc
    assert report.timing_violations == ()


def test_supported_service_ids_and_selection() -> None:
    secc = ScriptedSecc()
    drive(Evcc(get_scenario("dc_bpt_scheduled", loop_sim_seconds=1.0)), secc)
    disc = secc.requests[secc.names.index("ServiceDiscoveryReq")]
    assert disc.supported_service_i_ds.service_id == (6, 2)
    detail = secc.requests[secc.names.index("ServiceDetailReq")]
    assert detail.service_id == 6
    sel = secc.requests[secc.names.index("ServiceSelectionReq")]
    assert sel.selected_energy_transfer_service.service_id == 6
    assert sel.selected_energy_transfer_service.parameter_set_id == 1  # Scheduled set


def test_dynamic_mode_selects_the_dynamic_parameter_set() -> None:
    secc = ScriptedSecc()
    drive(Evcc(get_scenario("dc_dynamic", max_loops=2, loop_sim_seconds=1.0)), secc)
    sel = secc.requests[secc.names.index("ServiceSelectionReq")]
    assert sel.selected_energy_transfer_service.parameter_set_id == 0
    se = secc.requests[secc.names.index("ScheduleExchangeReq")]
    assert se.dynamic_se_req_control_mode is not None
    assert se.dynamic_se_req_control_mode.target_soc == 80


def test_header_timestamps_come_from_the_clock_and_session_id_from_setup() -> None:
    secc = ScriptedSecc()
    drive(Evcc(dc(max_loops=2), epoch_offset=1_700_000_000.0), secc, t0=500.0)
    stamps = [r.header.time_stamp for r in secc.requests[1:]]
    assert stamps[0] == 1_700_000_500
    assert stamps == sorted(stamps)
    assert secc.requests[1].header.session_id == bytes(8)
    assert {r.header.session_id for r in secc.requests[2:]} == {SESSION_ID}


def test_random_initial_session_id_option() -> None:
    import random

    secc = ScriptedSecc()
    drive(Evcc(dc(max_loops=1, zero_session_id=False), rng=random.Random(7)), secc)
    first = secc.requests[1].header.session_id
    assert len(first) == 8 and first != bytes(8)
    assert secc.requests[2].header.session_id == SESSION_ID


def test_byte_by_byte_delivery_is_reassembled() -> None:
    secc = ScriptedSecc()
    ev = Evcc(dc(max_loops=2, loop_interval=0.0))
    inbox = secc.feed(ev.start(0.0))
    now = 0.0
    result = None
    for _ in range(10_000):
        if not inbox:
            now = ev.next_deadline() or now
            effects = ev.handle_timeout(now)
        else:
            effects = []
            for i in range(len(inbox)):
                effects += ev.receive_data(inbox[i:i + 1], now)
            inbox = b""
        for e in effects:
            if isinstance(e, SendData):
                inbox += secc.feed(e.data)
            elif isinstance(e, (Finished, Failed)):
                result = e
        if result:
            break
    assert isinstance(result, Finished)


def test_charge_loop_is_paced_by_loop_interval() -> None:
    secc = ScriptedSecc()
    out = drive(Evcc(dc(max_loops=5, loop_interval=0.25)), secc, latency=0.01)
    loop_sends = [m.sent_at for m in out.report.messages if m.request == "DC_ChargeLoopReq"]
    gaps = [b - a for a, b in zip(loop_sends, loop_sends[1:], strict=False)]
    assert gaps == pytest.approx([0.25] * 4)


def test_ongoing_repeats_are_paced() -> None:
    secc = ScriptedSecc(auth_ongoing=3)
    out = drive(Evcc(dc(max_loops=1, ongoing_interval=0.5)), secc, latency=0.01)
    auth = [m.sent_at for m in out.report.messages if m.request == "AuthorizationReq"]
    assert len(auth) == 4
    assert [round(b - a, 3) for a, b in zip(auth, auth[1:], strict=False)] == [0.51] * 3


def test_rtts_and_timing_violations_are_recorded() -> None:
    secc = ScriptedSecc()
    t = EvTimeouts(charge_loop=2.0)
    out = drive(Evcc(dc(max_loops=2, timeouts=t)), secc, latency=0.3)
    report = out.report
    assert all(r == pytest.approx(0.3) for _, r in report.rtts)
    slow = {v.request for v in report.timing_violations}
    assert slow == {"DC_ChargeLoopReq"}  # 0.3 s > 0.25 s charge-loop performance time
    assert report.success


# -- validation ----------------------------------------------------------------------------------


def failing(secc: Any, scenario: Any = None, **kw: Any) -> Failed:
    out = drive(Evcc(scenario or dc(max_loops=3)), secc, **kw)
    assert isinstance(out.effect, Failed), out.effect
    assert out.report.success is False
    assert out.report.states[-1] == "Failed"
    return out.effect


@pytest.mark.parametrize("request_name", [
    "SessionSetupReq", "AuthorizationSetupReq", "ServiceDiscoveryReq",
    "DC_ChargeParameterDiscoveryReq", "ScheduleExchangeReq", "DC_CableCheckReq",
    "DC_PreChargeReq", "PowerDeliveryReq", "DC_ChargeLoopReq", "DC_WeldingDetectionReq",
    "SessionStopReq",
])
def test_failed_response_code_ends_the_session(request_name: str) -> None:
    secc = ScriptedSecc()
    secc.overrides[request_name] = lambda req, res: res.replace(response_code="FAILED")
    fail = failing(secc)
    assert fail.reason == f"{request_name[:-3]}Res: FAILED"
    assert secc.names[-1] == request_name  # nothing sent after the FAILED response


def test_failed_sequence_error_in_the_common_message_set_is_reported() -> None:
    secc = ScriptedSecc()
    secc.overrides["DC_ChargeLoopReq"] = lambda req, res: iso20_dc.DC_ChargeLoopRes(
        **{**{k: getattr(res, k) for k in (
            "evse_present_current", "evse_present_voltage", "evse_power_limit_achieved",
            "evse_current_limit_achieved", "evse_voltage_limit_achieved",
            "scheduled_dc_cl_res_control_mode")},
           "header": res.header, "response_code": "FAILED_SequenceError"})
    assert failing(secc).reason == "DC_ChargeLoopRes: FAILED_SequenceError"


def test_out_of_order_response_type_fails() -> None:
    secc = ScriptedSecc()
    secc.overrides["ServiceDetailReq"] = lambda req, res: iso20.ServiceSelectionRes(
        header=hdr(iso20), response_code="OK")
    assert failing(secc).reason == "expected ServiceDetailRes, got ServiceSelectionRes (OK)"


def test_response_in_another_message_set_fails() -> None:
    secc = ScriptedSecc()
    secc.overrides["DC_CableCheckReq"] = lambda req, res: iso20.SessionStopRes(
        header=hdr(iso20), response_code="FAILED_SequenceError")
    assert failing(secc).reason == (
        "expected DC_CableCheckRes, got SessionStopRes (FAILED_SequenceError)"
    )


def test_wrong_session_id_fails() -> None:
    secc = ScriptedSecc()
    secc.overrides["ServiceDiscoveryReq"] = lambda req, res: res.replace(
        header=hdr(iso20, bytes.fromhex("0102030405060708")))
    assert "carries SessionID 0102030405060708" in failing(secc).reason


def test_sap_failed_no_negotiation() -> None:
    secc = ScriptedSecc()
    secc.overrides["supportedAppProtocolReq"] = lambda req, res: sap.supportedAppProtocolRes(
        response_code="Failed_NoNegotiation")
    assert failing(secc).reason == "supportedAppProtocolRes: Failed_NoNegotiation"


def test_sap_unknown_schema_id() -> None:
    secc = ScriptedSecc()
    secc.overrides["supportedAppProtocolReq"] = lambda req, res: res.replace(schema_id=9)
    assert "SchemaID 9" in failing(secc).reason


def test_new_session_must_be_new() -> None:
    secc = ScriptedSecc()
    secc.overrides["SessionSetupReq"] = lambda req, res: res.replace(
        response_code="OK_OldSessionJoined")
    assert "expected OK_NewSessionEstablished" in failing(secc).reason


def test_service_not_offered() -> None:
    secc = ScriptedSecc(services=(2,))
    reason = failing(secc, get_scenario("dc_bpt_scheduled")).reason
    assert reason.startswith("the SECC does not offer service 6 (DC_BPT)")


def test_no_matching_control_mode_parameter_set() -> None:
    secc = ScriptedSecc()

    def only_dynamic(req: Any, res: Any) -> Any:
        sets = res.service_parameter_list.parameter_set[:1]
        return res.replace(service_parameter_list=iso20.ServiceParameterListType(
            parameter_set=sets))

    secc.overrides["ServiceDetailReq"] = only_dynamic
    assert "ControlMode=1" in failing(secc).reason


def test_eim_not_offered() -> None:
    secc = ScriptedSecc()
    secc.overrides["AuthorizationSetupReq"] = lambda req, res: res.replace(
        authorization_services=("PnC",), eim_as_res_authorization_mode=None,
        pnc_as_res_authorization_mode=iso20.PnC_ASResAuthorizationModeType(
            gen_challenge=bytes(16)))
    assert "no EIM" in failing(secc).reason


def test_authorization_warning_is_a_refusal() -> None:
    secc = ScriptedSecc(auth_ongoing=0)
    secc.overrides["AuthorizationReq"] = lambda req, res: res.replace(
        response_code="WARNING_EIMAuthorizationFailure")
    assert failing(secc).reason == "authorization refused: WARNING_EIMAuthorizationFailure"


def test_bpt_service_needs_bpt_parameters() -> None:
    secc = ScriptedSecc()

    def plain(req: Any, res: Any) -> Any:
        mode = res.bpt_dc_cpd_res_energy_transfer_mode
        fields = {k: getattr(mode, k) for k in (
            "evse_maximum_charge_power", "evse_minimum_charge_power",
            "evse_maximum_charge_current", "evse_minimum_charge_current",
            "evse_maximum_voltage", "evse_minimum_voltage")}
        return res.replace(bpt_dc_cpd_res_energy_transfer_mode=None,
                           dc_cpd_res_energy_transfer_mode=iso20_dc.DC_CPDResEnergyTransferModeType(
                               **fields))

    secc.overrides["DC_ChargeParameterDiscoveryReq"] = plain
    assert "no BPT_DC_CPDRes" in failing(secc, get_scenario("dc_bpt_scheduled")).reason


def test_scheduled_mode_needs_a_schedule_tuple() -> None:
    secc = ScriptedSecc(schedule_ongoing=0)
    secc.overrides["ScheduleExchangeReq"] = lambda req, res: res.replace(
        scheduled_se_res_control_mode=None,
        dynamic_se_res_control_mode=iso20.Dynamic_SEResControlModeType())
    assert "no ScheduleTuple" in failing(secc).reason


def test_response_timeout() -> None:
    secc = ScriptedSecc(silent={"ServiceDetailReq"})
    fail = failing(secc)
    assert fail.reason == (
        "no ServiceDetailRes within 5 s (V2G_EVCC_Msg_Timeout) in ServiceDetail"
    )
    assert fail.report.messages[-1].response is None


def test_charge_loop_timeout_is_half_a_second() -> None:
    secc = ScriptedSecc(silent={"DC_ChargeLoopReq"})
    fail = failing(secc)
    assert "no DC_ChargeLoopRes within 0.5 s" in fail.reason
    sent = fail.report.messages[-1].sent_at
    assert fail.report.duration == pytest.approx(sent + 0.5 - 1000.0)


def test_cable_check_ongoing_timeout() -> None:
    secc = ScriptedSecc(cable_check_ongoing=10_000)
    fail = failing(secc, dc(ongoing_interval=1.0))
    assert fail.reason == "CableCheck not finished within 40 s (V2G_EVCC_CableCheck_Timeout)"


def test_authorization_ongoing_timeout() -> None:
    secc = ScriptedSecc(auth_ongoing=10_000)
    fail = failing(secc, dc(ongoing_interval=5.0))
    assert "(V2G_EVCC_Ongoing_Timeout)" in fail.reason


def test_precharge_timeout_when_the_voltage_never_comes() -> None:
    secc = ScriptedSecc(precharge_step=0.0)
    fail = failing(secc)
    assert fail.reason == "PreCharge not finished within 10 s (V2G_EVCC_PreCharge_Timeout)"


def test_unsolicited_and_garbage_data() -> None:
    ev = Evcc(dc())
    ev.start(0.0)
    ev.receive_data(frame(sap.supportedAppProtocolRes(
        response_code="OK_SuccessfulNegotiation", schema_id=1)), 0.1)
    (fail,) = ev.receive_data(b"\x02\xfd" + bytes(6), 0.2)
    assert isinstance(fail, Failed) and "bad V2GTP stream" in fail.reason

    ev = Evcc(dc())
    ev.start(0.0)
    (fail,) = ev.receive_data(encode_frame(PayloadType.SAP, b"\xff\xff\xff"), 0.1)
    assert isinstance(fail, Failed) and "cannot decode" in fail.reason


def test_frame_while_nothing_is_pending_is_unsolicited() -> None:
    secc = ScriptedSecc()
    ev = Evcc(dc(max_loops=3, loop_interval=1.0))
    now = 0.0
    inbox = secc.feed(ev.start(now))
    while ev.state is not EvState.CHARGE_LOOP or ev._scheduled is None:
        effects = ev.receive_data(inbox, now) if inbox else ev.handle_timeout(
            now := ev.next_deadline() or now)
        inbox = b"".join(secc.feed(e.data) for e in effects if isinstance(e, SendData))
    extra = frame(iso20.SessionStopRes(header=hdr(iso20), response_code="OK"))
    (fail,) = ev.receive_data(extra, now)
    assert isinstance(fail, Failed) and fail.reason.startswith("unsolicited V2GTP frame")


def test_connection_lost_mid_session_fails() -> None:
    ev = Evcc(dc())
    ev.start(0.0)
    (fail,) = ev.connection_lost(0.5)
    assert isinstance(fail, Failed)
    assert fail.reason == "connection closed by the SECC in SupportedAppProtocol"
    assert ev.connection_lost(0.6) == []
    assert ev.receive_data(b"x", 0.7) == [] and ev.next_deadline() is None


def test_warnings_are_recorded_not_fatal() -> None:
    secc = ScriptedSecc()
    secc.overrides["PowerDeliveryReq"] = lambda req, res: res.replace(
        response_code="WARNING_PowerToleranceNotConfirmed") if req.charge_progress == "Start" \
        else res
    out = drive(Evcc(dc(max_loops=1)), secc)
    assert out.report.success
    assert "PowerDeliveryRes: WARNING_PowerToleranceNotConfirmed" in out.report.warnings


def test_request_stop_ends_the_loop_cleanly() -> None:
    secc = ScriptedSecc()
    ev = Evcc(dc(max_loops=100))
    secc.overrides["DC_ChargeLoopReq"] = lambda req, res: (ev.request_stop("user_stop"), res)[1]
    out = drive(ev, secc)
    assert isinstance(out.effect, Finished)
    assert out.report.reason == "user_stop" and out.report.loops == 1
    assert secc.names[-1] == "SessionStopReq"


def test_abort_before_start() -> None:
    ev = Evcc(dc())
    (fail,) = ev.abort("cannot connect", 3.0)
    assert isinstance(fail, Failed) and fail.report.reason == "cannot connect"
    assert ev.abort("again", 4.0) == []


def test_target_soc_stops_the_loop_with_charging_complete() -> None:
    secc = ScriptedSecc()
    scenario = dc(max_loops=500, target_soc=52.0, loop_sim_seconds=30.0)
    out = drive(Evcc(scenario), secc)
    assert out.report.reason == "target_soc"
    assert out.report.final_soc >= 52.0
    loops = [r for r in secc.requests if type(r).__name__ == "DC_ChargeLoopReq"]
    assert loops[0].display_parameters.charging_complete is False
    assert loops[0].meter_info_requested is True
    assert out.report.loops < 500


def test_current_is_limited_by_the_evse_and_the_battery() -> None:
    secc = ScriptedSecc(max_current=80.0)
    drive(Evcc(dc(max_loops=2)), secc)
    loop_req = next(r for r in secc.requests if type(r).__name__ == "DC_ChargeLoopReq")
    mode = loop_req.scheduled_dc_cl_req_control_mode
    assert value_of(mode.ev_target_current) == pytest.approx(80.0)
    assert value_of(mode.ev_target_voltage) == pytest.approx(420.0)  # battery max voltage
    secc = ScriptedSecc(schedule=((3600, 10_000.0),))
    drive(Evcc(dc(max_loops=2)), secc)
    loop_req = next(r for r in secc.requests if type(r).__name__ == "DC_ChargeLoopReq")
    current = value_of(loop_req.scheduled_dc_cl_req_control_mode.ev_target_current)
    assert current == pytest.approx(10_000 / 375.0, rel=0.01)  # schedule power / voltage


@needs_vectors
def test_ac_bpt_session_against_real_response_vectors() -> None:
    """dSPACE's AC_BPT responses (negative discharge limits, exponent -5 powers, a microsecond
    TimeStamp) and EVerest's: the EV must take them as they are."""

    def v(vid: str, **changes: Any) -> Any:
        msg = with_session(vector_message(vid))
        return msg.replace(**changes) if changes else msg

    def sched(power: float) -> Any:
        return iso20.ChargingScheduleType(power_schedule=iso20.PowerScheduleType(
            time_anchor=0,
            power_schedule_entries=iso20.PowerScheduleEntryListType(power_schedule_entry=(
                iso20.PowerScheduleEntryType(duration=3600, power=rational(iso20, power)),
            )),
        ))

    schedule = iso20.ScheduleExchangeRes(
        header=hdr(iso20), response_code="OK", evse_processing="Finished",
        scheduled_se_res_control_mode=iso20.Scheduled_SEResControlModeType(schedule_tuple=(
            iso20.ScheduleTupleType(schedule_tuple_id=7, charging_schedule=sched(6_000),
                                    discharging_schedule=sched(-2_000)),
        )),
    )
    discovery = v("iso20-ServiceDiscoveryRes-001")
    discovery = discovery.replace(energy_transfer_service_list=iso20.ServiceListType(
        service=(iso20.ServiceType(service_id=5, free_service=False),)))
    responses = [
        vector_message("sap-supportedAppProtocolRes-001"),
        vector_message("iso20-SessionSetupRes-001"),
        v("iso20-AuthorizationSetupRes-004"),
        v("iso20-AuthorizationRes-002"),
        discovery,
        v("iso20-ServiceDetailRes-001", service_id=5),
        v("iso20-ServiceSelectionRes-001"),
        v("iso20_ac-AC_ChargeParameterDiscoveryRes-003"),
        schedule,
        v("iso20-PowerDeliveryRes-001"),
        v("iso20_ac-AC_ChargeLoopRes-003"),
        v("iso20_ac-AC_ChargeLoopRes-003"),
        v("iso20-PowerDeliveryRes-002"),
        v("iso20-SessionStopRes-001"),
    ]
    secc = SequenceSecc(responses)
    scenario = get_scenario("ac_bpt", max_loops=2, expect_discharge=False, loop_sim_seconds=1.0)
    ev = Evcc(scenario)
    out = drive(ev, secc)
    assert isinstance(out.effect, Finished), out.effect
    assert secc.names[-6:] == [
        "ScheduleExchangeReq", "PowerDeliveryReq", "AC_ChargeLoopReq", "AC_ChargeLoopReq",
        "PowerDeliveryReq", "SessionStopReq",
    ]
    assert ev.evse_limits.max_discharge_power == pytest.approx(2_990.0)  # sent as -2990 W
    start = secc.requests[secc.names.index("PowerDeliveryReq")]
    assert start.ev_power_profile.scheduled_evppt_control_mode.selected_schedule_tuple_id == 7
    loop = secc.requests[-3].bpt_scheduled_ac_cl_req_control_mode
    # The 6 kW schedule is capped by the vector's EVSEMaximumChargePower of 29900e-1 W.
    assert value_of(loop.ev_present_active_power) == pytest.approx(2_990.0)
    assert value_of(loop.ev_maximum_discharge_power) > 0
