"""TLS 1.3 contexts for ISO 15118-20 (DESIGN.md section 5), as far as Python's ssl allows.

-20 asks for TLS 1.3 only; cipher suites TLS_AES_256_GCM_SHA384 then TLS_CHACHA20_POLY1305_SHA256;
groups secp521r1 and x448; signatures ecdsa_secp521r1_sha512 and ed448; the SECC chain
V2G root -> CPO Sub-CA 1 -> Sub-CA 2 -> leaf; mutual authentication with the vehicle certificate.

What Python 3.11's ssl module cannot express, and how close we get:
- TLS 1.3 cipher suites: no `set_ciphersuites()`; `set_ciphers()` covers TLS <= 1.2 only. We call
  libssl's SSL_CTX_set_ciphersuites through ctypes on the SSL_CTX pointer CPython keeps right
  after the SSLContext object header, and cross-check the result with get_ciphers(). Where that
  is not possible (not CPython, or the check fails) the context keeps OpenSSL's default TLS 1.3
  list, which already starts with TLS_AES_256_GCM_SHA384, and `restricted_suites` says so.
- Groups: `set_ecdh_curve()` selects exactly one group, so we offer secp521r1 only (no x448).
- Signature algorithms: not settable per context; they follow from the certificate's key
  (an ECDSA P-521 leaf signs with ecdsa_secp521r1_sha512, an Ed448 leaf with ed448).
- certificate_authorities in the CertificateRequest: load_verify_locations() alone sends no CA
  names, and `ssl` has no set_client_CA_list(). With vehicle roots we call libssl's
  SSL_load_client_CA_file + SSL_CTX_set_client_CA_list the same way as the suites (only when
  the suites call proved the SSL_CTX pointer right), so the CertificateRequest names exactly
  the trusted vehicle roots; `client_ca_names` says whether that worked.
SSLKEYLOGFILE: when set, the session secrets are appended there (Wireshark can then decrypt).
"""

from __future__ import annotations

import ctypes
import os
import platform
import ssl
from dataclasses import dataclass
from pathlib import Path

SUITES_ISO20 = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


@dataclass(frozen=True)
class TlsContext:
    context: ssl.SSLContext
    restricted_suites: bool  # False: OpenSSL's default TLS 1.3 suites are offered
    client_ca_names: bool = False  # the CertificateRequest names the vehicle roots


def _set_tls13_suites(ctx: ssl.SSLContext, suites: tuple[str, ...]) -> bool:
    if platform.python_implementation() != "CPython":
        return False
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)  # the libssl that _ssl links, via dlsym on its handle
        fn = lib.SSL_CTX_set_ciphersuites
        fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        fn.restype = ctypes.c_int
        ssl_ctx = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if not ssl_ctx or not fn(ssl_ctx, ":".join(suites).encode()):
            return False
    except (OSError, AttributeError):
        return False
    tls13 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"]
    return tls13 == list(suites)


def _set_client_ca_names(ctx: ssl.SSLContext, cafile: Path) -> bool:
    """certificate_authorities of the CertificateRequest = the subjects in `cafile`."""
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)
        load = lib.SSL_load_client_CA_file
        load.argtypes = [ctypes.c_char_p]
        load.restype = ctypes.c_void_p
        set_list = lib.SSL_CTX_set_client_CA_list
        set_list.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        set_list.restype = None
        ssl_ctx = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if not ssl_ctx:
            return False
        names = load(os.fsencode(cafile))
        if not names:
            return False
        set_list(ssl_ctx, names)  # the SSL_CTX owns the list from here
    except (OSError, AttributeError):
        return False
    return True


def _common(ctx: ssl.SSLContext) -> bool:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ecdh_curve("secp521r1")
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog:
        ctx.keylog_filename = keylog
    return _set_tls13_suites(ctx, SUITES_ISO20)


def secc_context(chain: Path, key: Path, *, vehicle_roots: Path | None = None,
                 require_vehicle_cert: bool = False) -> TlsContext:
    """Server context: our chain (leaf + Sub-CA 2 + Sub-CA 1); optional mutual authentication."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    if vehicle_roots is not None:
        ctx.load_verify_locations(vehicle_roots)
        ctx.verify_mode = ssl.CERT_REQUIRED if require_vehicle_cert else ssl.CERT_OPTIONAL
    restricted = _common(ctx)
    # the suites call cross-checks the SSL_CTX pointer: only then touch it again
    names = vehicle_roots is not None and restricted and _set_client_ca_names(ctx, vehicle_roots)
    return TlsContext(ctx, restricted, names)


def ev_context(v2g_root: Path, *, cert: Path | None = None, key: Path | None = None,
               check_hostname: bool = False) -> TlsContext:
    """Client context for the simulated EV: trust the V2G root; optional vehicle certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = check_hostname  # EVs reach the SECC by link-local address
    ctx.load_verify_locations(v2g_root)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return TlsContext(ctx, _common(ctx))
