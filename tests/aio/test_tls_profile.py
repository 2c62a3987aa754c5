"""The -20 TLS profile (evse/aio/tls.py) on real handshakes over real sockets against the real
SeccServer and `evse secc`: who is refused and who is accepted, OCSP stapling, and the
fail-closed path when a mechanism is missing (simulated with monkeypatch)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from certs.make_pki import PkiFiles, make_pki
from certs.pnc_pki import make_pnc_pki
from evse.aio import tls_native, tls_profile
from evse.aio.app import SeccOptions, SetupError, main_secc, run_secc
from evse.aio.tls import SUITES_ISO20, TlsProfileError, secc_context
from evse.aio.tls_profile import Settings
from evse.cli import build_parser
from evse.config import loads_config
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, fast_scenario, running

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="no openssl command")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def pnc_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pnc_pki("secp521r1").write(tmp_path_factory.mktemp("pnc"))


UNRESTRICTED = Settings()


def _client(root: Path, settings: Settings = UNRESTRICTED, *,
            tls12: bool = False) -> ssl.SSLContext:
    """A client restricted to `settings` (the same mechanisms as the charger's)."""
    ctx, applied = tls_profile.build(ssl.PROTOCOL_TLS_CLIENT, settings)
    assert not applied.errors, applied.errors
    ctx.check_hostname = False
    ctx.load_verify_locations(root)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def _connects(port: int, ctx: ssl.SSLContext) -> bool:
    """A TLS handshake over a real socket; False when the server refused it."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port, ssl=ctx), 10)
    except OSError:  # ssl.SSLError, a reset or EOF during the handshake
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _s_client(port: int, *args: str) -> tuple[int, str]:
    assert OPENSSL is not None
    proc = await asyncio.create_subprocess_exec(
        OPENSSL, "s_client", "-connect", f"{HOST}:{port}", "-tls1_3", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _no_mechanism_for(monkeypatch: pytest.MonkeyPatch, part: str) -> None:
    """Simulate a Python/OpenSSL without any way to set `part`: no stdlib setter, no
    configuration command."""
    real = tls_profile._stdlib_setters
    monkeypatch.setattr(tls_profile, "_stdlib_setters",
                        lambda ctx, p: () if p == part else real(ctx, p))
    monkeypatch.delitem(tls_profile.CONF_KEYS, part)


# -- who is refused, who is accepted (real sockets, SeccServer) --------------------------------


@pytest.mark.parametrize(("label", "settings", "tls12"), [
    ("TLS 1.2", Settings(), True),
    ("AES-128-GCM only", Settings(suites=("TLS_AES_128_GCM_SHA256",)), False),
    ("X25519 only", Settings(groups=("X25519",)), False),
    ("P-256 only", Settings(groups=("P-256",)), False),
])
async def test_clients_outside_the_profile_are_refused(pki: PkiFiles, label: str,
                                                       settings: Settings, tls12: bool) -> None:
    ctx = secc_context(pki.secc_chain, pki.secc_key).context
    async with running(tls=ctx, plain=False, allow_plain_tcp_iso20=False) as rig:
        assert not await _connects(rig.server.tls_port or 0, _client(pki.root_cert, settings,
                                                                     tls12=tls12)), label
        # the same client without the restriction is served: the refusal is the profile's
        assert await _connects(rig.server.tls_port or 0, _client(pki.root_cert))
        assert not rig.server.sessions


@pytest.mark.parametrize("group", ["X448", "P-521"])
async def test_x448_only_and_p521_only_clients_charge(pki: PkiFiles, group: str) -> None:
    ctx = secc_context(pki.secc_chain, pki.secc_key).context
    client = _client(pki.root_cert, Settings(groups=(group,)))
    async with running(tls=ctx, plain=False, allow_plain_tcp_iso20=False) as rig:
        report = await asyncio.wait_for(run_session(
            fast_scenario("dc", max_loops=3), host=HOST, port=rig.server.tls_port,
            ssl_context=client, battery=rig.link(0)), 30)
        assert report.success, report.summary()
        assert rig.server.sessions[-1].tls_cipher == SUITES_ISO20[0]


@needs_openssl
async def test_openssl_client_sees_the_negotiated_group_and_refusals(pki: PkiFiles) -> None:
    """An independent client: openssl s_client prints the key exchange group it got."""
    ctx = secc_context(pki.secc_chain, pki.secc_key).context
    async with running(tls=ctx, plain=False, allow_plain_tcp_iso20=False) as rig:
        port = rig.server.tls_port or 0
        rc, out = await _s_client(port, "-groups", "X448")
        assert rc == 0 and "Server Temp Key: X448" in out, out
        assert "Cipher is TLS_AES_256_GCM_SHA384" in out
        rc, out = await _s_client(port, "-groups", "P-521")
        assert rc == 0 and "Server Temp Key: ECDH, secp521r1" in out, out
        rc, out = await _s_client(port, "-groups", "X25519")
        assert rc != 0 and "Cipher is (NONE)" in out, out
        rc, out = await _s_client(port, "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
        assert rc == 0 and "Cipher is TLS_CHACHA20_POLY1305_SHA256" in out, out
        rc, out = await _s_client(port, "-sigalgs", "ecdsa_secp256r1_sha256:ed25519")
        assert rc != 0, out


def _vehicle_pki(out: Path, root_cn: str = "Vehicle root (test)") -> dict[str, Path]:
    """A vehicle root (P-521) and two vehicle certificates under it: a P-521 key (signs with
    ecdsa_secp521r1_sha512) and a P-256 key (can only sign with ecdsa_secp256r1_sha256)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(cn: str, key: Any, issuer: Any, issuer_key: Any, ca: bool) -> Any:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        return (x509.CertificateBuilder().subject_name(name)
                .issuer_name(issuer.subject if issuer is not None else name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(issuer_key, hashes.SHA512()))

    def pem(c: Any) -> bytes:
        return bytes(c.public_bytes(serialization.Encoding.PEM))

    def key_pem(k: Any) -> bytes:
        return bytes(k.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))

    root_key = ec.generate_private_key(ec.SECP521R1())
    root = cert(root_cn, root_key, None, root_key, True)
    files = {"root": out / "vehicle_root.pem"}
    files["root"].write_bytes(pem(root))
    for curve in (ec.SECP521R1(), ec.SECP256R1()):
        key = ec.generate_private_key(curve)
        files[curve.name] = out / f"vehicle_{curve.name}.pem"
        files[curve.name].write_bytes(pem(cert(f"WMIV{curve.name}", key, root, root_key, False)))
        files[f"{curve.name}_key"] = out / f"vehicle_{curve.name}.key"
        files[f"{curve.name}_key"].write_bytes(key_pem(key))
    return files


async def test_a_vehicle_key_outside_the_signature_algorithms_is_refused(
        pki: PkiFiles, tmp_path: Path) -> None:
    """The CertificateRequest lists only ecdsa_secp521r1_sha512 and ed448: a vehicle with a
    P-256 key cannot sign its CertificateVerify, so mutual TLS refuses it."""
    vehicle = _vehicle_pki(tmp_path)
    ctx = secc_context(pki.secc_chain, pki.secc_key, vehicle_roots=vehicle["root"],
                       require_vehicle_cert=True).context
    async with running(tls=ctx, plain=False, allow_plain_tcp_iso20=False) as rig:
        outcome = {}
        for curve in ("secp521r1", "secp256r1"):
            client = _client(pki.root_cert)
            client.load_cert_chain(vehicle[curve], vehicle[f"{curve}_key"])
            report = await asyncio.wait_for(run_session(
                fast_scenario("dc", max_loops=2), host=HOST, port=rig.server.tls_port,
                ssl_context=client, battery=rig.link(0)), 30)
            outcome[curve] = report.success
            await rig.wait_safe()
        assert outcome == {"secp521r1": True, "secp256r1": False}
        assert len(rig.server.sessions) == 1


def test_the_profile_does_not_restrict_other_contexts(pki: PkiFiles, caplog: Any) -> None:
    """The configuration profile is installed only while the SECC's context is created: the
    MQTT client, the simulated EV and OCPP keep OpenSSL's defaults."""
    with caplog.at_level(logging.WARNING, logger="evse.tls"):
        tls = secc_context(pki.secc_chain, pki.secc_key)
    assert not caplog.records  # put back by reloading ssl_conf, not by the last resort
    suites = [c["name"] for c in tls.context.get_ciphers() if c["protocol"] == "TLSv1.3"]
    assert suites == list(SUITES_ISO20)
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert "TLS_AES_128_GCM_SHA256" in [c["name"] for c in other.get_ciphers()]
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.secc_chain, pki.secc_key)
    x25519 = _client(pki.root_cert, Settings(groups=("X25519",)))
    assert tls_profile.handshake(server, x25519) is None  # a default server takes X25519


_SHOW_SUITES = """
import sys, ssl
from certs.make_pki import make_pki
from evse.aio.tls import secc_context
pki = make_pki(sys.argv[1])
secc_context(pki.secc_chain, pki.secc_key)
print(":".join(c["name"] for c in ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).get_ciphers()
               if c["protocol"] == "TLSv1.3"))
"""


def test_the_system_ssl_conf_is_put_back(tmp_path: Path) -> None:
    """A system openssl.cnf with its own system_default (e.g. a crypto policy) still governs
    the contexts created after the SECC's."""
    conf = tmp_path / "openssl.cnf"
    conf.write_text("openssl_conf = init\n[init]\nssl_conf = ssl_sect\n[ssl_sect]\n"
                    "system_default = sys_sect\n[sys_sect]\n"
                    "Ciphersuites = TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384\n")
    root = Path(__file__).resolve().parents[2]
    env = {"OPENSSL_CONF": str(conf), "PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", _SHOW_SUITES, str(tmp_path / "pki")],
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384", out


# -- verification and fail-closed --------------------------------------------------------------


def test_the_context_reports_how_the_profile_was_applied(pki: PkiFiles) -> None:
    tls = secc_context(pki.secc_chain, pki.secc_key)
    assert tls.profile_complete and tls.restricted_suites
    assert set(tls.mechanisms) == {"suites", "groups", "sigalgs"}
    assert set(tls.mechanisms.values()) <= {tls_profile.STDLIB, tls_profile.OPENSSL_CONFIG}
    assert 0 < tls.self_test_ms < 5000


@pytest.mark.parametrize("part", ["suites", "groups", "sigalgs"])
def test_a_missing_mechanism_fails_closed(pki: PkiFiles, monkeypatch: pytest.MonkeyPatch,
                                          part: str) -> None:
    _no_mechanism_for(monkeypatch, part)
    with pytest.raises(TlsProfileError) as info:
        secc_context(pki.secc_chain, pki.secc_key)
    assert {f.split(":", 1)[0] for f in info.value.failures} == {part}
    assert f"{part}: not applied" in str(info.value)
    tls = secc_context(pki.secc_chain, pki.secc_key, best_effort=True)
    assert not tls.profile_complete and tls.profile_failures[0].startswith(part)


def test_a_value_openssl_ignores_is_caught_by_the_self_test(
        pki: PkiFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSL skips a configuration value it does not know without an error: the probe
    handshakes notice that the groups were not restricted."""
    monkeypatch.setattr(tls_profile, "ISO20", Settings(SUITES_ISO20, ("no-such-group",),
                                                       tls_profile.SIGALGS_ISO20))
    with pytest.raises(TlsProfileError, match="groups: a client offering X25519 only was "
                                               "accepted"):
        secc_context(pki.secc_chain, pki.secc_key)


def test_no_libssl_fails_every_part(pki: PkiFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> Any:
        raise tls_native.NativeUnavailable("simulated: no libssl")

    for part in ("suites", "groups", "sigalgs"):
        _no_mechanism_for(monkeypatch, part)
    monkeypatch.setattr(tls_native, "libssl", unavailable)
    with pytest.raises(TlsProfileError) as info:
        secc_context(pki.secc_chain, pki.secc_key)
    assert {f.split(":", 1)[0] for f in info.value.failures} == {"suites", "groups", "sigalgs"}


def test_ca_names_without_a_verified_layout_fail_closed(
        pki: PkiFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls_native, "VERIFIED_LAYOUT", frozenset())
    secc_context(pki.secc_chain, pki.secc_key)  # no vehicle roots: no CA names needed
    with pytest.raises(TlsProfileError, match="ca_names: .*layout not verified"):
        secc_context(pki.secc_chain, pki.secc_key, vehicle_roots=pki.root_cert)
    tls = secc_context(pki.secc_chain, pki.secc_key, vehicle_roots=pki.root_cert,
                       best_effort=True)
    assert not tls.client_ca_names and tls.profile_failures[0].startswith("ca_names")


def test_the_pointer_check_is_not_vacuous(pki: PkiFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = secc_context(pki.secc_chain, pki.secc_key).context
    assert tls_native.ssl_ctx_pointer(ctx)
    # what the pointer reads no longer matches what Python reports: refused before any write
    monkeypatch.setattr(tls_native, "_VERIFY_BITS", {ssl.CERT_NONE: 2, ssl.CERT_OPTIONAL: 1,
                                                      ssl.CERT_REQUIRED: 3})
    with pytest.raises(tls_native.NativeUnavailable, match="pointer check failed"):
        tls_native.ssl_ctx_pointer(ctx)


# -- OCSP stapling -----------------------------------------------------------------------------


@needs_openssl
async def test_the_secc_staples_its_ocsp_response(pnc_files: dict[str, Path]) -> None:
    tls = secc_context(pnc_files["secc"], pnc_files["secc_key"],
                       ocsp_response=pnc_files["ocsp_secc"])
    assert tls.ocsp_stapling and tls.profile_complete
    async with running(tls=tls.context, plain=False, allow_plain_tcp_iso20=False) as rig:
        port = rig.server.tls_port or 0
        rc, out = await _s_client(port, "-status")
        assert rc == 0, out
        assert "OCSP Response Status: successful" in out and "Cert Status: good" in out, out
        leaf = ssl.PEM_cert_to_DER_cert(pnc_files["secc"].read_text().split(
            "-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
        from cryptography import x509

        serial = f"{x509.load_der_x509_certificate(leaf).serial_number:X}"
        assert re.search(rf"Serial Number: 0*{serial}\b", out), out
        rc, out = await _s_client(port)  # no status_request: nothing stapled
        assert rc == 0 and "OCSP Response Status" not in out, out


def test_an_ocsp_response_about_another_certificate_fails_closed(
        pnc_files: dict[str, Path]) -> None:
    with pytest.raises(TlsProfileError, match="ocsp: .*not the SECC leaf"):
        secc_context(pnc_files["secc"], pnc_files["secc_key"],
                     ocsp_response=pnc_files["ocsp_contract"])


def test_ocsp_without_the_native_path_fails_closed(pnc_files: dict[str, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls_native, "VERIFIED_LAYOUT", frozenset())
    with pytest.raises(TlsProfileError, match="ocsp: cannot staple"):
        secc_context(pnc_files["secc"], pnc_files["secc_key"],
                     ocsp_response=pnc_files["ocsp_secc"])


# -- evse secc ---------------------------------------------------------------------------------


def _options(pki_dir: Path, **kw: Any) -> SeccOptions:
    base: dict[str, Any] = dict(address=HOST, pki=pki_dir, tls_port=0, sdp=False,
                                sim_speedup=10.0, poll_interval=0.01)
    base.update(kw)
    return SeccOptions(**base)


async def _start(options: SeccOptions) -> tuple[asyncio.Task[int], asyncio.Event, str]:
    ready, stop = asyncio.Event(), asyncio.Event()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        task = asyncio.create_task(run_secc(options, ready=ready, stop=stop))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    return task, stop, out.getvalue()


def test_evse_secc_refuses_tls_without_the_profile(pki: PkiFiles, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _no_mechanism_for(monkeypatch, "groups")
    # should it serve after all, SIGINT stops it (exit 0) instead of hanging the test
    watchdog = threading.Timer(30, os.kill, (os.getpid(), signal.SIGINT))
    watchdog.start()
    try:
        assert main_secc(_options(pki.secc_chain.parent)) == 2
    finally:
        watchdog.cancel()
    err = capsys.readouterr().err
    assert "refusing to offer ISO 15118-20 over TLS" in err and "groups: not applied" in err


async def test_evse_secc_with_plain_tcp_allowed_opens_no_tls_listener(
        pki: PkiFiles, monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    _no_mechanism_for(monkeypatch, "groups")
    with caplog.at_level(logging.ERROR, logger="evse.secc"):
        task, stop, line = await _start(_options(pki.secc_chain.parent, port=0,
                                                 allow_plain_tcp_iso20=True))
    try:
        assert "TLS 1.3" not in line and "plain TCP on port" in line, line
        assert "no TLS listener" in caplog.text and "groups" in caplog.text
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


async def test_evse_secc_best_effort_warns_and_says_so(pki: PkiFiles,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: Any) -> None:
    _no_mechanism_for(monkeypatch, "groups")
    with caplog.at_level(logging.WARNING, logger="evse.secc"):
        task, stop, line = await _start(_options(pki.secc_chain.parent,
                                                 tls_profile_best_effort=True))
    try:
        assert re.search(r"TLS 1\.3 on port \d+ \(TLS profile INCOMPLETE, best effort: "
                         r"groups\)", line), line
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any("TLS profile INCOMPLETE" in r.getMessage() and "groups" in r.getMessage()
                   for r in warnings), caplog.text
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


async def test_evse_secc_complete_profile_and_ocsp_from_the_config_file(
        pnc_files: dict[str, Path], tmp_path: Path, caplog: Any) -> None:
    conf = tmp_path / "station.toml"
    conf.write_text(
        '[station]\nid = "DE*EVS*E0000009"\n[[connectors]]\nid = 1\ntype = "DC"\n'
        'services = ["DC"]\n[limits]\nmax_voltage = 500\nmax_charge_current = 100\n'
        'max_charge_power = 50000\n[network]\ninterface = "lo"\n'
        f'[tls]\ncert_chain = "{pnc_files["secc"]}"\nprivate_key = "{pnc_files["secc_key"]}"\n'
        f'ocsp_response = "{pnc_files["ocsp_secc"]}"\n')
    with caplog.at_level(logging.INFO, logger="evse.secc"):
        task, stop, line = await _start(SeccOptions(config=conf, address=HOST, tls_port=0,
                                                    sdp=False))
    try:
        assert "INCOMPLETE" not in line
        assert re.search(r"TLS profile: .*groups by .*self-test [\d.]+ ms; OCSP stapling",
                         caplog.text), caplog.text
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


def test_config_keys_and_command_line(tmp_path: Path) -> None:
    text = ('[station]\nid = "X"\n[[connectors]]\nid = 1\ntype = "DC"\nservices = ["DC"]\n'
            '[limits]\nmax_voltage = 500\nmax_charge_current = 100\nmax_charge_power = 50000\n'
            '[network]\ninterface = "lo"\n[tls]\ncert_chain = "c.pem"\nprivate_key = "k.pem"\n'
            'ocsp_response = "secc.ocsp"\nprofile_best_effort = true\n')
    cfg = loads_config(text, base_dir=tmp_path)
    assert cfg.tls.profile_best_effort is True
    assert cfg.tls.ocsp_response == tmp_path / "secc.ocsp"
    ns = build_parser("secc").parse_args(["secc", "--address", "::1", "--pki", "p",
                                          "--tls-profile-best-effort", "--ocsp-response", "o"])
    assert ns.tls_profile_best_effort is True and ns.ocsp_response == Path("o")
    ns = build_parser("secc").parse_args(["secc", "--address", "::1"])
    assert ns.tls_profile_best_effort is None  # the config file decides


async def test_ocsp_response_needs_tls() -> None:
    with pytest.raises(SetupError, match="--ocsp-response needs TLS"):
        await run_secc(SeccOptions(address=HOST, allow_plain_tcp_iso20=True, port=0, sdp=False,
                                   ocsp_response=Path("x.der")), stop=asyncio.Event())
