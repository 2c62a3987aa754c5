"""A real TLS 1.3 handshake over loopback with the generated SECC chain.

Python 3.11's ssl module cannot restrict TLS 1.3 ciphersuites: `set_ciphers()` only covers
TLS <= 1.2 and there is no `set_ciphersuites()`. Two ways work with OpenSSL 3.0, both shown
here:

1. Per context: call libssl's `SSL_CTX_set_ciphersuites` through ctypes on the `SSL_CTX *`
   that CPython keeps right after the object header of an `SSLContext` (the layout of
   `PySSLContext` in Modules/_ssl.c; CPython only). `get_ciphers()` reflects the result,
   which cross-checks the pointer.
2. Process-wide: an OpenSSL config file named by `OPENSSL_CONF` whose `system_default`
   section sets `Ciphersuites` (and `Groups`, `SignatureAlgorithms`); it applies to every
   context created afterwards, so it must be in the environment before `ssl` starts.

Groups need no trick: `set_ecdh_curve('secp521r1')` makes it the only group offered. The
negotiated group and signature hash are read back through `SSL_ctrl` on the `SSL *`, again
via ctypes, since Python 3.11 exposes neither.
"""

from __future__ import annotations

import ctypes
import os
import platform
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from certs.make_pki import PkiFiles, make_pki

pytestmark = pytest.mark.skipif(
    platform.python_implementation() != "CPython", reason="ctypes peeks into CPython's _ssl"
)

SUITES_20 = b"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
HOSTNAME = "secc.test"
SSL_CTRL_GET_PEER_SIGNATURE_NID = 108  # OpenSSL 3.0 ssl.h
SSL_CTRL_GET_NEGOTIATED_GROUP = 134
NID_SECP521R1 = 716
NID_SHA512 = 674
NID_ED448 = 1088
NID_EC_PUBLIC_KEY = 408


def _libssl() -> ctypes.CDLL:
    import _ssl

    # dlsym on _ssl's handle also searches the libssl it links, so we get the same copy.
    lib = ctypes.CDLL(_ssl.__file__)
    lib.SSL_CTX_set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.SSL_CTX_set_ciphersuites.restype = ctypes.c_int
    lib.SSL_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_ctrl.restype = ctypes.c_long
    lib.SSL_get_peer_signature_type_nid.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.SSL_get_peer_signature_type_nid.restype = ctypes.c_int
    return lib


LIBSSL = _libssl()


def set_tls13_ciphersuites(ctx: ssl.SSLContext, suites: bytes) -> None:
    ssl_ctx = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not LIBSSL.SSL_CTX_set_ciphersuites(ssl_ctx, suites):
        raise ssl.SSLError(f"OpenSSL rejected ciphersuites {suites!r}")
    tls13 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"]
    assert tls13 == suites.decode().split(":"), tls13


def _ssl_pointer(sock: ssl.SSLSocket) -> int:
    sslobj: Any = sock._sslobj  # type: ignore[attr-defined]
    # PySSLSocket: object header, PyObject *Socket, then SSL *ssl.
    address = id(sslobj) + object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p)
    pointer = ctypes.c_void_p.from_address(address).value
    assert pointer
    return pointer


def negotiated_group(sock: ssl.SSLSocket) -> int:
    return int(LIBSSL.SSL_ctrl(_ssl_pointer(sock), SSL_CTRL_GET_NEGOTIATED_GROUP, 0, None))


def peer_signature(sock: ssl.SSLSocket) -> tuple[int, int]:
    """(digest NID, signature key type NID) the peer signed its CertificateVerify with."""
    digest, kind = ctypes.c_int(0), ctypes.c_int(0)
    LIBSSL.SSL_ctrl(_ssl_pointer(sock), SSL_CTRL_GET_PEER_SIGNATURE_NID, 0, ctypes.byref(digest))
    LIBSSL.SSL_get_peer_signature_type_nid(_ssl_pointer(sock), ctypes.byref(kind))
    return digest.value, kind.value


@pytest.fixture(scope="module", params=["secp521r1", "ed448"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki(algorithm: str, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return make_pki(tmp_path_factory.mktemp("tls"), algorithm, hostname=HOSTNAME)


def secc_context(pki: PkiFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(pki.secc_chain, pki.secc_key)
    set_tls13_ciphersuites(ctx, SUITES_20)
    ctx.set_ecdh_curve("secp521r1")
    return ctx


def ev_context(root: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the hostname
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(root)
    return ctx


def handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> tuple[dict[str, Any], BaseException | None]:
    """Connect over 127.0.0.1; return what the client saw and the server's error, if any."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    server_error: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(5)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(16))
        except (OSError, ssl.SSLError) as exc:
            server_error.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client_ctx.wrap_socket(raw, server_hostname=HOSTNAME) as tls,
        ):
            tls.sendall(b"ping")
            seen = {
                "echo": tls.recv(16),
                "version": tls.version(),
                "cipher": tls.cipher(),
                "group": negotiated_group(tls),
                "signature": peer_signature(tls),
                "peer": tls.getpeercert(),
            }
    finally:
        thread.join(10)
        listener.close()
    return seen, server_error[0] if server_error else None


def test_tls13_handshake_with_secc_chain(algorithm: str, pki: PkiFiles) -> None:
    seen, server_error = handshake(secc_context(pki), ev_context(pki.root_cert))
    assert server_error is None
    assert seen["echo"] == b"ping"
    assert seen["version"] == "TLSv1.3"
    assert seen["cipher"][0] == "TLS_AES_256_GCM_SHA384"
    assert seen["group"] == NID_SECP521R1
    digest, kind = seen["signature"]
    if algorithm == "ed448":
        assert kind == NID_ED448
    else:
        assert (digest, kind) == (NID_SHA512, NID_EC_PUBLIC_KEY)  # ecdsa_secp521r1_sha512
    assert ("commonName", "DE*EVS*E0000001") in [rdn[0] for rdn in seen["peer"]["subject"]]


def test_ciphersuite_restriction_is_effective(pki: PkiFiles) -> None:
    client = ev_context(pki.root_cert)
    set_tls13_ciphersuites(client, b"TLS_AES_128_GCM_SHA256")  # not allowed by -20
    with pytest.raises(ssl.SSLError):
        handshake(secc_context(pki), client)


def test_client_preferring_chacha_still_gets_a_20_suite(pki: PkiFiles) -> None:
    client = ev_context(pki.root_cert)
    set_tls13_ciphersuites(client, b"TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256")
    seen, _ = handshake(secc_context(pki), client)
    assert seen["cipher"][0] == "TLS_CHACHA20_POLY1305_SHA256"


def test_group_restriction_is_effective(pki: PkiFiles) -> None:
    client = ev_context(pki.root_cert)
    client.set_ecdh_curve("prime256v1")
    with pytest.raises(ssl.SSLError):
        handshake(secc_context(pki), client)


def test_untrusted_root_is_rejected(pki: PkiFiles, tmp_path: Path) -> None:
    other = make_pki(tmp_path, "secp521r1", hostname=HOSTNAME)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(secc_context(pki), ev_context(other.root_cert))


def test_openssl_conf_restricts_ciphersuites_process_wide(tmp_path: Path) -> None:
    conf = tmp_path / "openssl.cnf"
    conf.write_text(
        "openssl_conf = openssl_init\n"
        "[openssl_init]\nssl_conf = ssl_module\n"
        "[ssl_module]\nsystem_default = tls_defaults\n"
        "[tls_defaults]\n"
        f"Ciphersuites = {SUITES_20.decode()}\n"
        "Groups = secp521r1:x448\n"
    )
    probe = (
        "import ssl; ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); "
        "print(':'.join(c['name'] for c in ctx.get_ciphers() if c['protocol'] == 'TLSv1.3'))"
    )
    env = {**os.environ, "OPENSSL_CONF": str(conf)}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == SUITES_20.decode()
