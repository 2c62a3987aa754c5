import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evse.protocol.sdp import (
    SdpError,
    SdpRequest,
    SdpResponse,
    SdpServerConfig,
    Security,
    Transport,
    answer,
    choose_security,
    parse_request,
    parse_response,
)
from evse.protocol.v2gtp import PayloadType, encode_frame

ADDR = ipaddress.IPv6Address("fe80::1234:56ff:fe78:9abc")


def config(tls: bool = True, plain: bool = False) -> SdpServerConfig:
    return SdpServerConfig(ADDR, 51111, tls_available=tls, plain_allowed=plain)


def test_request_wire_format() -> None:
    assert SdpRequest(Security.NONE).encode() == bytes.fromhex("01fe9000000000021000")
    assert parse_request(bytes.fromhex("01fe9000000000020000")) == SdpRequest(Security.TLS)


def test_response_wire_format() -> None:
    wire = SdpResponse(ADDR, 51111, Security.TLS).encode()
    assert wire[:8] == bytes.fromhex("01fe900100000014")
    assert wire[8:24] == ADDR.packed
    assert wire[24:] == bytes([51111 >> 8, 51111 & 0xFF, 0x00, 0x00])
    assert parse_response(wire) == SdpResponse(ADDR, 51111, Security.TLS, Transport.TCP)


@pytest.mark.parametrize(
    ("requested", "tls", "plain", "granted"),
    [
        (Security.TLS, True, False, Security.TLS),
        (Security.TLS, True, True, Security.TLS),
        (Security.NONE, True, True, Security.NONE),
        (Security.NONE, True, False, Security.TLS),  # we announce what we have
        (Security.TLS, False, True, Security.NONE),
        (Security.NONE, False, True, Security.NONE),
    ],
)
def test_choose_security(requested: Security, tls: bool, plain: bool, granted: Security) -> None:
    assert choose_security(requested, config(tls, plain)) is granted


def test_config_must_offer_something() -> None:
    with pytest.raises(ValueError):
        config(tls=False, plain=False)


def test_answer_end_to_end() -> None:
    reply = answer(SdpRequest(Security.TLS).encode(), config())
    assert reply is not None
    assert parse_response(reply) == SdpResponse(ADDR, 51111, Security.TLS)


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        bytes.fromhex("01fe90000000000200"),  # truncated
        bytes.fromhex("01fe9000000000030000 00".replace(" ", "")),  # 3-byte payload
        bytes.fromhex("01fe900000000001 00".replace(" ", "")),  # 1-byte payload
        bytes.fromhex("01fe9000000000022000"),  # unknown security
        bytes.fromhex("01fe9000000000020010"),  # UDP transport (reserved)
        bytes.fromhex("01fe9001000000020000"),  # a response type, not a request
        bytes.fromhex("02fd9000000000020000"),  # bad version
    ],
)
def test_malformed_requests_raise_and_are_not_answered(datagram: bytes) -> None:
    with pytest.raises(SdpError):
        parse_request(datagram)
    assert answer(datagram, config()) is None


@given(st.binary(max_size=40))
def test_random_datagrams_never_crash(datagram: bytes) -> None:
    reply = answer(datagram, config(plain=True))
    if reply is not None:
        assert len(reply) == 28
        assert parse_request(datagram) is not None


def test_response_rejects_ipv4_and_bad_port() -> None:
    with pytest.raises(TypeError):
        SdpResponse(ipaddress.IPv4Address("10.0.0.1"), 1, Security.TLS)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SdpResponse(ADDR, 0, Security.TLS)


def test_parse_response_rejects_port_zero() -> None:
    payload = ADDR.packed + b"\x00\x00\x00\x00"
    with pytest.raises(SdpError):
        parse_response(encode_frame(PayloadType.SDP_RES, payload))
