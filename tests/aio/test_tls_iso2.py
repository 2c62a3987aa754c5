"""One TLS port for ISO 15118-2 (TLS 1.2, TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, P-256) and
ISO 15118-20 (TLS 1.3 profile), chosen per connection from the ClientHello; -20 refused at
supportedAppProtocol on a TLS 1.2 connection. Real handshakes over real sockets against the
real SeccServer."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

import exi_codec
from certs.iso2_pki import make_iso2_pki
from certs.make_pki import PkiFiles, make_pki
from evse.aio import client_hello, tls_profile
from evse.aio.secc_server import SeccServer, Station
from evse.aio.tls import TlsProfileError, ev_context, secc_context
from evse.aio.tls_iso2 import SUITE_ISO2, context_for, iso2_ev_context, iso2_secc_context
from evse.aio.tls_profile import Settings
from evse.protocol.sap import negotiate
from evse.protocol.standards import ISO2, ISO20_DC
from evse.protocol.v2gtp import HEADER_SIZE, PayloadType, encode_frame
from exi_codec.schemas import sap
from hal.backends.sim import SimBackend
from tests.aio.helpers import HOST, secc_config


@pytest.fixture(scope="module")
def iso20_files(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return make_pki(tmp_path_factory.mktemp("pki20"))


@pytest.fixture(scope="module")
def iso2_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_iso2_pki().write(tmp_path_factory.mktemp("pki2"))


def _hello(client: ssl.SSLContext) -> bytes:
    """The ClientHello bytes a real OpenSSL client sends first."""
    out = ssl.MemoryBIO()
    obj = client.wrap_bio(ssl.MemoryBIO(), out, server_hostname=None)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


# -- ClientHello peek ---------------------------------------------------------------------

def test_client_hello_parse(iso2_files: dict[str, Path], iso20_files: PkiFiles) -> None:
    tls12 = client_hello.parse(_hello(iso2_ev_context(iso2_files["v2g_root"])))
    assert tls12 is not None and not tls12.offers_tls13
    assert tls12.groups == (23,)  # secp256r1 only
    tls13 = client_hello.parse(_hello(ev_context(iso20_files.root_cert).context))
    assert tls13 is not None and tls13.offers_tls13
    data = _hello(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    for cut in (0, 3, 5, 40, len(data) - 1):
        assert client_hello.parse(data[:cut]) is None  # held until complete
    assert client_hello.parse(data + b"\x00" * 10) is not None
    # The same ClientHello split over two records (as a TLS stack may send it).
    body = data[5:]
    split = (b"\x16\x03\x01" + (40).to_bytes(2, "big") + body[:40]
             + b"\x16\x03\x01" + (len(body) - 40).to_bytes(2, "big") + body[40:])
    assert client_hello.parse(split) == client_hello.parse(data)
    for bad in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",
                b"\x16\x03\x01\x00\x00"):
        with pytest.raises(client_hello.NotClientHello):
            client_hello.parse(bad)


def test_context_choice(iso2_files: dict[str, Path], iso20_files: PkiFiles) -> None:
    iso20 = secc_context(iso20_files.secc_chain, iso20_files.secc_key).context
    iso2 = iso2_secc_context(iso2_files["secc"], iso2_files["secc_key"]).context
    choose = context_for(iso20, iso2)
    hello12 = client_hello.parse(_hello(iso2_ev_context(iso2_files["v2g_root"])))
    hello13 = client_hello.parse(_hello(ev_context(iso20_files.root_cert).context))
    assert choose(hello12) is iso2 and choose(hello13) is iso20 and choose(None) is iso20
    # TLS 1.3 and 1.2 offered, but no -20 group (a -2 car whose stack also speaks 1.3): -2
    both = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    both.set_ecdh_curve("prime256v1")
    hello_both = client_hello.parse(_hello(both))
    assert hello_both is not None and hello_both.offers_tls13
    assert not hello_both.offers_iso20_group and choose(hello_both) is iso2
    assert context_for(None, iso2)(hello13) is iso2
    assert context_for(iso20, None)(hello12) is iso20


def test_iso2_context_fails_closed(iso20_files: PkiFiles) -> None:
    """A -20 (P-521) chain cannot serve the -2 profile: with the groups restricted to P-256,
    OpenSSL has no usable ECDSA certificate for the suite (NO_SHARED_CIPHER). The self-test
    sees it and the context is refused."""
    with pytest.raises(TlsProfileError):
        iso2_secc_context(iso20_files.secc_chain, iso20_files.secc_key)


# -- real sockets -------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def _server(iso20: ssl.SSLContext | None, iso2: ssl.SSLContext | None,
                  **config: Any) -> AsyncIterator[SeccServer]:
    station = Station.from_backends([SimBackend()], speedup=10.0)
    server = SeccServer(secc_config(protocols=("iso20", "iso2"), **config), station,
                        address=HOST, port=None, tls=iso20, tls_iso2=iso2, tls_port=0,
                        poll_interval=0.01)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def _contexts(iso20_files: PkiFiles, iso2_files: dict[str, Path]) -> tuple[Any, Any]:
    return (secc_context(iso20_files.secc_chain, iso20_files.secc_key).context,
            iso2_secc_context(iso2_files["secc"], iso2_files["secc_key"]).context)


async def _sap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               namespace: str, major: int) -> Any:
    offer = sap.AppProtocolType(protocol_namespace=namespace, version_number_major=major,
                                version_number_minor=0, schema_id=1, priority=1)
    writer.write(encode_frame(PayloadType.SAP,
                              exi_codec.encode(sap.supportedAppProtocolReq(app_protocol=(offer,)))))
    header = await asyncio.wait_for(reader.readexactly(HEADER_SIZE), 10)
    payload = await asyncio.wait_for(reader.readexactly(int.from_bytes(header[4:8], "big")), 10)
    return exi_codec.decode(payload, "sap")


async def test_iso2_and_iso20_on_one_port(iso20_files: PkiFiles,
                                          iso2_files: dict[str, Path]) -> None:
    async with _server(*_contexts(iso20_files, iso2_files)) as server:
        port = server.tls_port
        # A -2 EV: TLS 1.2, the -2 suite, the -2 SECC leaf (P-256); -2 negotiates.
        reader, writer = await asyncio.open_connection(
            HOST, port, ssl=iso2_ev_context(iso2_files["v2g_root"]))
        obj = writer.get_extra_info("ssl_object")
        assert obj.version() == "TLSv1.2" and obj.cipher()[0] == SUITE_ISO2
        leaf = x509.load_der_x509_certificate(obj.getpeercert(binary_form=True))
        assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
        res = await _sap(reader, writer, ISO2, 2)
        assert res.response_code == "OK_SuccessfulNegotiation"
        writer.close()
        # A -20 EV on the same port: TLS 1.3 with the -20 profile and the P-521 chain.
        reader, writer = await asyncio.open_connection(
            HOST, port, ssl=ev_context(iso20_files.root_cert).context)
        obj = writer.get_extra_info("ssl_object")
        assert obj.version() == "TLSv1.3" and obj.cipher()[0] == "TLS_AES_256_GCM_SHA384"
        leaf = x509.load_der_x509_certificate(obj.getpeercert(binary_form=True))
        assert leaf.public_key().curve.name == "secp521r1"  # type: ignore[union-attr]
        res = await _sap(reader, writer, ISO20_DC, 1)
        assert res.response_code == "OK_SuccessfulNegotiation"
        writer.close()


async def test_iso20_over_tls12_is_refused_at_sap(iso20_files: PkiFiles,
                                                  iso2_files: dict[str, Path]) -> None:
    async with _server(*_contexts(iso20_files, iso2_files),
                       allow_plain_tcp_iso20=False) as server:
        reader, writer = await asyncio.open_connection(
            HOST, server.tls_port, ssl=iso2_ev_context(iso2_files["v2g_root"]))
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.2"
        res = await _sap(reader, writer, ISO20_DC, 1)
        assert res.response_code == "Failed_NoNegotiation" and res.schema_id is None
        writer.close()


async def test_iso2_only_clients_are_held_to_the_iso2_profile(
        iso20_files: PkiFiles, iso2_files: dict[str, Path]) -> None:
    async with _server(*_contexts(iso20_files, iso2_files)) as server:
        for suite, group in (("ECDHE-ECDSA-AES128-GCM-SHA256", "prime256v1"),
                             (SUITE_ISO2, "secp384r1")):
            ctx = iso2_ev_context(iso2_files["v2g_root"])
            ctx.set_ciphers(suite)
            ctx.set_ecdh_curve(group)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.wait_for(asyncio.open_connection(HOST, server.tls_port, ssl=ctx),
                                       10)
        # -20 stays exactly as strict on TLS 1.3: a TLS 1.3-only client on P-256 only, or
        # offering only AES-128-GCM, is refused.
        ctx = ev_context(iso20_files.root_cert).context
        ctx.set_ecdh_curve("prime256v1")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.wait_for(asyncio.open_connection(HOST, server.tls_port, ssl=ctx), 10)
        ctx = ev_context(iso20_files.root_cert).context
        if hasattr(ctx, "set_ciphersuites"):
            ctx.set_ciphersuites("TLS_AES_128_GCM_SHA256")
        else:
            ctx = _client_tls13(iso20_files.root_cert, "TLS_AES_128_GCM_SHA256")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.wait_for(asyncio.open_connection(HOST, server.tls_port, ssl=ctx), 10)
        # A -2 car whose TLS stack also offers TLS 1.3 (no -20 group) gets -2 over TLS 1.2.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(iso2_files["v2g_root"])
        ctx.set_ecdh_curve("prime256v1")
        _, writer = await asyncio.open_connection(HOST, server.tls_port, ssl=ctx)
        obj = writer.get_extra_info("ssl_object")
        assert obj.version() == "TLSv1.2" and obj.cipher()[0] == SUITE_ISO2
        writer.close()


def _client_tls13(root: Path, suite: str) -> ssl.SSLContext:
    """A TLS 1.3 client restricted to `suite` (the charger's own mechanisms)."""
    ctx, applied = tls_profile.build(ssl.PROTOCOL_TLS_CLIENT, Settings(suites=(suite,)))
    assert not applied.errors, applied.errors
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(root)
    return ctx


def test_negotiate_knows_the_tls_version() -> None:
    cfg = secc_config(protocols=("iso20", "iso2"), allow_plain_tcp_iso20=False)
    offers = (sap.AppProtocolType(protocol_namespace=ISO20_DC, version_number_major=1,
                                  version_number_minor=0, schema_id=1, priority=1),
              sap.AppProtocolType(protocol_namespace=ISO2, version_number_major=2,
                                  version_number_minor=0, schema_id=2, priority=2))
    req = sap.supportedAppProtocolReq(app_protocol=offers)
    assert negotiate(req, cfg, tls=True, tls_version="TLSv1.3")[1] == ISO20_DC
    assert negotiate(req, cfg, tls=True, tls_version="TLSv1.2")[1] == ISO2
    assert negotiate(req, cfg, tls=True)[1] == ISO20_DC  # version not known: not refused


async def _handshake_in_pieces(port: int, client: ssl.SSLContext, cut: int) -> str:
    """A TLS handshake over a raw socket whose ClientHello is sent in two TCP segments
    (`cut` bytes first, the rest 50 ms later); the negotiated version."""
    reader, writer = await asyncio.open_connection(HOST, port)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client.wrap_bio(incoming, outgoing, server_hostname=None)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    writer.write(hello[:cut])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(hello[cut:])
    try:
        for _ in range(10):
            data = await asyncio.wait_for(reader.read(65536), 10)
            if not data:
                raise ConnectionError("closed by the SECC")
            incoming.write(data)
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            else:
                return str(obj.version())
            finally:
                if outgoing.pending:
                    writer.write(outgoing.read())
        raise AssertionError("handshake did not finish")
    finally:
        writer.close()


async def test_client_hello_split_over_segments_and_garbage(
        iso20_files: PkiFiles, iso2_files: dict[str, Path]) -> None:
    async with _server(*_contexts(iso20_files, iso2_files)) as server:
        port = server.tls_port
        assert port is not None
        for cut in (3, 40):  # inside the record header, inside the ClientHello
            assert await _handshake_in_pieces(
                port, iso2_ev_context(iso2_files["v2g_root"]), cut) == "TLSv1.2"
            assert await _handshake_in_pieces(
                port, ev_context(iso20_files.root_cert).context, cut) == "TLSv1.3"
        # Not TLS at all: a TLS alert (or nothing) and the connection closed; the port keeps
        # serving.
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(-1), 10)  # until the SECC closes
        assert answer == b"" or answer[0] == 0x15, answer[:16]
        writer.close()
        assert await _handshake_in_pieces(
            port, iso2_ev_context(iso2_files["v2g_root"]), 10) == "TLSv1.2"
