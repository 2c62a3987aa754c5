"""Certificate chain validation for Plug & Charge (contract and OEM provisioning chains).

    path = validate_chain(leaf_der, sub_ders, roots, now)      # raises ChainError
    emaid = contract_emaid(path.leaf)                           # raises ChainError(EMAID)

What is checked, in this order, with the first failure reported:

1. every certificate parses (MALFORMED), the chain is not longer than -20 allows (TOO_LONG);
2. a path leaf -> Sub-CAs -> installed root is built by names and every signature verifies
   with its issuer's key (`verify_directly_issued_by`): UNKNOWN_ROOT when an issuer is neither
   in the chain nor installed, BAD_SIGNATURE when the names chain but a signature does not;
3. validity at `now` of every certificate on the path, root included (EXPIRED, NOT_YET_VALID);
4. CA certificates: basicConstraints CA=true (NOT_A_CA), pathLenConstraint (PATH_LENGTH),
   keyUsage keyCertSign (KEY_USAGE); the leaf: not a CA (LEAF_IS_CA), keyUsage
   digitalSignature (KEY_USAGE); no unknown critical extension (MALFORMED);
5. -20 algorithms (ALGORITHM): keys ECDSA secp521r1 or Ed448, certificate signatures
   ecdsa-with-SHA512 or Ed448 (policy switch for -2 era chains);
6. optionally OCSP (`ocsp_responses`): for each certificate below the root a response signed
   by its issuer, current at `now`; REVOKED for a revoked one, OCSP for a missing (when
   required), stale, unverifiable or mismatching response.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

_ISO20_SIGNATURE_OIDS = frozenset(
    {SignatureAlgorithmOID.ECDSA_WITH_SHA512, SignatureAlgorithmOID.ED448}
)


class ChainFailure(StrEnum):
    MALFORMED = "malformed"
    TOO_LONG = "too_long"
    UNKNOWN_ROOT = "unknown_root"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    NOT_A_CA = "not_a_ca"
    PATH_LENGTH = "path_length"
    KEY_USAGE = "key_usage"
    LEAF_IS_CA = "leaf_is_ca"
    ALGORITHM = "algorithm"
    REVOKED = "revoked"
    OCSP = "ocsp"
    EMAID = "emaid"


class ChainError(ValueError):
    """`failure`: why; `index`: position on the path (0 = leaf), None when not on it."""

    def __init__(self, failure: ChainFailure, detail: str, index: int | None = None) -> None:
        super().__init__(f"{failure}: {detail}")
        self.failure = failure
        self.detail = detail
        self.index = index


@dataclass(frozen=True, slots=True)
class ChainPolicy:
    max_sub_cas: int = 2  # -20: leaf <- Sub-CA 2 <- Sub-CA 1 <- root
    iso20_algorithms: bool = True  # keys P-521/Ed448, signatures ecdsa-with-SHA512/Ed448
    leaf_digital_signature: bool = True
    require_ocsp: bool = False  # every certificate below the root needs a good OCSP response


ISO20_CHAIN_POLICY = ChainPolicy()


@dataclass(frozen=True, slots=True)
class ValidatedChain:
    """The validated path: leaf first, the installed root last."""

    path: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.path[0]

    @property
    def root(self) -> x509.Certificate:
        return self.path[-1]

    def public_key(self) -> Any:
        return self.leaf.public_key()


def load_certificate(data: bytes | x509.Certificate, index: int | None = None) -> x509.Certificate:
    if isinstance(data, x509.Certificate):
        return data
    try:
        return x509.load_der_x509_certificate(bytes(data))
    except ValueError as exc:
        raise ChainError(ChainFailure.MALFORMED, f"not a DER certificate: {exc}", index) from None


def load_pem_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """Every certificate of a PEM file (e.g. the installed MO or OEM roots)."""
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _as_utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _build_path(
    leaf: x509.Certificate, subs: list[x509.Certificate], roots: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    path = [leaf]
    unused = list(subs)
    while True:
        current = path[-1]
        index = len(path) - 1
        anchors = [r for r in roots if r.subject == current.issuer]
        if anchors:
            for root in anchors:
                if _issued_by(current, root):
                    return [*path, root]
            raise ChainError(ChainFailure.BAD_SIGNATURE, f"{_describe(current)} is not signed "
                             f"by the installed root {_describe(anchors[0])}", index)
        issuer = next((c for c in unused if c.subject == current.issuer), None)
        if issuer is None:
            raise ChainError(ChainFailure.UNKNOWN_ROOT, f"issuer {current.issuer.rfc4514_string()}"
                             f" of {_describe(current)} is neither in the chain nor an installed "
                             "root", index)
        if not _issued_by(current, issuer):
            raise ChainError(ChainFailure.BAD_SIGNATURE, f"{_describe(current)} is not signed by "
                             f"{_describe(issuer)}", index)
        unused.remove(issuer)
        path.append(issuer)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _check_validity(path: Sequence[x509.Certificate], now: dt.datetime) -> None:
    for i, cert in enumerate(path):
        if now < cert.not_valid_before_utc:
            raise ChainError(ChainFailure.NOT_YET_VALID, f"{_describe(cert)} valid from "
                             f"{cert.not_valid_before_utc.isoformat()}", i)
        if now > cert.not_valid_after_utc:
            raise ChainError(ChainFailure.EXPIRED, f"{_describe(cert)} expired "
                             f"{cert.not_valid_after_utc.isoformat()}", i)


def _extension(cert: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_constraints(path: Sequence[x509.Certificate], policy: ChainPolicy) -> None:
    for i, cert in enumerate(path):
        try:
            extensions = list(cert.extensions)
        except ValueError as exc:
            raise ChainError(ChainFailure.MALFORMED, f"{_describe(cert)}: {exc}", i) from None
        for ext in extensions:
            if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
                raise ChainError(ChainFailure.MALFORMED, f"{_describe(cert)}: unknown critical "
                                 f"extension {ext.oid.dotted_string}", i)
        bc = _extension(cert, x509.BasicConstraints)
        ku = _extension(cert, x509.KeyUsage)
        if i == 0:
            if bc is not None and bc.ca:
                raise ChainError(ChainFailure.LEAF_IS_CA, f"{_describe(cert)} has CA=true", i)
            if policy.leaf_digital_signature and (ku is None or not ku.digital_signature):
                raise ChainError(ChainFailure.KEY_USAGE,
                                 f"{_describe(cert)} lacks keyUsage digitalSignature", i)
            continue
        if bc is None or not bc.ca:
            raise ChainError(ChainFailure.NOT_A_CA, f"{_describe(cert)} is not a CA", i)
        # CA certificates below this one on the path, the leaf not counted.
        if bc.path_length is not None and i - 1 > bc.path_length:
            raise ChainError(ChainFailure.PATH_LENGTH, f"{_describe(cert)} allows "
                             f"{bc.path_length} Sub-CAs below it, the path has {i - 1}", i)
        if ku is None or not ku.key_cert_sign:
            raise ChainError(ChainFailure.KEY_USAGE, f"{_describe(cert)} lacks keyCertSign", i)


def _check_algorithms(path: Sequence[x509.Certificate]) -> None:
    for i, cert in enumerate(path):
        key = cert.public_key()
        ok_key = isinstance(key, ed448.Ed448PublicKey) or (
            isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1"
        )
        if not ok_key:
            raise ChainError(ChainFailure.ALGORITHM, f"{_describe(cert)}: key "
                             f"{getattr(getattr(key, 'curve', None), 'name', type(key).__name__)}"
                             " is neither secp521r1 nor Ed448", i)
        if cert.signature_algorithm_oid not in _ISO20_SIGNATURE_OIDS:
            raise ChainError(ChainFailure.ALGORITHM, f"{_describe(cert)}: signature algorithm "
                             f"{cert.signature_algorithm_oid.dotted_string}", i)


def subject_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents of `cert` (without its unused-bits byte): what
    OCSP's issuerKeyHash and OCPP's CertificateHashData cover (RFC 6960), for any key type."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)

    def read(pos: int) -> tuple[int, int, int]:  # DER tag, content start, content end
        tag, n = spki[pos], spki[pos + 1]
        pos += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(spki[pos:pos + k], "big")
            pos += k
        return tag, pos, pos + n

    _, start, _end = read(0)  # SubjectPublicKeyInfo SEQUENCE
    _, _a, alg_end = read(start)  # AlgorithmIdentifier
    tag, bits_start, bits_end = read(alg_end)
    if tag != 0x03:
        raise ValueError("not a SubjectPublicKeyInfo")
    return spki[bits_start + 1:bits_end]


def _hash(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _verify_ocsp_signature(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    try:
        if isinstance(key, ed448.Ed448PublicKey):
            key.verify(response.signature, response.tbs_response_bytes)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            algorithm = response.signature_hash_algorithm
            if algorithm is None:
                return False
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def check_ocsp(
    cert: x509.Certificate, issuer: x509.Certificate, responses: Iterable[bytes],
    now: dt.datetime, index: int | None = None, *, required: bool = False,
) -> ocsp.OCSPCertStatus | None:
    """The OCSP status of `cert` from the first response about it (None: no response)."""
    for response, single in _ocsp_answers(cert, issuer, responses):
        return _judge_ocsp(response, single, cert, issuer, now, index, required=required)
    if required:
        raise ChainError(ChainFailure.OCSP, f"no OCSP response for {_describe(cert)}", index)
    return None


def _ocsp_answers(
    cert: x509.Certificate, issuer: x509.Certificate, responses: Iterable[bytes],
) -> Iterator[tuple[ocsp.OCSPResponse, ocsp.OCSPSingleResponse]]:
    """The single responses about `cert` from `issuer`, in successful, parseable responses."""
    for der in responses:
        try:
            response = ocsp.load_der_ocsp_response(der)
        except ValueError:
            continue
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            continue
        for single in response.responses:
            if single.serial_number != cert.serial_number:
                continue
            algorithm = single.hash_algorithm
            if (single.issuer_name_hash == _hash(algorithm, issuer.subject.public_bytes())
                    and single.issuer_key_hash == _hash(algorithm, subject_key_bits(issuer))):
                yield response, single


def _judge_ocsp(
    response: ocsp.OCSPResponse, single: ocsp.OCSPSingleResponse, cert: x509.Certificate,
    issuer: x509.Certificate, now: dt.datetime, index: int | None, *, required: bool,
) -> ocsp.OCSPCertStatus:
    """The status one answer gives, once it is signed by the issuer and current."""
    if response.certificates:
        raise ChainError(ChainFailure.OCSP, f"{_describe(cert)}: delegated OCSP "
                         "responders are not supported", index)
    if not _verify_ocsp_signature(response, issuer):
        raise ChainError(ChainFailure.OCSP, f"{_describe(cert)}: OCSP response not "
                         "signed by the issuer", index)
    next_update = single.next_update_utc
    if now < single.this_update_utc or (next_update is not None and now > next_update):
        raise ChainError(ChainFailure.OCSP, f"{_describe(cert)}: OCSP response not "
                         "current", index)
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        raise ChainError(ChainFailure.REVOKED, f"{_describe(cert)} revoked "
                         f"{single.revocation_time_utc}", index)
    if status == ocsp.OCSPCertStatus.UNKNOWN and required:
        raise ChainError(ChainFailure.OCSP, f"{_describe(cert)}: OCSP status unknown",
                         index)
    return status


def build_path(
    leaf: bytes | x509.Certificate,
    sub_cas: Sequence[bytes | x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    policy: ChainPolicy = ISO20_CHAIN_POLICY,
) -> tuple[x509.Certificate, ...]:
    """Steps 1-2: parse, and the path leaf -> installed root with every signature checked.
    Time-independent, so a caller may cache it for chains it sees again."""
    if len(sub_cas) > policy.max_sub_cas:
        raise ChainError(ChainFailure.TOO_LONG, f"{len(sub_cas)} Sub-CAs, at most "
                         f"{policy.max_sub_cas}")
    leaf_cert = load_certificate(leaf, 0)
    subs = [load_certificate(c, i + 1) for i, c in enumerate(sub_cas)]
    return tuple(_build_path(leaf_cert, subs, roots))


def validate_chain(
    leaf: bytes | x509.Certificate,
    sub_cas: Sequence[bytes | x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
    *,
    policy: ChainPolicy = ISO20_CHAIN_POLICY,
    ocsp_responses: Sequence[bytes] = (),
) -> ValidatedChain:
    """Validate leaf + Sub-CAs (any order) up to one of `roots` at time `now` (UTC)."""
    path = build_path(leaf, sub_cas, roots, policy=policy)
    return check_path(path, now, policy=policy, ocsp_responses=ocsp_responses)


def check_path(
    path: Sequence[x509.Certificate],
    now: dt.datetime,
    *,
    policy: ChainPolicy = ISO20_CHAIN_POLICY,
    ocsp_responses: Sequence[bytes] = (),
) -> ValidatedChain:
    """Steps 3-6 on a path from `build_path`."""
    now = _as_utc(now)
    _check_validity(path, now)
    _check_constraints(path, policy)
    if policy.iso20_algorithms:
        _check_algorithms(path)
    if ocsp_responses or policy.require_ocsp:
        for i, cert in enumerate(path[:-1]):
            check_ocsp(cert, path[i + 1], ocsp_responses, now, i, required=policy.require_ocsp)
    return ValidatedChain(tuple(path))


# -- eMAID ----------------------------------------------------------------------------------

# ISO 15118 / eMI3 eMAID: country (2), provider (3), instance (9), optional check character,
# each part optionally separated by "-". The check character is not verified here.
EMAID_PATTERN = re.compile(r"[A-Z]{2}-?[A-Z0-9]{3}-?[A-Z0-9]{9}(-?[A-Z0-9])?", re.IGNORECASE)


def is_emaid(value: str) -> bool:
    return EMAID_PATTERN.fullmatch(value) is not None


def normalize_emaid(value: str) -> str:
    """Upper case without separators (the form backends compare)."""
    return value.replace("-", "").upper()


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise ChainError(ChainFailure.MALFORMED, f"{len(names)} CommonNames in the subject", 0)
    return str(names[0].value)


def contract_emaid(cert: x509.Certificate, *, expected: str | None = None) -> str:
    """The eMAID of a contract certificate (its subject CN), checked for form and, if given,
    equal (ignoring case and hyphens) to `expected`."""
    emaid = common_name(cert)
    if not is_emaid(emaid):
        raise ChainError(ChainFailure.EMAID, f"subject CN {emaid!r} is not an eMAID", 0)
    if expected is not None and normalize_emaid(expected) != normalize_emaid(emaid):
        raise ChainError(ChainFailure.EMAID, f"eMAID {emaid} is not the expected {expected}", 0)
    return emaid


__all__ = [
    "EMAID_PATTERN",
    "ISO20_CHAIN_POLICY",
    "ChainError",
    "ChainFailure",
    "ChainPolicy",
    "ValidatedChain",
    "build_path",
    "check_ocsp",
    "check_path",
    "common_name",
    "contract_emaid",
    "is_emaid",
    "load_certificate",
    "load_pem_certificates",
    "normalize_emaid",
    "subject_key_bits",
    "validate_chain",
]
