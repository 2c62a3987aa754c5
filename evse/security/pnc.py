"""`PncVerifier`: the crypto behind the protocol core's Plug & Charge seam.

    verifier = PncVerifier(mo_roots=[mo_root_cert], oem_roots=[oem_root_cert])
    config = SeccConfig(offer_pnc=True, pnc_verifier=verifier, ...)

It implements `evse.protocol.config.PncVerifier`: each method takes a decoded request, checks
its signed part and certificate chain, and returns a `PncVerdict` with "OK" or the -20 response
code for the failure (`RESPONSE_CODES` below). It remembers, per SessionID (bounded), the
contract certificate it accepted, to verify the EV's MeteringConfirmationReq later in the same
(or a resumed) session.

Time: `timestamp` is Unix seconds from the protocol core (its `now + epoch_offset`); the
verifier never reads a clock.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

from evse.protocol.config import PncVerdict
from evse.protocol.session import resume_binding as _core_resume_binding
from evse.security.chains import (
    ISO20_CHAIN_POLICY,
    ChainError,
    ChainFailure,
    ChainPolicy,
    ValidatedChain,
    build_path,
    check_path,
    contract_emaid,
)
from evse.security.signatures import (
    ISO20_POLICY,
    SignatureError,
    SignaturePolicy,
    SignedElement,
    verify,
)

SIGNATURE_ERROR = "FAILED_SignatureError"
EXPIRES_SOON = "OK_CertificateExpiresSoon"
# A valid contract this close to its end is accepted with OK_CertificateExpiresSoon, so the
# EV can renew it (CertificateInstallation) while it still works.
EXPIRES_SOON_WINDOW = dt.timedelta(days=14)
METERING_SIGNATURE_ERROR = "FAILED_MeteringSignatureNotValid"
CHAIN_ERROR = "WARNING_CertificateValidationError"

# ChainFailure -> -20 response code (anything not listed: WARNING_CertificateValidationError).
RESPONSE_CODES: dict[ChainFailure, str] = {
    ChainFailure.EXPIRED: "WARNING_CertificateExpired",
    ChainFailure.NOT_YET_VALID: "WARNING_CertificateNotYetValid",
    ChainFailure.REVOKED: "WARNING_CertificateRevoked",
}

OcspSource = Callable[[x509.Certificate], Sequence[bytes]]
# What cryptography raises for certificates or keys it parses lazily or does not support.
_UNUSABLE: tuple[type[Exception], ...] = (ValueError, TypeError, UnsupportedAlgorithm)
_SIGNATURE_PROBLEMS: tuple[type[Exception], ...] = (SignatureError, *_UNUSABLE)


def resume_binding(session_id: bytes, vehicle_certificate: bytes) -> bytes:
    """SHA-512(SessionID || SHA-512(vehicle certificate DER)): what a paused session is bound
    to when the vehicle authenticated with its certificate in TLS, so that only the same
    vehicle can resume it. The protocol core computes and checks it
    (`evse.protocol.session.resume_binding`, fed by the TLS adapter's peer certificate); this
    is the same function, for tools and tests."""
    return _core_resume_binding(session_id, vehicle_certificate)


def chain_response_code(error: ChainError) -> str:
    return RESPONSE_CODES.get(error.failure, CHAIN_ERROR)


def _utc(timestamp: int | float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _chain_ders(chain: Any) -> tuple[bytes, tuple[bytes, ...]]:
    subs = chain.sub_certificates.certificate if chain.sub_certificates is not None else ()
    return bytes(chain.certificate), tuple(bytes(c) for c in subs)


@dataclass(eq=False)
class PncVerifier:
    """Verifies PnC signatures and certificate chains against installed roots.

    `mo_roots`: the eMSP (MO) roots contracts must chain to; `oem_roots`: the OEM roots for
    OEM provisioning certificates (CertificateInstallation); empty means the SECC does not
    validate that chain itself and leaves it to the CPS (the signature is still checked).
    `ocsp`: optional source of DER OCSP responses for the certificates of a chain.
    """

    mo_roots: Sequence[x509.Certificate]
    oem_roots: Sequence[x509.Certificate] = ()
    signature_policy: SignaturePolicy = ISO20_POLICY
    chain_policy: ChainPolicy = ISO20_CHAIN_POLICY
    ocsp: OcspSource | None = None
    max_sessions: int = 64
    _contracts: OrderedDict[bytes, ValidatedChain] = field(default_factory=OrderedDict)
    _paths: OrderedDict[tuple[bytes, ...], tuple[x509.Certificate, ...]] = field(
        default_factory=OrderedDict
    )

    # -- helpers ------------------------------------------------------------------------------

    def _ocsp_for(self, leaf: bytes, subs: Sequence[bytes]) -> Sequence[bytes]:
        if self.ocsp is None:
            return ()
        out: list[bytes] = []
        for der in (leaf, *subs):
            try:
                out.extend(self.ocsp(x509.load_der_x509_certificate(der)))
            except ValueError:
                continue  # validate_chain reports the malformed certificate
        return out

    def validate(
        self, leaf: bytes, subs: Sequence[bytes], roots: Sequence[x509.Certificate],
        timestamp: int | float,
    ) -> ValidatedChain:
        """`validate_chain`, with the time-independent part (parsing, signatures) cached per
        chain: the EV repeats its AuthorizationReq while we answer Ongoing."""
        key = (leaf, *subs, b"", *(r.fingerprint(hashes.SHA256()) for r in roots))
        path = self._paths.get(key)
        if path is None:
            path = build_path(leaf, subs, roots, policy=self.chain_policy)
            self._paths[key] = path
            while len(self._paths) > self.max_sessions:
                self._paths.popitem(last=False)
        return check_path(path, _utc(timestamp), policy=self.chain_policy,
                          ocsp_responses=self._ocsp_for(leaf, subs))

    def _remember(self, session_id: bytes, chain: ValidatedChain) -> None:
        self._contracts[bytes(session_id)] = chain
        self._contracts.move_to_end(bytes(session_id))
        while len(self._contracts) > self.max_sessions:
            self._contracts.popitem(last=False)

    def contract_of(self, session_id: bytes) -> ValidatedChain | None:
        """The contract chain accepted in that session (None: no PnC authorization seen)."""
        return self._contracts.get(bytes(session_id))

    # -- the PncVerifier protocol --------------------------------------------------------------

    def verify_authorization(self, req: Any, *, timestamp: int, session_id: bytes) -> PncVerdict:
        """Contract chain to an installed MO root, eMAID, then the header Signature over
        PnC_AReqAuthorizationMode with the contract key. The GenChallenge is the core's.

        A valid contract that ends within `EXPIRES_SOON_WINDOW` of `timestamp` gets
        OK_CertificateExpiresSoon instead of OK."""
        mode = req.pnc_a_req_authorization_mode
        if mode is None or mode.contract_certificate_chain is None:
            return PncVerdict(CHAIN_ERROR, "no ContractCertificateChain")
        leaf, subs = _chain_ders(mode.contract_certificate_chain)
        try:
            chain = self.validate(leaf, subs, self.mo_roots, timestamp)
            emaid = contract_emaid(chain.leaf)
        except ChainError as exc:
            return PncVerdict(chain_response_code(exc), f"contract chain: {exc}")
        except _UNUSABLE as exc:  # a certificate cryptography cannot work with
            return PncVerdict(CHAIN_ERROR, f"contract chain: {exc!r}")
        try:
            verify(req.header.signature,
                   [SignedElement("PnC_AReqAuthorizationMode", mode)],
                   chain.public_key(), policy=self.signature_policy)
        except _SIGNATURE_PROBLEMS as exc:
            return PncVerdict(SIGNATURE_ERROR, f"PnC_AReqAuthorizationMode: {exc}")
        self._remember(session_id, chain)
        soon = chain.leaf.not_valid_after_utc - _utc(timestamp) <= EXPIRES_SOON_WINDOW
        return PncVerdict(EXPIRES_SOON if soon else "OK", "contract expires soon" if soon else "",
                          emaid=emaid, certificate_chain=(leaf, *subs))

    def verify_certificate_installation(
        self, req: Any, *, timestamp: int, session_id: bytes
    ) -> PncVerdict:
        """The header Signature over OEMProvisioningCertificateChain with the provisioning
        key; the chain to an installed OEM root when `oem_roots` is set."""
        prov = req.oem_provisioning_certificate_chain
        if prov is None:
            return PncVerdict(CHAIN_ERROR, "no OEMProvisioningCertificateChain")
        leaf, subs = _chain_ders(prov)
        try:
            if self.oem_roots:
                key = self.validate(leaf, subs, self.oem_roots, timestamp).public_key()
            else:
                key = x509.load_der_x509_certificate(leaf).public_key()
        except ChainError as exc:
            return PncVerdict(chain_response_code(exc), f"OEM provisioning chain: {exc}")
        except _UNUSABLE as exc:
            return PncVerdict(CHAIN_ERROR, f"OEM provisioning certificate: {exc!r}")
        try:
            verify(req.header.signature,
                   [SignedElement("OEMProvisioningCertificateChain", prov)],
                   key, policy=self.signature_policy)
        except _SIGNATURE_PROBLEMS as exc:
            return PncVerdict(SIGNATURE_ERROR, f"OEMProvisioningCertificateChain: {exc}")
        return PncVerdict("OK", certificate_chain=(leaf, *subs))

    def verify_metering_confirmation(
        self, req: Any, *, timestamp: int, session_id: bytes
    ) -> PncVerdict:
        """The header Signature over SignedMeteringData with the contract key accepted in
        this session, and SignedMeteringData's SessionID equal to the session's."""
        chain = self.contract_of(session_id)
        if chain is None:
            return PncVerdict(METERING_SIGNATURE_ERROR, "no PnC contract in this session")
        data = req.signed_metering_data
        if data is None or bytes(data.session_id or b"") != bytes(session_id):
            return PncVerdict(METERING_SIGNATURE_ERROR, "SignedMeteringData of another session")
        try:
            verify(req.header.signature, [SignedElement("SignedMeteringData", data)],
                   chain.public_key(), policy=self.signature_policy)
        except _SIGNATURE_PROBLEMS as exc:
            return PncVerdict(METERING_SIGNATURE_ERROR, f"SignedMeteringData: {exc}")
        return PncVerdict("OK")


__all__ = [
    "EXPIRES_SOON",
    "EXPIRES_SOON_WINDOW",
    "RESPONSE_CODES",
    "PncVerifier",
    "chain_response_code",
    "resume_binding",
]
