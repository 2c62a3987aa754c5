"""supportedAppProtocol negotiation, with the real requests and responses of the vectors."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

import exi_codec
from evse.protocol.config import DIN, ISO2, ISO20_AC, ISO20_DC, SeccConfig, ServiceId
from evse.protocol.machine import MachineContext, StandardMachine
from evse.protocol.sap import FAILED, OK, OK_MINOR_DEVIATION, negotiate
from evse.protocol.secc import SeccConnection
from evse.protocol.standards import STANDARDS
from evse.protocol.v2gtp import PayloadType, encode_frame
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
    for name in [n for n, s in STANDARDS.items() if s.factory is None]:
        with pytest.raises(ValueError, match="not implemented yet"):
            SeccConfig(protocols=("iso20", name))
    assert STANDARDS["din"].factory is not None  # DIN SPEC 70121 is implemented
    with pytest.raises(ValueError, match="unknown protocols"):
        SeccConfig(protocols=(ISO20_DC,))  # names, not namespaces
    with pytest.raises(ValueError, match="at least one"):
        SeccConfig(protocols=())


# -- the registry: every standard negotiable once its machine factory exists ---------------------


def _fake_factory(ctx: MachineContext) -> StandardMachine:
    raise AssertionError("negotiate() never builds a machine")


@pytest.fixture
def all_three(monkeypatch: pytest.MonkeyPatch) -> SeccConfig:
    """-2 and DIN registered with fake machine factories (their machines do not exist yet)."""
    for name in ("iso2", "din"):
        entry = dataclasses.replace(STANDARDS[name], factory=_fake_factory)
        monkeypatch.setitem(STANDARDS, name, entry)
    return SeccConfig(services=(ServiceId.DC,), protocols=("iso20", "iso2", "din"),
                      allow_plain_tcp_iso20=True)


OFFERS = {  # namespace -> (major, minor) as real EVs offer them
    ISO20_DC: (1, 0),
    ISO2: (2, 0),
    DIN: (2, 0),
}


@pytest.mark.parametrize("order", list(itertools.permutations(OFFERS)))
def test_every_priority_ordering_of_the_three_standards(
    order: tuple[str, ...], all_three: SeccConfig
) -> None:
    # The EV lists its offers in a fixed order and ranks them by Priority: the lowest wins,
    # wherever it appears in the list.
    priority = {ns: i + 1 for i, ns in enumerate(order)}
    apps = tuple(
        offer(ns, priority[ns], schema_id=10 + i, major=OFFERS[ns][0], minor=OFFERS[ns][1])
        for i, ns in enumerate(OFFERS)
    )
    res, namespace = negotiate(supportedAppProtocolReq(app_protocol=apps), all_three, tls=False)
    assert namespace == order[0]
    assert res.response_code == OK and res.schema_id == 10 + list(OFFERS).index(order[0])
    # The station's own list order does not matter, only what it enables.
    reordered = dataclasses.replace(all_three, protocols=("din", "iso2", "iso20"))
    assert negotiate(supportedAppProtocolReq(app_protocol=apps), reordered, tls=False)[1] \
        == order[0]
    # Disabling the winner hands the connection to the EV's next choice.
    rest = tuple(n for n, std in STANDARDS.items() if order[0] not in std.namespaces)
    fewer = dataclasses.replace(all_three, protocols=rest)
    assert negotiate(supportedAppProtocolReq(app_protocol=apps), fewer, tls=False)[1] == order[1]


def test_no_enabled_namespace_is_failed_no_negotiation_without_schema_id(
    all_three: SeccConfig,
) -> None:
    apps = (offer("urn:example:unknown", 1, 1), offer(ISO2, 2, 2, major=3),
            offer(DIN, 3, 3, major=1), offer(ISO20_DC, 4, 4, major=2))
    res, namespace = negotiate(supportedAppProtocolReq(app_protocol=apps), all_three, tls=False)
    assert namespace is None
    assert res.response_code == FAILED and res.schema_id is None
    assert exi_codec.encode(res) == real("sap-supportedAppProtocolRes-006")
    iso20_only = dataclasses.replace(all_three, protocols=("iso20",))
    res, namespace = negotiate(
        supportedAppProtocolReq(app_protocol=(offer(ISO2, 1, 1, major=2),
                                              offer(DIN, 2, 2, major=2))), iso20_only, tls=True)
    assert namespace is None and res.response_code == FAILED and res.schema_id is None


@pytest.mark.parametrize(("ns", "major", "minor"), [(ISO2, 2, 1), (DIN, 2, 3), (ISO20_DC, 1, 9)])
def test_minor_deviation_for_every_standard(
    ns: str, major: int, minor: int, all_three: SeccConfig
) -> None:
    req = supportedAppProtocolReq(app_protocol=(offer(ns, 1, 7, major=major, minor=minor),))
    res, namespace = negotiate(req, all_three, tls=False)
    assert namespace == ns and res.schema_id == 7
    assert res.response_code == OK_MINOR_DEVIATION


def test_transport_rules(all_three: SeccConfig) -> None:
    apps = (offer(DIN, 1, 1, major=2), offer(ISO2, 2, 2, major=2), offer(ISO20_DC, 3, 3))
    req = supportedAppProtocolReq(app_protocol=apps)
    assert negotiate(req, all_three, tls=False)[1] == DIN
    assert negotiate(req, all_three, tls=True)[1] == ISO2  # DIN has no TLS
    strict = dataclasses.replace(all_three, allow_plain_tcp_iso20=False)
    only20 = supportedAppProtocolReq(app_protocol=(offer(ISO20_DC, 1, 1),))
    assert negotiate(only20, strict, tls=False)[1] is None  # -20 needs TLS
    iso2 = supportedAppProtocolReq(app_protocol=(offer(ISO2, 1, 1, major=2),))
    assert negotiate(iso2, strict, tls=False)[1] == ISO2  # -2 runs over plain TCP too


def test_a_negotiated_standard_gets_the_connection(
    all_three: SeccConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[MachineContext] = []

    class Machine:
        payload_types = frozenset({PayloadType.SAP})
        state, closed, session = "Fake", False, None

        def receive_payload(self, payload_type: PayloadType, payload: bytes, now: float) -> list:
            return [("payload", payload_type, payload, now)]

        def handle_timeout(self, now: float) -> list:
            return []

    def factory(ctx: MachineContext) -> Machine:
        built.append(ctx)
        return Machine()

    monkeypatch.setitem(STANDARDS, "din", dataclasses.replace(STANDARDS["din"], factory=factory))
    conn = SeccConnection(all_three, tls=False, now=1.0)
    sap = supportedAppProtocolReq(app_protocol=(offer(DIN, 1, 5, major=2),))
    effects = conn.receive_data(encode_frame(PayloadType.SAP, exi_codec.encode(sap)), 2.0)
    assert exi_codec.decode(effects[0].data[8:], "sap").schema_id == 5
    assert conn.protocol == DIN and conn.state == "Fake" and built[0].namespace == DIN
    assert (built[0].created, built[0].now, built[0].tls) == (1.0, 2.0, False)
    # DIN's requests arrive as 0x8001 too: now they go to the DIN machine.
    assert conn.receive_data(encode_frame(PayloadType.SAP, b"\x80\x9a"), 3.0) == [
        ("payload", PayloadType.SAP, b"\x80\x9a", 3.0)
    ]
