"""TLS 1.2 for ISO 15118-2 Plug & Charge, and the per-connection choice between it and the -20
TLS 1.3 profile on one TLS port.

-2 names two suites: TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256 (static ECDH with the SECC
certificate's key) and TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256. OpenSSL removed the static
ECDH suites in 1.1.0, so only the ECDHE one (OpenSSL name ECDHE-ECDSA-AES128-SHA256) can be
served: `iso2_secc_context` is TLS 1.2 only, that one suite, the group secp256r1 (P-256) only,
with the SECC's P-256 chain (certs/iso2_pki.py). Like the -20 profile it is verified by
in-memory handshakes and fails closed (`TlsProfileError`) unless `best_effort`.

`context_for(iso20, iso2)` gives the TlsLayer its per-connection choice: a ClientHello that
offers TLS 1.3 and a -20 group (secp521r1 or x448) gets the -20 context (unchanged, as strict
as before), every other one the -2 context (a TLS 1.3 client without a -20 group could not
complete a -20 handshake anyway; one that also speaks TLS 1.2 then gets -2). The SECC passes
the negotiated version on to supportedAppProtocol, which refuses -20 on a TLS 1.2
connection.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path

from evse.aio.client_hello import ClientHello
from evse.aio.tls import TlsContext, TlsProfileError
from evse.aio.tls_profile import handshake

SUITE_ISO2 = "ECDHE-ECDSA-AES128-SHA256"  # IANA TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
GROUP_ISO2 = "prime256v1"  # OpenSSL's name of secp256r1

__all__ = ["GROUP_ISO2", "SUITE_ISO2", "context_for", "iso2_ev_context", "iso2_secc_context",
           "self_test"]


def _tls12_only(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2


def _profile(ctx: ssl.SSLContext, *, suite: str = SUITE_ISO2, group: str = GROUP_ISO2) -> None:
    _tls12_only(ctx)
    ctx.set_ciphers(suite)
    ctx.set_ecdh_curve(group)  # OpenSSL 3: the supported groups become exactly this one


def _probe(suite: str = SUITE_ISO2, group: str = GROUP_ISO2, *,
           tls13: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls13:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        _profile(ctx, suite=suite, group=group)
    return ctx


# (label, client, must be accepted)
def _probes() -> tuple[tuple[str, ssl.SSLContext, bool], ...]:
    return (
        ("TLS 1.3", _probe(tls13=True), False),
        ("ECDHE-ECDSA-AES128-GCM-SHA256 only", _probe("ECDHE-ECDSA-AES128-GCM-SHA256"), False),
        ("P-384 only", _probe(group="secp384r1"), False),
        (f"{SUITE_ISO2} on P-256", _probe(), True),
    )


def self_test(server: ssl.SSLContext) -> tuple[tuple[str, ...], float]:
    """(failures, ms): the -2 server context against probe clients, in memory."""
    t0 = time.perf_counter()
    failures: list[str] = []
    for label, client, accept in _probes():
        error = handshake(server, client)
        if accept and error is not None:
            failures.append(f"iso2: a client offering {label} was refused ({error})")
        elif not accept and error is None:
            failures.append(f"iso2: a client offering {label} was accepted")
    return tuple(failures), (time.perf_counter() - t0) * 1e3


def iso2_secc_context(chain: Path, key: Path, *, best_effort: bool = False) -> TlsContext:
    """Server context for -2: the SECC's P-256 chain (leaf + Sub-CA 2 + Sub-CA 1), TLS 1.2,
    ECDHE-ECDSA-AES128-SHA256 on P-256; -2 has no client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    failures: list[str] = []
    try:
        _profile(ctx)
    except ssl.SSLError as exc:
        failures.append(f"iso2: cannot restrict to {SUITE_ISO2} / {GROUP_ISO2} ({exc})")
    ctx.load_cert_chain(chain, key)
    found, ms = self_test(ctx)
    failures.extend(found)
    if failures and not best_effort:
        raise TlsProfileError(tuple(failures))
    suites = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    return TlsContext(ctx, suites == [SUITE_ISO2], profile_failures=tuple(failures),
                      mechanisms={"suites": "stdlib", "groups": "stdlib"}, self_test_ms=ms)


def iso2_ev_context(v2g_root: Path) -> ssl.SSLContext:
    """Client context for a simulated -2 EV: TLS 1.2, the -2 suite on P-256, trusting the -2
    V2G root (EVs reach the SECC by link-local address: no host name check)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _profile(ctx)
    ctx.check_hostname = False
    ctx.load_verify_locations(v2g_root)
    return ctx


def context_for(iso20: ssl.SSLContext | None,
                iso2: ssl.SSLContext | None) -> Callable[[ClientHello | None], ssl.SSLContext]:
    """The per-connection choice for TlsLayer: TLS 1.3 with a -20 group offered -> -20, else
    -2. With only one context configured, that one (OpenSSL then refuses what it cannot
    serve). None (the first bytes are no ClientHello): the -20 context if any, which refuses
    it."""
    if iso20 is None and iso2 is None:
        raise ValueError("no TLS context")

    def choose(hello: ClientHello | None) -> ssl.SSLContext:
        if iso20 is None or (iso2 is not None and hello is not None
                             and not (hello.offers_tls13 and hello.offers_iso20_group)):
            assert iso2 is not None
            return iso2
        return iso20

    return choose
