"""Bad input and timers of the -2 SECC: wrong SessionID, malformed EXI, out-of-sequence,
values outside the XSD's ranges, the timeouts; a safe power stage every time, and the
process keeps serving (a new connection works)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import exi_codec
from evse.protocol import events as sev
from evse.protocol.config import ServiceId
from evse.protocol.iso2.states import State
from evse.protocol.secc import SeccConnection
from evse.protocol.v2gtp import PayloadType, encode_frame
from exi_codec.schemas import iso2
from simulators.ev.iso2_evcc import ISO2_SCENARIOS, Iso2Evcc
from tests.protocol.iso2.harness import back_to_back, config
from tests.protocol.iso2.test_states import SID, machine_in, sample


def _res(effects: list[Any]) -> Any:
    sent = [e for e in effects if isinstance(e, sev.SendData)]
    return exi_codec.decode(sent[-1].data[8:], "iso2")


def _payload(name: str, body: Any, session_id: bytes = SID) -> bytes:
    from evse.protocol.iso2.messages import REQUESTS

    return exi_codec.encode(iso2.V2G_Message(
        header=iso2.MessageHeaderType(session_id=session_id),
        body=iso2.BodyType(**{REQUESTS[name]: body})))


def _connected() -> tuple[SeccConnection, Iso2Evcc]:
    ev = Iso2Evcc(ISO2_SCENARIOS["iso2_dc"])
    conn = SeccConnection(config(), tls=False, now=0.0)
    conn.receive_data(ev.start(0.0), 0.1)
    effects = conn.receive_data(encode_frame(PayloadType.SAP, _payload(
        "SessionSetupReq", iso2.SessionSetupReqType(evccid=bytes(6)), bytes(8))), 0.2)
    assert str(_res(effects).body.session_setup_res.response_code) == "OK_NewSessionEstablished"
    return conn, ev


def test_wrong_session_id_is_failed_unknown_session_and_safe() -> None:
    conn, _ = _connected()
    effects = conn.receive_data(encode_frame(PayloadType.SAP, _payload(
        "ServiceDiscoveryReq", iso2.ServiceDiscoveryReqType(), bytes(range(8)))), 0.3)
    res = _res(effects).body.service_discovery_res
    assert str(res.response_code) == "FAILED_UnknownSession"
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]
    assert any(isinstance(e, sev.SessionEnded) and e.failed for e in effects)
    assert conn.closed


def test_malformed_exi_gets_failed_of_the_expected_request() -> None:
    conn, _ = _connected()
    effects = conn.receive_data(encode_frame(PayloadType.SAP, b"\x80\x98\xff\xff\xff"), 0.3)
    res = _res(effects).body.service_discovery_res  # ServiceDiscovery is expected here
    assert str(res.response_code) == "FAILED"
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]
    assert conn.closed


def test_a_response_instead_of_a_request_is_failed() -> None:
    conn, _ = _connected()
    stray = exi_codec.encode(iso2.V2G_Message(
        header=iso2.MessageHeaderType(session_id=SID),
        body=iso2.BodyType(session_stop_res=iso2.SessionStopResType(
            response_code=iso2.responseCodeType.OK))))
    effects = conn.receive_data(encode_frame(PayloadType.SAP, stray), 0.3)
    assert str(_res(effects).body.service_discovery_res.response_code) == "FAILED"
    assert conn.closed


def test_out_of_sequence_in_the_loop_is_safe_and_the_next_connection_serves() -> None:
    m = machine_in(State.DC_CHARGE_LOOP)
    payload = _payload("CableCheckReq", sample("CableCheckReq", ac=False))
    effects = m.receive_payload(PayloadType.SAP, payload, 1.0)
    assert str(_res(effects).body.cable_check_res.response_code) == "FAILED_SequenceError"
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]
    run = back_to_back(ISO2_SCENARIOS["iso2_dc"])  # a new session is served as usual
    assert run.done.success


def test_values_outside_the_xsd_ranges_are_capped_not_failed() -> None:
    """Multiplier 4 (the XSD allows -3..3; its 3-bit field carries up to 4) in the EV's power
    limit and FullSOC 101: the handler caps to our limits instead of failing (the same values
    on the wire: the next test)."""
    from evse.protocol.iso2.handlers import HANDLERS
    from tests.protocol.iso2.test_vectors import inputs

    base = sample("ChargeParameterDiscoveryReq", ac=False)
    p = base.dc_ev_charge_parameter
    power = iso2.PhysicalValueType(multiplier=4, unit=iso2.unitSymbolType.W, value=30000)
    req = iso2.ChargeParameterDiscoveryReqType(
        requested_energy_transfer_mode=base.requested_energy_transfer_mode,
        dc_ev_charge_parameter=iso2.DC_EVChargeParameterType(
            dc_ev_status=p.dc_ev_status, ev_maximum_current_limit=p.ev_maximum_current_limit,
            ev_maximum_power_limit=power, ev_maximum_voltage_limit=p.ev_maximum_voltage_limit,
            full_soc=101))
    m = machine_in(State.CHARGE_PARAMETER_DISCOVERY)
    res, effects = HANDLERS["ChargeParameterDiscoveryReq"](req, m.iso2_session, inputs())
    assert str(res.response_code) == "OK"
    exi_codec.encode(iso2.V2G_Message(header=iso2.MessageHeaderType(session_id=SID),
                                      body=iso2.BodyType(charge_parameter_discovery_res=res)))
    pmax = res.sa_schedule_list.sa_schedule_tuple[0].p_max_schedule.p_max_schedule_entry[0].p_max
    assert float(pmax.value) * 10 ** pmax.multiplier == 50_000.0  # ours, not 300 MW
    assert m.session.ev is not None and m.session.ev.max_charge_power == 300e6


def test_a_value_beyond_its_facet_on_the_wire_is_decoded_and_capped() -> None:
    """Issue 9 item 6 end to end: the EV's EXI stream carries multiplier 4 (facet -3..3, the
    3-bit field holds up to 4) and FullSOC 101; the SECC's lenient decode lets them through
    and the handler caps them - no FAILED."""
    from evse.protocol.iso2.messages import REQUESTS

    base = sample("ChargeParameterDiscoveryReq", ac=False)
    p = base.dc_ev_charge_parameter
    req = iso2.ChargeParameterDiscoveryReqType(
        requested_energy_transfer_mode=base.requested_energy_transfer_mode,
        dc_ev_charge_parameter=iso2.DC_EVChargeParameterType(
            dc_ev_status=p.dc_ev_status, ev_maximum_current_limit=p.ev_maximum_current_limit,
            ev_maximum_power_limit=iso2.PhysicalValueType(
                multiplier=4, unit=iso2.unitSymbolType.W, value=30000),
            ev_maximum_voltage_limit=p.ev_maximum_voltage_limit, full_soc=101))
    msg = iso2.V2G_Message(header=iso2.MessageHeaderType(session_id=SID),
                           body=iso2.BodyType(**{REQUESTS["ChargeParameterDiscoveryReq"]: req}))
    with pytest.raises(exi_codec.ExiError):
        exi_codec.encode(msg)  # strict: the facet is enforced
    payload = exi_codec.encode(msg, strict=False)
    m = machine_in(State.CHARGE_PARAMETER_DISCOVERY)
    effects = m.receive_payload(PayloadType.SAP, payload, 1)
    res = _res(effects).body.charge_parameter_discovery_res
    assert str(res.response_code) == "OK"
    assert m.session.ev is not None and m.session.ev.max_charge_power == 300e6


def test_negative_ev_limits_are_wrong_charge_parameters() -> None:
    base = sample("ChargeParameterDiscoveryReq", ac=False)
    p = base.dc_ev_charge_parameter
    req = iso2.ChargeParameterDiscoveryReqType(
        requested_energy_transfer_mode=base.requested_energy_transfer_mode,
        dc_ev_charge_parameter=iso2.DC_EVChargeParameterType(
            dc_ev_status=p.dc_ev_status,
            ev_maximum_current_limit=iso2.PhysicalValueType(
                multiplier=0, unit=iso2.unitSymbolType.A, value=-5),
            ev_maximum_voltage_limit=p.ev_maximum_voltage_limit))
    m = machine_in(State.CHARGE_PARAMETER_DISCOVERY)
    effects = m.receive_payload(PayloadType.SAP, _payload("ChargeParameterDiscoveryReq", req), 1)
    res = _res(effects).body.charge_parameter_discovery_res
    assert str(res.response_code) == "FAILED_WrongChargeParameter"
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]


def test_sequence_timeout_ends_the_session_safely() -> None:
    conn, _ = _connected()
    deadline = conn.next_deadline()
    assert deadline is not None and abs(deadline - 60.2) < 1e-9
    effects = conn.handle_timeout(deadline)
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]
    assert any(isinstance(e, sev.SessionEnded) and "sequence" in e.reason for e in effects)


def test_ongoing_authorization_is_bounded() -> None:
    m = machine_in(State.AUTHORIZATION)
    m.config = dataclasses.replace(m.config, auto_authorize=False)  # on in machine_in
    t = 1.0
    payload = _payload("AuthorizationReq", iso2.AuthorizationReqType())
    effects = m.receive_payload(PayloadType.SAP, payload, t)
    assert [e for e in effects if isinstance(e, sev.RequestAuthorization)]
    while not m.closed:
        t += 1.0
        effects = m.receive_payload(PayloadType.SAP, payload, t)
        if not m.closed:
            assert _res(effects).body.authorization_res.evse_processing == "Ongoing"
    assert 55.0 <= t <= 57.0  # the Ongoing limit
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]


def test_cable_check_timeout() -> None:
    m = machine_in(State.DC_CABLE_CHECK)
    m.iso2_session.cable_check_started = None
    m.charger.isolation_ok = None
    payload = _payload("CableCheckReq", sample("CableCheckReq", ac=False))
    m.receive_payload(PayloadType.SAP, payload, 1.0)
    assert m.next_deadline() == 41.0
    effects = m.handle_timeout(41.0)
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()] and m.closed


def test_charge_loop_performance_time_is_250_ms() -> None:
    m = machine_in(State.DC_CHARGE_LOOP)
    effects = m.receive_payload(PayloadType.SAP, _payload(
        "CurrentDemandReq", sample("CurrentDemandReq", ac=False)), 5.0)
    send = next(e for e in effects if isinstance(e, sev.SendData))
    assert send.deadline == 5.25


def test_emergency_stop_fails_the_next_request_safely() -> None:
    m = machine_in(State.DC_CHARGE_LOOP)
    assert m.handle_event(sev.EmergencyStop("estop"), 1.0) == [
        sev.StopPower(), sev.OpenContactors()]
    effects = m.receive_payload(PayloadType.SAP, _payload(
        "CurrentDemandReq", sample("CurrentDemandReq", ac=False)), 1.1)
    res = _res(effects).body.current_demand_res
    assert str(res.response_code) == "FAILED"
    assert res.dc_evse_status.evse_status_code == "EVSE_Shutdown"
    assert m.closed


def test_metering_receipt_only_when_asked() -> None:
    m = machine_in(State.AC_CHARGE_LOOP)
    m.iso2_session.receipt_requested = False
    effects = m.receive_payload(PayloadType.SAP, _payload(
        "MeteringReceiptReq", sample("MeteringReceiptReq", ac=True)), 1.0)
    assert str(_res(effects).body.metering_receipt_res.response_code) == "FAILED_SequenceError"


def test_contract_payment_not_offered_yet() -> None:
    m = machine_in(State.PAYMENT_SERVICE_SELECTION)
    req = iso2.PaymentServiceSelectionReqType(
        selected_payment_option=iso2.paymentOptionType.Contract,
        selected_service_list=iso2.SelectedServiceListType(
            selected_service=(iso2.SelectedServiceType(service_id=1),)))
    effects = m.receive_payload(PayloadType.SAP, _payload("PaymentServiceSelectionReq", req), 1)
    code = _res(effects).body.payment_service_selection_res.response_code
    assert str(code) == "FAILED_PaymentSelectionInvalid"


def test_wrong_energy_transfer_mode() -> None:
    m = machine_in(State.CHARGE_PARAMETER_DISCOVERY)
    m.config = dataclasses.replace(m.config, services=(ServiceId.DC,))
    effects = m.receive_payload(PayloadType.SAP, _payload(
        "ChargeParameterDiscoveryReq", sample("ChargeParameterDiscoveryReq", ac=True)), 1.0)
    res = _res(effects).body.charge_parameter_discovery_res
    assert str(res.response_code) == "FAILED_WrongEnergyTransferMode"
    assert res.ac_evse_charge_parameter is not None  # answered in the AC flavour


def test_a_long_precharge_loop_is_fine() -> None:
    m = machine_in(State.DC_PRE_CHARGE)
    payload = _payload("PreChargeReq", sample("PreChargeReq", ac=False))
    t = 1.0
    for _ in range(300):  # 30 s of PreCharge at 100 ms: real cars loop while the voltage rises
        effects = m.receive_payload(PayloadType.SAP, payload, t)
        assert str(_res(effects).body.pre_charge_res.response_code) == "OK"
        t += 0.1
    assert not m.closed


def test_an_oversized_frame_closes_the_session_safely_and_the_next_one_serves() -> None:
    conn, _ = _connected()
    header = bytes([0x01, 0xFE, 0x80, 0x01]) + (10_000_000).to_bytes(4, "big")
    effects = conn.receive_data(header, 0.3)
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]
    assert any(isinstance(e, sev.SessionEnded) and e.failed for e in effects)
    assert isinstance(effects[-1], sev.CloseConnection) and effects[-1].after_s == 0.0
    assert conn.closed
    assert back_to_back(ISO2_SCENARIOS["iso2_ac"]).done.success
