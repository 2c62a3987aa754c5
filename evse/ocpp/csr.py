"""The station's own certificates (OCPP 2.0.1 A02/A03: SignCertificate, CertificateSigned):
the key and the PKCS#10 CSR made on the station, and the checks a signed chain from the CSMS
must pass before it replaces the installed certificate. Sans-IO: time enters as `now`
(Unix seconds), files are read and written by the caller (`evse/aio/ocpp_security.py`).

    pending = PendingCsr.new("ChargingStationCertificate", current_leaf)
    send SignCertificate {"csr": pending.csr_pem, "certificateType": ...}
    ...CertificateSigned {"certificateChain": pem}:
    chain = check_signed_chain(pem, pending, roots, now)   # raises SignedChainRejected
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evse.security.chains import ChainPolicy, validate_chain

__all__ = ["CERTIFICATE_TYPES", "PendingCsr", "PendingCsrUnreadable", "SignedChainRejected",
           "check_signed_chain", "curve_of", "days_left", "key_pem", "new_key"]

# CertificateSigningUseEnumType
CERTIFICATE_TYPES = ("ChargingStationCertificate", "V2GCertificate")
MAX_SUB_CAS = 3  # -20 has two, OCPP PKIs rarely more
# a renewed certificate's chain: leaf -> at most MAX_SUB_CAS Sub-CAs -> a trusted root, every
# signature, validity, CA flag, path length and keyCertSign checked (evse.security.chains)
_POLICY = ChainPolicy(max_sub_cas=MAX_SUB_CAS, iso20_algorithms=False,
                      leaf_digital_signature=False)
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1}


class PendingCsrUnreadable(ValueError):
    """A stored pending CSR that cannot be used (damaged, another type, a key that does not
    match its CSR)."""


class SignedChainRejected(ValueError):
    """A CertificateSigned chain the station does not install; the message says why."""


def new_key(curve: str) -> ec.EllipticCurvePrivateKey:
    """A new key on `curve` (secp256r1 for the CSMS client / -2, secp521r1 for the -20 SECC)."""
    if curve not in _CURVES:
        raise ValueError(f"no key type {curve}")
    return ec.generate_private_key(_CURVES[curve]())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def curve_of(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
        raise ValueError(f"{cert.subject.rfc4514_string()}: not an EC key this station makes")
    return key.curve.name


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo))


def days_left(cert: x509.Certificate, now: float) -> float:
    return (cert.not_valid_after_utc.timestamp() - now) / 86400.0


@dataclass(frozen=True, eq=False)
class PendingCsr:
    """A renewal in flight: the new private key (kept in memory only until the signed chain
    is installed) and the CSR that went to the CSMS."""

    certificate_type: str
    key: ec.EllipticCurvePrivateKey
    csr_pem: str

    @classmethod
    def new(cls, certificate_type: str, current: x509.Certificate,
            subject: x509.Name | None = None) -> PendingCsr:
        """[A02.FR.02] a new key pair of the current certificate's type, generated here; the
        CSR carries the current subject (CN = the station's identity / the SECC's name,
        O = the organization) unless `subject` is given, and is signed with the new key."""
        if certificate_type not in CERTIFICATE_TYPES:
            raise ValueError(f"unknown certificate type {certificate_type}")
        key = new_key(curve_of(current))
        digest = hashes.SHA512() if key.curve.name == "secp521r1" else hashes.SHA256()
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(subject if subject is not None else current.subject)
               .sign(key, digest))
        return cls(certificate_type, key,
                   csr.public_bytes(serialization.Encoding.PEM).decode("ascii"))

    def to_bytes(self, created: float) -> bytes:
        """What is stored (0600, beside the slot's key) while the CSR waits for its
        CertificateSigned, so a restart does not lose the key: the type, the creation time
        (Unix seconds, for the wait limit), the private key and the CSR."""
        return json.dumps({"certificateType": self.certificate_type, "created": created,
                           "key": key_pem(self.key).decode("ascii"),
                           "csr": self.csr_pem}, indent=1).encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes, certificate_type: str) -> tuple[PendingCsr, float]:
        """(pending CSR, creation time) from `to_bytes`; PendingCsrUnreadable for anything
        that is not a stored CSR of `certificate_type` whose key signed the CSR."""
        try:
            doc = json.loads(data)
            kind, created = doc["certificateType"], float(doc["created"])
            key = serialization.load_pem_private_key(doc["key"].encode("ascii"), None)
            csr = x509.load_pem_x509_csr(doc["csr"].encode("ascii"))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeError,
                UnsupportedAlgorithm) as exc:
            raise PendingCsrUnreadable(f"not a stored CSR ({exc})") from None
        if kind != certificate_type:
            raise PendingCsrUnreadable(f"a CSR for a {kind}, not a {certificate_type}")
        if not isinstance(key, ec.EllipticCurvePrivateKey) \
                or _spki(csr.public_key()) != _spki(key.public_key()) \
                or not csr.is_signature_valid:
            raise PendingCsrUnreadable("the stored key is not the CSR's key")
        return cls(kind, key, doc["csr"]), created


def check_signed_chain(pem: str, pending: PendingCsr, roots: list[x509.Certificate],
                       now: float) -> tuple[x509.Certificate, ...]:
    """The certificates to install (leaf first, the root not included) when `pem` is a chain
    the station takes: parseable PEM, the leaf's public key is the pending key, every
    certificate valid at `now`, the path from the leaf to one of `roots` signed throughout
    (CA flags, path lengths, keyCertSign checked). Anything else: SignedChainRejected."""
    if not roots:
        raise SignedChainRejected("no trusted root to verify the chain against")
    try:
        certs = x509.load_pem_x509_certificates(pem.encode("ascii", "strict"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SignedChainRejected(f"not a PEM certificate chain ({exc})") from None
    leaf, subs = certs[0], certs[1:]
    if _spki(leaf.public_key()) != _spki(pending.key.public_key()):
        raise SignedChainRejected("the leaf's public key is not the key of the pending CSR")
    # the chain may end with its root; the path is built to a *trusted* root only
    subs = [c for c in subs if c.subject != c.issuer]
    if len(subs) > MAX_SUB_CAS:
        raise SignedChainRejected(f"too_long: {len(subs)} Sub-CAs, at most {MAX_SUB_CAS}")
    try:  # the project's chain validation, without the -20 algorithm rules (P-256 is fine)
        path = validate_chain(leaf, subs, roots, dt.datetime.fromtimestamp(now, dt.UTC),
                              policy=_POLICY).path
    except ValueError as exc:  # ChainError, also a certificate cryptography cannot parse
        raise SignedChainRejected(f"chain: {exc}") from None
    return path[:-1]


def chain_pem(certs: tuple[x509.Certificate, ...]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
