"""supportedAppProtocol negotiation (the first message pair on every V2G connection).

Among the EV's offers (up to 20) we keep those we implement with the same major version
(-20 only over TLS unless `allow_plain_tcp_iso20`), and pick the EV's highest priority, i.e.
the lowest Priority value. A different minor version is accepted "with minor deviation".
"""

from __future__ import annotations

from typing import Any

import exi_codec
from evse.protocol.config import ISO20_VERSION, SeccConfig
from exi_codec.schemas.sap import (
    responseCodeType,
    supportedAppProtocolReq,
    supportedAppProtocolRes,
)

OK = responseCodeType.OK_SuccessfulNegotiation
OK_MINOR_DEVIATION = responseCodeType.OK_SuccessfulNegotiationWithMinorDeviation
FAILED = responseCodeType.Failed_NoNegotiation


def _acceptable(app: Any, config: SeccConfig, tls: bool) -> bool:
    namespace = app.protocol_namespace
    if namespace not in config.protocols or not config.services_for(namespace):
        return False
    if not tls and not config.allow_plain_tcp_iso20:
        return False  # every protocol we implement is -20, which requires TLS
    return bool(app.version_number_major == ISO20_VERSION[0])


def negotiate(
    req: supportedAppProtocolReq, config: SeccConfig, *, tls: bool
) -> tuple[supportedAppProtocolRes, str | None]:
    """(response, negotiated namespace or None when negotiation failed)."""
    candidates = [app for app in req.app_protocol if _acceptable(app, config, tls)]
    if not candidates:
        return supportedAppProtocolRes(response_code=FAILED), None
    best = min(candidates, key=lambda app: app.priority)  # first of equal priorities wins
    code = OK if best.version_number_minor == ISO20_VERSION[1] else OK_MINOR_DEVIATION
    res = supportedAppProtocolRes(response_code=code, schema_id=best.schema_id)
    return res, str(best.protocol_namespace)


def answer(
    payload: bytes, config: SeccConfig, *, tls: bool
) -> tuple[supportedAppProtocolRes, str | None]:
    """`negotiate` for an encoded request; anything undecodable fails the negotiation."""
    try:
        req = exi_codec.decode(payload, "sap", max_lengths=True)
    except exi_codec.ExiDecodeError:
        return failed_response(), None
    if not isinstance(req, supportedAppProtocolReq):
        return failed_response(), None
    return negotiate(req, config, tls=tls)


def failed_response() -> supportedAppProtocolRes:
    return supportedAppProtocolRes(response_code=FAILED)
