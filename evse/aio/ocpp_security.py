"""The station's own certificates and its security events over OCPP (docs/ocpp.md,
"The station's certificates" and "Security events").

- `StationCertificates`: renewal of the CSMS-client certificate (ChargingStationCertificate,
  security profile 3) and the SECC's -20 and -2 certificates (both V2GCertificate) [A02,
  A03]: a new key and a CSR made here (evse/ocpp/csr.py; the key kept in `<key>.pending`
  until answered, so a restart does not lose it), `SignCertificate` to the CSMS, and the
  `CertificateSigned` chain checked, then written atomically beside the configured files
  (key 0600) and put to use (the OCPP connection is re-established with it; the SECC's new
  connections get it).
  Triggered by `TriggerMessage` SignChargingStationCertificate / SignV2GCertificate and when
  an installed certificate is within `renew_before_days` of its end.
- `SecurityHandlers`: the CSMS->station handlers (CertificateSigned, the two TriggerMessage
  cases), a base of the client's handler class.
- `AggregatedEvents`: failed TLS handshakes on the SECC listener and failed PnC certificate
  checks -> SecurityEventNotification, aggregated per window and bounded, so a flood cannot
  flood the queue.
- `StationSecurity`: the wiring for `evse secc`: the renewal slots from [ocpp] / [tls], the
  events above, and roots the CSMS installs or deletes reaching the SECC for new sessions
  (MO roots: the -20 and -2 PnC verifiers; V2G roots: the renewed SECC chains' trust).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from ocpp.messages import validate_payload
from ocpp.routing import after as _after
from ocpp.routing import on as _on

from evse.aio.cert_files import atomic_write, install_pair
from evse.aio.pnc import RecordingVerifier, VerificationRecord
from evse.aio.tasks import cancel_task
from evse.ocpp.csr import (
    PendingCsr,
    PendingCsrUnreadable,
    SignedChainRejected,
    chain_pem,
    check_signed_chain,
    curve_of,
    days_left,
    key_pem,
)

if TYPE_CHECKING:
    from evse.aio.ocpp_client import OcppClient
    from evse.config import OcppConfig
    from evse.ocpp.cert_store import CertStore

__all__ = ["CertificateSlot", "SecurityHandlers", "StationCertificates", "StationSecurity",
           "AggregatedEvents", "csms_tls_event", "pnc_event_type",
           "tls_event_type"]

log = logging.getLogger(__name__)

# TriggerMessage requestedMessage -> the certificateType it asks to renew [F06, A02]
SIGN_TRIGGERS = {"SignChargingStationCertificate": "ChargingStationCertificate",
                 "SignV2GCertificate": "V2GCertificate"}


@dataclass
class CertificateSlot:
    """One of the station's own certificates: where it lives, which roots a renewed chain
    must lead to, and what to do once a new one is in place (reload the SECC's context,
    reconnect to the CSMS)."""

    certificate_type: str  # ChargingStationCertificate | V2GCertificate
    cert_file: Path
    key_file: Path
    roots: Callable[[], list[x509.Certificate]]
    on_installed: list[Callable[[], None]] = field(default_factory=list)

    def current(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.cert_file.read_bytes())[0]


class StationCertificates:
    """Renewal of the station's certificates (see module doc). Attach with
    `client.certificates = StationCertificates(client, [slots])`.

    Several slots may share a certificate type (a -20 P-521 and a -2 P-256 SECC certificate
    are both a V2GCertificate): a renewal of that type sends one CSR per slot, in sequence,
    and a CertificateSigned goes to the pending CSR whose key its leaf carries.

    A pending CSR's key is stored beside the slot's key file (`<key>.pending`, 0600) until
    its CertificateSigned comes or the wait limit passes, so a restart in between does not
    turn the CSMS's answer into a Rejected."""

    def __init__(self, client: OcppClient, slots: list[CertificateSlot], *,
                 renew_before_days: float = 30.0, check_interval_s: float = 3600.0,
                 wait_signed_s: float = 3600.0) -> None:
        self.client = client
        self.slots = list(slots)
        self.renew_before_days = renew_before_days
        self.check_interval_s = check_interval_s
        self.wait_signed_s = wait_signed_s  # a CSR not answered by then is given up
        # key file of the slot -> (slot, CSR, created: Unix seconds of the client's clock)
        self.pending: dict[Path, tuple[CertificateSlot, PendingCsr, float]] = {}
        self.installed: list[str] = []  # certificate types renewed so far (tests, logs)
        self.unreported: list[str] = []  # renewals not yet raised as security events
        self._task: asyncio.Task[None] | None = None
        self._requests: set[asyncio.Task[Any]] = set()
        for slot in self.slots:
            self._load_pending(slot)
        self._expire(client._clock())

    # -- pending CSRs on disk --------------------------------------------------------------
    @staticmethod
    def pending_file(slot: CertificateSlot) -> Path:
        return slot.key_file.with_name(slot.key_file.name + ".pending")

    def _load_pending(self, slot: CertificateSlot) -> None:
        path = self.pending_file(slot)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("cannot read the pending CSR %s: %s", path, exc)
            return
        try:
            pending, created = PendingCsr.from_bytes(data, slot.certificate_type)
        except PendingCsrUnreadable as exc:
            log.error("dropping the pending CSR %s: %s", path, exc)
            self._drop_file(slot)
            return
        self.pending[slot.key_file] = (slot, pending, created)
        log.info("a %s CSR from before the restart waits for its CertificateSigned",
                 slot.certificate_type)

    def _store_pending(self, slot: CertificateSlot, pending: PendingCsr, created: float
                       ) -> None:
        atomic_write(self.pending_file(slot), pending.to_bytes(created), 0o600)

    def _drop_file(self, slot: CertificateSlot) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pending_file(slot).unlink()

    def _drop(self, slot: CertificateSlot, pending: PendingCsr | None = None) -> None:
        """Forget the slot's pending CSR (only `pending`, when given: a newer one stays)."""
        entry = self.pending.get(slot.key_file)
        if entry is None or (pending is not None and entry[1] is not pending):
            return
        del self.pending[slot.key_file]
        try:
            self._drop_file(slot)
        except OSError as exc:  # dropped in memory; at the next start by the wait limit
            log.error("cannot remove %s: %s", self.pending_file(slot), exc)

    # -- SignCertificate -------------------------------------------------------------------
    def can_sign(self, certificate_type: str) -> bool:
        return any(s.certificate_type == certificate_type for s in self.slots)

    def request_soon(self, certificate_type: str) -> None:
        """SignCertificate in a task of its own (after the TriggerMessage answer is out)."""
        task = asyncio.ensure_future(self.request(certificate_type))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def request(self, certificate_type: str) -> bool:
        """A new key and CSR per slot of the type, each sent with SignCertificate after the
        answer to the one before; True when the CSMS Accepted them all (each key then waits
        for its CertificateSigned). The installed certificates stay in use."""
        slots = [s for s in self.slots if s.certificate_type == certificate_type]
        results = [await self._request_slot(slot) for slot in slots]
        return bool(results) and all(results)

    async def _request_slot(self, slot: CertificateSlot) -> bool:
        certificate_type = slot.certificate_type
        try:
            pending = PendingCsr.new(certificate_type, slot.current())
        except (OSError, ValueError) as exc:
            log.error("cannot make a CSR for the %s: %s", certificate_type, exc)
            return False
        # the newest CSR replaces an older one: only its key can match what comes back.
        # Stored before it leaves, so an answer after a restart still finds its key.
        created = self.client._clock()
        try:
            self._store_pending(slot, pending, created)
        except OSError as exc:
            log.error("cannot store the CSR key for the %s: %s", certificate_type, exc)
            return False
        self.pending[slot.key_file] = (slot, pending, created)
        answer = await self.client.call_now("SignCertificate", {
            "csr": pending.csr_pem, "certificateType": certificate_type})
        if answer is None or answer.get("status") != "Accepted":
            log.warning("SignCertificate (%s): %s", certificate_type,
                        answer or "no answer from the CSMS")
            self._drop(slot, pending)
            return False
        log.info("SignCertificate (%s, %s) accepted; waiting for CertificateSigned",
                 certificate_type, pending.key.curve.name)
        return True

    # -- CertificateSigned -----------------------------------------------------------------
    def _candidate(self, chain: str, certificate_type: str
                   ) -> tuple[CertificateSlot, PendingCsr] | None:
        """The pending CSR of the type whose key the chain's leaf carries; when none does
        (or the chain does not parse), the first of the type, whose check then says why."""
        entries = [(s, p) for s, p, _ in self.pending.values()
                   if s.certificate_type == certificate_type]
        if not entries:
            return None
        with contextlib.suppress(ValueError, UnicodeError):
            leaf = x509.load_pem_x509_certificate(chain.encode("ascii"))
            spki = leaf.public_key().public_bytes(Encoding.DER,
                                                  PublicFormat.SubjectPublicKeyInfo)
            for slot, pending in entries:
                if pending.key.public_key().public_bytes(
                        Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == spki:
                    return slot, pending
        return entries[0]

    def signed(self, chain: str, certificate_type: str | None
               ) -> tuple[str, str, str | None]:
        """(status, reason, type installed) for CertificateSigned: Accepted once the chain
        is installed; Rejected (nothing changed) when there is no pending CSR for it or a
        check fails."""
        now = self.client._clock()
        self._expire(now)
        if certificate_type is None:  # omitted: the one type in flight, if exactly one
            types = {s.certificate_type for s, _, _ in self.pending.values()}
            if len(types) != 1:
                return "Rejected", "certificateType needed: no single pending CSR", None
            certificate_type = types.pop()
        found = self._candidate(chain, certificate_type)
        if found is None:
            return "Rejected", f"no pending CSR for a {certificate_type}", None
        slot, pending = found
        try:
            certs = check_signed_chain(chain, pending, slot.roots(), now)
        except SignedChainRejected as exc:
            # [A02] an invalid certificate: Rejected and a security event
            self.client.security_event("InvalidChargingStationCertificate",
                                       f"{certificate_type}: {exc}")
            return "Rejected", str(exc), None
        except OSError as exc:
            return "Rejected", f"trusted roots unreadable: {exc}", None
        try:  # as one step: a crash leaves the old pair or the new one (evse/aio/cert_files)
            install_pair(slot.cert_file, slot.key_file, chain_pem(certs), key_pem(pending.key))
        except OSError as exc:
            log.error("cannot install the new %s: %s", certificate_type, exc)
            return "Rejected", f"cannot write: {exc}", None
        self._drop(slot, pending)
        self.installed.append(certificate_type)
        leaf = certs[0]
        log.warning("installed a new %s (%s, serial %x, valid until %s)", certificate_type,
                    curve_of(leaf), leaf.serial_number, leaf.not_valid_after_utc.isoformat())
        # reported by the caller once its answer is out (see SecurityHandlers)
        self.unreported.append(f"{certificate_type} renewed, serial {leaf.serial_number:x}")
        for listener in slot.on_installed:
            try:
                listener()
            except Exception:
                log.exception("%s installed: listener failed", certificate_type)
        return "Accepted", "", certificate_type

    def report_installed(self) -> None:
        """ReconfigurationOfSecurityParameters for each renewal not reported yet."""
        while self.unreported:
            self.client.security_event("ReconfigurationOfSecurityParameters",
                                       self.unreported.pop(0))

    def _expire(self, now: float) -> None:
        for slot, pending, since in list(self.pending.values()):
            if now - since > self.wait_signed_s:
                log.warning("no CertificateSigned for the %s CSR within %.0f s; dropped",
                            slot.certificate_type, self.wait_signed_s)
                self._drop(slot, pending)

    # -- renewal before expiry -------------------------------------------------------------
    def due(self, now: float) -> list[str]:
        """The certificate types within `renew_before_days` of their end (or past half their
        life, when that comes later), no CSR pending."""
        self._expire(now)
        out: list[str] = []
        for slot in self.slots:
            t = slot.certificate_type
            if t in out or any(s.certificate_type == t for s, _, _ in self.pending.values()):
                continue
            try:
                cert = slot.current()
            except (OSError, ValueError) as exc:
                log.error("cannot read the %s: %s", t, exc)
                continue
            # a certificate shorter-lived than the window is renewed at half its life, else
            # every fresh one would be due at once (a renewal per check, for ever)
            lifetime = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
            if days_left(cert, now) <= min(self.renew_before_days, lifetime / 86400 / 2):
                out.append(t)
        return out

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name="ocpp-cert-renewal")
        return self._task

    async def stop(self) -> None:
        for task in [self._task, *self._requests]:
            await cancel_task(task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await self.client.accepted.wait()
            for t in self.due(self.client._clock()):
                log.warning("the %s ends within %g days: renewing", t, self.renew_before_days)
                await self.request(t)
            await asyncio.sleep(self.check_interval_s)


_F = TypeVar("_F", bound=Callable[..., Any])
# the ocpp package is untyped: its route decorators keep the function's type
on = cast(Callable[[str], Callable[[_F], _F]], _on)
after = cast(Callable[[str], Callable[[_F], _F]], _after)


class SecurityHandlers:
    """The CSMS->station CALLs of this module; a base of the client's handler class.

    TriggerMessage for SignChargingStationCertificate / SignV2GCertificate is taken here,
    ahead of the generic TriggerMessage handler, so the other TriggerMessage cases stay
    where they are."""

    client: OcppClient
    _call_result: Any
    _ocpp_version: str
    _connection: Any
    _reconnect_after_answer = False

    async def _handle_call(self, msg: Any) -> Any:
        payload = msg.payload if isinstance(msg.payload, dict) else {}
        if msg.action == "TriggerMessage" and payload.get("requestedMessage") in SIGN_TRIGGERS:
            await validate_payload(msg, self._ocpp_version)  # bad input: the library's error
            certs = self.client.certificates
            cert_type = SIGN_TRIGGERS[payload["requestedMessage"]]
            ok = certs is not None and certs.can_sign(cert_type)
            # Accepted, then the SignCertificate it asks for; a certificate this station
            # does not renew: Rejected
            result = msg.create_call_result({"status": "Accepted" if ok else "Rejected"})
            await validate_payload(result, self._ocpp_version)
            await self._send(result.to_json())  # type: ignore[attr-defined]
            if certs is not None and ok:
                certs.request_soon(cert_type)
            return None
        return await super()._handle_call(msg)  # type: ignore[misc]

    @on("CertificateSigned")
    def on_certificate_signed(self, certificate_chain: str,
                              certificate_type: str | None = None, **_: Any) -> Any:
        """[A02, A03] check, install, answer; Rejected changes nothing."""
        certs = self.client.certificates
        if certs is None:
            status, reason, installed = "Rejected", "this station renews no certificate", None
        else:
            status, reason, installed = certs.signed(certificate_chain, certificate_type)
        info = None
        if status != "Accepted":
            log.warning("CertificateSigned rejected: %s", reason)
            info = {"reason_code": "InvalidCertificate", "additional_info": reason[:512]}
        self._reconnect_after_answer = (installed == "ChargingStationCertificate"
                                        and self.client.config.security_profile == 3)
        if certs is not None and not self._reconnect_after_answer:
            certs.report_installed()
        return self._call_result.CertificateSigned(status=status, status_info=info)

    @after("CertificateSigned")
    async def after_certificate_signed(self, **_: Any) -> None:
        # the new client certificate is used from the next connection on: end this one once
        # the answer is out; the client reconnects (back-off minimum) with the new files
        # (the security event after the close: a CALL crossing our answer on a closing
        # connection could cost the CSMS that answer)
        if self._reconnect_after_answer:
            self._reconnect_after_answer = False
            await self._connection.close()
            if self.client.certificates is not None:
                self.client.certificates.report_installed()


def csms_tls_event(exc: BaseException) -> str | None:
    """The security event of a failed TLS connect to the CSMS [A00, appendix]: its
    certificate does not verify (InvalidCsmsCertificate), it offers only TLS versions below
    1.2 (InvalidTLSVersion) or only cipher suites we do not take (InvalidTLSCipherSuite).
    None for anything else (refused, unreachable, timed out)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "InvalidCsmsCertificate"
    if not isinstance(exc, ssl.SSLError):
        return None
    why = f"{exc.reason or ''} {exc}".upper()
    if any(k in why for k in ("PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL",
                              "WRONG_VERSION_NUMBER", "VERSION_TOO_LOW")):
        return "InvalidTLSVersion"
    if any(k in why for k in ("NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "HANDSHAKE_FAILURE",
                              "NO_SUITABLE_SIGNATURE_ALGORITHM", "NO_SHARED_GROUP")):
        return "InvalidTLSCipherSuite"
    return None


def tls_event_type(reason: str) -> str | None:
    """The security event type of a failed SECC TLS handshake (tls_server.failure_reason);
    None: not a security event (a timeout, a peer that went away, too many bytes).

    The 2.0.1 appendix's InvalidTLSVersion / InvalidTLSCipherSuite describe the CSMS
    connection; they are reused for the EV-facing listener because they name what failed.
    The appendix has no type for a refused vehicle certificate or another handshake error:
    InvalidTLSCertificate / InvalidTLSHandshake (the type field takes any string)."""
    r = reason.lower()
    if "timeout" in r or "more than" in r:
        return None
    if "version" in r or "protocol" in r:
        return "InvalidTLSVersion"
    if "cipher" in r or "group" in r or "sigalg" in r or "signature algorithm" in r \
            or "no shared" in r:
        return "InvalidTLSCipherSuite"
    return "InvalidTLSCertificate" if "certificate" in r else "InvalidTLSHandshake"


def pnc_event_type(check: str) -> str | None:
    """The security event type of a failed PnC certificate check (RecordingVerifier's
    `check`). No appendix type covers the EV's certificates: InvalidContractCertificate
    (contract chain or its signature, AuthorizationReq) and InvalidOEMProvisioningCertificate
    (CertificateInstallationReq); a failed MeteringConfirmation is the session's matter."""
    return {"authorization": "InvalidContractCertificate",
            "certificate_installation": "InvalidOEMProvisioningCertificate"}.get(check)


@dataclass
class AggregatedEvents:
    """Failures -> SecurityEventNotification, one per `window_s` at most, carrying how many
    failures of which type came from how many peers (the first few named). O(1) memory per
    window (bounded peer set), so a flood of bad handshakes or forged contracts costs neither
    memory nor queue space. The first failure is reported at once."""

    report: Callable[[str, str], None]  # (type, techInfo): OcppClient.security_event
    window_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    max_peers: int = 8
    classify: Callable[[str], str | None] = tls_event_type
    label: str = "SECC TLS handshakes failed"
    _kinds: Counter[str] = field(default_factory=Counter)
    _peers: list[str] = field(default_factory=list)
    _window_start: float | None = None
    sent: int = 0

    def failed(self, peer: str, reason: str) -> None:
        kind = self.classify(reason)
        if kind is None:
            return
        now = self.clock()
        if self._window_start is None:
            self._window_start = now
        self._kinds[kind] += 1
        host = peer.rsplit(":", 1)[0]
        if host not in self._peers and len(self._peers) < self.max_peers:
            self._peers.append(host)
        if now - self._window_start >= self.window_s or self.sent == 0:
            self.flush()

    async def run(self) -> None:
        """Report what a window collected even when no later failure comes to trigger it."""
        while True:
            await asyncio.sleep(self.window_s)
            if self._window_start is not None and \
                    self.clock() - self._window_start >= self.window_s:
                self.flush()

    def flush(self) -> None:
        if not self._kinds:
            return
        kind, _ = self._kinds.most_common(1)[0]
        total = sum(self._kinds.values())
        detail = ", ".join(f"{n} {k}" for k, n in self._kinds.most_common())
        self.report(kind, f"{self.label}: {total} ({detail}) from {', '.join(self._peers)}")
        self.sent += 1
        self._kinds.clear()
        self._peers.clear()
        self._window_start = self.clock()


def _pem_roots(path: Path | None) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes()) if path is not None else []


class StationSecurity:
    """The security wiring of `evse secc` with [ocpp] (see module doc): certificate renewal
    slots from the configuration, failed SECC handshakes and certificate changes as security
    events, and roots the CSMS installs or deletes applied to the SECC for new sessions.

    `secc_files`: the SECC's -20 chain and key (renewed as the V2GCertificate);
    `rebuild_secc`: a new SECC context from those files (the caller knows the options);
    `iso2_files` / `rebuild_iso2`: the same for the -2 SECC certificate (P-256, TLS 1.2),
    also a V2GCertificate: a renewal of that type sends one CSR per certificate, -20 first,
    each answered by its own CertificateSigned (matched by key, StationCertificates);
    `iso2_roots`: roots the -2 chain may lead to besides `v2g_roots()`;
    `vehicle_roots`: the configured roots of vehicle certificates ([tls] trust_roots), to
    which the CSMS's OEMRootCertificates are added (`vehicle_trust`; `rebuild_secc` must
    build its context with `vehicle_trust()`, and is called when they change);
    `server`: the SeccServer (`set_tls_contexts`, `on_tls_failure`, `config.pnc_verifier`,
    `config.iso2_pnc`)."""

    def __init__(self, client: OcppClient, config: OcppConfig, *,
                 store: CertStore | None = None, server: Any = None,
                 secc_files: tuple[Path, Path] | None = None,
                 rebuild_secc: Callable[[], ssl.SSLContext] | None = None,
                 iso2_files: tuple[Path, Path] | None = None,
                 rebuild_iso2: Callable[[], ssl.SSLContext] | None = None,
                 iso2_roots: Callable[[], list[x509.Certificate]] | None = None,
                 vehicle_roots: Path | None = None) -> None:
        self.client, self.config, self.store, self.server = client, config, store, server
        self.vehicle_roots = vehicle_roots
        self.rebuild_secc = rebuild_secc
        slots = []
        if config.security_profile == 3 and config.cert_file and config.key_file:
            ca = config.client_ca_file or config.ca_file
            slots.append(CertificateSlot("ChargingStationCertificate", config.cert_file,
                                         config.key_file, lambda: _pem_roots(ca)))
        if secc_files is not None:
            slot = CertificateSlot("V2GCertificate", secc_files[0], secc_files[1],
                                   self.v2g_roots)
            if rebuild_secc is not None and server is not None:
                slot.on_installed.append(
                    lambda: server.set_tls_contexts(rebuild_secc()))
            slots.append(slot)
        if iso2_files is not None:
            extra = iso2_roots or (lambda: [])
            slot = CertificateSlot("V2GCertificate", iso2_files[0], iso2_files[1],
                                   lambda: self.v2g_roots() + extra())
            if rebuild_iso2 is not None and server is not None:
                slot.on_installed.append(
                    lambda: server.set_tls_contexts(tls_iso2=rebuild_iso2()))
            slots.append(slot)
        self.certificates = StationCertificates(
            client, slots, renew_before_days=config.renew_before_days,
            check_interval_s=config.renew_check_s)
        client.certificates = self.certificates
        self.tls_events = AggregatedEvents(client.security_event,
                                           window_s=config.tls_event_window_s)
        if server is not None:
            server.on_tls_failure = self.tls_events.failed
        self.pnc_events = AggregatedEvents(client.security_event,
                                           window_s=config.tls_event_window_s,
                                           classify=pnc_event_type,
                                           label="PnC certificate checks failed")
        # the PnC verifier's configured MO roots stay; the CSMS's come and go beside them
        verifier = getattr(getattr(server, "config", None), "pnc_verifier", None)
        self.pnc_verifier = getattr(verifier, "inner", verifier)
        if isinstance(verifier, RecordingVerifier) and verifier.on_record is None:
            verifier.on_record = self.pnc_checked
        self.base_mo_roots = tuple(getattr(self.pnc_verifier, "mo_roots", ()))
        # -2 PnC (Iso2PncService) checks contracts with a verifier of its own
        iso2 = getattr(getattr(server, "config", None), "iso2_pnc", None)
        self.iso2_verifier = getattr(iso2, "verifier", None)
        self.base_iso2_mo_roots = tuple(getattr(self.iso2_verifier, "mo_roots", ()))
        if store is not None:
            store.listeners.append(self.roots_changed)
            self.roots_changed("MORootCertificate", "loaded")
        self._tasks: list[asyncio.Task[None]] = []

    def v2g_roots(self) -> list[x509.Certificate]:
        """Roots a renewed SECC chain may lead to: [ocpp] v2g_roots and the CSMS's
        V2GRootCertificates."""
        installed = self.store.certificates("V2GRootCertificate") if self.store else []
        return _pem_roots(self.config.v2g_roots) + installed

    def _installed(self, cert_type: str) -> list[x509.Certificate]:
        try:
            return self.store.certificates(cert_type) if self.store is not None else []
        except (OSError, ValueError) as exc:
            log.error("cannot read the installed %ss: %s", cert_type, exc)
            return []

    def vehicle_trust(self) -> Path | None:
        """The roots the SECC checks vehicle certificates with: the configured ones, and the
        CSMS's OEMRootCertificates (2.1, "OEM root certificate for 2-way TLS with EV") as
        one PEM bundle in the certificate store's directory. None: no vehicle roots (the
        SECC asks for no vehicle certificate)."""
        oem = self._installed("OEMRootCertificate")
        if not oem or self.store is None:
            return self.vehicle_roots
        pem = self.vehicle_roots.read_bytes() if self.vehicle_roots is not None else b""
        pem += b"".join(c.public_bytes(Encoding.PEM) for c in oem)
        bundle = self.store.dir / "vehicle_trust.pem"
        atomic_write(bundle, pem)
        return bundle

    def roots_changed(self, cert_type: str, what: str) -> None:
        """InstallCertificate / DeleteCertificate: MO roots reach the PnC verifier for the
        next contract check (sessions already authorized stay as they are); V2G roots are
        read at each SECC renewal. Every change is a security event."""
        verifiers = [(name, v, base) for name, v, base in (
            ("-20", self.pnc_verifier, self.base_mo_roots),
            ("-2", self.iso2_verifier, self.base_iso2_mo_roots)) if v is not None]
        if cert_type == "MORootCertificate" and verifiers and self.store is not None:
            try:
                installed = self.store.certificates(cert_type)
            except (OSError, ValueError) as exc:  # the store's answer to the CSMS stands
                log.error("cannot read the installed MO roots: %s", exc)
                return
            # the same roots for both: a root of the other standard's PKI (another curve)
            # leads no contract chain of this one, so it is never a trust anchor there
            for name, verifier, base in verifiers:
                roots = base + tuple(installed)
                # public field of evse.security.PncVerifier / iso2_pnc.Iso2ContractVerifier
                verifier.mo_roots = roots
                log.info("%s PnC MO roots: %d (%d configured, %d from the CSMS)", name,
                         len(roots), len(base), len(installed))
        if cert_type == "OEMRootCertificate" and self.rebuild_secc is not None \
                and self.server is not None:
            # new TLS connections check vehicle certificates with the new trust; a context
            # that cannot be built leaves the one in use (the store's answer stands)
            try:
                self.server.set_tls_contexts(self.rebuild_secc())
                log.info("SECC vehicle trust: %d OEM root(s) from the CSMS",
                         len(self._installed(cert_type)))
            except Exception:  # e.g. TlsProfileError: the store's answer must still go out
                log.exception("cannot apply the OEM roots to the SECC")
        if what != "loaded":
            self.client.security_event("ReconfigurationOfSecurityParameters",
                                       f"{cert_type} {what}")

    def pnc_checked(self, record: VerificationRecord) -> None:
        """A PnC certificate check the SECC made (RecordingVerifier.on_record)."""
        if not record.ok:
            self.pnc_events.failed(f"session {record.session_id}:0", record.check)
            log.warning("PnC %s check failed (%s): %s", record.check, record.response_code,
                        record.reason)

    def reset_hook(self, reset: Callable[[], None]) -> Callable[[], None]:
        """`reset` preceded by a ResetOrReboot security event (stored durably, sent after the
        restart)."""
        def run() -> None:
            self.client.security_event("ResetOrReboot", "Reset from the CSMS")
            reset()

        return run

    def start(self) -> None:
        if self._installed("OEMRootCertificate"):  # installed before this start
            self.roots_changed("OEMRootCertificate", "loaded")
        self._tasks = [self.certificates.start(),
                       asyncio.create_task(self.tls_events.run(), name="ocpp-tls-events"),
                       asyncio.create_task(self.pnc_events.run(), name="ocpp-pnc-events")]

    async def stop(self) -> None:
        await self.certificates.stop()
        for task in self._tasks[1:]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
