"""evse/ocpp/ocsp.py, sans-IO with a fixed clock: the request data of a contract chain, the
checks of a DER OCSP response (signer, certificate, status, freshness) and the cache."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from certs.pnc_pki import PncPki, make_pnc_pki
from evse.ocpp.ocsp import OcspCache, OcspError, check_ocsp_response, ocsp_request_data
from evse.security.chains import subject_key_bits

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
T = NOW.timestamp()


@pytest.fixture(scope="module")
def pki() -> PncPki:
    return make_pnc_pki("secp521r1")


def _chain(pki: PncPki) -> tuple[bytes, ...]:
    return (pki.contract.leaf_der, *pki.contract.sub_ders)


def _response(cert: x509.Certificate, issuer: x509.Certificate, key: Any, *,
              status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
              this_update: dt.datetime = NOW - dt.timedelta(minutes=1),
              next_update: dt.datetime | None = NOW + dt.timedelta(hours=1),
              serial: int | None = None) -> bytes:
    name_hash = hashlib.sha256(issuer.subject.public_bytes()).digest()
    key_hash = hashlib.sha256(subject_key_bits(issuer)).digest()
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=name_hash, issuer_key_hash=key_hash,
        serial_number=cert.serial_number if serial is None else serial,
        algorithm=hashes.SHA256(), cert_status=status, this_update=this_update,
        next_update=next_update, revocation_time=NOW - dt.timedelta(days=1) if revoked else None,
        revocation_reason=x509.ReasonFlags.superseded if revoked else None,
    ).responder_id(ocsp.OCSPResponderEncoding.NAME, issuer)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _leaf(pki: PncPki) -> tuple[x509.Certificate, x509.Certificate, Any]:
    sub2 = pki.contract.subs[0]
    return pki.contract.leaf.cert, sub2.cert, sub2.key


def test_request_data_for_the_contract_chain(pki: PncPki) -> None:
    entries = ocsp_request_data(_chain(pki), pki.mo_roots)
    assert [c.serial_number for c, _, _ in entries] == [
        pki.contract.leaf.cert.serial_number, *(s.cert.serial_number for s in pki.contract.subs)]
    assert [i.subject for _, i, _ in entries] == [
        *(s.cert.subject for s in pki.contract.subs), pki.mo_root.cert.subject]
    assert entries[-1][2]["issuerNameHash"] == hashlib.sha256(
        pki.mo_root.cert.subject.public_bytes()).hexdigest()


def test_request_data_refuses_foreign_and_disordered_chains(pki: PncPki) -> None:
    other = make_pnc_pki("secp521r1")
    with pytest.raises(OcspError, match="trusted root"):
        ocsp_request_data(_chain(pki), other.mo_roots)
    chain = _chain(pki)
    with pytest.raises(OcspError):
        ocsp_request_data((chain[1], chain[0], chain[2]), pki.mo_roots)
    with pytest.raises(OcspError, match="no contract chain"):
        ocsp_request_data((), pki.mo_roots)


def test_good_answer_until_next_update(pki: PncPki) -> None:
    cert, issuer, key = _leaf(pki)
    until = check_ocsp_response(_response(cert, issuer, key), cert, issuer, T)
    assert until == (NOW + dt.timedelta(hours=1)).timestamp()


@pytest.mark.parametrize(("kw", "match"), [
    ({"status": ocsp.OCSPCertStatus.REVOKED}, r"revoked \(superseded\)"),
    ({"status": ocsp.OCSPCertStatus.UNKNOWN}, "UNKNOWN"),
    ({"next_update": NOW - dt.timedelta(seconds=1)}, "stale"),
    ({"this_update": NOW + dt.timedelta(hours=1), "next_update": NOW + dt.timedelta(hours=2)},
     "from the future"),
    ({"this_update": NOW - dt.timedelta(days=2), "next_update": None}, "stale"),
    ({"serial": 12345}, "not about this certificate"),
])
def test_bad_answers_raise(pki: PncPki, kw: dict[str, Any], match: str) -> None:
    cert, issuer, key = _leaf(pki)
    with pytest.raises(OcspError, match=match):
        check_ocsp_response(_response(cert, issuer, key, **kw), cert, issuer, T)


def test_forged_signature(pki: PncPki) -> None:
    cert, issuer, _ = _leaf(pki)
    forger = ec.generate_private_key(ec.SECP521R1())
    fake = (x509.CertificateBuilder().subject_name(issuer.subject).issuer_name(issuer.subject)
            .public_key(forger.public_key()).serial_number(1)
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=1)).sign(forger, hashes.SHA256()))
    der = _response(cert, fake, forger)  # in the issuer's name, another key
    with pytest.raises(OcspError, match="signature invalid"):
        check_ocsp_response(der, cert, issuer, T)
    # the right signer, but answering about another issuer's certificate
    sub1 = pki.contract.subs[1]
    with pytest.raises(OcspError):
        check_ocsp_response(_response(cert, sub1.cert, sub1.key), cert, issuer, T)


def test_no_next_update_is_fresh_but_not_cached(pki: PncPki) -> None:
    cert, issuer, key = _leaf(pki)
    assert check_ocsp_response(_response(cert, issuer, key, next_update=None), cert, issuer,
                               T) is None


def test_unsuccessful_and_garbage(pki: PncPki) -> None:
    cert, issuer, _ = _leaf(pki)
    bad = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
    with pytest.raises(OcspError, match="TRY_LATER"):
        check_ocsp_response(bad.public_bytes(serialization.Encoding.DER), cert, issuer, T)
    with pytest.raises(OcspError, match="not an OCSP response"):
        check_ocsp_response(b"\x30\x03junk", cert, issuer, T)


def test_cache(pki: PncPki) -> None:
    cert = pki.contract.leaf.cert
    cache = OcspCache(max_entries=2)
    assert not cache.lookup(cert, T)
    cache.store(cert, T + 10)
    assert cache.lookup(cert, T + 9.9) and not cache.lookup(cert, T + 10)
    cache.store(pki.contract.subs[0].cert, None)  # not cacheable: nothing stored
    assert not cache.lookup(pki.contract.subs[0].cert, T)
    for s in pki.contract.subs:
        cache.store(s.cert, T + 10)
    assert not cache.lookup(cert, T)  # the oldest dropped at max_entries
