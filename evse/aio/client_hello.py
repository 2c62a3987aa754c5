"""Peek at a TLS ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2) before OpenSSL sees it.

One TLS port serves ISO 15118-2 (TLS 1.2, P-256 chain) and ISO 15118-20 (TLS 1.3, P-521/Ed448
chain). One SSLContext cannot hold two ECDSA server chains nor different groups per protocol
version, so the SECC picks the context per connection from the client's first flight: a
ClientHello whose supported_versions extension offers TLS 1.3 together with a -20 group gets
the -20 context, any other (a TLS 1.2 ClientHello has no such extension) the -2 context.
Pure bytes in, facts out; the accept path (tls_server.TlsLayer) buffers until `parse` has a
whole ClientHello.
"""

from __future__ import annotations

from dataclasses import dataclass

HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
SUPPORTED_VERSIONS = 43
SUPPORTED_GROUPS = 10
TLS12 = 0x0303
TLS13 = 0x0304
SECP521R1 = 25  # IANA NamedGroup codes of the -20 groups
X448 = 30


class NotClientHello(ValueError):
    """The first bytes are not a TLS ClientHello (OpenSSL will refuse the connection)."""


@dataclass(frozen=True, slots=True)
class ClientHello:
    legacy_version: int
    versions: tuple[int, ...]  # supported_versions, empty when the extension is absent
    groups: tuple[int, ...]  # supported_groups (IANA NamedGroup codes)

    @property
    def offers_tls13(self) -> bool:
        return TLS13 in self.versions

    @property
    def offers_iso20_group(self) -> bool:
        """A -20 key exchange group (secp521r1, x448) offered, or no group list at all."""
        return not self.groups or SECP521R1 in self.groups or X448 in self.groups


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise NotClientHello("ClientHello truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.uint(length_bytes))


def _handshake_bytes(data: bytes) -> bytes | None:
    """The ClientHello handshake message reassembled from the leading records; None while
    more bytes are needed."""
    body = bytearray()
    pos = 0
    need: int | None = None
    while need is None or len(body) < need:
        if len(data) < pos + 5:
            return None
        if data[pos] != HANDSHAKE:
            raise NotClientHello(f"record type {data[pos]:#x}, not handshake")
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        if length == 0 or length > 16384 + 2048:
            raise NotClientHello(f"record length {length}")
        if len(data) < pos + 5 + length:
            return None
        body += data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if need is None and len(body) >= 4:
            if body[0] != CLIENT_HELLO:
                raise NotClientHello(f"handshake type {body[0]}, not ClientHello")
            need = 4 + int.from_bytes(body[1:4], "big")
    return bytes(body[4:need])


def parse(data: bytes) -> ClientHello | None:
    """The ClientHello at the start of `data`; None while incomplete. Raises NotClientHello."""
    message = _handshake_bytes(data)
    if message is None:
        return None
    r = _Reader(message)
    legacy_version = r.uint(2)
    r.take(32)  # random
    r.vector(1)  # legacy_session_id
    r.vector(2)  # cipher_suites
    r.vector(1)  # legacy_compression_methods
    versions: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    if r.pos < len(message):
        extensions = _Reader(r.vector(2))
        while extensions.pos < len(extensions.data):
            kind = extensions.uint(2)
            ext = _Reader(extensions.vector(2))
            if kind == SUPPORTED_VERSIONS:
                raw = ext.vector(1)
                versions = tuple(int.from_bytes(raw[i:i + 2], "big")
                                 for i in range(0, len(raw) - 1, 2))
            elif kind == SUPPORTED_GROUPS:
                raw = ext.vector(2)
                groups = tuple(int.from_bytes(raw[i:i + 2], "big")
                               for i in range(0, len(raw) - 1, 2))
    return ClientHello(legacy_version, versions, groups)


__all__ = ["SECP521R1", "TLS12", "TLS13", "X448", "ClientHello", "NotClientHello", "parse"]
