"""MeteringConfirmation: the EV's signature over SignedMeteringData, verified with the contract
key of this session's PnC authorization; anything else ends the session safely."""

from __future__ import annotations

from typing import Any

import pytest

from certs.pnc_pki import PncPki
from evse.protocol import events as ev
from evse.protocol.config import ControlMode, ServiceId
from evse.protocol.iso20.states import State
from evse.protocol.secc import SeccConnection
from evse.security.signatures import SignedElement, sign
from exi_codec.schemas import iso20
from tests.protocol.evcc import Ev, FakeRng, assert_safe_end, config, of
from tests.security.helpers import (
    ALGORITHMS,
    NOW_TS,
    authorization_req,
    pki_for,
    pre_iso20_ed448_signature,
    verifier,
)


@pytest.fixture(params=ALGORITHMS)
def pki(request: pytest.FixtureRequest) -> PncPki:
    return pki_for(str(request.param))


def to_loop(pki: PncPki, *, pnc: bool = True, **kw: Any) -> Ev:
    cfg = config(offer_pnc=True, pnc_verifier=verifier(pki), pnc_auto_authorize=True,
                 control_modes=(ControlMode.SCHEDULED,), **kw)
    x = Ev(SeccConnection(cfg, tls=True, now=0.0, rng=FakeRng(), epoch_offset=NOW_TS))
    x.sap()
    x.setup()
    res, _ = x.send(iso20.AuthorizationSetupReq(header=x.header()))
    if pnc:
        challenge = bytes(res.pnc_as_res_authorization_mode.gen_challenge)
        assert x.send(authorization_req(pki.contract, challenge, x.header()))[0]. \
            response_code == "OK"
    else:
        assert x.authorization().response_code == "OK"
    assert x.select(ServiceId.DC, ControlMode.SCHEDULED).response_code == "OK"
    x.dc_cpd(False)
    x.schedule_exchange(ControlMode.SCHEDULED)
    x.cable_check()
    x.event(ev.CableCheckFinished(isolation_ok=True))
    x.cable_check()
    x.event(ev.MeasurementsUpdated(present_voltage=400.0, present_current=0.0))
    x.pre_charge(400)
    assert x.power_delivery("Start").response_code == "OK"
    assert x.conn.state == State.DC_CHARGE_LOOP
    return x


def metering_req(x: Ev, key: Any, *, session_id: bytes | None = None) -> Any:
    data = iso20.SignedMeteringDataType(
        id="id1",
        session_id=session_id or x.session_id,
        meter_info=iso20.MeterInfoType(meter_id="METER-1", charged_energy_reading_wh=1234,
                                       meter_timestamp=NOW_TS),
        scheduled_smdt_control_mode=iso20.Scheduled_SMDTControlModeType(
            selected_schedule_tuple_id=1),
    )
    signature = sign(key, SignedElement("SignedMeteringData", data))
    return iso20.MeteringConfirmationReq(header=x.header().replace(signature=signature),
                                         signed_metering_data=data)


def test_metering_confirmation_in_the_loop_and_after_stop(pki: PncPki) -> None:
    x = to_loop(pki)
    res, _ = x.send(metering_req(x, pki.contract.key), dt=0.05)
    assert res.response_code == "OK" and x.conn.state == State.DC_CHARGE_LOOP
    assert x.power_delivery("Stop").response_code == "OK"
    assert x.conn.state == State.DC_POWER_OFF
    res, _ = x.send(metering_req(x, pki.contract.key))
    assert res.response_code == "OK" and x.conn.state == State.DC_POWER_OFF


@pytest.mark.parametrize("case", ["other_key", "other_session", "tampered", "eim_session"])
def test_bad_metering_confirmation_ends_the_session(pki: PncPki, case: str) -> None:
    x = to_loop(pki, pnc=case != "eim_session")
    if case == "other_key":
        req = metering_req(x, pki.variants["contract_unknown_root"].key)
    elif case == "other_session":
        req = metering_req(x, pki.contract.key, session_id=bytes(8))
    elif case == "tampered":
        req = metering_req(x, pki.contract.key)
        data = req.signed_metering_data
        req = req.replace(signed_metering_data=data.replace(
            meter_info=data.meter_info.replace(charged_energy_reading_wh=1)))
    else:
        req = metering_req(x, pki.contract.key)
    res, effects = x.send(req, dt=0.05)
    assert res.response_code == "FAILED_MeteringSignatureNotValid"
    assert_safe_end(effects)
    assert x.conn.closed


SIGNATURE = bytes(range(64))  # what an Ed25519-signing meter gives


def test_secc_asks_for_confirmation_with_signed_meter_info(pki: PncPki) -> None:
    x = to_loop(pki, pnc_metering_confirmation=True)
    x.event(ev.MeasurementsUpdated(present_voltage=400.0, present_current=10.0,
                                   imported_wh=1500.0, meter_signature=SIGNATURE))
    res, _ = x.dc_loop(ControlMode.SCHEDULED, False, meter=False)
    assert res.meter_info is None and res.evse_status is None  # nothing to confirm
    res, effects = x.dc_loop(ControlMode.SCHEDULED, False, meter=True)
    assert res.evse_status.evse_notification == "MeteringConfirmation"
    info = res.meter_info
    assert info.charged_energy_reading_wh == 1500 and bytes(info.meter_signature) == SIGNATURE
    assert not of(effects, ev.StopPower)
    # the EV signs exactly the MeterInfo it got
    data = iso20.SignedMeteringDataType(
        id="id1", session_id=x.session_id,
        meter_info=iso20.MeterInfoType(**{f: getattr(info, f)
                                          for f in type(info)._py_names()}),
        scheduled_smdt_control_mode=iso20.Scheduled_SMDTControlModeType(
            selected_schedule_tuple_id=1))
    signature = sign(pki.contract.key, SignedElement("SignedMeteringData", data))
    res, effects = x.send(iso20.MeteringConfirmationReq(
        header=x.header().replace(signature=signature), signed_metering_data=data), dt=0.05)
    assert res.response_code == "OK"
    (record,) = of(effects, ev.MeteringConfirmed)
    assert record.session_id == x.session_id and record.emaid == pki.emaid
    assert record.signed_metering_data == data and record.signature == signature


def test_no_confirmation_asked_without_the_option_or_pnc(pki: PncPki) -> None:
    for x in (to_loop(pki), to_loop(pki, pnc=False, pnc_metering_confirmation=True)):
        res, _ = x.dc_loop(ControlMode.SCHEDULED, False, meter=True)
        assert res.meter_info is not None and res.evse_status is None


def test_terminate_wins_over_a_metering_confirmation(pki: PncPki) -> None:
    x = to_loop(pki, pnc_metering_confirmation=True)
    x.event(ev.StopRequested(reason="test"))
    res, _ = x.dc_loop(ControlMode.SCHEDULED, False, meter=True)
    assert res.evse_status.evse_notification == "Terminate"


def test_meter_signature_too_long_for_meter_info_is_left_out(pki: PncPki) -> None:
    x = to_loop(pki)
    x.event(ev.MeasurementsUpdated(present_voltage=400.0, present_current=10.0,
                                   imported_wh=10.0, meter_signature=bytes(132)))
    res, _ = x.dc_loop(ControlMode.SCHEDULED, False, meter=True)
    assert res.meter_info.meter_signature is None


def test_ed448_confirmation_with_pre_iso20_identifiers_is_refused() -> None:
    pki = pki_for("ed448")
    x = to_loop(pki)
    req = metering_req(x, pki.contract.key)
    old = pre_iso20_ed448_signature(
        pki.contract.key, SignedElement("SignedMeteringData", req.signed_metering_data))
    res, effects = x.send(req.replace(header=req.header.replace(signature=old)), dt=0.05)
    assert res.response_code == "FAILED_MeteringSignatureNotValid"
    assert_safe_end(effects)
    assert not of(effects, ev.MeteringConfirmed)
