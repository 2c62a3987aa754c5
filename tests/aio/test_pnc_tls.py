"""Plug & Charge end to end over real TLS 1.3 on loopback: our SeccServer (sim HAL, PnC
offered, MO root installed, vehicle certificate requested) against the simulated EV.

- PnC sessions with secp521r1 and Ed448 PKIs complete: authorized by PnC with the contract's
  eMAID, TLS 1.3 with an ISO 15118-20 suite, the vehicle certificate seen;
- CertificateInstallation from the local CPS, then PnC with the installed contract;
- refusals (tampered signature, wrong or replayed GenChallenge, expired contract, unknown MO
  root, PnC over plain TCP): the EV sees the documented -20 response code, nothing is
  authorized, the power stage ends in the safe state with the current at zero before the
  contactors open, and the server serves the next session;
- pause/resume bound to the vehicle certificate over mutual TLS;
- mutual TLS itself: CERT_REQUIRED refuses an EV without a certificate, and a certificate from
  an unknown root fails the handshake even with CERT_OPTIONAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

import exi_codec
from certs.pnc_pki import Chain, PncPki, make_pnc_pki
from evse.aio.pnc import RecordingVerifier
from evse.aio.tls import SUITES_ISO20, secc_context
from evse.protocol import events as ev
from evse.protocol.session import resume_binding
from evse.protocol.v2gtp import PayloadType, encode_frame
from evse.security import ECDSA_SHA512, ED448, PncVerifier, SignedElement, sign
from evse.security.cps import LocalCps
from exi_codec.schemas import iso20
from simulators.ev import Evcc, Failed, Finished, Reconnect, SendData, SessionReport
from simulators.ev.client import make_ssl_context
from simulators.ev.pnc import PncCredentials
from tests.aio.helpers import HOST, Rig, assert_safe_sequence, fast_scenario, running

ALGORITHMS = ("secp521r1", "ed448")
SIGNATURE_URIS = {"secp521r1": ECDSA_SHA512, "ed448": ED448}


# -- the PKI on disk ---------------------------------------------------------------------------


@dataclass
class Pki:
    pki: PncPki
    files: dict[str, Path]
    second_vehicle: Chain  # another car under the same OEM Sub-CA

    def secc_tls(self, *, require: bool = False, vehicle_roots: bool = True) -> ssl.SSLContext:
        roots = self.files["oem_root"] if vehicle_roots else None
        return secc_context(self.files["secc"], self.files["secc_key"], vehicle_roots=roots,
                            require_vehicle_cert=require).context

    def ev_tls(self, vehicle: str | None = "vehicle") -> ssl.SSLContext:
        if vehicle is None:
            return make_ssl_context(self.files["v2g_root"])
        return make_ssl_context(self.files["v2g_root"], cert_file=self.files[vehicle],
                                key_file=self.files[f"{vehicle}_key"])

    def contract(self, variant: str | None = None) -> PncCredentials:
        chain = self.pki.variants[variant] if variant else self.pki.contract
        return PncCredentials(contract_certificate=chain.leaf_der,
                              contract_sub_certificates=chain.sub_ders, contract_key=chain.key,
                              v2g_roots=(self.pki.v2g_root.cert,))

    def verifier(self) -> RecordingVerifier:
        return RecordingVerifier(PncVerifier(mo_roots=self.pki.mo_roots,
                                             oem_roots=self.pki.oem_roots))


def _write_chain(directory: Path, name: str, chain: Chain, files: dict[str, Path]) -> None:
    pem = serialization.Encoding.PEM
    cert = directory / f"{name}.pem"
    cert.write_bytes(b"".join(c.public_bytes(pem) for c in (chain.leaf.cert,
                                                             *(s.cert for s in chain.subs))))
    key = directory / f"{name}.key"
    key.write_bytes(chain.key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    files[name], files[f"{name}_key"] = cert, key


def _make(tmp: Path, algorithm: str, now: dt.datetime | None = None) -> Pki:
    pki = make_pnc_pki(algorithm, now=now)
    files = pki.write(tmp)
    second = pki.issue_vehicle("WMIV0000000000SECOND")
    _write_chain(tmp, "vehicle2", second, files)
    foreign = make_pnc_pki(algorithm)  # a vehicle under an OEM root we do not trust
    _write_chain(tmp, "foreign_vehicle", foreign.vehicle, files)
    return Pki(pki, files, second)


@pytest.fixture(scope="module", params=ALGORITHMS)
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make(tmp_path_factory.mktemp(f"pnc-{request.param}"), request.param)


@pytest.fixture(scope="module")
def p521(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make(tmp_path_factory.mktemp("pnc-p521"), "secp521r1")


# -- the SECC with PnC and the EV driver -------------------------------------------------------


@dataclass
class Backend:
    """The server's authorization hook: grants `methods`, records every request."""

    methods: tuple[str, ...] = ("PnC",)
    requests: list[ev.RequestAuthorization] = field(default_factory=list)

    def __call__(self, request: ev.RequestAuthorization, connector: str) -> bool:
        self.requests.append(request)
        return request.method in self.methods


@dataclass
class PncRig:
    rig: Rig
    pki: Pki
    verifier: RecordingVerifier
    backend: Backend

    @property
    def server(self) -> Any:
        return self.rig.server

    async def ev(self, scenario: Any, *contexts: ssl.SSLContext | None,
                 mutate: Callable[[str, bytes], bytes] | None = None) -> SessionReport:
        """One EV session over `contexts` (the i-th connection uses contexts[i], the last one
        for any further connection); `mutate(name, frame)` may rewrite what the EV sends."""
        link = self.rig.link()
        loop = asyncio.get_running_loop()
        evcc = Evcc(scenario, battery=link, epoch_offset=time.time() - loop.time())
        return await asyncio.wait_for(_drive(evcc, self.rig.port, list(contexts), mutate), 30)

    async def after_failure(self, code: str | None = None) -> None:
        """Safe state, nothing authorized; then the server serves a good PnC session."""
        await self.rig.wait_safe()
        assert_safe_sequence(self.rig)
        names = [a.name for a in self.rig.connector().controller.actions]
        assert "contactors_close" not in names  # authorization failed: never any power
        assert not self.backend.requests  # the backend was never asked
        summary = self.server.sessions[-1]
        assert summary.failed and summary.authorization is None and summary.emaid is None
        if code is not None:
            assert any(r.response_code == code for r in self.verifier.records)
            if code.startswith("FAILED"):  # the SECC ended the session with it
                assert code in summary.reason
        report = await self.ev(pnc_scenario(self.pki.contract()), self.pki.ev_tls())
        assert report.success, report.summary()
        assert self.server.sessions[-1].emaid == self.pki.pki.emaid


@contextlib.asynccontextmanager
async def pnc_server(pki: Pki, *, tls: bool = True, require: bool = False,
                     **config: Any) -> AsyncIterator[PncRig]:
    verifier = pki.verifier()
    backend = Backend(methods=config.pop("grant", ("PnC",)))
    config.setdefault("offer_pnc", True)
    config.setdefault("pnc_verifier", verifier)
    config.setdefault("auto_authorize", False)
    ctx = pki.secc_tls(require=require) if tls else None
    async with running(tls=ctx, plain=not tls, allow_plain_tcp_iso20=not tls,
                       authorize=backend, **config) as rig:
        yield PncRig(rig, pki, verifier, backend)


def pnc_scenario(creds: PncCredentials, name: str = "dc_pnc", **changes: Any) -> Any:
    changes.setdefault("max_loops", 6)
    changes.setdefault("pnc_fallback_to_eim", False)  # strict: no silent EIM
    return fast_scenario(name, authorization="PnC", pnc=creds, **changes)


async def _drive(evcc: Evcc, port: int, contexts: list[ssl.SSLContext | None],
                 mutate: Callable[[str, bytes], bytes] | None) -> SessionReport:
    loop = asyncio.get_running_loop()
    number = 0

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        nonlocal number
        ctx = contexts[min(number, len(contexts) - 1)] if contexts else None
        number += 1
        kw: dict[str, Any] = {"ssl": ctx, "server_hostname": ""} if ctx is not None else {}
        return await asyncio.open_connection(HOST, port, **kw)

    reader, writer = await connect()
    writer.write(evcc.start(loop.time()))
    try:
        while True:
            deadline = evcc.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                effects = evcc.handle_timeout(loop.time())
            except (OSError, ssl.SSLError):
                effects = evcc.connection_lost(loop.time())
            else:
                now = loop.time()
                effects = evcc.receive_data(data, now) if data else evcc.connection_lost(now)
            for e in effects:
                if isinstance(e, SendData):
                    writer.write(mutate(e.message, e.data) if mutate else e.data)
                elif isinstance(e, Reconnect):
                    writer.close()
                    await asyncio.sleep(e.delay)
                    reader, writer = await connect()
                    writer.write(evcc.start(loop.time()))
                elif isinstance(e, (Finished, Failed)):
                    return e.report
    finally:
        writer.close()


def auth_codes(report: SessionReport) -> list[str | None]:
    """The response codes of every AuthorizationRes the EV received."""
    return [m.response_code for m in report.messages if m.request == "AuthorizationReq"]


def edit_authorization(edit: Callable[[Any], Any]) -> Callable[[str, bytes], bytes]:
    """A `mutate` that decodes the EV's AuthorizationReq, edits it and re-frames it."""

    def mutate(name: str, frame: bytes) -> bytes:
        if name != "AuthorizationReq":
            return frame
        msg = edit(exi_codec.decode(frame[8:], "iso20"))
        return encode_frame(PayloadType.COMMON, exi_codec.encode(msg))

    return mutate


# -- successful PnC sessions -------------------------------------------------------------------


async def test_pnc_session_over_tls13(pki: Pki) -> None:
    async with pnc_server(pki) as r:
        report = await r.ev(pnc_scenario(pki.contract()), pki.ev_tls())
        assert report.success, report.summary()
        assert report.extra["authorization"] == "PnC" and not report.warnings
        assert report.energy_charged_wh > 0
        # the backend was asked once, with the verified eMAID and the contract chain
        (asked,) = r.backend.requests
        assert (asked.method, asked.emaid) == ("PnC", pki.pki.emaid)
        assert asked.certificate_chain == (pki.pki.contract.leaf_der, *pki.pki.contract.sub_ders)
        summary = r.server.sessions[-1]
        assert (summary.authorization, summary.emaid) == ("PnC", pki.pki.emaid)
        assert summary.tls and summary.tls_version == "TLSv1.3"
        assert summary.tls_cipher in SUITES_ISO20
        assert summary.tls_cipher == "TLS_AES_256_GCM_SHA384"  # our first choice
        assert summary.vehicle_certificate == pki.pki.evcc_id  # mutual TLS
        checks = r.verifier.of("authorization")
        assert checks and all(c.ok and c.emaid == pki.pki.emaid for c in checks)
        assert {c.signature_algorithm for c in checks} == {SIGNATURE_URIS[pki.pki.algorithm]}
        await r.rig.wait_safe()
        assert_safe_sequence(r.rig)


async def test_pnc_with_certificate_installation_over_tls13(p521: Pki) -> None:
    pki = p521.pki
    mo2 = pki.contract.subs[0]
    cps = LocalCps(cps_key=pki.cps.key,
                   cps_chain=[pki.cps.leaf.cert, *(s.cert for s in pki.cps.subs)],
                   mo_sub_ca=mo2.cert, mo_sub_ca_key=mo2.key,
                   mo_chain=[s.cert for s in pki.contract.subs], emaid="DEEVSC00000077Q",
                   pending_polls=1)
    creds = PncCredentials(oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
                           oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
                           oem_provisioning_key=pki.oem_provisioning.key,
                           v2g_roots=(pki.v2g_root.cert,), install_certificate=True)
    async with pnc_server(p521, certificate_installation=cps) as r:
        report = await r.ev(pnc_scenario(creds), p521.ev_tls())
        assert report.success, report.summary()
        sequence = report.request_sequence
        assert sequence.index("CertificateInstallationReq") < sequence.index("AuthorizationReq")
        assert report.extra["installed_emaid"] == "DEEVSC00000077Q"
        assert r.server.sessions[-1].emaid == "DEEVSC00000077Q"
        assert r.verifier.of("certificate_installation")[-1].ok


async def test_contract_renewal_after_expires_soon_over_tls13(tmp_path: Path) -> None:
    """A contract 5 days before its end: OK_CertificateExpiresSoon, the EV renews it through
    CertificateInstallation (Ed448, X448 key transport) in the same session, then charges."""
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(days=360)  # 365-day leaves: 5 days left
    old = _make(tmp_path, "ed448", now=issued)
    pki = old.pki
    mo2 = pki.contract.subs[0]
    cps = LocalCps(cps_key=pki.cps.key,
                   cps_chain=[pki.cps.leaf.cert, *(s.cert for s in pki.cps.subs)],
                   mo_sub_ca=mo2.cert, mo_sub_ca_key=mo2.key,
                   mo_chain=[s.cert for s in pki.contract.subs], emaid="DEEVSC00000077Q")
    creds = dataclasses.replace(
        old.contract(), oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
        oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
        oem_provisioning_key=pki.oem_provisioning.key)
    async with pnc_server(old, certificate_installation=cps) as r:
        report = await r.ev(pnc_scenario(creds), old.ev_tls())
        assert report.success, report.summary()
        assert auth_codes(report)[-1] == "OK_CertificateExpiresSoon"
        sequence = report.request_sequence
        assert (sequence.index("AuthorizationReq") < sequence.index("CertificateInstallationReq")
                < sequence.index("ServiceDiscoveryReq"))
        assert report.extra["installed_emaid"] == "DEEVSC00000077Q"
        assert r.server.sessions[-1].emaid == pki.emaid  # authorized with the old contract
        assert r.verifier.of("certificate_installation")[-1].ok
        await r.rig.wait_safe()
        assert_safe_sequence(r.rig)


# -- refusals ----------------------------------------------------------------------------------


def _flip_signature_value(msg: Any) -> Any:
    sig = msg.header.signature
    value = bytearray(sig.signature_value.value)
    value[len(value) // 2] ^= 0x01
    sig = sig.replace(signature_value=sig.signature_value.replace(value=bytes(value)))
    return msg.replace(header=msg.header.replace(signature=sig))


def _flip_digest_value(msg: Any) -> Any:
    sig = msg.header.signature
    ref = sig.signed_info.reference[0]
    digest = bytearray(ref.digest_value)
    digest[0] ^= 0x80
    info = sig.signed_info.replace(reference=(ref.replace(digest_value=bytes(digest)),))
    return msg.replace(header=msg.header.replace(signature=sig.replace(signed_info=info)))


@pytest.mark.parametrize("tamper", [_flip_signature_value, _flip_digest_value],
                         ids=["signature_value", "digest_value"])
async def test_tampered_signature_fails_the_session(pki: Pki, tamper: Any) -> None:
    async with pnc_server(pki) as r:
        report = await r.ev(pnc_scenario(pki.contract()), pki.ev_tls(),
                            mutate=edit_authorization(tamper))
        assert not report.success
        assert auth_codes(report) == ["FAILED_SignatureError"]
        assert report.reason == "AuthorizationRes: FAILED_SignatureError"
        await r.after_failure("FAILED_SignatureError")


async def test_wrong_gen_challenge_is_refused(pki: Pki) -> None:
    """The EV signs a PnC_AReqAuthorizationMode whose GenChallenge is not ours (validly, with
    its contract key): WARNING_ChallengeInvalid."""
    key = pki.pki.contract.key

    def wrong_challenge(msg: Any) -> Any:
        mode = msg.pnc_a_req_authorization_mode
        challenge = bytes(b ^ 0xFF for b in mode.gen_challenge)
        mode = mode.replace(gen_challenge=challenge)
        signature = sign(key, SignedElement("PnC_AReqAuthorizationMode", mode))
        return msg.replace(header=msg.header.replace(signature=signature),
                           pnc_a_req_authorization_mode=mode)

    async with pnc_server(pki) as r:
        report = await r.ev(pnc_scenario(pki.contract()), pki.ev_tls(),
                            mutate=edit_authorization(wrong_challenge))
        assert not report.success
        assert auth_codes(report) == ["WARNING_ChallengeInvalid"]
        assert report.reason == "authorization refused: WARNING_ChallengeInvalid"
        await r.after_failure()


async def test_replayed_authorization_from_another_session_is_refused(p521: Pki) -> None:
    """An attacker replays the signed PnC part of an earlier session (in a header with the new
    SessionID): its GenChallenge is the old session's."""
    captured: list[Any] = []

    def capture(msg: Any) -> Any:
        captured.append(msg)
        return msg

    def replay(msg: Any) -> Any:
        old = captured[0]
        return msg.replace(header=msg.header.replace(signature=old.header.signature),
                           pnc_a_req_authorization_mode=old.pnc_a_req_authorization_mode)

    async with pnc_server(p521) as r:
        first = await r.ev(pnc_scenario(p521.contract()), p521.ev_tls(),
                           mutate=edit_authorization(capture))
        assert first.success, first.summary()
        await r.rig.wait_safe()
        r.backend.requests.clear()
        r.rig.connector().controller.actions.clear()
        report = await r.ev(pnc_scenario(p521.contract()), p521.ev_tls(),
                            mutate=edit_authorization(replay))
        assert not report.success
        assert auth_codes(report) == ["WARNING_ChallengeInvalid"]
        await r.after_failure()


@pytest.mark.parametrize(("variant", "code"), [
    ("contract_expired", "WARNING_CertificateExpired"),
    ("contract_unknown_root", "WARNING_CertificateValidationError"),
])
async def test_refused_contract(pki: Pki, variant: str, code: str) -> None:
    async with pnc_server(pki) as r:
        report = await r.ev(pnc_scenario(pki.contract(variant)), pki.ev_tls())
        assert not report.success
        assert auth_codes(report) == [code]
        assert report.reason == f"authorization refused: {code}"
        assert [c.response_code for c in r.verifier.of("authorization")] == [code]
        await r.after_failure(code)


async def test_pnc_over_plain_tcp_is_not_offered_and_refused(p521: Pki) -> None:
    """Over plain TCP (a test bench with allow_plain_tcp_iso20) the SECC offers EIM only. A
    strict PnC EV gives up; an EV that sends a signed PnC AuthorizationReq anyway gets
    WARNING_AuthorizationSelectionInvalid. Nothing is authorized either way."""
    contract = p521.pki.contract

    def force_pnc(msg: Any) -> Any:  # turn the EIM request into a signed PnC one
        mode = iso20.PnC_AReqAuthorizationModeType(
            id="id1", gen_challenge=bytes(16),
            contract_certificate_chain=iso20.ContractCertificateChainType(
                certificate=contract.leaf_der,
                sub_certificates=iso20.SubCertificatesType(certificate=contract.sub_ders)))
        signature = sign(contract.key, SignedElement("PnC_AReqAuthorizationMode", mode))
        return msg.replace(header=msg.header.replace(signature=signature),
                           selected_authorization_service=iso20.authorizationType.PnC,
                           eim_a_req_authorization_mode=None,
                           pnc_a_req_authorization_mode=mode)

    async with pnc_server(p521, tls=False, grant=("PnC", "EIM")) as r:
        strict = await r.ev(pnc_scenario(p521.contract()), None)
        assert not strict.success and "offers no PnC" in strict.reason
        assert "AuthorizationReq" not in strict.request_sequence
        await r.rig.wait_safe()
        lenient = pnc_scenario(p521.contract(), pnc_fallback_to_eim=True)
        report = await r.ev(lenient, None, mutate=edit_authorization(force_pnc))
        assert not report.success
        assert auth_codes(report) == ["WARNING_AuthorizationSelectionInvalid"]
        assert not r.verifier.records  # refused before any crypto
        await r.rig.wait_safe()
        assert_safe_sequence(r.rig)
        assert not r.backend.requests
        assert all(s.authorization is None and not s.tls for s in r.server.sessions)
        # the next EV (EIM over plain TCP) is served
        report = await r.ev(fast_scenario("dc", max_loops=4), None)
        assert report.success, report.summary()
        assert r.server.sessions[-1].authorization == "EIM"


# -- pause/resume bound to the vehicle certificate ----------------------------------------------


def _pause_resume(pki: Pki) -> Any:
    return pnc_scenario(pki.contract(), "pause_resume", max_loops=8)


async def test_pause_and_resume_with_the_same_vehicle_certificate(p521: Pki) -> None:
    async with pnc_server(p521) as r:
        report = await r.ev(_pause_resume(p521), p521.ev_tls())
        assert report.success, report.summary()
        assert report.connections == 2
        await r.rig.wait_safe()
        first, second = list(r.server.sessions)
        assert first.paused and second.resumed and second.session_id == first.session_id
        assert second.vehicle_certificate == p521.pki.evcc_id
        assert (second.authorization, second.emaid) == ("PnC", p521.pki.emaid)  # carried over
        assert report.request_sequence.count("AuthorizationReq") == len(
            [c for c in r.verifier.of("authorization")])  # no second authorization
        assert len(r.server.store) == 0


@pytest.mark.parametrize("second", ["vehicle2", None], ids=["other_vehicle", "no_certificate"])
async def test_resume_with_another_vehicle_certificate_gets_a_new_session(
        p521: Pki, second: str | None) -> None:
    async with pnc_server(p521) as r:
        report = await r.ev(_pause_resume(p521), p521.ev_tls(), p521.ev_tls(second))
        assert not report.success
        assert "expected OK_OldSessionJoined, got OK_NewSessionEstablished" in report.reason
        await r.rig.wait_safe()  # the SECC records the second session when it closes
        sessions = list(r.server.sessions)
        assert len(sessions) == 2
        assert sessions[0].paused and not sessions[-1].resumed
        assert sessions[-1].session_id != sessions[0].session_id
        assert sessions[-1].authorization is None  # nothing carried over
        # the paused session stays bound to the first vehicle's certificate
        paused = r.server.store.get(bytes.fromhex(sessions[0].session_id))
        der = p521.pki.vehicle.leaf_der
        assert paused is not None
        assert paused.vehicle_binding == resume_binding(paused.session_id, der)
        assert_safe_sequence(r.rig)


async def test_session_paused_without_a_vehicle_certificate_is_not_bound(p521: Pki) -> None:
    async with pnc_server(p521) as r:
        report = await r.ev(_pause_resume(p521), p521.ev_tls(None), p521.ev_tls())
        assert report.success, report.summary()
        await r.rig.wait_safe()
        first, second = list(r.server.sessions)
        assert first.vehicle_certificate is None and second.resumed
        assert second.vehicle_certificate == p521.pki.evcc_id


# -- mutual TLS --------------------------------------------------------------------------------


async def test_cert_required_refuses_an_ev_without_a_vehicle_certificate(p521: Pki) -> None:
    async with pnc_server(p521, require=True) as r:
        report = await r.ev(pnc_scenario(p521.contract()), p521.ev_tls(None))
        assert not report.success
        assert not r.server.sessions  # no handshake, no session
        report = await r.ev(pnc_scenario(p521.contract()), p521.ev_tls())
        assert report.success, report.summary()


async def test_vehicle_certificate_from_an_unknown_root_fails_the_handshake(p521: Pki) -> None:
    async with pnc_server(p521) as r:  # CERT_OPTIONAL: a certificate sent must verify
        report = await r.ev(pnc_scenario(p521.contract()), p521.ev_tls("foreign_vehicle"))
        assert not report.success
        assert not r.server.sessions
        assert (await r.ev(pnc_scenario(p521.contract()), p521.ev_tls())).success


def test_pnc_scenarios_are_strict() -> None:
    sc = pnc_scenario(PncCredentials())
    assert sc.authorization == "PnC" and sc.pnc_fallback_to_eim is False
    assert dataclasses.replace(sc, max_loops=3).max_loops == 3


async def test_certificate_request_names_the_vehicle_roots(p521: Pki) -> None:
    """certificate_authorities in the CertificateRequest = the vehicle roots (checked with the
    openssl command-line client, which prints the names it was sent)."""
    import shutil

    tls = secc_context(p521.files["secc"], p521.files["secc_key"],
                       vehicle_roots=p521.files["oem_root"])
    assert tls.client_ca_names and tls.profile_complete  # else secc_context fails closed
    assert secc_context(p521.files["secc"], p521.files["secc_key"]).client_ca_names is False
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, HOST, 0, ssl=tls.context)
    try:
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            openssl, "s_client", "-connect", f"{HOST}:{port}", "-tls1_3",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        server.close()
    text = out.decode(errors="replace")
    assert "Acceptable client certificate CA names" in text, text
    names = text.split("Acceptable client certificate CA names", 1)[1].splitlines()[1]
    assert "OEM Root CA (test)" in names


# -- MeteringConfirmation over TLS -------------------------------------------------------------


async def test_metering_confirmation_over_tls13(p521: Pki) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    async with pnc_server(p521, pnc_metering_confirmation=True) as r:
        meter = r.rig.connector().backend.meter
        meter._signing_key = Ed25519PrivateKey.generate()  # a meter that signs its readings
        seen: list[Any] = []
        r.server.on_metering_confirmation = lambda summary, record: seen.append(record)
        report = await r.ev(pnc_scenario(p521.contract(), meter_info_every=2), p521.ev_tls())
        assert report.success, report.summary()
        summary = r.server.sessions[-1]
        records = summary.metering_confirmations
        assert records and records == seen
        assert report.extra["metering_confirmations"] == len(records)
        assert all(c.emaid == p521.pki.emaid for c in records)
        info = records[-1].signed_metering_data.meter_info
        assert info.meter_signature is not None and len(bytes(info.meter_signature)) == 64
        assert summary.to_dict()["metering_confirmations"][-1] == info.charged_energy_reading_wh
        assert all(r.ok for r in r.verifier.of("metering_confirmation"))


async def test_tampered_metering_confirmation_over_tls13(p521: Pki) -> None:
    def tamper(name: str, frame: bytes) -> bytes:
        if name != "MeteringConfirmationReq":
            return frame
        msg = exi_codec.decode(frame[8:], "iso20")
        data = msg.signed_metering_data
        msg = msg.replace(signed_metering_data=data.replace(meter_info=data.meter_info.replace(
            charged_energy_reading_wh=data.meter_info.charged_energy_reading_wh + 1)))
        return encode_frame(PayloadType.COMMON, exi_codec.encode(msg))

    async with pnc_server(p521, pnc_metering_confirmation=True) as r:
        report = await r.ev(pnc_scenario(p521.contract(), meter_info_every=2), p521.ev_tls(),
                            mutate=tamper)
        assert not report.success
        codes = [m.response_code for m in report.messages
                 if m.request == "MeteringConfirmationReq"]
        assert codes == ["FAILED_MeteringSignatureNotValid"]
        await r.rig.wait_safe()
        assert_safe_sequence(r.rig)
        summary = r.server.sessions[-1]
        assert summary.failed and not summary.metering_confirmations
        assert "FAILED_MeteringSignatureNotValid" in (summary.reason or "")
        assert not r.verifier.of("metering_confirmation")[-1].ok


async def test_certificate_source_hook_answers_certificate_installation(p521: Pki) -> None:
    """evse.hooks.CertificateSource: an async CPS, awaited by the server while the EV hears
    EVSEProcessing=Ongoing (the hook stands in for the configured backend)."""
    from evse.hooks import CertificateRequest, CertificateSource, Hooks
    from evse.protocol.config import InstallationAnswer

    pki = p521.pki
    mo2 = pki.contract.subs[0]
    cps = LocalCps(cps_key=pki.cps.key,
                   cps_chain=[pki.cps.leaf.cert, *(s.cert for s in pki.cps.subs)],
                   mo_sub_ca=mo2.cert, mo_sub_ca_key=mo2.key,
                   mo_chain=[s.cert for s in pki.contract.subs], emaid="DEEVSC00000078Q")

    class RemoteCps:
        def __init__(self) -> None:
            self.requests: list[CertificateRequest] = []

        async def installation(self, request: CertificateRequest) -> InstallationAnswer:
            self.requests.append(request)
            await asyncio.sleep(0.3)  # a round trip to the CPS
            answer = cps.installation_data(request.request, timestamp=request.timestamp,
                                           session_id=request.session_id)
            assert answer is not None
            return answer

    source = RemoteCps()
    assert isinstance(source, CertificateSource)
    creds = PncCredentials(oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
                           oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
                           oem_provisioning_key=pki.oem_provisioning.key,
                           v2g_roots=(pki.v2g_root.cert,), install_certificate=True)
    async with pnc_server(p521) as r:
        r.server.hooks = Hooks(certificates=source)
        report = await r.ev(pnc_scenario(creds), p521.ev_tls())
        assert report.success, report.summary()
        assert report.request_sequence.count("CertificateInstallationReq") >= 2  # Ongoing
        assert report.extra["installed_emaid"] == "DEEVSC00000078Q"
        assert len(source.requests) == 1 and source.requests[0].connector_id == "1"
        assert r.server.sessions[-1].emaid == "DEEVSC00000078Q"
