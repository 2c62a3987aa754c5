"""Authorize payloads, decisions and the local authorization cache (evse/ocpp/authorization.py);
the PnC certificate hash data is checked against cryptography's own OCSP request builder."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from evse.ocpp.authorization import (
    AuthCache,
    authorize_payload,
    certificate_hash_data,
    decision_of,
)
from tests.ocpp.pki import make_pki


def test_eim_is_the_evccid_as_mac_address() -> None:
    assert authorize_payload("EIM", "WEVSESTACKSIM0001") == {
        "idToken": {"idToken": "WEVSESTACKSIM0001", "type": "MacAddress"}}


def test_pnc_hash_data_matches_an_ocsp_request(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    cert_file, _ = pki.client("DEABCC00000001")
    leaf = x509.load_pem_x509_certificate(cert_file.read_bytes())
    root = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    chain = tuple(c.public_bytes(serialization.Encoding.DER) for c in (leaf, root))
    p = authorize_payload("PnC", "EVCC", "DEABCC00000001", chain)
    assert p["idToken"] == {"idToken": "DEABCC00000001", "type": "eMAID"}
    (entry,) = p["iso15118CertificateHashData"]
    req = ocsp.OCSPRequestBuilder().add_certificate(leaf, root, hashes.SHA256()).build()
    assert entry == {"hashAlgorithm": "SHA256", "issuerNameHash": req.issuer_name_hash.hex(),
                     "issuerKeyHash": req.issuer_key_hash.hex(),
                     "serialNumber": f"{req.serial_number:x}", "responderURL": ""}
    assert certificate_hash_data(chain[:1]) == []  # a lone leaf: no issuer to hash


def test_decisions() -> None:
    assert decision_of({"idTokenInfo": {"status": "Accepted"}}) == (True, "")
    assert decision_of({"idTokenInfo": {"status": "Blocked"}}) == (False, "CSMS: idToken Blocked")
    assert decision_of({"idTokenInfo": {"status": "Accepted"},
                        "certificateStatus": "CertificateRevoked"}) == (
        False, "CSMS: contract certificate CertificateRevoked")
    assert decision_of({})[0] is False


def test_cache_expiry_and_bound() -> None:
    c = AuthCache(default_ttl_s=100.0, max_entries=2)
    c.store("a", {"status": "Accepted"}, 0.0)
    assert c.lookup("a", 99.0) == "Accepted" and c.lookup("a", 100.0) is None
    c.store("b", {"status": "Accepted", "cacheExpiryDateTime": "1970-01-01T00:00:10Z"}, 0.0)
    assert c.lookup("b", 9.0) == "Accepted" and c.lookup("b", 10.0) is None
    c.store("c", {"status": "Invalid"}, 0.0)
    assert c.lookup("a", 1.0) is None  # the oldest went
    assert c.lookup("c", 1.0) == "Invalid"
