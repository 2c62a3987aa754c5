"""ISO 15118-20 conformance cases from issue 11 (schema facets on input, negotiation, session
flow): each answered as the standard (or, where noted, the issue) requires."""

from __future__ import annotations

from typing import Any

import pytest

import exi_codec
from evse.protocol import events as ev
from evse.protocol.config import ISO20_AC, ISO20_DC, ControlMode, ServiceId
from evse.protocol.states import State
from evse.protocol.v2gtp import PayloadType, encode_frame
from exi_codec.schemas import iso20, sap
from tests.protocol.evcc import Ev, assert_safe_end, of, response
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
