"""supportedAppProtocol negotiation (the first message pair on every V2G connection).

Table-driven (standards.py): among the EV's offers (up to 20) we keep those whose namespace
belongs to a standard the station enables (`SeccConfig.protocols`) with the same major
version, on an allowed transport (-20 only over TLS unless `allow_plain_tcp_iso20`, and never
on a TLS 1.2 connection; DIN only over plain TCP; -2 over both) and with something to offer
(-20 AC needs an AC service). The EV's highest priority wins, i.e. the lowest Priority value
(the first of equal ones).
OK_SuccessfulNegotiation when the minor version matches ours, else
OK_SuccessfulNegotiationWithMinorDeviation; none left: Failed_NoNegotiation, no SchemaID.
"""

from __future__ import annotations

from typing import Any

import exi_codec
from evse.protocol.config import SeccConfig
from evse.protocol.standards import STANDARDS, Standard
from exi_codec.schemas.sap import (
    responseCodeType,
    supportedAppProtocolReq,
    supportedAppProtocolRes,
)

OK = responseCodeType.OK_SuccessfulNegotiation
OK_MINOR_DEVIATION = responseCodeType.OK_SuccessfulNegotiationWithMinorDeviation
FAILED = responseCodeType.Failed_NoNegotiation


def _standard(app: Any, config: SeccConfig, tls: bool,
              tls_version: str | None = None) -> Standard | None:
    """The enabled standard that can serve this offer, None if none."""
    namespace = str(app.protocol_namespace)
    for name in config.protocols:
        std = STANDARDS[name]
        if namespace not in std.namespaces or app.version_number_major != std.version[0]:
            continue
        if not std.transport_ok(tls, config, tls_version):
            continue
        if std.offers is None or std.offers(namespace, config):
            return std
    return None


def negotiate(
    req: supportedAppProtocolReq, config: SeccConfig, *, tls: bool,
    tls_version: str | None = None,
) -> tuple[supportedAppProtocolRes, str | None]:
    """(response, negotiated namespace or None when negotiation failed)."""
    candidates = [(app, std) for app in req.app_protocol
                  if (std := _standard(app, config, tls, tls_version))]
    if not candidates:
        return supportedAppProtocolRes(response_code=FAILED), None
    best, std = min(candidates, key=lambda c: c[0].priority)  # first of equal priorities wins
    code = OK if best.version_number_minor == std.version[1] else OK_MINOR_DEVIATION
    res = supportedAppProtocolRes(response_code=code, schema_id=best.schema_id)
    return res, str(best.protocol_namespace)


def answer(
    payload: bytes, config: SeccConfig, *, tls: bool, tls_version: str | None = None
) -> tuple[supportedAppProtocolRes, str | None]:
    """`negotiate` for an encoded request; anything undecodable fails the negotiation."""
    try:
        req = exi_codec.decode(payload, "sap", max_lengths=True)
    except exi_codec.ExiDecodeError:
        return failed_response(), None
    if not isinstance(req, supportedAppProtocolReq):
        return failed_response(), None
    return negotiate(req, config, tls=tls, tls_version=tls_version)


def failed_response() -> supportedAppProtocolRes:
    return supportedAppProtocolRes(response_code=FAILED)
