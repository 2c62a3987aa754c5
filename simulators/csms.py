"""A CSMS simulator (OCPP 2.0.1 / 2.1) on the same `ocpp` library and `websockets` as the
station's client: what the tests and `evse demo --ocpp` talk to.

It accepts stations at ws[s]://host:port/<station id>, checks HTTP Basic auth (profiles 1
and 2) or the client certificate (profile 3, whose subject CN must be the station id), answers
BootNotification with a scripted sequence of statuses (e.g. Pending then Accepted), and records
every CALL it receives, in order, per station.

    csms = CsmsSimulator(passwords={"CS1": "secret"}, boot_statuses=["Pending", "Accepted"])
    await csms.start()          # csms.url is ws://127.0.0.1:<port>
    ...
    csms.calls("CS1", "TransactionEvent")  # payloads in arrival order
    await csms.stop()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from ocpp.routing import on as _on
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v201 import ChargePoint as ChargePoint201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

__all__ = ["CsmsSimulator", "CsrSigner", "OcspResponder", "ReceivedCall"]

log = logging.getLogger(__name__)
ISO2_NAMESPACE = "urn:iso:15118:2:2013:MsgDef"  # iso15118SchemaVersion of a -2 session

_F = TypeVar("_F", bound=Callable[..., Any])
on = cast(Callable[[str], Callable[[_F], _F]], _on)  # the ocpp package is untyped


@dataclass(frozen=True, slots=True)
class ReceivedCall:
    station_id: str
    subprotocol: str
    action: str
    payload: dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _CsmsHandlers:
    """The CSMS side's @on routes; mixed into the library's ChargePoint of each version."""

    csms: CsmsSimulator
    id: str
    _call_result: Any
    _ocpp_version: str

    def _record(self, action: str, payload: dict[str, Any]) -> None:
        self.csms.received.append(ReceivedCall(self.id, self._ocpp_version, action, payload))

    @on("BootNotification")
    def on_boot(self, **payload: Any) -> Any:
        self._record("BootNotification", payload)
        status = self.csms.next_boot_status()
        interval = (self.csms.heartbeat_interval if status == "Accepted"
                    else self.csms.boot_retry_interval)
        return self._call_result.BootNotification(current_time=_now(), interval=interval,
                                                  status=status)

    @on("Heartbeat")
    def on_heartbeat(self, **payload: Any) -> Any:
        self._record("Heartbeat", payload)
        return self._call_result.Heartbeat(current_time=_now())

    @on("StatusNotification")
    def on_status(self, **payload: Any) -> Any:
        self._record("StatusNotification", payload)
        return self._call_result.StatusNotification()

    @on("TransactionEvent")
    def on_transaction_event(self, **payload: Any) -> Any:
        self._record("TransactionEvent", payload)
        profile = self.csms.profile_on_start
        if payload["event_type"] == "Started" and profile is not None:
            # the V2X profile in the middle of the session, once the answer is out
            task = asyncio.create_task(self._send_profile(payload, profile))
            self.csms._tasks.add(task)
            task.add_done_callback(self.csms._tasks.discard)
        return self._call_result.TransactionEvent()

    async def _send_profile(self, event: dict[str, Any], profile: dict[str, Any]) -> None:
        await asyncio.sleep(self.csms.profile_delay)
        tx_id = event["transaction_info"]["transaction_id"]
        evse_id = event.get("evse", {}).get("id", 1)
        body = {**profile, "charging_profile_purpose": "TxProfile", "transaction_id": tx_id}
        try:
            res = await self.call(self._call.SetChargingProfile(  # type: ignore[attr-defined]
                evse_id=evse_id, charging_profile=body), suppress=False)
            self.csms.profile_answers.append(str(res.status))
        except Exception as exc:  # recorded for the test to see
            self.csms.profile_answers.append(f"error: {exc}")

    @on("MeterValues")
    def on_meter_values(self, **payload: Any) -> Any:
        self._record("MeterValues", payload)
        return self._call_result.MeterValues()

    @on("NotifyReport")
    def on_notify_report(self, **payload: Any) -> Any:
        self._record("NotifyReport", payload)
        return self._call_result.NotifyReport()

    @on("LogStatusNotification")
    def on_log_status(self, **payload: Any) -> Any:
        self._record("LogStatusNotification", payload)
        return self._call_result.LogStatusNotification()

    @on("FirmwareStatusNotification")
    def on_firmware_status(self, **payload: Any) -> Any:
        self._record("FirmwareStatusNotification", payload)
        return self._call_result.FirmwareStatusNotification()

    @on("SecurityEventNotification")
    def on_security_event(self, **payload: Any) -> Any:
        self._record("SecurityEventNotification", payload)
        return self._call_result.SecurityEventNotification()

    @on("NotifyEVChargingNeeds")
    def on_ev_charging_needs(self, **payload: Any) -> Any:
        self._record("NotifyEVChargingNeeds", payload)
        return self._call_result.NotifyEVChargingNeeds(status="Accepted")

    @on("NotifyEVChargingSchedule")
    def on_ev_charging_schedule(self, **payload: Any) -> Any:
        self._record("NotifyEVChargingSchedule", payload)
        return self._call_result.NotifyEVChargingSchedule(status="Accepted")

    @on("ReportChargingProfiles")
    def on_report_charging_profiles(self, **payload: Any) -> Any:
        self._record("ReportChargingProfiles", payload)
        return self._call_result.ReportChargingProfiles()

    async def route_message(self, raw_msg: str) -> None:
        self.csms.frames.setdefault(self.id, []).append(raw_msg)
        await super().route_message(raw_msg)  # type: ignore[misc]

    @on("Authorize")
    def on_authorize(self, **payload: Any) -> Any:
        self._record("Authorize", payload)
        token = payload["id_token"]["id_token"]
        status = ("Accepted" if token in self.csms.accepted_tokens
                  or self.csms.accept_all_tokens else "Invalid")
        cert_status = None
        # PnC: the contract's OCSP status
        if payload.get("iso15118_certificate_hash_data") and self.csms.pnc_certificate_status:
            cert_status = ("CertificateRevoked" if token in self.csms.revoked_tokens
                           else "Accepted")
        return self._call_result.Authorize(id_token_info={"status": status},
                                           certificate_status=cert_status)


# -- Plug & Charge certificates: Get15118EVCertificate and GetCertificateStatus -------------
# The CSMS relays to a CPS and an OCSP responder; here both are built on the test PKI:
# `csms.cps` (an `evse.security.cps.LocalCps`) answers the EV's CertificateInstallationReq,
# `csms.ocsp` (`OcspResponder`) signs OCSP responses as the issuers of the contract chain.


@dataclass(eq=False)
class OcspResponder:
    """OCSP responses for certificates issued by `issuers` ((certificate, key) pairs), signed
    by the issuer itself, or by `delegate` (a (certificate, key) responder, for the
    certificates its own issuer issued). `revoked`: serials answered REVOKED. `mode` breaks
    the answers for tests: "good" (honest), "forged" (in the issuer's name, signed by
    `forger_key`), "stale" (nextUpdate past), "failed" (GetCertificateStatus status Failed),
    "unknown" (certStatus UNKNOWN), "garbage" (an ocspResult that is no OCSP response)."""

    issuers: list[tuple[Any, Any]]
    revoked: set[int] = field(default_factory=set)
    mode: str = "good"
    delegate: tuple[Any, Any] | None = None
    forger_key: Any = None
    validity_s: float = 3600.0

    def respond(self, data: dict[str, Any]) -> bytes | None:
        """The DER OCSPResponse for one OCSPRequestDataType (snake_case), None: unknown
        issuer."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509 import ReasonFlags, ocsp

        name_hash = bytes.fromhex(data["issuer_name_hash"])
        key_hash = bytes.fromhex(data["issuer_key_hash"])
        serial = int(data["serial_number"], 16)
        issuer = next(((c, k) for c, k in self.issuers
                       if hashlib.sha256(c.subject.public_bytes()).digest() == name_hash), None)
        if issuer is None:
            return None
        if self.mode == "garbage":
            return b"\x30\x03not OCSP"
        now = datetime.now(UTC)
        revoked = serial in self.revoked
        status = (ocsp.OCSPCertStatus.UNKNOWN if self.mode == "unknown"
                  else ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD)
        this_update = now - timedelta(minutes=1)
        next_update = now + timedelta(seconds=self.validity_s)
        if self.mode == "stale":
            this_update, next_update = now - timedelta(days=2), now - timedelta(days=1)
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=name_hash, issuer_key_hash=key_hash, serial_number=serial,
            algorithm=hashes.SHA256(), cert_status=status, this_update=this_update,
            next_update=next_update,
            revocation_time=now - timedelta(hours=1) if status == ocsp.OCSPCertStatus.REVOKED
            else None,
            revocation_reason=ReasonFlags.key_compromise
            if status == ocsp.OCSPCertStatus.REVOKED else None)
        delegated = self.delegate is not None and self.delegate[0].issuer == issuer[0].subject
        cert, key = self.delegate if delegated and self.delegate is not None else issuer
        encoding = ocsp.OCSPResponderEncoding.HASH
        if self.mode == "forged":  # in the issuer's name, with another key
            key = self.forger_key
            cert = _self_signed(cert.subject, key)
            encoding = ocsp.OCSPResponderEncoding.NAME
        builder = builder.responder_id(encoding, cert)
        if delegated:
            builder = builder.certificates([cert])
        algorithm = hashes.SHA256() if isinstance(key, ec.EllipticCurvePrivateKey) else None
        return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)


def _self_signed(subject: Any, key: Any) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    now = datetime.now(UTC)
    algorithm = hashes.SHA256() if isinstance(key, ec.EllipticCurvePrivateKey) else None
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(1))
            .sign(key, algorithm))


class _CsmsCertificateHandlers:
    """Get15118EVCertificate [M01/M02] and GetCertificateStatus [M06] from the test PKI."""

    csms: CsmsSimulator
    _call_result: Any
    _record: Callable[[str, dict[str, Any]], None]

    @on("Get15118EVCertificate")
    async def on_get_15118_ev_certificate(self, action: str, exi_request: str,
                                          **payload: Any) -> Any:
        import exi_codec
        from exi_codec.schemas import iso20

        self._record("Get15118EVCertificate", {"action": action, "exi_request": exi_request,
                                               **payload})
        await asyncio.sleep(self.csms.ev_certificate_delay_s)  # a slow CPS
        failed = self._call_result.Get15118EVCertificate(status="Failed", exi_response="")
        cps = self.csms.cps
        if self.csms.ev_certificate_exi is not None:  # a scripted answer (bad input tests)
            return self._call_result.Get15118EVCertificate(
                status="Accepted", exi_response=self.csms.ev_certificate_exi)
        if payload.get("iso15118_schema_version") == ISO2_NAMESPACE:
            if self.csms.ev_certificate_status != "Accepted":
                return failed
            return self._iso2_certificate(action, exi_request)
        if cps is None or self.csms.ev_certificate_status != "Accepted":
            return failed
        try:
            req = exi_codec.decode(base64.b64decode(exi_request), "iso20")
        except Exception as exc:  # a broken request: Failed, as a CSMS would
            log.warning("Get15118EVCertificate: bad exiRequest: %s", exc)
            return failed
        if type(req).__name__ != "CertificateInstallationReq":
            return failed
        timestamp = int(datetime.now(UTC).timestamp())
        answer = cps.installation_data(req, timestamp=timestamp,
                                       session_id=bytes(req.header.session_id))
        if answer is None or not answer.response_code.startswith("OK"):
            return failed
        res = iso20.CertificateInstallationRes(
            header=iso20.MessageHeaderType(session_id=bytes(req.header.session_id),
                                           time_stamp=timestamp, signature=answer.signature),
            response_code=iso20.responseCodeType.OK,
            evse_processing=iso20.processingType.Finished,
            cps_certificate_chain=answer.cps_certificate_chain,
            signed_installation_data=answer.signed_installation_data,
            remaining_contract_certificate_chains=answer.remaining_contract_certificate_chains)
        exi = base64.b64encode(exi_codec.encode(res)).decode("ascii")
        return self._call_result.Get15118EVCertificate(status="Accepted", exi_response=exi)

    def _iso2_certificate(self, action: str, exi_request: str) -> Any:
        """-2 CertificateInstallation/Update from `csms.iso2_pnc` (an Iso2PncService with a
        provisioning service on the test PKI): the whole response V2G_Message as EXI, with
        the provisioning certificate's header Signature."""
        import exi_codec
        from evse.protocol.iso2.messages import wrap

        failed = self._call_result.Get15118EVCertificate(status="Failed", exi_response="")
        service = self.csms.iso2_pnc
        if service is None:
            return failed
        try:
            msg = exi_codec.decode(base64.b64decode(exi_request), "iso2")
        except Exception as exc:
            log.warning("Get15118EVCertificate (-2): bad exiRequest: %s", exc)
            return failed
        timestamp = int(datetime.now(UTC).timestamp())
        body = msg.body
        if action == "Install" and body.certificate_installation_req is not None:
            answer = service.install(body.certificate_installation_req, timestamp=timestamp)
        elif action == "Update" and body.certificate_update_req is not None:
            answer = service.update(body.certificate_update_req, timestamp=timestamp)
        else:
            return failed
        if not answer.ok:  # a CPS that cannot provision: Failed
            log.warning("Get15118EVCertificate (-2): %s", answer.reason)
            return failed
        res = wrap(answer.body, bytes(msg.header.session_id), answer.signature)
        exi = base64.b64encode(exi_codec.encode(res)).decode("ascii")
        return self._call_result.Get15118EVCertificate(status="Accepted", exi_response=exi)

    @on("GetCertificateStatus")
    def on_get_certificate_status(self, ocsp_request_data: dict[str, Any],
                                  **payload: Any) -> Any:
        self._record("GetCertificateStatus", {"ocsp_request_data": ocsp_request_data,
                                              **payload})
        responder = self.csms.ocsp
        der = None
        if responder is not None and responder.mode != "failed":
            der = responder.respond(ocsp_request_data)
        if der is None:
            return self._call_result.GetCertificateStatus(status="Failed")
        return self._call_result.GetCertificateStatus(
            status="Accepted", ocsp_result=base64.b64encode(der).decode("ascii"))


# -- the station's certificates (SignCertificate -> CertificateSigned, OCPP A02/A03) ----------

class CsrSigner:
    """The CA side of a certificate renewal: a station's CSR (its signature checked) signed
    into a leaf by `ca_cert`/`ca_key` (PEM files of a test PKI), sent back with the CA's
    own chain below the root (`chain`, PEM, e.g. Sub-CA 2 + Sub-CA 1 for a -20 SECC)."""

    def __init__(self, ca_cert: Path, ca_key: Path, *, chain: Path | None = None,
                 server: bool = False, days: float = 365.0, deliver: bool = True) -> None:
        self.ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        key = serialization.load_pem_private_key(ca_key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key
        self.chain = chain.read_bytes() if chain is not None else b""
        self.server, self.days = server, days
        self.csr_valid: list[bool] = []  # the CSR signature of each request, in order
        # False: SignCertificate is Accepted but the CSR only kept in `held` (a test sends
        # the CertificateSigned itself, e.g. after the station restarted)
        self.deliver = deliver
        self.held: list[str] = []

    def takes(self, csr_pem: str) -> bool:
        """The CSR's key is on this CA's curve (a -20 P-521 and a -2 P-256 SECC renewal,
        both V2GCertificate, go to different CAs)."""
        key = x509.load_pem_x509_csr(csr_pem.encode()).public_key()
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == \
            self.key.curve.name

    def sign(self, csr_pem: str) -> str:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        self.csr_valid.append(csr.is_signature_valid)
        if not csr.is_signature_valid:
            raise ValueError("the CSR's signature does not verify")
        now = datetime.now(UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if self.server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.ca.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=self.days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=True, key_cert_sign=False,
                    crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(self.key, hashes.SHA512() if self.key.curve.name == "secp521r1"
                      else hashes.SHA256()))
        return (cert.public_bytes(serialization.Encoding.PEM) + self.chain).decode()


class _CsmsCertificates:
    """SignCertificate: Accepted when the simulator has a signer for the type, then (a moment
    later) CertificateSigned with the chain, the station's answer kept in `signed_answers`."""

    csms: CsmsSimulator
    _call_result: Any

    @on("SignCertificate")
    def on_sign_certificate(self, csr: str, certificate_type: str | None = None,
                            **payload: Any) -> Any:
        self._record("SignCertificate",  # type: ignore[attr-defined]
                     {"csr": csr, "certificate_type": certificate_type, **payload})
        kind = certificate_type or "ChargingStationCertificate"
        signer = self.csms.signers.get(kind)
        try:  # a signer for the CSR's curve first (see CsrSigner.takes)
            signer = next((s for s in self.csms.more_signers.get(kind, []) if s.takes(csr)),
                          signer)
        except ValueError:
            return self._call_result.SignCertificate(status="Rejected")
        if signer is None:
            return self._call_result.SignCertificate(status="Rejected")
        if not signer.deliver:
            signer.held.append(csr)
            return self._call_result.SignCertificate(status="Accepted")
        task = asyncio.create_task(self._send_signed(csr, certificate_type, signer))
        self.csms._tasks.add(task)
        task.add_done_callback(self.csms._tasks.discard)
        return self._call_result.SignCertificate(status="Accepted")

    async def _send_signed(self, csr: str, certificate_type: str | None,
                           signer: CsrSigner) -> None:
        await asyncio.sleep(0.05)
        try:
            chain = signer.sign(csr)
            res = await self.call(self._call.CertificateSigned(  # type: ignore[attr-defined]
                certificate_chain=chain, certificate_type=certificate_type), suppress=False)
            self.csms.signed_answers.append(str(res.status))
        except Exception as exc:  # recorded for the test to see
            self.csms.signed_answers.append(f"error: {exc}")


class _Csms201(_CsmsCertificates, _CsmsHandlers, _CsmsCertificateHandlers,  # type: ignore[misc]
               ChargePoint201):
    pass


class _Csms21(_CsmsCertificates, _CsmsHandlers, _CsmsCertificateHandlers,  # type: ignore[misc]
              ChargePoint21):
    pass


_CLASSES: dict[str, type[Any]] = {"ocpp2.0.1": _Csms201, "ocpp2.1": _Csms21}


class CsmsSimulator:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 subprotocols: Sequence[str] = ("ocpp2.1", "ocpp2.0.1"),
                 passwords: dict[str, str] | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 boot_statuses: Sequence[str] = ("Accepted",),
                 heartbeat_interval: int = 60, boot_retry_interval: int = 1,
                 accepted_tokens: Sequence[str] = (),
                 revoked_tokens: Sequence[str] = (),
                 accept_all_tokens: bool = False,
                 profile_on_start: dict[str, Any] | None = None,
                 profile_delay: float = 0.5) -> None:
        self.host, self.port = host, port
        self.subprotocols = list(subprotocols)
        self.passwords = passwords  # None: no Basic auth check
        self.ssl_context = ssl_context
        self.boot_statuses = list(boot_statuses)
        self.heartbeat_interval = heartbeat_interval
        self.boot_retry_interval = boot_retry_interval
        self.accepted_tokens = set(accepted_tokens)
        self.revoked_tokens = set(revoked_tokens)
        self.accept_all_tokens = accept_all_tokens
        # a TxProfile (snake_case, without purpose/transaction id) sent `profile_delay` s
        # after each transaction starts: the operator's V2X request mid-session
        self.profile_on_start = profile_on_start
        self.profile_delay = profile_delay
        self.profile_answers: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()  # PnC contracts whose OCSP status is revoked
        self.received: list[ReceivedCall] = []
        self.frames: dict[str, list[str]] = {}  # every raw frame from each station
        self.rejected_handshakes: list[str] = []
        self.stations: dict[str, Any] = {}  # station id -> the library's ChargePoint
        self._connections: set[ServerConnection] = set()
        self._boots = 0
        self._server: Server | None = None
        # Plug & Charge certificates (see _CsmsCertificateHandlers): the CPS behind
        # Get15118EVCertificate (None or a status other than Accepted: Failed), and the
        # OCSP responder behind GetCertificateStatus (None: Failed)
        self.cps: Any = None
        self.ev_certificate_status = "Accepted"
        self.ev_certificate_exi: str | None = None  # set: Accepted with this exiResponse
        self.ev_certificate_delay_s = 0.0  # the CPS's time to answer
        # -2 CertificateInstallation/Update (iso15118SchemaVersion ISO2_NAMESPACE): an
        # evse.security.iso2_pnc.Iso2PncService with a provisioning service (None: Failed)
        self.iso2_pnc: Any = None
        self.ocsp: OcspResponder | None = None
        # Authorize with iso15118CertificateHashData answers certificateStatus (False: the
        # CSMS leaves the contract's OCSP check to the station)
        self.pnc_certificate_status = True
        # certificateType -> the CA that signs a station's CSR (SignCertificate)
        self.signers: dict[str, CsrSigner] = {}
        self.more_signers: dict[str, list[CsrSigner]] = {}  # by certificate type, per curve
        self.signed_answers: list[str] = []  # the station's CertificateSigned answers
        self.client_serials: list[str] = []  # profile 3: each client certificate's serial (hex)

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://{self.host}:{self.port}"

    def next_boot_status(self) -> str:
        status = self.boot_statuses[min(self._boots, len(self.boot_statuses) - 1)]
        self._boots += 1
        return status

    def calls(self, station_id: str, action: str) -> list[dict[str, Any]]:
        return [c.payload for c in self.received
                if c.station_id == station_id and c.action == action]

    async def start(self) -> None:
        self._server = await serve(
            self._handler, self.host, self.port, subprotocols=self.subprotocols,  # type: ignore[arg-type]
            process_request=self._check_request, ssl=self.ssl_context, ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Go away: close every connection and the listening socket (the port is kept, so a
        later `start()` comes back on the same URL)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.stations.clear()

    async def call(self, station_id: str, action: str, payload: dict[str, Any]) -> Any:
        """Send a CALL to a connected station (payload in snake_case keyword form of the
        library's dataclass); the answer, or the station's CallError raised as OCPPError."""
        cp = self.stations[station_id]
        return await cp.call(getattr(cp._call, action)(**payload), suppress=False)

    async def send_raw(self, station_id: str, frame: str) -> None:
        """Send any text frame (bad input tests)."""
        await self.stations[station_id]._connection.send(frame)

    async def drop_connections(self) -> None:
        for ws in list(self._connections):
            await ws.close()

    # -- handshake ---------------------------------------------------------------------------
    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        station_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        if self.ssl_context is not None and self.ssl_context.verify_mode == ssl.CERT_REQUIRED:
            cert = connection.transport.get_extra_info("peercert") or {}
            cns = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
            self.client_serials.append(str(cert.get("serialNumber", "")))
            if station_id not in cns:
                self.rejected_handshakes.append(f"{station_id}: certificate CN {cns}")
                return connection.respond(HTTPStatus.FORBIDDEN, "certificate mismatch\n")
        if self.passwords is not None:
            expected = self.passwords.get(station_id)
            header = request.headers.get("Authorization", "")
            token = base64.b64encode(f"{station_id}:{expected}".encode()).decode()
            if expected is None or header != f"Basic {token}":
                self.rejected_handshakes.append(f"{station_id}: bad Basic auth")
                return connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        station_id = ws.request.path.rstrip("/").rsplit("/", 1)[-1] if ws.request else "?"
        if ws.subprotocol not in _CLASSES:
            await ws.close(1002, "no OCPP subprotocol")
            return
        cp = _CLASSES[ws.subprotocol](station_id, ws)
        cp.csms = self
        self.stations[station_id] = cp
        self._connections.add(ws)
        try:
            await cp.start()
        except Exception as exc:  # the station went away
            log.debug("station %s: %s", station_id, exc)
        finally:
            self._connections.discard(ws)
            if self.stations.get(station_id) is cp:
                del self.stations[station_id]


async def _main() -> None:  # pragma: no cover - manual use
    csms = CsmsSimulator(host="127.0.0.1", port=9000)
    await csms.start()
    print("CSMS simulator on", csms.url)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
