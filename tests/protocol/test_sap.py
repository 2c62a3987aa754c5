"""supportedAppProtocol negotiation, with the real requests and responses of the vectors."""

from __future__ import annotations

import pytest

import exi_codec
from evse.protocol.config import DIN, ISO2, ISO20_AC, ISO20_DC, SeccConfig, ServiceId
from evse.protocol.sap import negotiate
from exi_codec.schemas.sap import AppProtocolType, supportedAppProtocolReq
from tests.conftest import load_vectors
from tests.protocol.evcc import DC_LIMITS

VECTORS = {v["id"]: v for v in load_vectors()}
CFG = SeccConfig(services=(ServiceId.DC, ServiceId.AC), limits=DC_LIMITS)


def offer(
    ns: str, priority: int, schema_id: int, minor: int = 0, major: int = 1
) -> AppProtocolType:
    return AppProtocolType(
        protocol_namespace=ns,
        version_number_major=major,
        version_number_minor=minor,
        schema_id=schema_id,
        priority=priority,
    )


def real(vid: str) -> bytes:
    if vid not in VECTORS:
        pytest.skip(f"vector {vid} not available")
    return bytes.fromhex(VECTORS[vid]["hex"])


@pytest.mark.parametrize(
    "vid",
    [
        "sap-supportedAppProtocolReq-004",
        "sap-supportedAppProtocolReq-008",
        "sap-supportedAppProtocolReq-010",
    ],
)
def test_real_din_and_iso2_only_cars_get_no_negotiation(vid: str) -> None:
    req = exi_codec.decode(real(vid), "sap")
    res, namespace = negotiate(req, CFG, tls=True)
    assert namespace is None
    assert exi_codec.encode(res) == real("sap-supportedAppProtocolRes-006")  # Failed_NoNegotiation


def test_highest_priority_supported_offer_wins() -> None:
    req = supportedAppProtocolReq(
        app_protocol=(offer(DIN, 1, 0, major=2), offer(ISO20_AC, 3, 2), offer(ISO20_DC, 2, 1))
    )
    res, namespace = negotiate(req, CFG, tls=True)
    assert namespace == ISO20_DC and res.schema_id == 1
    assert exi_codec.encode(res) == real("sap-supportedAppProtocolRes-001")  # OK, SchemaID 1


def test_minor_deviation() -> None:
    req = supportedAppProtocolReq(app_protocol=(offer(ISO20_DC, 1, 1, minor=3),))
    res, _ = negotiate(req, CFG, tls=True)
    assert exi_codec.encode(res) == real("sap-supportedAppProtocolRes-002")


def test_other_major_version_and_services_filter() -> None:
    req = supportedAppProtocolReq(app_protocol=(offer(ISO20_DC, 1, 1, major=2),))
    assert negotiate(req, CFG, tls=True)[1] is None
    dc_only = SeccConfig(services=(ServiceId.DC,))
    req = supportedAppProtocolReq(app_protocol=(offer(ISO20_AC, 1, 4), offer(ISO20_DC, 2, 5)))
    assert negotiate(req, dc_only, tls=True)[1] == ISO20_DC  # no AC service to offer


def test_iso20_needs_tls() -> None:
    req = supportedAppProtocolReq(app_protocol=(offer(ISO20_DC, 1, 1),))
    assert negotiate(req, CFG, tls=False)[1] is None
    plain = SeccConfig(allow_plain_tcp_iso20=True)
    assert negotiate(req, plain, tls=False)[1] == ISO20_DC


def test_unimplemented_protocols_cannot_be_configured() -> None:
    for ns in (ISO2, DIN):
        with pytest.raises(ValueError):
            SeccConfig(protocols=(ISO20_DC, ns))
