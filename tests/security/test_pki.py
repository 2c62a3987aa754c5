"""The Plug & Charge test PKI (certs/pnc_pki.py): hierarchies, profiles, variants, OCSP,
files on disk (keys 0600), for both -20 algorithms."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from certs.pnc_pki import PncPki, main, make_pnc_pki
from evse.security.chains import validate_chain
from tests.security.helpers import NOW


def cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def dc(cert: x509.Certificate) -> str | None:
    values = cert.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)
    return str(values[0].value) if values else None


def test_hierarchies_and_profiles(pki: PncPki) -> None:
    key_type = ec.EllipticCurvePublicKey if pki.algorithm == "secp521r1" else ed448.Ed448PublicKey
    for chain, root, domain in ((pki.contract, pki.mo_root, "MO"),
                                (pki.oem_provisioning, pki.oem_root, "OEM"),
                                (pki.vehicle, pki.oem_root, "OEM"),
                                (pki.cps, pki.v2g_root, "CPS"),
                                (pki.cpo, pki.v2g_root, "CPO")):
        assert chain.root is root
        leaf, sub2, sub1, top = chain.certificates
        assert dc(leaf) == domain
        assert top.subject == top.issuer  # self-signed root
        for cert, path_length in ((top, 2), (sub1, 1), (sub2, 0)):
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            assert bc.ca and bc.path_length == path_length
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert all(isinstance(c.public_key(), key_type) for c in chain.certificates)
        validate_chain(chain.leaf_der, chain.sub_ders, [root.cert], NOW)
    assert cn(pki.contract.leaf.cert) == pki.emaid
    assert cn(pki.vehicle.leaf.cert) == pki.evcc_id
    assert cn(pki.oem_provisioning.leaf.cert) == pki.pcid
    # Roots keep serial numbers below 2**63 (ListOfRootCertificateIDs, see certs/pnc_pki.py).
    assert all(r.cert.serial_number < 2**63 for r in (pki.v2g_root, pki.mo_root, pki.oem_root))


def test_variants_are_what_they_say(pki: PncPki) -> None:
    v = pki.variants
    assert v["contract_expired"].leaf.cert.not_valid_after_utc < NOW
    assert v["contract_not_yet_valid"].leaf.cert.not_valid_before_utc > NOW
    assert v["contract_wrong_chain"].leaf.cert.issuer == pki.contract.subs[0].cert.subject
    assert v["contract_unknown_root"].root.cert not in pki.mo_roots
    assert v["contract_sub_ca_expired"].subs[0].cert.not_valid_after_utc < NOW
    assert v["oem_provisioning_expired"].leaf.cert.not_valid_after_utc < NOW
    for name, chain in v.items():
        if name.startswith("contract"):
            assert cn(chain.leaf.cert) == pki.emaid, name


def test_ocsp_responses(pki: PncPki) -> None:
    for name in ("mo_sub1", "mo_sub2", "contract", "oem_provisioning"):
        response = ocsp.load_der_ocsp_response(pki.ocsp[name])
        assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    revoked = ocsp.load_der_ocsp_response(pki.ocsp["contract_revoked"])
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.serial_number == pki.contract.leaf.cert.serial_number


def test_write_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = make_pnc_pki("ed448", now=NOW).write(tmp_path / "a")
    assert {"mo_root", "contract", "contract_key", "oem_provisioning_key", "cps",
            "ocsp_contract_revoked"} <= set(files)
    assert stat.S_IMODE(files["contract_key"].stat().st_mode) == 0o600
    chain = x509.load_pem_x509_certificates(files["contract"].read_bytes())
    assert len(chain) == 3 and cn(chain[0]) == "DEEVSC00000001X"
    assert main([str(tmp_path / "b"), "--algorithm", "secp521r1", "--emaid", "DEABC123456789"]) \
        == 0
    out = capsys.readouterr().out
    assert "contract_key" in out
    leaf = x509.load_pem_x509_certificates((tmp_path / "b" / "contract.pem").read_bytes())[0]
    assert cn(leaf) == "DEABC123456789"


def test_unknown_algorithm() -> None:
    with pytest.raises(ValueError):
        make_pnc_pki("rsa")
