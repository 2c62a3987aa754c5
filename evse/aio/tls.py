"""TLS 1.3 contexts for ISO 15118-20 (DESIGN.md section 5), fail-closed.

-20 asks for TLS 1.3 only; cipher suites TLS_AES_256_GCM_SHA384 then TLS_CHACHA20_POLY1305_SHA256;
groups secp521r1 and x448; signatures ecdsa_secp521r1_sha512 and ed448; the SECC chain
V2G root -> CPO Sub-CA 1 -> Sub-CA 2 -> leaf; mutual authentication with the vehicle certificate.

How each part gets there (details in tls_profile.py and tls_native.py):
- TLS 1.3 only: `minimum_version` / `maximum_version`.
- Suites, groups, signature algorithms: the stdlib setters where this Python has them
  (`set_ciphersuites`, `set_groups`, `set_server_sigalgs`/`set_client_sigalgs`), otherwise an
  OpenSSL configuration profile installed only while the SECC's SSLContext is created (other
  contexts in the process keep their defaults). `set_ecdh_curve` is never called: it would
  replace the groups with one curve.
- certificate_authorities in the CertificateRequest (the vehicle roots) and OCSP stapling of
  the SECC leaf's status: no supported mechanism exists, so libssl is called on the SSL_CTX
  through the checked, version-guarded native path (tls_native.py).
`secc_context` then verifies the result with in-memory handshakes (tls_profile.self_test) and
fails closed: any part not applied raises `TlsProfileError` naming the parts, unless
`best_effort=True`, which returns the context with `profile_failures` filled in (the caller
logs and reports them).
SSLKEYLOGFILE: when set, the session secrets are appended there (Wireshark can then decrypt).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from evse.aio import tls_native, tls_profile
from evse.aio.tls_profile import GROUPS_ISO20, SIGALGS_ISO20, SUITES_ISO20

__all__ = ["GROUPS_ISO20", "SIGALGS_ISO20", "SUITES_ISO20", "TlsContext", "TlsProfileError",
           "ev_context", "secc_context"]


@dataclass(frozen=True)
class TlsContext:
    context: ssl.SSLContext
    restricted_suites: bool  # the TLS 1.3 suites are exactly SUITES_ISO20
    client_ca_names: bool = False  # the CertificateRequest names the vehicle roots
    # parts of the -20 profile that could not be applied or verified ("groups: ..."); empty
    # when complete. Non-empty only with best_effort=True (otherwise TlsProfileError)
    profile_failures: tuple[str, ...] = ()
    mechanisms: dict[str, str] = field(default_factory=dict)  # part -> stdlib / openssl-config
    self_test_ms: float = 0.0  # cost of the in-memory verification handshakes
    ocsp_stapling: bool = False  # the leaf's OCSP response is stapled on status_request

    @property
    def profile_complete(self) -> bool:
        return not self.profile_failures


class TlsProfileError(Exception):
    """The -20 TLS profile could not be applied completely; `failures` names each part."""

    def __init__(self, failures: tuple[str, ...]) -> None:
        super().__init__("the ISO 15118-20 TLS profile cannot be applied completely: "
                         + "; ".join(failures))
        self.failures = failures


def _tls13_suites(ctx: ssl.SSLContext) -> list[str]:
    return [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"]


def _tls13_only(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3


def _keylog(ctx: ssl.SSLContext) -> None:
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog:
        ctx.keylog_filename = keylog


def _check_ocsp_response(der: bytes, chain: Path) -> None:
    """The response must be a successful one about our leaf (the first certificate)."""
    from cryptography import x509
    from cryptography.x509 import ocsp

    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise ValueError(f"not a DER OCSP response: {exc}") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise ValueError(f"response status {response.response_status.name}")
    leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    if response.serial_number != leaf.serial_number:
        raise ValueError(f"the response is about serial {response.serial_number:x}, "
                         f"not the SECC leaf's {leaf.serial_number:x}")


def secc_context(chain: Path, key: Path, *, vehicle_roots: Path | None = None,
                 require_vehicle_cert: bool = False, ocsp_response: Path | None = None,
                 best_effort: bool = False) -> TlsContext:
    """Server context: our chain (leaf + Sub-CA 2 + Sub-CA 1); optional mutual authentication;
    optional OCSP stapling of `ocsp_response` (DER, about the leaf).

    Raises TlsProfileError when a part of the profile is missing, unless `best_effort`."""
    ctx, applied = tls_profile.build(ssl.PROTOCOL_TLS_SERVER, tls_profile.ISO20)
    _tls13_only(ctx)
    ctx.load_cert_chain(chain, key)
    failures = [f"{part}: not applied ({why})" for part, why in applied.errors.items()]
    suites_ok = _tls13_suites(ctx) == list(SUITES_ISO20)
    if not suites_ok and "suites" not in applied.errors:
        failures.append(f"suites: offered {_tls13_suites(ctx)}, not {list(SUITES_ISO20)}")
    # probes run before client authentication is switched on: they carry no certificate
    test = tls_profile.self_test(ctx)
    failures.extend(f for f in test.failures if f not in failures)
    names = False
    if vehicle_roots is not None:
        ctx.load_verify_locations(vehicle_roots)
        ctx.verify_mode = ssl.CERT_REQUIRED if require_vehicle_cert else ssl.CERT_OPTIONAL
        try:
            tls_native.set_client_ca_names(ctx, vehicle_roots)
            names = True
        except tls_native.NativeUnavailable as exc:
            failures.append(f"ca_names: the CertificateRequest cannot name the vehicle roots "
                            f"({exc})")
    stapling = False
    if ocsp_response is not None:
        der = ocsp_response.read_bytes()
        try:
            _check_ocsp_response(der, chain)
            tls_native.staple_ocsp(ctx, der)
            stapling = True
        except (ValueError, tls_native.NativeUnavailable) as exc:
            failures.append(f"ocsp: cannot staple {ocsp_response} ({exc})")
    _keylog(ctx)
    if failures and not best_effort:
        raise TlsProfileError(tuple(failures))
    return TlsContext(ctx, suites_ok, names, tuple(failures), dict(applied.mechanisms),
                      test.ms, stapling)


def ev_context(v2g_root: Path, *, cert: Path | None = None, key: Path | None = None,
               check_hostname: bool = False) -> TlsContext:
    """Client context for the simulated EV: the -20 profile as far as it applies (best effort:
    the EV is a test tool), trust the V2G root; optional vehicle certificate."""
    ctx, applied = tls_profile.build(ssl.PROTOCOL_TLS_CLIENT, tls_profile.ISO20)
    _tls13_only(ctx)
    ctx.check_hostname = check_hostname  # EVs reach the SECC by link-local address
    ctx.load_verify_locations(v2g_root)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    _keylog(ctx)
    failures = tuple(f"{part}: not applied ({why})" for part, why in applied.errors.items())
    return TlsContext(ctx, _tls13_suites(ctx) == list(SUITES_ISO20),
                      profile_failures=failures, mechanisms=dict(applied.mechanisms))
