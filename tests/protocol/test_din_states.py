"""The DIN transition table, checked through the machine for every (state, request) pair:
a request outside the table gets FAILED_SequenceError in its own response type with the
power stage made safe first; a request in the table never does."""

from __future__ import annotations

from typing import Any

import pytest

import exi_codec
from evse.protocol import events as ev
from evse.protocol.config import SeccConfig
from evse.protocol.din.machine import DinMachine
from evse.protocol.din.messages import REQUESTS, body_element
from evse.protocol.din.states import TRANSITIONS, State, expected_request, legal
from evse.protocol.din.units import physical
from evse.protocol.limits import EvLimits, EvseLimits
from evse.protocol.secc import SeccConnection
from evse.protocol.v2gtp import PayloadType, encode_frame
from exi_codec.schemas import din, sap

SID = bytes.fromhex("0102030405060708")
LIMITS = EvseLimits(max_charge_power=50_000.0, max_charge_current=125.0, max_voltage=500.0,
                    min_voltage=150.0)
STATUS = din.DC_EVStatusType(ev_ready=True, ev_error_code="NO_ERROR", evresssoc=50)
V, A = physical(400.0, "V"), physical(10.0, "A")
CHAIN = din.CertificateChainType(certificate=b"\x30\x00")
ROOTS = din.ListOfRootCertificateIDsType(root_certificate_id=("root",))

# one valid body element per DIN request (also those DIN EIM DC never uses)
BODIES: dict[str, Any] = {
    "SessionSetupReq": din.SessionSetupReqType(evccid=bytes.fromhex("0A1B2C3D4E5F")),
    "ServiceDiscoveryReq": din.ServiceDiscoveryReqType(),
    "ServiceDetailReq": din.ServiceDetailReqType(service_id=1),
    "ServicePaymentSelectionReq": din.ServicePaymentSelectionReqType(
        selected_payment_option="ExternalPayment",
        selected_service_list=din.SelectedServiceListType(
            selected_service=(din.SelectedServiceType(service_id=1),))),
    "PaymentDetailsReq": din.PaymentDetailsReqType(contract_id="C1",
                                                   contract_signature_cert_chain=CHAIN),
    "ContractAuthenticationReq": din.ContractAuthenticationReqType(),
    "ChargeParameterDiscoveryReq": din.ChargeParameterDiscoveryReqType(
        ev_requested_energy_transfer_type="DC_extended",
        dc_ev_charge_parameter=din.DC_EVChargeParameterType(
            dc_ev_status=STATUS, ev_maximum_current_limit=physical(200.0, "A"),
            ev_maximum_voltage_limit=physical(450.0, "V"))),
    "CableCheckReq": din.CableCheckReqType(dc_ev_status=STATUS),
    "PreChargeReq": din.PreChargeReqType(dc_ev_status=STATUS, ev_target_voltage=V,
                                         ev_target_current=physical(1.0, "A")),
    "PowerDeliveryReq": din.PowerDeliveryReqType(
        ready_to_charge_state=True,
        dc_ev_power_delivery_parameter=din.DC_EVPowerDeliveryParameterType(
            dc_ev_status=STATUS, charging_complete=False)),
    "CurrentDemandReq": din.CurrentDemandReqType(
        dc_ev_status=STATUS, ev_target_current=A, ev_target_voltage=V, charging_complete=False),
    "WeldingDetectionReq": din.WeldingDetectionReqType(dc_ev_status=STATUS),
    "SessionStopReq": din.SessionStopType(),
    "ChargingStatusReq": din.ChargingStatusReqType(),
    "MeteringReceiptReq": din.MeteringReceiptReqType(
        session_id=SID, meter_info=din.MeterInfoType(meter_id="M1")),
    "CertificateInstallationReq": din.CertificateInstallationReqType(
        id="id1", oem_provisioning_cert=b"\x30\x00", list_of_root_certificate_i_ds=ROOTS,
        dh_params=b"\x04"),
    "CertificateUpdateReq": din.CertificateUpdateReqType(
        id="id1", contract_signature_cert_chain=CHAIN, contract_id="C1",
        list_of_root_certificate_i_ds=ROOTS, dh_params=b"\x04"),
}
SESSION_STATES = [s for s in State if s != State.ENDED]


class Rng:
    def token_bytes(self, n: int) -> bytes:
        return SID[:n]


def request(name: str, session_id: bytes = SID) -> bytes:
    body = din.BodyType(**{REQUESTS[name].field: BODIES[name]})
    msg = din.V2G_Message(header=din.MessageHeaderType(session_id=session_id), body=body)
    return encode_frame(PayloadType.SAP, exi_codec.encode(msg))


def connect(**cfg: Any) -> SeccConnection:
    base: dict[str, Any] = dict(protocols=("iso20", "din"), limits=LIMITS, auto_authorize=True)
    base.update(cfg)
    conn = SeccConnection(SeccConfig(**base), tls=False, now=0.0, rng=Rng())
    offer = sap.supportedAppProtocolReq(app_protocol=(sap.AppProtocolType(
        protocol_namespace="urn:din:70121:2012:MsgDef", version_number_major=2,
        version_number_minor=0, schema_id=1, priority=1),))
    conn.receive_data(encode_frame(PayloadType.SAP, exi_codec.encode(offer)), 0.0)
    assert isinstance(conn.machine, DinMachine)
    return conn


def forced(state: State) -> SeccConnection:
    """A session set up for real, then put into `state` with a plausible context."""
    conn = connect()
    conn.receive_data(request("SessionSetupReq", b"\x00"), 0.1)
    machine = conn.machine
    assert isinstance(machine, DinMachine)
    d = machine.din
    d.record.ev = EvLimits(max_charge_power=90_000.0, max_charge_current=200.0,
                           max_voltage=450.0, min_voltage=0.0)
    d.record.authorized = True
    d.state = state
    if state in (State.PRE_CHARGE, State.CURRENT_DEMAND, State.POWER_OFF,
                 State.WELDING_DETECTION):
        d.cable_check_started, d.isolation = 0.5, "Valid"
    d.energy_flowing = state == State.CURRENT_DEMAND
    return conn


def answer(effects: list[Any]) -> tuple[str, str]:
    """(response element name, ResponseCode) of the SendData among `effects`."""
    (sent,) = [e for e in effects if isinstance(e, ev.SendData)]
    msg = exi_codec.decode(sent.data[8:], "din")
    field, res = body_element(msg)
    assert field is not None
    return field, str(res.response_code)


def test_every_state_has_a_row_and_targets_are_states() -> None:
    assert set(TRANSITIONS) == set(State)
    for row in TRANSITIONS.values():
        for name, outcomes in row.items():
            assert name in REQUESTS
            assert all(isinstance(target, State) for target in outcomes.values())


def test_session_stop_is_legal_in_every_state_after_session_setup() -> None:
    for state in SESSION_STATES:
        assert legal(state, "SessionStopReq") is (state != State.SESSION_SETUP)


def test_bodies_cover_every_request() -> None:
    assert set(BODIES) == set(REQUESTS)


@pytest.mark.parametrize("state", SESSION_STATES)
@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_state_request_pair(state: State, name: str) -> None:
    conn = forced(state)
    session_id = b"\x00" if name == "SessionSetupReq" else SID
    effects = conn.receive_data(request(name, session_id), 1.0)
    field, code = answer(effects)
    assert field == REQUESTS[name].response_field  # answered in the request's own type
    if not legal(state, name):
        assert code == "FAILED_SequenceError"
        kinds = [type(e) for e in effects]
        assert kinds[:2] == [ev.StopPower, ev.OpenContactors]  # safe before the answer
        assert kinds.index(ev.SendData) > 1 and ev.SessionEnded in kinds
        assert conn.closed and conn.state == State.ENDED
    else:
        assert code != "FAILED_SequenceError", (state, name, code)


def test_expected_request_is_the_first_of_the_row() -> None:
    assert expected_request(State.SESSION_SETUP) == "SessionSetupReq"
    assert expected_request(State.CURRENT_DEMAND) == "CurrentDemandReq"
    assert expected_request(State.ENDED) is None
