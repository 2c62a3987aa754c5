"""The sans-IO key/CSR and signed-chain checks of evse/ocpp/csr.py (OCPP A02/A03), with a
fixed clock: what the station sends in SignCertificate and what CertificateSigned chain it
takes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.make_pki import PkiFiles, make_pki
from evse.ocpp.csr import (
    PendingCsr,
    PendingCsrUnreadable,
    SignedChainRejected,
    check_signed_chain,
    days_left,
)
from simulators.csms import CsrSigner
from tests.ocpp.pki import Pki, other_root
from tests.ocpp.pki import make_pki as make_ocpp_pki


@pytest.fixture(scope="module")
def ocpp_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_ocpp_pki(tmp_path_factory.mktemp("ocpp-pki"))


@pytest.fixture(scope="module")
def v2g(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return make_pki(tmp_path_factory.mktemp("v2g-pki"))


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def _now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()


def test_csr_is_signed_by_a_new_key_of_the_current_type(ocpp_pki: Pki, v2g: PkiFiles) -> None:
    cert, key = ocpp_pki.client("CS1")
    for current, curve in ((_cert(cert), "secp256r1"), (_cert(v2g.secc_cert), "secp521r1")):
        pending = PendingCsr.new("ChargingStationCertificate", current)
        csr = x509.load_pem_x509_csr(pending.csr_pem.encode())
        assert csr.is_signature_valid
        assert csr.subject == current.subject
        assert pending.key.curve.name == curve
        assert csr.public_key().public_numbers() == pending.key.public_key().public_numbers()
        assert csr.public_key().public_numbers() != current.public_key().public_numbers()
    with pytest.raises(ValueError):
        PendingCsr.new("SomethingElse", _cert(cert))


def test_pending_csr_stored_and_reloaded_only_when_intact(v2g: PkiFiles) -> None:
    import json

    pending = PendingCsr.new("V2GCertificate", _cert(v2g.secc_cert))
    data = pending.to_bytes(1234.5)
    back, created = PendingCsr.from_bytes(data, "V2GCertificate")
    assert created == 1234.5 and back.csr_pem == pending.csr_pem
    assert back.key.private_numbers() == pending.key.private_numbers()
    with pytest.raises(PendingCsrUnreadable, match="not a ChargingStationCertificate"):
        PendingCsr.from_bytes(data, "ChargingStationCertificate")
    other = PendingCsr.new("V2GCertificate", _cert(v2g.secc_cert))
    swapped = json.loads(data)
    swapped["csr"] = other.csr_pem  # a key that did not sign the CSR
    with pytest.raises(PendingCsrUnreadable, match="not the CSR's key"):
        PendingCsr.from_bytes(json.dumps(swapped).encode(), "V2GCertificate")
    for bad in (b"", b"[]", data[:-40], b'{"certificateType": "V2GCertificate"}'):
        with pytest.raises(PendingCsrUnreadable):
            PendingCsr.from_bytes(bad, "V2GCertificate")


def test_signed_chain_taken_only_when_key_root_and_time_fit(ocpp_pki: Pki,
                                                           tmp_path: Path) -> None:
    cert, _ = ocpp_pki.client("CS1")
    roots = [_cert(ocpp_pki.ca)]
    pending = PendingCsr.new("ChargingStationCertificate", _cert(cert))
    signer = CsrSigner(ocpp_pki.ca, ocpp_pki.dir / "ca.key", days=10)
    pem = signer.sign(pending.csr_pem)
    now = _now()
    installed = check_signed_chain(pem, pending, roots, now)
    assert len(installed) == 1 and installed[0].public_key().public_numbers() == \
        pending.key.public_key().public_numbers()
    assert 9.9 < days_left(installed[0], now) <= 10
    # another pending key (a second CSR) does not match this chain
    other = PendingCsr.new("ChargingStationCertificate", _cert(cert))
    with pytest.raises(SignedChainRejected, match="public key"):
        check_signed_chain(pem, other, roots, now)
    # a root the station does not trust
    rogue_ca, rogue_key = other_root(tmp_path)
    rogue = CsrSigner(rogue_ca, rogue_key).sign(pending.csr_pem)
    with pytest.raises(SignedChainRejected, match="unknown_root"):
        check_signed_chain(rogue, pending, roots, now)
    with pytest.raises(SignedChainRejected, match="no trusted root"):
        check_signed_chain(pem, pending, [], now)
    # expired (the test root and the leaf both end by then) / not yet valid
    with pytest.raises(SignedChainRejected, match="expired"):
        check_signed_chain(pem, pending, roots, now + 20 * 86400)
    with pytest.raises(SignedChainRejected, match="not_yet_valid"):
        check_signed_chain(pem, pending, roots, now - 3600)
    for garbage in ("", "hello", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                    "\u00e9"):
        with pytest.raises(SignedChainRejected, match="not a PEM"):
            check_signed_chain(garbage, pending, roots, now)


def test_v2g_chain_with_sub_cas_to_the_v2g_root(v2g: PkiFiles, tmp_path: Path) -> None:
    subs = tmp_path / "subs.pem"
    subs.write_bytes(v2g.sub_ca2_cert.read_bytes() + v2g.sub_ca1_cert.read_bytes())
    pending = PendingCsr.new("V2GCertificate", _cert(v2g.secc_cert))
    pem = CsrSigner(v2g.sub_ca2_cert, v2g.sub_ca2_key, chain=subs, server=True).sign(
        pending.csr_pem)
    installed = check_signed_chain(pem, pending, [_cert(v2g.root_cert)], _now())
    assert [c.subject for c in installed[1:]] == [_cert(v2g.sub_ca2_cert).subject,
                                                  _cert(v2g.sub_ca1_cert).subject]
    # the Sub-CAs left out: no path to the root
    leaf_only = pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    with pytest.raises(SignedChainRejected, match="unknown_root"):
        check_signed_chain(leaf_only, pending, [_cert(v2g.root_cert)], _now())
    key_pem = pending.key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    assert b"PRIVATE KEY" in key_pem
