"""OCSP for contract chains (OCPP 2.0.1/2.1 M06 GetCertificateStatus), sans-IO: the request
data per certificate, the check of the DER OCSP response the CSMS relays, and a cache of GOOD
answers until their nextUpdate. Time enters as `now` (Unix seconds).

A response counts only when (RFC 6960):
- its status is SUCCESSFUL and it holds a SingleResponse for exactly this certificate (serial,
  and the issuer's name and key hashes in the response's own hash algorithm);
- it is signed by the issuer itself, or by a delegated responder whose certificate the issuer
  signed, with the id-kp-OCSPSigning extended key usage, valid at `now` (4.2.2.2);
- thisUpdate is not in the future (beyond `skew_s`) and nextUpdate is not past; a response
  without nextUpdate is taken only while thisUpdate is younger than `max_age_s`, and not cached;
- certStatus is GOOD. REVOKED (with its reason) and UNKNOWN deny.
Anything else raises OcspError: the caller denies (fail closed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from evse.ocpp.authorization import certificate_hash_data
from evse.security.chains import subject_key_bits

__all__ = ["OcspCache", "OcspError", "check_ocsp_response", "ocsp_request_data"]

SKEW_S = 300.0  # clock difference tolerated on thisUpdate
MAX_AGE_S = 86400.0  # a response without nextUpdate is fresh this long after thisUpdate


class OcspError(ValueError):
    """Why an OCSP answer does not show the certificate GOOD (the reason given to the EV)."""


def _issuer_of(cert: x509.Certificate, candidates: list[x509.Certificate]
               ) -> x509.Certificate | None:
    for c in candidates:
        if c.subject == cert.issuer:
            try:
                cert.verify_directly_issued_by(c)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return c
    return None


def ocsp_request_data(chain: tuple[bytes, ...], roots: list[x509.Certificate]
                      ) -> list[tuple[x509.Certificate, x509.Certificate, dict[str, Any]]]:
    """(certificate, issuer, OCSPRequestDataType) for each certificate of the DER chain (leaf
    first, without the root): its issuer is the next one, the last one's is a trusted root."""
    certs = [x509.load_der_x509_certificate(d) for d in chain]
    if not certs:
        raise OcspError("no contract chain")
    root = _issuer_of(certs[-1], roots)
    if root is None:
        raise OcspError("the contract chain does not end at a trusted root")
    issuers = [*certs[1:], root]
    for cert, issuer in zip(certs, issuers, strict=True):
        if cert.issuer != issuer.subject:
            raise OcspError("the contract chain is out of order")
    der = serialization.Encoding.DER
    data = certificate_hash_data((*chain, root.public_bytes(der)))
    if len(data) < len(certs):
        raise OcspError("the contract chain is longer than OCPP can ask for")
    return list(zip(certs, issuers, data, strict=True))


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    return hashlib.new(algorithm.name, data).digest()


def _verify(key: Any, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
            ) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, (ed448.Ed448PublicKey, ed25519.Ed25519PublicKey)):
        key.verify(signature, data)
    else:
        raise OcspError("unsupported OCSP signature")


def _responder_key(resp: ocsp.OCSPResponse, issuer: x509.Certificate,
                   now: dt.datetime) -> Any:
    """The key that must have signed `resp`: the issuer's, or a delegated responder's."""
    key_bits = subject_key_bits(issuer)
    if resp.responder_name == issuer.subject or (
            resp.responder_key_hash is not None
            and resp.responder_key_hash == hashlib.sha1(key_bits).digest()):  # noqa: S324 - RFC 6960 KeyHash is SHA-1
        return issuer.public_key()
    for cert in resp.certificates:  # a delegated responder [RFC 6960 4.2.2.2]
        if cert.issuer != issuer.subject:
            continue
        try:
            cert.verify_directly_issued_by(issuer)
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            continue
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            continue
        return cert.public_key()
    raise OcspError("OCSP response not signed by the issuer or a responder it authorized")


def check_ocsp_response(der: bytes, cert: x509.Certificate, issuer: x509.Certificate,
                        now: float, *, skew_s: float = SKEW_S, max_age_s: float = MAX_AGE_S
                        ) -> float | None:
    """Check `der` (an OCSPResponse) says `cert` (issued by `issuer`) is GOOD now. Returns
    how long the answer may be cached (its nextUpdate, Unix s; None: not at all). Raises
    OcspError for any other outcome."""
    try:
        resp = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise OcspError(f"not an OCSP response: {exc}") from None
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"OCSP responder answered {resp.response_status.name}")
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    try:
        _verify(_responder_key(resp, issuer, when), resp.signature, resp.tbs_response_bytes,
                resp.signature_hash_algorithm)
    except InvalidSignature:
        raise OcspError("OCSP response signature invalid") from None
    name = issuer.subject.public_bytes()
    key_bits = subject_key_bits(issuer)
    single = None
    for r in resp.responses:
        if (r.serial_number == cert.serial_number
                and r.issuer_name_hash == _digest(r.hash_algorithm, name)
                and r.issuer_key_hash == _digest(r.hash_algorithm, key_bits)):
            single = r
            break
    if single is None:
        raise OcspError("OCSP response is not about this certificate")
    if single.this_update_utc.timestamp() > now + skew_s:
        raise OcspError("OCSP response from the future")
    next_update = single.next_update_utc
    if next_update is not None and next_update.timestamp() <= now:
        raise OcspError(f"OCSP response stale (nextUpdate {next_update.isoformat()})")
    if next_update is None and now - single.this_update_utc.timestamp() > max_age_s:
        raise OcspError("OCSP response stale (no nextUpdate, thisUpdate too old)")
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason
        raise OcspError("certificate revoked" + (f" ({reason.name})" if reason else ""))
    if status != ocsp.OCSPCertStatus.GOOD:
        raise OcspError("certificate status UNKNOWN")
    return None if next_update is None else next_update.timestamp()


@dataclass(slots=True)
class OcspCache:
    """GOOD answers per certificate (SHA-256 of its DER) until their nextUpdate."""

    max_entries: int = 1000
    _good_until: dict[bytes, float] = field(default_factory=dict)

    @staticmethod
    def _key(cert: x509.Certificate) -> bytes:
        return cert.fingerprint(hashes.SHA256())

    def store(self, cert: x509.Certificate, until: float | None) -> None:
        if until is None:
            return
        key = self._key(cert)
        self._good_until.pop(key, None)
        self._good_until[key] = until
        while len(self._good_until) > self.max_entries:
            del self._good_until[next(iter(self._good_until))]

    def lookup(self, cert: x509.Certificate, now: float) -> bool:
        until = self._good_until.get(self._key(cert))
        return until is not None and now < until

    def clear(self) -> None:
        self._good_until.clear()
