"""The -2 transition table, checked for every (state, request) pair through the machine:
a pair in the table is answered (never FAILED_SequenceError), any other pair is
FAILED_SequenceError with the power stage made safe first and the session ended."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

import exi_codec
from evse.protocol import events as sev
from evse.protocol.iso2.machine import Iso2Machine
from evse.protocol.iso2.messages import REQUESTS, wrap
from evse.protocol.iso2.states import TRANSITIONS, State
from evse.protocol.limits import EvLimits
from evse.protocol.machine import MachineContext
from evse.protocol.schedules import flat_schedules
from evse.protocol.session import ChargerState, SessionStore
from evse.protocol.standards import ISO2
from evse.protocol.v2gtp import PayloadType
from exi_codec.schemas import iso2
from tests.protocol.iso2.harness import LIMITS, config

SID = bytes.fromhex("1122334455667788")
AC_STATES = {s for s in State if s.value.startswith("AC_")}


def _pv(x: float, unit: str) -> Any:
    return iso2.PhysicalValueType(multiplier=0, unit=iso2.unitSymbolType(unit), value=int(x))


def _status() -> Any:
    return iso2.DC_EVStatusType(ev_ready=True, ev_error_code=iso2.DC_EVErrorCodeType.NO_ERROR,
                                evresssoc=50)


def sample(name: str, ac: bool) -> Any:
    """A minimal, valid request of each kind (AC or DC flavour where it matters)."""
    chain = iso2.CertificateChainType(certificate=b"\x01")
    roots = iso2.ListOfRootCertificateIDsType(root_certificate_id=(
        iso2.X509IssuerSerialType(x509_issuer_name="CN=root", x509_serial_number=1),))
    cpd = iso2.ChargeParameterDiscoveryReqType(
        requested_energy_transfer_mode=iso2.EnergyTransferModeType.AC_three_phase_core,
        ac_ev_charge_parameter=iso2.AC_EVChargeParameterType(
            e_amount=_pv(20000, "Wh"), ev_max_voltage=_pv(400, "V"),
            ev_max_current=_pv(16, "A"), ev_min_current=_pv(6, "A")),
    ) if ac else iso2.ChargeParameterDiscoveryReqType(
        requested_energy_transfer_mode=iso2.EnergyTransferModeType.DC_extended,
        dc_ev_charge_parameter=iso2.DC_EVChargeParameterType(
            dc_ev_status=_status(), ev_maximum_current_limit=_pv(100, "A"),
            ev_maximum_voltage_limit=_pv(450, "V")))
    samples: dict[str, Any] = {
        "SessionSetupReq": iso2.SessionSetupReqType(evccid=bytes(6)),
        "ServiceDiscoveryReq": iso2.ServiceDiscoveryReqType(),
        "ServiceDetailReq": iso2.ServiceDetailReqType(service_id=1),
        "PaymentServiceSelectionReq": iso2.PaymentServiceSelectionReqType(
            selected_payment_option=iso2.paymentOptionType.ExternalPayment,
            selected_service_list=iso2.SelectedServiceListType(
                selected_service=(iso2.SelectedServiceType(service_id=1),))),
        "PaymentDetailsReq": iso2.PaymentDetailsReqType(
            e_maid="DEABCC123456789", contract_signature_cert_chain=chain),
        "AuthorizationReq": iso2.AuthorizationReqType(),
        "ChargeParameterDiscoveryReq": cpd,
        "CableCheckReq": iso2.CableCheckReqType(dc_ev_status=_status()),
        "PreChargeReq": iso2.PreChargeReqType(
            dc_ev_status=_status(), ev_target_voltage=_pv(380, "V"),
            ev_target_current=_pv(2, "A")),
        "PowerDeliveryReq": iso2.PowerDeliveryReqType(
            charge_progress=iso2.chargeProgressType.Start, sa_schedule_tuple_id=1,
            dc_ev_power_delivery_parameter=None if ac else iso2.DC_EVPowerDeliveryParameterType(
                dc_ev_status=_status(), charging_complete=False)),
        "CurrentDemandReq": iso2.CurrentDemandReqType(
            dc_ev_status=_status(), ev_target_current=_pv(50, "A"),
            charging_complete=False, ev_target_voltage=_pv(400, "V")),
        "ChargingStatusReq": iso2.ChargingStatusReqType(),
        "MeteringReceiptReq": iso2.MeteringReceiptReqType(
            id="id1", session_id=SID, meter_info=iso2.MeterInfoType(meter_id="METER-1")),
        "WeldingDetectionReq": iso2.WeldingDetectionReqType(dc_ev_status=_status()),
        "SessionStopReq": iso2.SessionStopReqType(
            charging_session=iso2.chargingSessionType.Terminate),
        "CertificateInstallationReq": iso2.CertificateInstallationReqType(
            id="id1", oem_provisioning_cert=b"\x01", list_of_root_certificate_i_ds=roots),
        "CertificateUpdateReq": iso2.CertificateUpdateReqType(
            id="id1", contract_signature_cert_chain=chain, e_maid="DEABCC123456789",
            list_of_root_certificate_i_ds=roots),
    }
    return samples[name]


def machine_in(state: State) -> Iso2Machine:
    cfg = config(auto_authorize=True)
    ctx = MachineContext(config=cfg, namespace=ISO2, tls=False, created=0.0, now=0.0,
                         charger=ChargerState(limits=LIMITS, present_voltage=380.0,
                                              isolation_ok=True),
                         store=SessionStore(), rng=secrets, epoch_offset=0.0,
                         peer_certificate=None)
    m = Iso2Machine(ctx)
    s = m.iso2_session
    s.state = state
    if state != State.SESSION_SETUP:
        s.record.established, s.record.session_id = True, SID
    if state not in (State.SESSION_SETUP, State.SERVICE_DISCOVERY,
                     State.PAYMENT_SERVICE_SELECTION, State.PAYMENT_DETAILS,
                     State.AUTHORIZATION, State.CHARGE_PARAMETER_DISCOVERY):
        ac = state in AC_STATES
        ev = EvLimits(max_charge_power=11_000.0 if ac else 45_000.0,
                      max_charge_current=None if ac else 100.0,
                      max_voltage=None if ac else 450.0)
        s.record.ev, s.record.schedules = ev, flat_schedules(0.0, None, ev, LIMITS)
        s.transfer_mode = "AC_three_phase_core" if ac else "DC_extended"
        s.sa_schedule_tuple_id = 1
        s.cable_check_started = 0.5
        s.energy_flowing = state in (State.DC_CHARGE_LOOP, State.AC_CHARGE_LOOP,
                                     State.DC_RENEGOTIATION, State.DC_RENEGOTIATED,
                                     State.AC_RENEGOTIATION, State.AC_RENEGOTIATED)
        s.receipt_requested = True
    return m


def answer(m: Iso2Machine, name: str) -> tuple[str, list[Any]]:
    header_id = bytes(8) if name == "SessionSetupReq" else SID
    req = sample(name, m.state in AC_STATES)
    msg = iso2.V2G_Message(header=iso2.MessageHeaderType(session_id=header_id),
                           body=iso2.BodyType(**{REQUESTS[name]: req}))
    effects = m.receive_payload(PayloadType.SAP, exi_codec.encode(msg), 1.0)
    sent = [e for e in effects if isinstance(e, sev.SendData)]
    assert len(sent) == 1
    res = exi_codec.decode(sent[0].data[8:], "iso2")
    body = getattr(res.body, REQUESTS[name][:-4] + "_res")
    assert body is not None, f"{name}: answered with another message"
    return str(body.response_code), effects


def _sap() -> bytes:
    """A V2GTP frame with a supportedAppProtocolReq offering -2 only."""
    from evse.protocol.v2gtp import encode_frame
    from exi_codec.schemas import sap

    req = sap.supportedAppProtocolReq(app_protocol=(sap.AppProtocolType(
        protocol_namespace=ISO2, version_number_major=2, version_number_minor=0, schema_id=1,
        priority=1),))
    return encode_frame(PayloadType.SAP, exi_codec.encode(req))


PAIRS = [(s, n) for s in State if s != State.ENDED for n in REQUESTS]
PNC = {"PaymentDetailsReq", "CertificateInstallationReq", "CertificateUpdateReq"}


@pytest.mark.parametrize(("state", "name"), PAIRS, ids=[f"{s}-{n}" for s, n in PAIRS])
def test_every_state_request_pair(state: State, name: str) -> None:
    m = machine_in(state)
    code, effects = answer(m, name)
    if name in TRANSITIONS[state]:
        assert code != "FAILED_SequenceError", f"{name} in {state}"
        if name in PNC:  # the seam: refused until Plug & Charge is offered
            assert code == "FAILED" and m.closed
        else:
            assert code.startswith("OK"), f"{name} in {state}: {code}"
            assert m.state in TRANSITIONS[state][name].values()
    else:
        assert code == "FAILED_SequenceError"
        assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]
        assert m.closed and m.state == State.ENDED
        assert isinstance(effects[-1], sev.CloseConnection)


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(State)
    for state, row in TRANSITIONS.items():
        if state not in (State.SESSION_SETUP, State.ENDED):
            assert "SessionStopReq" in row, f"SessionStop must be legal in {state}"
        for name in row:
            assert name in REQUESTS


def test_sessionstop_after_authorization_and_cpd_is_ok_and_safe() -> None:
    for state in (State.CHARGE_PARAMETER_DISCOVERY, State.DC_CABLE_CHECK,
                  State.AC_POWER_DELIVERY, State.DC_CHARGE_LOOP):
        m = machine_in(state)
        code, effects = answer(m, "SessionStopReq")
        assert code == "OK"
        assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]
        assert m.closed


def test_wrap_names_the_body_element() -> None:
    res = iso2.SessionStopResType(response_code=iso2.responseCodeType.OK)
    assert wrap(res, SID).body.session_stop_res == res
