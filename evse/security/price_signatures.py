"""The eMSP's signature over a CSMS price schedule / sales tariff, forwarded to the EV.

OCPP 2.1 ChargingSchedule carries `digestValue` (the digest of the EXI price schedule: SHA-512
for -20, SHA-256 for -2) and `signatureId`; ChargingProfile carries `priceScheduleSignature`
(the SignatureValue). The station rebuilds the ISO 15118 header ds:Signature from them:

    SignedInfo: CanonicalizationMethod canonical-exi, SignatureMethod (-20: ecdsa-sha512 for a
      132-byte P-521 r||s, Ed448 for 114 bytes; -2: ecdsa-sha256, 64 bytes),
      one Reference URI="#<Id of the price schedule / SalesTariff>" (Transform canonical-exi,
      the DigestMethod of the SignatureMethod, DigestValue = digestValue)
    SignatureValue = priceScheduleSignature

and checks digestValue against the digest of the EXI fragment it built itself from the JSON
(`evse.protocol.csms_prices`). A mismatch means the CSMS's JSON does not encode to what the
eMSP signed (tampered, or converted differently): fail closed, the profile is refused
(`PriceSignatureError`) - forwarding it unsigned would strip the eMSP's protection, and
forwarding it signed would have the EV reject the whole schedule. The station has no eMSP
certificate to check SignatureValue with; the EV does that. `sign_schedule` is the signer's
side (the CSMS simulator's eMSP, and tests).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any

from evse.protocol.csms_prices import CsmsPrice
from evse.security import iso2_signatures
from evse.security.signatures import (
    DIGEST_FOR,
    ECDSA_SHA256,
    ECDSA_SHA512,
    ED448,
    SHA256,
    SignedElement,
    digest,
    make_signed_info,
    sign_bytes,
    signature_method_for,
    signed_info_fragment,
)
from exi_codec.schemas import iso2, iso20

__all__ = ["PriceSignatureError", "attach_signature", "price_elements", "sign_schedule"]

_METHOD_BY_SIZE = {132: ECDSA_SHA512, 114: ED448}


class PriceSignatureError(ValueError):
    """A signed price schedule the station cannot forward as signed (refuse the profile)."""


def price_elements(price: CsmsPrice) -> tuple[SignedElement | None, SignedElement | None]:
    """(-20 element, -2 element) a signature over this price would reference."""
    e20 = None
    if price.absolute is not None:
        e20 = SignedElement("AbsolutePriceSchedule", price.absolute)
    elif price.price_level is not None:
        e20 = SignedElement("PriceLevelSchedule", price.price_level)
    e2 = iso2_signatures.element("SalesTariff", price.sales_tariff) \
        if price.sales_tariff is not None else None
    return e20, e2


def _b64(value: Any, name: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise PriceSignatureError(f"{name} is not base64") from None


def attach_signature(price: CsmsPrice, schedule: dict[str, Any],
                     signature_value: str | None) -> CsmsPrice:
    """`price` with the eMSP's header Signature when the schedule is signed (digestValue and
    the profile's priceScheduleSignature); raises PriceSignatureError on a digest mismatch."""
    digest_b64 = schedule.get("digestValue")
    if digest_b64 is None or signature_value is None:
        return price  # nothing signed (a digest without a SignatureValue proves nothing)
    e20, e2 = price_elements(price)
    if e20 is not None and e2 is not None:
        raise PriceSignatureError("one digestValue for both a -20 price schedule and a "
                                  "SalesTariff")
    if e20 is None and e2 is None:
        raise PriceSignatureError("digestValue without a price schedule or sales tariff")
    given = _b64(digest_b64, "digestValue")
    value = _b64(signature_value, "priceScheduleSignature")
    sig_id = schedule.get("signatureId")
    sig_name = None if sig_id is None else f"Sig{int(sig_id)}"
    if e20 is not None:
        method = _METHOD_BY_SIZE.get(len(value))
        if method is None:
            raise PriceSignatureError(f"a -20 SignatureValue of {len(value)} bytes")
        _check_digest(e20, given, DIGEST_FOR[method])
        signed_info = make_signed_info((e20,), method)
        return dataclasses.replace(price, signature20=iso20.SignatureType(
            id=sig_name, signed_info=signed_info,
            signature_value=iso20.SignatureValueType(value=value)))
    assert e2 is not None
    if len(value) != iso2_signatures.SIGNATURE_SIZE:
        raise PriceSignatureError(f"a -2 SignatureValue of {len(value)} bytes, not 64 (P-256)")
    _check_digest(e2, given, SHA256)
    return dataclasses.replace(price, signature2=iso2.SignatureType(
        id=sig_name, signed_info=iso2_signatures.make_signed_info((e2,)),
        signature_value=iso2.SignatureValueType(value=value)))


def _check_digest(element: SignedElement, given: bytes, method: str) -> None:
    try:
        mine = digest(element.fragment(), method)
    except Exception as exc:  # the codec refuses a value: the EV could not get it either
        raise PriceSignatureError(f"{element.name} cannot be EXI-encoded: {exc}") from None
    if mine != given:
        raise PriceSignatureError(
            f"digestValue does not match the EXI encoding of {element.name} "
            f"{element.id}: tampered, or not the JSON the eMSP signed")


def sign_schedule(key: Any, price: CsmsPrice) -> tuple[str, str]:
    """The signer's side: (digestValue, priceScheduleSignature), base64, over the -20 price
    schedule (a P-521 or Ed448 key) or else the -2 SalesTariff (a P-256 key)."""
    e20, e2 = price_elements(price)
    if e20 is not None:
        method = signature_method_for(key)
        signed_info = make_signed_info((e20,), method)
        value = sign_bytes(key, signed_info_fragment(signed_info), method)
        dig = signed_info.reference[0].digest_value
    elif e2 is not None:
        signed_info = iso2_signatures.make_signed_info((e2,))
        value = sign_bytes(key, iso2_signatures.signed_info_fragment(signed_info), ECDSA_SHA256)
        dig = signed_info.reference[0].digest_value
    else:
        raise ValueError("no price schedule or sales tariff to sign")
    return base64.b64encode(dig).decode(), base64.b64encode(value).decode()

