"""ISO 15118-2 XML signatures over EXI fragments: ECDSA P-256 with SHA-256.

-2 signs message parts like -20 does (see `evse.security.signatures`), with its own
algorithms and grammar:

    SignedInfo
      CanonicalizationMethod  http://www.w3.org/TR/canonical-exi/
      SignatureMethod         http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256
      Reference URI="#<Id>"   (one per signed element)
        Transform             http://www.w3.org/TR/canonical-exi/
        DigestMethod          http://www.w3.org/2001/04/xmlenc#sha256
        DigestValue           SHA-256 of the element's EXI fragment encoding
    SignatureValue            ECDSA over SignedInfo's fragment encoding: raw r || s, 64 bytes

Both the referenced elements (AuthorizationReq, MeteringReceiptReq, ContractSignatureCertChain,
ContractSignatureEncryptedPrivateKey, DHpublickey) and SignedInfo are encoded as fragments with
the schema-informed fragment grammar of the whole -2 schema set
(`exi_codec.encode_fragment(name, value, "iso2", "schema")`), unlike -20 where SignedInfo uses
the xmldsig schema alone.

Verification raises `SignatureError` (`evse.security.signatures`) with the first failure;
`ISO2_POLICY` accepts only the -2 algorithms on secp256r1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import exi_codec
from evse.security.signatures import (
    CANONICAL_EXI,
    ECDSA_SHA256,
    LEGACY_ISO2_POLICY,
    SHA256,
    Failure,
    SignatureError,
    SignaturePolicy,
    SignedElement,
    digest,
    sign_bytes,
    verify_bytes,
    verify_references,
)
from exi_codec.schemas import iso2

ISO2_POLICY: SignaturePolicy = LEGACY_ISO2_POLICY
SIGNATURE_SIZE = 64  # r || s, 32 bytes each (P-256)


def element(name: str, value: Any) -> SignedElement:
    """A -2 element to sign or verify (its value carries the `id` the Reference names)."""
    return SignedElement(name, value, schema="iso2")


def signed_info_fragment(signed_info: Any) -> bytes:
    """The bytes SignatureValue signs: SignedInfo as a -2 schema fragment."""
    return exi_codec.encode_fragment("SignedInfo", signed_info, "iso2", "schema")


def reference(signed: SignedElement) -> iso2.ReferenceType:
    return iso2.ReferenceType(
        uri=f"#{signed.id}",
        transforms=iso2.TransformsType(transform=(iso2.TransformType(algorithm=CANONICAL_EXI),)),
        digest_method=iso2.DigestMethodType(algorithm=SHA256),
        digest_value=digest(signed.fragment(), SHA256),
    )


def make_signed_info(elements: Iterable[SignedElement]) -> iso2.SignedInfoType:
    return iso2.SignedInfoType(
        canonicalization_method=iso2.CanonicalizationMethodType(algorithm=CANONICAL_EXI),
        signature_method=iso2.SignatureMethodType(algorithm=ECDSA_SHA256),
        reference=tuple(reference(e) for e in elements),
    )


def sign(key: Any, *elements: SignedElement) -> iso2.SignatureType:
    """A ds:Signature for the -2 message header over `elements`, by a P-256 key."""
    if not elements:
        raise ValueError("nothing to sign")
    if getattr(getattr(key, "curve", None), "name", None) != "secp256r1":
        raise ValueError("-2 signs with ECDSA on secp256r1 only")
    signed_info = make_signed_info(elements)
    value = sign_bytes(key, signed_info_fragment(signed_info), ECDSA_SHA256)
    return iso2.SignatureType(
        signed_info=signed_info, signature_value=iso2.SignatureValueType(value=value))


def verify(
    signature: Any,
    elements: Sequence[SignedElement],
    public_key: Any,
    *,
    required: Iterable[str] | None = None,
) -> None:
    """Verify a -2 header Signature over `elements` with the signer's public key; raises
    SignatureError (wrong algorithm, digest mismatch, bad signature, ...)."""
    if signature is None:
        raise SignatureError(Failure.MALFORMED, "no Signature in the message header")
    signed_info = signature.signed_info
    verify_references(signed_info, elements, required=required, policy=ISO2_POLICY)
    value = signature.signature_value.value if signature.signature_value is not None else None
    if not value:
        raise SignatureError(Failure.MALFORMED, "Signature without SignatureValue")
    try:
        data = signed_info_fragment(signed_info)
    except exi_codec.ExiError as exc:
        raise SignatureError(Failure.MALFORMED, f"cannot encode SignedInfo: {exc}") from None
    verify_bytes(public_key, signed_info.signature_method.algorithm, bytes(value), data,
                 ISO2_POLICY)


__all__ = [
    "ISO2_POLICY",
    "SIGNATURE_SIZE",
    "element",
    "make_signed_info",
    "reference",
    "sign",
    "signed_info_fragment",
    "verify",
]
