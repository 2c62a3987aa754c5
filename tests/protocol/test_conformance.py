"""ISO 15118-20 conformance cases from issue 11 (schema facets on input, negotiation, session
flow): each answered as the standard (or, where noted, the issue) requires."""

from __future__ import annotations

from typing import Any

import pytest

import exi_codec
from evse.protocol import events as ev
from evse.protocol.config import ISO20_AC, ISO20_DC, ControlMode, ServiceId
from evse.protocol.iso20.states import State
from evse.protocol.v2gtp import PayloadType, encode_frame
from exi_codec.schemas import iso20, sap
from tests.protocol.evcc import (
    AC_LIMITS,
    Ev,
    assert_safe_end,
    config,
    dc_to_loop,
    of,
    response,
)
from tests.protocol.requests import build


def _send_lenient(x: Ev, msg: Any, payload_type: int = PayloadType.COMMON) -> list[Any]:
    """Send a message that breaks a length facet (the EV is not bound by our encoder)."""
    return x.feed(encode_frame(payload_type, exi_codec.encode(msg, strict=False)))


def _offer(ns: str, schema_id: int, priority: int, major: int = 1) -> Any:
    return sap.AppProtocolType(protocol_namespace=ns, version_number_major=major,
                               version_number_minor=0, schema_id=schema_id, priority=priority)


# -- schema facets on input (item 7) -----------------------------------------------------------


@pytest.mark.parametrize("evcc_id", ["X" * 60_000, "X" * 256])
def test_over_long_evccid_is_a_schema_violation(evcc_id: str) -> None:
    x = Ev.connect()
    x.sap()
    effects = _send_lenient(x, iso20.SessionSetupReq(header=x.header(), evccid=evcc_id))
    res = response(effects)
    assert type(res).__name__ == "SessionSetupRes" and res.response_code == "FAILED"
    assert x.conn.closed and not of(effects, ev.SessionStarted)
    assert of(effects, ev.CloseConnection)


def test_over_long_session_id_is_a_schema_violation() -> None:
    x = Ev.connect()
    x.sap()
    x.setup()
    header = iso20.MessageHeaderType(session_id=bytes(1000), time_stamp=1)
    effects = _send_lenient(x, iso20.AuthorizationSetupReq(header=header))
    res = response(effects)
    assert type(res).__name__ == "AuthorizationSetupRes" and res.response_code == "FAILED"
    assert bytes(res.header.session_id) == x.session_id  # never echoes the 1,000 bytes
    assert_safe_end(effects)


def test_over_long_field_in_a_dc_message_fails_in_the_dc_message_set() -> None:
    x = Ev.connect()
    x.sap()
    x.setup()
    x.authorize()
    x.select(ServiceId.DC, ControlMode.SCHEDULED)
    req = build("DC_ChargeParameterDiscoveryReq", x.session_id + bytes(100))
    data = exi_codec.encode(req, strict=False)
    res = response(x.feed(encode_frame(PayloadType.DC, data)))
    assert type(res).__name__ == "DC_ChargeParameterDiscoveryRes"
    assert res.response_code == "FAILED"


def test_over_long_protocol_namespace_fails_the_negotiation() -> None:
    """A schema violation fails the negotiation even next to a usable offer."""
    x = Ev.connect()
    offers = (_offer(ISO20_DC + "x" * 200, 1, 1), _offer(ISO20_DC, 2, 2))
    req = sap.supportedAppProtocolReq(app_protocol=offers)
    res = response(_send_lenient(x, req, PayloadType.SAP))
    assert res.response_code == "Failed_NoNegotiation" and x.conn.closed


def test_empty_evccid_is_accepted() -> None:
    x = Ev.connect()
    x.sap()
    res = x.setup(evcc_id="")
    assert res.response_code == "OK_NewSessionEstablished"
    assert x.conn.state == State.AUTHORIZATION_SETUP


# -- supportedAppProtocol ----------------------------------------------------------------------


def test_failed_negotiation_carries_no_schema_id() -> None:
    x = Ev.connect()
    req = sap.supportedAppProtocolReq(app_protocol=(_offer("urn:other:protocol", 7, 1),))
    res, effects = x.send(req)
    assert res.response_code == "Failed_NoNegotiation" and res.schema_id is None
    data = of(effects, ev.SendData)[0].data[8:]
    assert data == exi_codec.encode(sap.supportedAppProtocolRes(response_code=res.response_code))


def test_twenty_offers_with_the_usable_one_last_negotiate() -> None:
    offers = tuple(_offer(f"urn:unknown:{i}", i + 1, i + 1) for i in range(19))
    offers += (_offer(ISO20_AC, 20, 20),)
    x = Ev.connect()
    res, _ = x.send(sap.supportedAppProtocolReq(app_protocol=offers))
    assert res.response_code == "OK_SuccessfulNegotiation" and res.schema_id == 20
    assert x.conn.protocol == ISO20_AC


# -- authorization -----------------------------------------------------------------------------


def test_unoffered_authorization_service_can_be_chosen_again() -> None:
    x = Ev.connect()  # plain TCP: only EIM is offered
    x.sap()
    x.setup()
    setup_res, _ = x.send(iso20.AuthorizationSetupReq(header=x.header()))
    assert setup_res.authorization_services == ("EIM",)
    pnc = iso20.AuthorizationReq(
        header=x.header(), selected_authorization_service="PnC",
        pnc_a_req_authorization_mode=iso20.PnC_AReqAuthorizationModeType(
            id="id1", gen_challenge=bytes(16),
            contract_certificate_chain=iso20.ContractCertificateChainType(
                certificate=b"c", sub_certificates=iso20.SubCertificatesType(certificate=(b"s",)))))
    res, effects = x.send(pnc)
    assert (res.response_code, res.evse_processing) == (
        "WARNING_AuthorizationSelectionInvalid", "Finished")
    assert x.conn.state == State.AUTHORIZATION and not x.conn.closed
    assert not of(effects, ev.RequestAuthorization)
    assert x.authorization().response_code == "OK"  # EIM, offered: accepted
    assert x.conn.state == State.SERVICE_DISCOVERY


def test_authorization_retries_are_bounded() -> None:
    """An EV that keeps choosing a service that was not offered cannot hold the connector:
    after MAX_AUTHORIZATION_RETRIES warnings the session ends with FAILED, power safe."""
    from evse.protocol.iso20.handlers.authorization import MAX_AUTHORIZATION_RETRIES

    x = Ev.connect()  # plain TCP: only EIM is offered
    x.sap()
    x.setup()
    x.send(iso20.AuthorizationSetupReq(header=x.header()))

    def pnc() -> Any:
        return iso20.AuthorizationReq(
            header=x.header(), selected_authorization_service="PnC",
            pnc_a_req_authorization_mode=iso20.PnC_AReqAuthorizationModeType(
                id="id1", gen_challenge=bytes(16),
                contract_certificate_chain=iso20.ContractCertificateChainType(
                    certificate=b"c",
                    sub_certificates=iso20.SubCertificatesType(certificate=(b"s",)))))

    for _ in range(MAX_AUTHORIZATION_RETRIES):
        res, _ = x.send(pnc())
        assert res.response_code == "WARNING_AuthorizationSelectionInvalid"
        assert x.conn.state == State.AUTHORIZATION
    res, effects = x.send(pnc())
    assert res.response_code == "FAILED"
    assert_safe_end(effects)


# -- service discovery, detail, selection ------------------------------------------------------


def _discovered() -> Ev:
    x = Ev.connect()
    x.sap()
    x.setup()
    x.authorize()
    res, _ = x.send(iso20.ServiceDiscoveryReq(header=x.header()))
    assert res.response_code == "OK"
    return x


def _selection(x: Ev, service: ServiceId, mode: ControlMode = ControlMode.SCHEDULED) -> Any:
    return iso20.ServiceSelectionReq(
        header=x.header(),
        selected_energy_transfer_service=iso20.SelectedServiceType(
            service_id=int(service), parameter_set_id=int(mode)))


def test_service_selection_directly_after_discovery_is_a_sequence_error() -> None:
    x = _discovered()
    res, effects = x.send(_selection(x, ServiceId.DC))
    assert res.response_code == "FAILED_SequenceError"
    assert_safe_end(effects)


def test_selecting_a_service_whose_detail_was_not_requested_is_invalid() -> None:
    x = _discovered()
    res, _ = x.send(iso20.ServiceDetailReq(header=x.header(), service_id=int(ServiceId.DC)))
    assert res.response_code == "OK"
    res, effects = x.send(_selection(x, ServiceId.DC_BPT))
    assert res.response_code == "FAILED_ServiceSelectionInvalid"
    assert_safe_end(effects)


def test_selection_after_details_of_both_services() -> None:
    x = _discovered()
    for service in (ServiceId.DC, ServiceId.DC_BPT):
        x.send(iso20.ServiceDetailReq(header=x.header(), service_id=int(service)))
    res, _ = x.send(_selection(x, ServiceId.DC_BPT))
    assert res.response_code == "OK" and x.conn.state == State.DC_CHARGE_PARAMETER_DISCOVERY


def test_ac_bpt_parameter_sets_carry_the_bpt_parameters() -> None:
    x = Ev.connect(config(limits=AC_LIMITS))
    x.sap(ISO20_AC)
    x.setup()
    x.authorize()
    x.send(iso20.ServiceDiscoveryReq(header=x.header()))
    res, _ = x.send(iso20.ServiceDetailReq(header=x.header(), service_id=int(ServiceId.AC_BPT)))
    for parameter_set in res.service_parameter_list.parameter_set:
        names = {p.name for p in parameter_set.parameter}
        assert {"BPTChannel", "GeneratorMode", "DetectionMethod_GridCodeIslanding"} <= names


# -- Dynamic mode ------------------------------------------------------------------------------


def _dynamic_dc(mobility_needs_mode: int = 1) -> tuple[Ev, Any]:
    x = Ev.connect(config(mobility_needs_mode=mobility_needs_mode))
    x.sap()
    x.setup()
    x.authorize()
    assert x.select(ServiceId.DC, ControlMode.DYNAMIC).response_code == "OK"
    assert x.dc_cpd(bpt=False).response_code == "OK"
    return x, x.schedule_exchange(ControlMode.DYNAMIC, departure=3600)


def test_dynamic_schedule_exchange_leaves_ev_provided_mobility_needs_out() -> None:
    x, res = _dynamic_dc()
    mode = res.dynamic_se_res_control_mode
    assert (mode.departure_time, mode.minimum_soc, mode.target_soc) == (None, None, None)
    session = x.conn.session
    assert session is not None and (session.minimum_soc, session.target_soc) == (20, 80)


def test_dynamic_schedule_exchange_states_secc_provided_mobility_needs() -> None:
    x, res = _dynamic_dc(mobility_needs_mode=2)
    mode = res.dynamic_se_res_control_mode
    assert (mode.departure_time, mode.minimum_soc, mode.target_soc) == (3600, 20, 80)
    detail = config(mobility_needs_mode=2)
    assert detail.mobility_needs_mode == 2
    with pytest.raises(ValueError, match="mobility_needs_mode"):
        config(mobility_needs_mode=3)


def _loop(mode: ControlMode) -> Ev:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, mode)
    x.dc_loop(mode, bpt=False)
    assert x.power_delivery("Stop").response_code == "OK"
    return x


def test_ev_pause_in_dynamic_mode_is_not_allowed() -> None:
    x = _loop(ControlMode.DYNAMIC)
    res, effects = x.session_stop("Pause")
    assert res.response_code == "FAILED_PauseNotAllowed"
    assert_safe_end(effects)
    assert not of(effects, ev.SessionEnded)[0].paused


def test_pause_in_dynamic_mode_after_the_secc_asked_for_it() -> None:
    x = _loop(ControlMode.DYNAMIC)
    x.event(ev.PauseRequested())
    res, effects = x.session_stop("Pause")
    assert res.response_code == "OK" and of(effects, ev.SessionEnded)[0].paused


def test_ev_pause_in_scheduled_mode_is_allowed() -> None:
    x = _loop(ControlMode.SCHEDULED)
    res, effects = x.session_stop("Pause")
    assert res.response_code == "OK" and of(effects, ev.SessionEnded)[0].paused


# -- EV-initiated schedule renegotiation -------------------------------------------------------


@pytest.mark.parametrize("mode", list(ControlMode))
def test_dc_schedule_renegotiation(mode: ControlMode) -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, mode)
    x.dc_loop(mode, bpt=False)
    before = len(of(x.effects, ev.CloseContactors))
    res, effects = x.send(iso20.PowerDeliveryReq(
        header=x.header(), ev_processing="Finished", charge_progress="ScheduleRenegotiation"))
    assert res.response_code == "OK" and x.conn.state == State.DC_RENEGOTIATION
    assert of(effects, ev.StopPower) and not of(effects, ev.OpenContactors)  # current to zero
    res = x.schedule_exchange(mode, departure=1800)
    assert res.response_code == "OK" and x.conn.state == State.DC_RENEGOTIATED
    assert x.power_delivery("Start").response_code == "OK"
    assert x.conn.state == State.DC_CHARGE_LOOP
    assert len(of(x.effects, ev.CloseContactors)) == before  # they never opened
    res, effects = x.dc_loop(mode, bpt=False)
    assert res.response_code == "OK" and of(effects, ev.SetPowerTarget)
    session = x.conn.session
    assert session is not None and session.departure_at == pytest.approx(x.now - 0.2 + 1800)


def test_ac_schedule_renegotiation_then_stop() -> None:
    x = Ev.connect(config(limits=AC_LIMITS))
    x.sap(ISO20_AC)
    x.setup()
    x.authorize()
    x.select(ServiceId.AC, ControlMode.SCHEDULED)
    x.ac_cpd(bpt=False)
    x.schedule_exchange(ControlMode.SCHEDULED)
    assert x.power_delivery("Start").response_code == "OK"
    x.ac_loop(ControlMode.SCHEDULED, bpt=False)
    assert x.power_delivery("ScheduleRenegotiation").response_code == "OK"
    assert x.conn.state == State.AC_RENEGOTIATION
    assert x.schedule_exchange(ControlMode.SCHEDULED).response_code == "OK"
    assert x.power_delivery("Stop").response_code == "OK"
    assert x.conn.state == State.AC_POWER_OFF


def test_charge_loop_before_the_renegotiated_start_is_a_sequence_error() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, ControlMode.SCHEDULED)
    x.power_delivery("ScheduleRenegotiation")
    x.schedule_exchange(ControlMode.SCHEDULED)
    res, effects = x.dc_loop(ControlMode.SCHEDULED, bpt=False)  # no PowerDelivery(Start) yet
    assert res.response_code == "FAILED_SequenceError"
    assert_safe_end(effects)


def test_renegotiation_before_the_charge_loop_is_a_sequence_error() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, ControlMode.SCHEDULED)
    x.power_delivery("Stop")
    res = x.power_delivery("ScheduleRenegotiation")
    assert res.response_code == "FAILED_SequenceError"


def test_largest_possible_request_negotiates_with_the_usable_offer_last() -> None:
    """19 offers with 100-character namespaces of 4-byte code points and the usable one last:
    5,829 bytes of EXI, near the largest supportedAppProtocolReq the schema allows (6,299
    bytes; a pre-session read buffer must hold it)."""
    big = "\U0010ffff" * 100
    offers = tuple(_offer(big[:99] + chr(0x41 + i), i + 1, 1) for i in range(19))
    offers += (_offer(ISO20_DC, 20, 20),)
    req = sap.supportedAppProtocolReq(app_protocol=offers)
    assert len(exi_codec.encode(req)) > 5800
    x = Ev.connect()
    res, _ = x.send(req)
    assert res.response_code == "OK_SuccessfulNegotiation" and res.schema_id == 20
