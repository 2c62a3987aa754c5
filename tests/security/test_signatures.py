"""-20 XML signatures over EXI fragments: both algorithms, every failure reason, and the public
interop vectors (SignedInfo + PnC_AReqAuthorizationMode of one logged PnC session)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import exi_codec
from certs.pnc_pki import PncPki
from evse.security.signatures import (
    CANONICAL_EXI,
    DIGEST_FOR,
    ECDSA_SHA256,
    ECDSA_SHA512,
    ED448,
    ISO20_POLICY,
    LEGACY_ISO2_POLICY,
    RFC9231_EDDSA_ED448,
    SHA256,
    SHA512,
    SHAKE256,
    Failure,
    SignatureError,
    SignedElement,
    digest,
    fragment,
    sign,
    sign_bytes,
    signature_method_for,
    signed_info_fragment,
    verify,
    verify_bytes,
    verify_references,
)
from exi_codec.schemas import iso20
from tests.security.helpers import pki_for, pnc_mode

CHALLENGE = bytes(range(16))


def element(pki: PncPki, id_: str = "id1") -> SignedElement:
    return SignedElement("PnC_AReqAuthorizationMode", pnc_mode(pki.contract, CHALLENGE, id_))


def public(pki: PncPki) -> Any:
    return pki.contract.leaf.cert.public_key()


def failure(signature: Any, elements: list[SignedElement], key: Any, **kw: Any) -> Failure:
    with pytest.raises(SignatureError) as info:
        verify(signature, elements, key, **kw)
    return info.value.failure


def resign(pki: PncPki, signed_info: Any) -> Any:
    """A Signature with a (modified) SignedInfo, validly signed over its encoding with the
    key's own algorithm (whatever SignatureMethod claims)."""
    value = sign_bytes(pki.contract.key, signed_info_fragment(signed_info))
    return iso20.SignatureType(signed_info=signed_info,
                               signature_value=iso20.SignatureValueType(value=value))


# -- creating and verifying ------------------------------------------------------------------


def test_sign_and_verify(pki: PncPki) -> None:
    el = element(pki)
    signature = sign(pki.contract.key, el)
    si = signature.signed_info
    ecdsa = pki.algorithm == "secp521r1"
    assert si.canonicalization_method.algorithm == CANONICAL_EXI
    assert si.signature_method.algorithm == (ECDSA_SHA512 if ecdsa else ED448)
    (ref,) = si.reference
    assert ref.uri == "#id1"
    assert [t.algorithm for t in ref.transforms.transform] == [CANONICAL_EXI]
    if ecdsa:
        assert ref.digest_method.algorithm == "http://www.w3.org/2001/04/xmlenc#sha512"
        assert ref.digest_value == hashlib.sha512(el.fragment()).digest()
    else:  # -20's own identifiers for Ed448, and a 64-byte SHAKE256 digest
        assert si.signature_method.algorithm == "urn:iso:std:iso:15118:-20:Security:xmldsig#Ed448"
        assert ref.digest_method.algorithm == "urn:iso:std:iso:15118:-20:Security:xmlenc#SHAKE256"
        assert ref.digest_value == hashlib.shake_256(el.fragment()).digest(64)
    assert len(signature.signature_value.value) == (132 if ecdsa else 114)
    verify(signature, [el], public(pki))


def test_ecdsa_signature_is_raw_r_s_over_the_signed_info_fragment() -> None:
    pki = pki_for("secp521r1")
    signature = sign(pki.contract.key, element(pki))
    raw = signature.signature_value.value
    r, s = int.from_bytes(raw[:66], "big"), int.from_bytes(raw[66:], "big")
    # Independent check with cryptography: DER-wrap r, s and verify over the SignedInfo bytes.
    public(pki).verify(encode_dss_signature(r, s), signed_info_fragment(signature.signed_info),
                       ec.ECDSA(hashes.SHA512()))


def test_ed448_signature_is_plain_ed448_over_the_signed_info_fragment() -> None:
    pki = pki_for("ed448")
    signature = sign(pki.contract.key, element(pki))
    key = public(pki)
    assert isinstance(key, ed448.Ed448PublicKey)
    key.verify(signature.signature_value.value, signed_info_fragment(signature.signed_info))


def test_signature_survives_the_wire(pki: PncPki) -> None:
    """Signed, put in an AuthorizationReq header, EXI-encoded, decoded, verified."""
    el = element(pki)
    req = iso20.AuthorizationReq(
        header=iso20.MessageHeaderType(session_id=bytes(8), time_stamp=1,
                                       signature=sign(pki.contract.key, el)),
        selected_authorization_service="PnC",
        pnc_a_req_authorization_mode=el.value,
    )
    got = exi_codec.decode(exi_codec.encode(req), "iso20")
    verify(got.header.signature,
           [SignedElement("PnC_AReqAuthorizationMode", got.pnc_a_req_authorization_mode)],
           public(pki))


def test_several_references(pki: PncPki) -> None:
    a, b = element(pki, "a1"), element(pki, "b2")
    signature = sign(pki.contract.key, a, b)
    assert [r.uri for r in signature.signed_info.reference] == ["#a1", "#b2"]
    verify(signature, [a, b], public(pki))
    assert failure(signature, [a], public(pki)) == Failure.UNKNOWN_REFERENCE


def test_signature_method_for_keys(pki: PncPki) -> None:
    expected = ECDSA_SHA512 if pki.algorithm == "secp521r1" else ED448
    assert signature_method_for(pki.contract.key) == expected
    assert signature_method_for(ec.generate_private_key(ec.SECP256R1())) == ECDSA_SHA256


# -- tampering ---------------------------------------------------------------------------------


def test_tampered_element_is_a_digest_mismatch(pki: PncPki) -> None:
    el = element(pki)
    signature = sign(pki.contract.key, el)
    other = SignedElement(el.name, el.value.replace(gen_challenge=bytes(16)))
    assert failure(signature, [other], public(pki)) == Failure.DIGEST_MISMATCH


def test_tampered_signature_value(pki: PncPki) -> None:
    el = element(pki)
    signature = sign(pki.contract.key, el)
    value = bytearray(signature.signature_value.value)
    value[10] ^= 0x01
    bad = signature.replace(signature_value=iso20.SignatureValueType(value=bytes(value)))
    assert failure(bad, [el], public(pki)) == Failure.BAD_SIGNATURE


def test_tampered_digest_value(pki: PncPki) -> None:
    el = element(pki)
    signature = sign(pki.contract.key, el)
    ref = signature.signed_info.reference[0]
    bad_ref = ref.replace(digest_value=bytes(64))
    bad = signature.replace(signed_info=signature.signed_info.replace(reference=(bad_ref,)))
    assert failure(bad, [el], public(pki)) == Failure.DIGEST_MISMATCH


def test_signed_info_changed_after_signing(pki: PncPki) -> None:
    """Digests still match (both the element and DigestValue changed), SignedInfo did not."""
    el = element(pki)
    signature = sign(pki.contract.key, el)
    other = SignedElement(el.name, el.value.replace(gen_challenge=bytes(16)))
    ref = signature.signed_info.reference[0]
    ref = ref.replace(digest_value=digest(other.fragment(), ref.digest_method.algorithm))
    bad = signature.replace(signed_info=signature.signed_info.replace(reference=(ref,)))
    assert failure(bad, [other], public(pki)) == Failure.BAD_SIGNATURE


def test_signature_of_another_key(pki: PncPki) -> None:
    el = element(pki)
    other = pki.variants["contract_unknown_root"].key
    assert failure(sign(other, el), [el], public(pki)) == Failure.BAD_SIGNATURE


@pytest.mark.parametrize("size", [0, 131, 133, 113, 115])
def test_wrong_signature_length(pki: PncPki, size: int) -> None:
    el = element(pki)
    signature = sign(pki.contract.key, el).replace(
        signature_value=iso20.SignatureValueType(value=bytes(size)))
    expected = Failure.MALFORMED if size == 0 else Failure.BAD_SIGNATURE
    assert failure(signature, [el], public(pki)) == expected


def test_missing_signature_parts(pki: PncPki) -> None:
    el = element(pki)
    assert failure(None, [el], public(pki)) == Failure.MALFORMED
    signature = sign(pki.contract.key, el)
    assert failure(signature.replace(signed_info=None), [el], public(pki)) == Failure.MALFORMED


# -- algorithm URIs and references -----------------------------------------------------------


@pytest.mark.parametrize("part", ["signature", "digest", "canonicalization", "transform",
                                  "no_transform", "two_transforms"])
def test_wrong_algorithm_uri(pki: PncPki, part: str) -> None:
    el = element(pki)
    si = sign(pki.contract.key, el).signed_info
    ref = si.reference[0]
    if part == "signature":
        si = si.replace(signature_method=iso20.SignatureMethodType(algorithm=ECDSA_SHA256))
    elif part == "digest":
        ref = ref.replace(digest_method=iso20.DigestMethodType(algorithm=SHA256),
                          digest_value=hashlib.sha256(el.fragment()).digest())
    elif part == "canonicalization":
        si = si.replace(canonicalization_method=iso20.CanonicalizationMethodType(
            algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"))
    elif part == "transform":
        ref = ref.replace(transforms=iso20.TransformsType(transform=(
            iso20.TransformType(algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"),)))
    elif part == "no_transform":
        ref = ref.replace(transforms=None)
    else:
        t = iso20.TransformType(algorithm=CANONICAL_EXI)
        ref = ref.replace(transforms=iso20.TransformsType(transform=(t, t)))
    signature = resign(pki, si.replace(reference=(ref,)))
    assert failure(signature, [el], public(pki)) == Failure.WRONG_ALGORITHM


def test_signature_method_that_does_not_fit_the_key(pki: PncPki) -> None:
    el = element(pki)
    other = ED448 if pki.algorithm == "secp521r1" else ECDSA_SHA512
    # The other algorithm's digest too: the references are right, only the key does not fit.
    si = _with_digest(sign(pki.contract.key, el).signed_info, el, DIGEST_FOR[other])
    bad = iso20.SignatureType(
        signed_info=si.replace(signature_method=iso20.SignatureMethodType(algorithm=other)),
        signature_value=iso20.SignatureValueType(value=bytes(132 if other == ECDSA_SHA512
                                                             else 114)))
    assert failure(bad, [el], public(pki)) == Failure.KEY_MISMATCH


def test_p256_key_is_refused_by_the_iso20_policy() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = b"signed info"
    raw = sign_bytes(key, data, ECDSA_SHA256)
    assert len(raw) == 64
    verify_bytes(key.public_key(), ECDSA_SHA256, raw, data, LEGACY_ISO2_POLICY)
    with pytest.raises(SignatureError) as info:
        verify_bytes(key.public_key(), ECDSA_SHA512, sign_bytes(key, data, ECDSA_SHA512), data)
    assert info.value.failure == Failure.KEY_MISMATCH


def test_unknown_and_missing_references(pki: PncPki) -> None:
    el = element(pki)
    signature = sign(pki.contract.key, el)
    ref = signature.signed_info.reference[0].replace(uri="#nope")
    bad = resign(pki, signature.signed_info.replace(reference=(ref,)))
    assert failure(bad, [el], public(pki)) == Failure.UNKNOWN_REFERENCE
    external = resign(pki, signature.signed_info.replace(
        reference=(ref.replace(uri="http://example.com/x"),)))
    assert failure(external, [el], public(pki)) == Failure.UNKNOWN_REFERENCE
    # Signed, but not the element the verifier requires.
    other = element(pki, "id2")
    assert failure(sign(pki.contract.key, other), [el, other], public(pki),
                   required=["id1"]) == Failure.MISSING_REFERENCE
    twice = (signature.signed_info.reference[0],) * 2
    dup = resign(pki, signature.signed_info.replace(reference=twice))
    assert failure(dup, [el], public(pki)) == Failure.MALFORMED
    assert failure(signature, [el, el], public(pki)) == Failure.MALFORMED


def _with_digest(signed_info: Any, el: SignedElement, method: str) -> Any:
    ref = signed_info.reference[0].replace(
        digest_method=iso20.DigestMethodType(algorithm=method),
        digest_value=digest(el.fragment(), method))
    return signed_info.replace(reference=(ref,))


@pytest.mark.parametrize("case", ["sha512_digest", "rfc9231_uri", "rfc9231_uri_and_sha512"])
def test_ed448_with_other_identifiers_is_refused(case: str) -> None:
    """What this stack sent before (RFC 9231 EdDSA URI, SHA-512 references) and any mix of
    it with the -20 identifiers: refused, although the digests and the signature are right."""
    pki = pki_for("ed448")
    el = element(pki)
    si = sign(pki.contract.key, el).signed_info
    if case != "rfc9231_uri":
        si = _with_digest(si, el, SHA512)
    if case != "sha512_digest":
        si = si.replace(signature_method=iso20.SignatureMethodType(algorithm=RFC9231_EDDSA_ED448))
    signature = resign(pki, si)
    assert failure(signature, [el], public(pki)) == Failure.WRONG_ALGORITHM


def test_ecdsa_with_a_shake256_digest_is_refused() -> None:
    pki = pki_for("secp521r1")
    el = element(pki)
    si = _with_digest(sign(pki.contract.key, el).signed_info, el, SHAKE256)
    assert failure(resign(pki, si), [el], public(pki)) == Failure.WRONG_ALGORITHM


def test_shake256_digest_is_64_bytes() -> None:
    assert digest(b"x", SHAKE256) == hashlib.shake_256(b"x").digest(64)
    assert len(digest(b"", SHAKE256)) == 64


def test_policy_is_iso20_by_default() -> None:
    assert ISO20_POLICY.signature_methods == {ECDSA_SHA512, ED448}
    assert ISO20_POLICY.digest_methods == {SHA512, SHAKE256}
    with pytest.raises(SignatureError):
        digest(b"x", "http://www.w3.org/2000/09/xmldsig#sha1")


# -- the public interop vectors ----------------------------------------------------------------


def _run(v: dict[str, Any]) -> str:
    return str(v["source"]).split("#")[0]


@pytest.fixture
def pair(vectors: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    return vectors["iso20-SignedInfo-001"], vectors["iso20-PnC_AReqAuthorizationMode-001"]


def test_vectors_come_from_the_same_pnc_session(pair: Any) -> None:
    si, mode = pair
    assert si["exi_fragment"] and mode["exi_fragment"]
    assert _run(si) == _run(mode)  # one frames.log of one interop run
    assert "pnc" in _run(si)


def test_signed_info_digest_is_sha256_of_our_fragment_encoding(pair: Any) -> None:
    """The -2 style run (P-256, SHA-256) digested exactly the bytes our codec produces."""
    si_vec, mode_vec = pair
    raw = bytes.fromhex(mode_vec["hex"])
    expected = base64.b64decode(si_vec["decoded"]["SignedInfo"]["Reference"][0]["DigestValue"])
    assert hashlib.sha256(raw).digest() == expected == digest(raw, SHA256)
    name, value = exi_codec.decode_fragment(raw, "iso20", grammar="schema")
    assert name == "PnC_AReqAuthorizationMode" and value.id == "id1"
    encoded = fragment(name, value)
    assert encoded == raw  # re-encoding the decoded fragment: identical bytes, same digest
    _, signed_info = exi_codec.decode_fragment(bytes.fromhex(si_vec["hex"]), "iso20",
                                               grammar="xmldsig")
    assert signed_info.signature_method.algorithm == ECDSA_SHA256
    assert signed_info.reference[0].digest_method.algorithm == SHA256
    # Our reference check accepts it under the -2 policy, and the -20 policy refuses SHA-256.
    verify_references(signed_info, [SignedElement(name, value)], policy=LEGACY_ISO2_POLICY)
    with pytest.raises(SignatureError) as info:
        verify_references(signed_info, [SignedElement(name, value)])
    assert info.value.failure == Failure.WRONG_ALGORITHM


def test_one_bit_changes_the_digest(pair: Any) -> None:
    _si, mode_vec = pair
    raw = bytes.fromhex(mode_vec["hex"])
    reference = hashlib.sha256(raw).digest()
    for bit in (0, 7, 8 * 20 + 3, 8 * len(raw) // 2, 8 * len(raw) - 9):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
        assert hashlib.sha256(bytes(flipped)).digest() != reference
        try:
            name, value = exi_codec.decode_fragment(bytes(flipped), "iso20", grammar="schema")
        except exi_codec.ExiError:
            continue  # not even decodable
        # Decodable but different: its canonical encoding no longer has the signed digest.
        assert hashlib.sha256(fragment(name, value)).digest() != reference


def test_signature_verifies_only_when_our_signed_info_encoding_matches(pair: Any) -> None:
    """Sign the vector's SignedInfo bytes as a -2 EV would (P-256): our verifier re-encodes the
    decoded SignedInfo, so the signature verifies; signed over a one-bit-different encoding,
    it does not."""
    si_vec, mode_vec = pair
    si_raw = bytes.fromhex(si_vec["hex"])
    _, signed_info = exi_codec.decode_fragment(si_raw, "iso20", grammar="xmldsig")
    assert signed_info_fragment(signed_info) == si_raw
    name, value = exi_codec.decode_fragment(bytes.fromhex(mode_vec["hex"]), "iso20")
    elements = [SignedElement(name, value)]
    key = ec.generate_private_key(ec.SECP256R1())

    def signature_over(data: bytes) -> Any:
        value = iso20.SignatureValueType(value=sign_bytes(key, data, ECDSA_SHA256))
        return iso20.SignatureType(signed_info=signed_info, signature_value=value)

    verify(signature_over(si_raw), elements, key.public_key(), policy=LEGACY_ISO2_POLICY)
    flipped = bytearray(si_raw)
    flipped[len(flipped) // 2] ^= 0x01
    with pytest.raises(SignatureError) as info:
        verify(signature_over(bytes(flipped)), elements, key.public_key(),
               policy=LEGACY_ISO2_POLICY)
    assert info.value.failure == Failure.BAD_SIGNATURE


def test_fragment_encoding_is_deterministic(pki: PncPki) -> None:
    el = element(pki)
    again = SignedElement(el.name, exi_codec.decode_fragment(el.fragment(), "iso20")[1])
    assert again.fragment() == el.fragment()
    assert again.value == el.value
