"""Authorization through the CSMS (OCPP 2.0.1/2.1 C01, C07): the Authorize request for what the
EV presented, the decision from the answer, and the local authorization cache that decides
while the CSMS cannot be asked.

- EIM: the EV's EVCCID as idToken type `MacAddress` (the EV identifies itself by its MAC, as
  with Autocharge); an id token read elsewhere (RFID) can be given instead;
- PnC: the contract's eMAID as idToken type `eMAID`, with `iso15118CertificateHashData` (one
  OCSP request-data entry per certificate of the contract chain below its root) so the CSMS can
  answer with the contract's OCSP status; a `certificateStatus` other than Accepted denies.
- Offline: an EIM token the cache holds as Accepted (and not expired) is granted; PnC falls
  back to the station's own MO-root check, which the SECC has already passed before it asks
  (`pnc_offline = True`), or is denied.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID

from evse.security.chains import subject_key_bits

__all__ = ["AuthCache", "authorize_payload", "certificate_hash_data", "decision_of"]


def _sha256(data: bytes) -> str:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize().hex()


def certificate_hash_data(chain: tuple[bytes, ...]) -> list[dict[str, Any]]:
    """OCSPRequestDataType for each certificate of a DER chain (leaf first) whose issuer is
    the next one: SHA-256 of the issuer's name and key, the serial in hex, the responder URL
    from the certificate's AIA (empty when it has none)."""
    certs = [x509.load_der_x509_certificate(d) for d in chain]
    out = []
    for cert, issuer in zip(certs, certs[1:], strict=False):
        bits = subject_key_bits(issuer)
        url = ""
        try:
            aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
            url = next((str(d.access_location.value) for d in aia.value
                        if d.access_method == AuthorityInformationAccessOID.OCSP), "")
        except x509.ExtensionNotFound:
            pass
        out.append({"hashAlgorithm": "SHA256",
                    "issuerNameHash": _sha256(issuer.subject.public_bytes()),
                    "issuerKeyHash": _sha256(bits),
                    "serialNumber": f"{cert.serial_number:x}",
                    "responderURL": url[:512]})
    return out[:4]  # the schema allows at most 4


def authorize_payload(method: str, evcc_id: str, emaid: str | None = None,
                      chain: tuple[bytes, ...] = ()) -> dict[str, Any]:
    if method == "PnC" and emaid:
        p: dict[str, Any] = {"idToken": {"idToken": emaid, "type": "eMAID"}}
        hash_data = certificate_hash_data(chain) if len(chain) > 1 else []
        if hash_data:
            p["iso15118CertificateHashData"] = hash_data
        return p
    return {"idToken": {"idToken": evcc_id, "type": "MacAddress"}}


def decision_of(answer: dict[str, Any]) -> tuple[bool, str]:
    """(granted, reason) from an AuthorizeResponse (camelCase)."""
    status = answer.get("idTokenInfo", {}).get("status", "Unknown")
    cert = answer.get("certificateStatus")
    if status != "Accepted":
        return False, f"CSMS: idToken {status}"
    if cert is not None and cert != "Accepted":
        return False, f"CSMS: contract certificate {cert}"
    return True, ""


@dataclass(slots=True)
class AuthCache:
    """The local authorization cache: the CSMS's latest idTokenInfo per token, kept until its
    cacheExpiryDateTime (or `default_ttl_s`), at most `max_entries` (oldest dropped)."""

    default_ttl_s: float = 7 * 86400.0
    max_entries: int = 1000
    _entries: dict[str, tuple[str, float]] = field(default_factory=dict)

    def store(self, token: str, id_token_info: dict[str, Any], now: float) -> None:
        expiry = now + self.default_ttl_s
        if "cacheExpiryDateTime" in id_token_info:
            with contextlib.suppress(ValueError):
                expiry = dt.datetime.fromisoformat(
                    id_token_info["cacheExpiryDateTime"].replace("Z", "+00:00")).timestamp()
        self._entries.pop(token, None)
        self._entries[token] = (str(id_token_info.get("status", "Unknown")), expiry)
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]

    def lookup(self, token: str, now: float) -> str | None:
        """The cached status, or None when unknown or expired."""
        entry = self._entries.get(token)
        if entry is None or now >= entry[1]:
            return None
        return entry[0]

    def clear(self) -> None:
        self._entries.clear()
