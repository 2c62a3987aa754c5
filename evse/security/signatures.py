"""ISO 15118-20 XML signatures over EXI fragments: create and verify.

-20 signs message parts, not messages. A signed element (PnC_AReqAuthorizationMode,
OEMProvisioningCertificateChain, SignedInstallationData, SignedMeteringData) carries an `Id`
attribute; the message header carries a `ds:Signature` whose SignedInfo has one Reference per
signed element:

    Reference URI="#<Id>"
      Transforms/Transform Algorithm = http://www.w3.org/TR/canonical-exi/
      DigestMethod Algorithm        = the digest of the signature's algorithm (below)
      DigestValue                   = that digest of the EXI fragment encoding of the element

The element's bytes are its EXI *fragment* encoding with the schema-informed grammar of the
whole -20 schema set (`exi_codec.encode_fragment(name, value, "iso20", "schema")`). SignedInfo
itself (CanonicalizationMethod canonical-exi, SignatureMethod) is encoded as a fragment with
the xmldsig schema's grammar (`grammar="xmldsig"`), and SignatureValue is the signature over
those bytes:

- ECDSA on secp521r1 with SHA-512: SignatureMethod
  `http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512`, DigestMethod
  `http://www.w3.org/2001/04/xmlenc#sha512` (SHA-512); SignatureValue is the raw
  concatenation r || s, each a 66-byte big-endian integer (132 bytes), not DER;
- Ed448: the -20 identifiers SignatureMethod `urn:iso:std:iso:15118:-20:Security:xmldsig#Ed448`
  and DigestMethod `urn:iso:std:iso:15118:-20:Security:xmlenc#SHAKE256` (SHAKE256 with a
  64-byte output); SignatureValue is the 114-byte RFC 8032 (pure) Ed448 signature over the
  SignedInfo bytes.

Each signature algorithm goes with exactly one digest (`DIGEST_FOR`): an Ed448 signature with
SHA-512 references, or with the W3C/RFC 9231 EdDSA URI (`RFC9231_EDDSA_ED448`), is refused
(`WRONG_ALGORITHM`), as is ECDSA with SHAKE256 references.

Because the verifier re-encodes the decoded SignedInfo and the referenced elements, a
signature verifies only when both sides produce the same (canonical) EXI encoding; a codec
that is off by one bit fails here with `DIGEST_MISMATCH` or `BAD_SIGNATURE`.

Verification reports the first problem found as a `SignatureError` whose `failure` is one of
`Failure` (wrong algorithm URI, unknown or missing reference, digest mismatch, bad signature,
key mismatch, malformed). The -2 style URIs (ecdsa-sha256, sha256) are known so that digests
of -2 era vectors can be computed, but the default policy (`ISO20_POLICY`) rejects them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

import exi_codec
from exi_codec.schemas import iso20

CANONICAL_EXI = "http://www.w3.org/TR/canonical-exi/"
ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
# Ed448 in -20: ISO's own URNs, and a SHAKE256 digest of 64 bytes instead of SHA-512.
ED448 = "urn:iso:std:iso:15118:-20:Security:xmldsig#Ed448"  # [V2G20-2474]
SHAKE256 = "urn:iso:std:iso:15118:-20:Security:xmlenc#SHAKE256"  # [V2G20-2476]
SHAKE256_LENGTH = 64
# RFC 9231's URI for pure Ed448 (what this stack sent before): known, never accepted for -20.
RFC9231_EDDSA_ED448 = "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed448"
# ISO 15118-2 (P-256): known for digests of -2 era data, never accepted by ISO20_POLICY.
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def _shake256(data: bytes) -> bytes:
    return hashlib.shake_256(data).digest(SHAKE256_LENGTH)


def _sha512(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    SHA512: _sha512, SHAKE256: _shake256, SHA256: _sha256,
}
# The one DigestMethod each SignatureMethod goes with.
DIGEST_FOR: Mapping[str, str] = {ECDSA_SHA512: SHA512, ED448: SHAKE256, ECDSA_SHA256: SHA256}
_ECDSA_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    ECDSA_SHA512: hashes.SHA512,
    ECDSA_SHA256: hashes.SHA256,
}

PublicKey = ec.EllipticCurvePublicKey | ed448.Ed448PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey


class Failure(StrEnum):
    MALFORMED = "malformed"  # no SignedInfo/SignatureValue, duplicate Ids, unencodable element
    WRONG_ALGORITHM = "wrong_algorithm"  # a canonicalization/transform/digest/signature URI
    UNKNOWN_REFERENCE = "unknown_reference"  # a Reference URI names no element we were given
    MISSING_REFERENCE = "missing_reference"  # an element that must be signed is not referenced
    DIGEST_MISMATCH = "digest_mismatch"  # DigestValue != digest of our encoding of the element
    BAD_SIGNATURE = "bad_signature"  # SignatureValue does not verify over SignedInfo
    KEY_MISMATCH = "key_mismatch"  # SignatureMethod does not fit the signer's key / curve


class SignatureError(ValueError):
    """Verification failed; `failure` says why, `detail` says where."""

    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(f"{failure}: {detail}")
        self.failure = failure
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """What a verifier accepts. ISO20_POLICY: ECDSA P-521 with SHA-512 digests, or Ed448 with
    SHAKE256 digests (every Reference must use the digest of the SignatureMethod)."""

    signature_methods: frozenset[str] = frozenset({ECDSA_SHA512, ED448})
    digest_methods: frozenset[str] = frozenset({SHA512, SHAKE256})
    ecdsa_curves: frozenset[str] = frozenset({"secp521r1"})
    canonicalization: str = CANONICAL_EXI
    max_references: int = 4


ISO20_POLICY = SignaturePolicy()
# For -2 era data (P-256, SHA-256), e.g. the public interop vectors. Not for -20 sessions.
LEGACY_ISO2_POLICY = SignaturePolicy(
    signature_methods=frozenset({ECDSA_SHA256}),
    digest_methods=frozenset({SHA256}),
    ecdsa_curves=frozenset({"secp256r1"}),
)


@dataclass(frozen=True, slots=True)
class SignedElement:
    """An element referenced by a signature: its XSD element name and its value (with `.id`)."""

    name: str
    value: Any
    schema: str = "iso20"
    _cache: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> str:
        return str(self.value.id)

    def fragment(self) -> bytes:
        data = self._cache.get("f")
        if data is None:
            data = fragment(self.name, self.value, self.schema)
            self._cache["f"] = data
        return data


def fragment(name: str, value: Any, schema: str = "iso20") -> bytes:
    """The EXI fragment encoding of a signed element (schema-informed fragment grammar)."""
    return exi_codec.encode_fragment(name, value, schema, "schema")


def signed_info_fragment(signed_info: Any, schema: str = "iso20") -> bytes:
    """The bytes SignatureValue signs: SignedInfo as an xmldsig-grammar EXI fragment."""
    return exi_codec.encode_fragment("SignedInfo", signed_info, schema, "xmldsig")


def digest(data: bytes, method: str = SHA512) -> bytes:
    try:
        return DIGESTS[method](data)
    except KeyError:
        raise SignatureError(Failure.WRONG_ALGORITHM, f"unknown DigestMethod {method}") from None


def signature_method_for(key: PrivateKey | PublicKey) -> str:
    """The -20 SignatureMethod URI for a key (ECDSA P-521 -> ecdsa-sha512, Ed448 -> Ed448)."""
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return ED448
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ECDSA_SHA512 if key.curve.name == "secp521r1" else ECDSA_SHA256
    raise TypeError(f"no -20 signature method for {type(key).__name__}")


def _coordinate_size(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> int:
    return (key.curve.key_size + 7) // 8


def sign_bytes(key: PrivateKey, data: bytes, method: str | None = None) -> bytes:
    """Sign `data`: ECDSA as raw r || s (fixed size), Ed448 as its 114-byte signature."""
    method = method or signature_method_for(key)
    if isinstance(key, ed448.Ed448PrivateKey):
        if method != ED448:
            raise ValueError(f"an Ed448 key cannot sign with {method}")
        return key.sign(data)
    if method not in _ECDSA_HASHES:
        raise ValueError(f"an ECDSA key cannot sign with {method}")
    der = key.sign(data, ec.ECDSA(_ECDSA_HASHES[method]()))
    r, s = decode_dss_signature(der)
    n = _coordinate_size(key)
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def verify_bytes(
    public_key: Any, method: str, signature: bytes, data: bytes,
    policy: SignaturePolicy = ISO20_POLICY,
) -> None:
    """Check a raw signature; raises SignatureError (KEY_MISMATCH or BAD_SIGNATURE)."""
    if isinstance(public_key, ed448.Ed448PublicKey):
        if method != ED448:
            raise SignatureError(Failure.KEY_MISMATCH, f"Ed448 key, SignatureMethod {method}")
        if len(signature) != 114:
            raise SignatureError(Failure.BAD_SIGNATURE,
                                 f"Ed448 signature of {len(signature)} bytes, not 114")
        try:
            public_key.verify(signature, data)
        except InvalidSignature:
            raise SignatureError(Failure.BAD_SIGNATURE, "Ed448 signature invalid") from None
        return
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise SignatureError(Failure.KEY_MISMATCH,
                             f"signer key {type(public_key).__name__} is not ECDSA or Ed448")
    if method not in _ECDSA_HASHES:
        raise SignatureError(Failure.KEY_MISMATCH, f"ECDSA key, SignatureMethod {method}")
    curve = public_key.curve.name
    if curve not in policy.ecdsa_curves:
        raise SignatureError(Failure.KEY_MISMATCH, f"ECDSA key on {curve}, "
                             f"allowed: {', '.join(sorted(policy.ecdsa_curves))}")
    n = _coordinate_size(public_key)
    if len(signature) != 2 * n:
        raise SignatureError(Failure.BAD_SIGNATURE,
                             f"ECDSA signature of {len(signature)} bytes, not r || s = {2 * n}")
    der = encode_dss_signature(int.from_bytes(signature[:n], "big"),
                               int.from_bytes(signature[n:], "big"))
    try:
        public_key.verify(der, data, ec.ECDSA(_ECDSA_HASHES[method]()))
    except InvalidSignature:
        raise SignatureError(Failure.BAD_SIGNATURE, "ECDSA signature invalid") from None


def reference(element: SignedElement, digest_method: str = SHA512) -> Any:
    """The -20 Reference for one element."""
    return iso20.ReferenceType(
        uri=f"#{element.id}",
        transforms=iso20.TransformsType(transform=(iso20.TransformType(algorithm=CANONICAL_EXI),)),
        digest_method=iso20.DigestMethodType(algorithm=digest_method),
        digest_value=digest(element.fragment(), digest_method),
    )


def make_signed_info(
    elements: Iterable[SignedElement], signature_method: str, digest_method: str | None = None
) -> Any:
    """SignedInfo; the digest defaults to the one that goes with `signature_method`."""
    digest_method = digest_method or DIGEST_FOR.get(signature_method, SHA512)
    return iso20.SignedInfoType(
        canonicalization_method=iso20.CanonicalizationMethodType(algorithm=CANONICAL_EXI),
        signature_method=iso20.SignatureMethodType(algorithm=signature_method),
        reference=tuple(reference(e, digest_method) for e in elements),
    )


def sign(
    key: PrivateKey, *elements: SignedElement, digest_method: str | None = None,
    signature_method: str | None = None,
) -> Any:
    """A ds:Signature (for a message header) over `elements`, signed with `key`: by default
    the -20 algorithm of the key and its digest (ECDSA P-521 + SHA-512, Ed448 + SHAKE256)."""
    if not elements:
        raise ValueError("nothing to sign")
    method = signature_method or signature_method_for(key)
    signed_info = make_signed_info(elements, method, digest_method)
    schema = elements[0].schema
    value = sign_bytes(key, signed_info_fragment(signed_info, schema), method)
    return iso20.SignatureType(
        signed_info=signed_info, signature_value=iso20.SignatureValueType(value=value)
    )


def _algorithm(node: Any) -> str | None:
    return None if node is None else node.algorithm


def verify_references(
    signed_info: Any,
    elements: Sequence[SignedElement],
    *,
    required: Iterable[str] | None = None,
    policy: SignaturePolicy = ISO20_POLICY,
) -> None:
    """Check SignedInfo's algorithms and each Reference's digest against `elements`.

    `required`: Ids that must be referenced (default: every element given).
    """
    method = _check_algorithms(signed_info, policy)
    by_id: dict[str, SignedElement] = {}
    for element in elements:
        if element.id in by_id:
            raise SignatureError(Failure.MALFORMED, f"two signed elements with Id {element.id}")
        by_id[element.id] = element
    refs = signed_info.reference
    if not refs or len(refs) > policy.max_references:
        raise SignatureError(Failure.MALFORMED, f"{len(refs)} References")
    seen: set[str] = set()
    for ref in refs:
        uri = ref.uri or ""
        if not uri.startswith("#") or uri[1:] not in by_id:
            raise SignatureError(Failure.UNKNOWN_REFERENCE, f"Reference URI {uri!r}")
        if uri[1:] in seen:
            raise SignatureError(Failure.MALFORMED, f"{uri} referenced twice")
        seen.add(uri[1:])
        _check_reference(ref, uri, by_id[uri[1:]], method, policy)
    missing = set(by_id if required is None else required) - seen
    if missing:
        raise SignatureError(Failure.MISSING_REFERENCE, f"not signed: {sorted(missing)}")


def _check_algorithms(signed_info: Any, policy: SignaturePolicy) -> str:
    """SignedInfo's canonicalization and signature method; returns the signature method."""
    if signed_info is None:
        raise SignatureError(Failure.MALFORMED, "Signature without SignedInfo")
    c14n = _algorithm(signed_info.canonicalization_method)
    if c14n != policy.canonicalization:
        raise SignatureError(Failure.WRONG_ALGORITHM, f"CanonicalizationMethod {c14n}")
    method = _algorithm(signed_info.signature_method)
    if method not in policy.signature_methods:
        raise SignatureError(Failure.WRONG_ALGORITHM, f"SignatureMethod {method}")
    return method


def _check_reference(ref: Any, uri: str, element: SignedElement, method: str,
                     policy: SignaturePolicy) -> None:
    """One Reference: the EXI transform, a digest method that fits the signature method, and
    the digest of the element's fragment."""
    transforms: tuple[Any, ...] = (
        tuple(ref.transforms.transform) if ref.transforms is not None else ()
    )
    if len(transforms) != 1 or transforms[0].algorithm != CANONICAL_EXI:
        names = [t.algorithm for t in transforms]
        raise SignatureError(Failure.WRONG_ALGORITHM, f"{uri}: Transforms {names}")
    digest_method = _algorithm(ref.digest_method)
    if digest_method not in policy.digest_methods or (
        method in DIGEST_FOR and digest_method != DIGEST_FOR[method]
    ):
        raise SignatureError(Failure.WRONG_ALGORITHM,
                             f"{uri}: DigestMethod {digest_method} with {method}")
    try:
        data = element.fragment()
    except exi_codec.ExiError as exc:
        raise SignatureError(Failure.MALFORMED, f"{uri}: cannot encode {element.name}: "
                             f"{exc}") from None
    if not hmac.compare_digest(digest(data, digest_method), bytes(ref.digest_value or b"")):
        raise SignatureError(Failure.DIGEST_MISMATCH, f"{uri} ({element.name})")


def verify(
    signature: Any,
    elements: Sequence[SignedElement],
    public_key: Any,
    *,
    required: Iterable[str] | None = None,
    policy: SignaturePolicy = ISO20_POLICY,
) -> None:
    """Verify a header ds:Signature over `elements` with the signer's public key.

    Returns None when valid, raises SignatureError otherwise (reference checks first, then the
    SignatureValue over our xmldsig fragment encoding of SignedInfo).
    """
    if signature is None:
        raise SignatureError(Failure.MALFORMED, "no Signature in the message header")
    signed_info = signature.signed_info
    verify_references(signed_info, elements, required=required, policy=policy)
    value = signature.signature_value.value if signature.signature_value is not None else None
    if not value:
        raise SignatureError(Failure.MALFORMED, "Signature without SignatureValue")
    schema = elements[0].schema if elements else "iso20"
    try:
        data = signed_info_fragment(signed_info, schema)
    except exi_codec.ExiError as exc:
        raise SignatureError(Failure.MALFORMED, f"cannot encode SignedInfo: {exc}") from None
    verify_bytes(public_key, signed_info.signature_method.algorithm, bytes(value), data, policy)


__all__ = [
    "CANONICAL_EXI",
    "DIGESTS",
    "DIGEST_FOR",
    "ECDSA_SHA256",
    "ECDSA_SHA512",
    "ED448",
    "ISO20_POLICY",
    "LEGACY_ISO2_POLICY",
    "RFC9231_EDDSA_ED448",
    "SHA256",
    "SHA512",
    "SHAKE256",
    "SHAKE256_LENGTH",
    "Failure",
    "SignatureError",
    "SignaturePolicy",
    "SignedElement",
    "digest",
    "fragment",
    "make_signed_info",
    "reference",
    "sign",
    "sign_bytes",
    "signature_method_for",
    "signed_info_fragment",
    "verify",
    "verify_bytes",
    "verify_references",
]
