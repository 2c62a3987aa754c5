"""SECC Discovery Protocol (SDP), sans-IO.

The EV multicasts an SDP request (UDP, port 15118, ff02::1 on the charging interface); the
SECC answers the requester's address and port with the IPv6 address and TCP port of its V2G
server. Both travel in V2GTP frames (0x9000 request, 0x9001 response).

Request payload (2 bytes):  security (0x00 TLS, 0x10 none), transport (0x00 TCP).
Response payload (20 bytes): IPv6 address (16), port (u16 BE), security, transport.

Malformed or unsupported requests raise `SdpError` from the parsers; `answer()` turns them
into None because a bad datagram on UDP is simply not answered.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from evse.protocol.v2gtp import PayloadType, V2GTPError, decode_datagram, encode_frame

SDP_PORT = 15118
SDP_MULTICAST_ADDRESS = ipaddress.IPv6Address("ff02::1")
REQUEST_PAYLOAD = struct.Struct(">BB")
RESPONSE_PAYLOAD = struct.Struct(">16sHBB")

_E = TypeVar("_E", bound=IntEnum)


class Security(IntEnum):
    TLS = 0x00
    NONE = 0x10


class Transport(IntEnum):
    # 0x10 (UDP) is reserved by the standard and never offered by an SECC: not accepted here.
    TCP = 0x00


class SdpError(ValueError):
    """An SDP datagram that is malformed or asks for something we do not support."""


@dataclass(frozen=True, slots=True)
class SdpRequest:
    security: Security
    transport: Transport = Transport.TCP

    def encode(self) -> bytes:
        payload = REQUEST_PAYLOAD.pack(self.security, self.transport)
        return encode_frame(PayloadType.SDP_REQ, payload)


@dataclass(frozen=True, slots=True)
class SdpResponse:
    address: ipaddress.IPv6Address
    port: int
    security: Security
    transport: Transport = Transport.TCP

    def __post_init__(self) -> None:
        if not isinstance(self.address, ipaddress.IPv6Address):
            raise TypeError("SDP announces an IPv6 address")
        if not 0 < self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} out of range")

    def encode(self) -> bytes:
        payload = RESPONSE_PAYLOAD.pack(
            self.address.packed, self.port, self.security, self.transport
        )
        return encode_frame(PayloadType.SDP_RES, payload)


def _payload(datagram: bytes, payload_type: PayloadType, size: int) -> bytes:
    try:
        frame = decode_datagram(datagram, max_payload=size, accepted_types={payload_type})
    except V2GTPError as exc:
        raise SdpError(f"bad V2GTP frame: {exc}") from exc
    if len(frame.payload) != size:
        raise SdpError(f"SDP payload must be {size} bytes, got {len(frame.payload)}")
    return frame.payload


def _enum(cls: type[_E], value: int, what: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        raise SdpError(f"unsupported {what} {value:#04x}") from None


def parse_request(datagram: bytes) -> SdpRequest:
    """Decode an SDP request datagram; raises `SdpError` when malformed or unsupported."""
    security, transport = REQUEST_PAYLOAD.unpack(
        _payload(datagram, PayloadType.SDP_REQ, REQUEST_PAYLOAD.size)
    )
    return SdpRequest(
        _enum(Security, security, "security"), _enum(Transport, transport, "transport")
    )


def parse_response(datagram: bytes) -> SdpResponse:
    """Decode an SDP response (the EV side); raises `SdpError` when malformed."""
    packed, port, security, transport = RESPONSE_PAYLOAD.unpack(
        _payload(datagram, PayloadType.SDP_RES, RESPONSE_PAYLOAD.size)
    )
    if port == 0:
        raise SdpError("SDP response announces port 0")
    return SdpResponse(
        ipaddress.IPv6Address(packed),
        port,
        _enum(Security, security, "security"),
        _enum(Transport, transport, "transport"),
    )


@dataclass(frozen=True, slots=True)
class SdpServerConfig:
    """What the SECC offers. -20 requires TLS; `plain_allowed` is for tests and -2/DIN."""

    address: ipaddress.IPv6Address
    port: int  # the TLS server's port (or the only server's)
    tls_available: bool = True
    plain_allowed: bool = False
    plain_port: int | None = None  # the plain TCP server's port when it differs from `port`

    def __post_init__(self) -> None:
        if not (self.tls_available or self.plain_allowed):
            raise ValueError("the SECC must offer TLS or plain TCP")


def choose_security(requested: Security, config: SdpServerConfig) -> Security:
    """Grant the requested security if we offer it, else announce the one we do offer.

    The EV then decides whether to connect anyway or to stop; the SECC does not refuse.
    """
    if requested is Security.TLS and config.tls_available:
        return Security.TLS
    if requested is Security.NONE and config.plain_allowed:
        return Security.NONE
    return Security.TLS if config.tls_available else Security.NONE


def respond(request: SdpRequest, config: SdpServerConfig) -> SdpResponse:
    security = choose_security(request.security, config)
    port = config.port
    if security is Security.NONE and config.plain_port is not None:
        port = config.plain_port
    return SdpResponse(config.address, port, security)


def answer(datagram: bytes, config: SdpServerConfig) -> bytes | None:
    """The response datagram for an SDP request, or None when it must be ignored."""
    try:
        request = parse_request(datagram)
    except SdpError:
        return None
    return respond(request, config).encode()
