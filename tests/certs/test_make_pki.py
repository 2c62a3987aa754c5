import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from certs.make_pki import PkiFiles, main, make_pki


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module", params=["secp521r1", "ed448"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki(algorithm: str, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    out = tmp_path_factory.mktemp(algorithm)
    return make_pki(out, algorithm, evse_id="DE*TST*E42", hostname="charger-7.test")


def chain(pki: PkiFiles) -> tuple[x509.Certificate, ...]:
    return tuple(
        load(p) for p in (pki.secc_cert, pki.sub_ca2_cert, pki.sub_ca1_cert, pki.root_cert)
    )


def test_chain_signatures_verify(pki: PkiFiles) -> None:
    leaf, sub2, sub1, root = chain(pki)
    leaf.verify_directly_issued_by(sub2)
    sub2.verify_directly_issued_by(sub1)
    sub1.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)  # self-signed


def test_wrong_issuer_does_not_verify(pki: PkiFiles) -> None:
    leaf, _sub2, sub1, root = chain(pki)
    with pytest.raises((ValueError, InvalidSignature)):
        leaf.verify_directly_issued_by(sub1)
    with pytest.raises((ValueError, InvalidSignature)):
        leaf.verify_directly_issued_by(root)


def test_algorithms(algorithm: str, pki: PkiFiles) -> None:
    for cert in chain(pki):
        key = cert.public_key()
        if algorithm == "ed448":
            assert isinstance(key, ed448.Ed448PublicKey)
            assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ED448
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            assert key.curve.name == "secp521r1"
            assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA512


def test_ca_constraints(pki: PkiFiles) -> None:
    leaf, sub2, sub1, root = chain(pki)
    for cert, path_length in ((root, 2), (sub1, 1), (sub2, 0)):
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == path_length
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert not ku.value.digital_signature
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign


def test_key_identifiers_link_the_chain(pki: PkiFiles) -> None:
    leaf, sub2, sub1, root = chain(pki)
    for child, parent in ((leaf, sub2), (sub2, sub1), (sub1, root)):
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = parent.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest


def test_secc_leaf_identity(pki: PkiFiles) -> None:
    leaf = load(pki.secc_cert)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "DE*TST*E42"
    assert leaf.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)[0].value == "CPO"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["charger-7.test"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku


def test_validity_nests(pki: PkiFiles) -> None:
    leaf, sub2, sub1, root = chain(pki)
    for child, parent in ((leaf, sub2), (sub2, sub1), (sub1, root)):
        assert parent.not_valid_before_utc <= child.not_valid_before_utc
        assert child.not_valid_after_utc <= parent.not_valid_after_utc


def test_chain_file_is_leaf_sub2_sub1(pki: PkiFiles) -> None:
    certs = x509.load_pem_x509_certificates(pki.secc_chain.read_bytes())
    assert certs == [load(pki.secc_cert), load(pki.sub_ca2_cert), load(pki.sub_ca1_cert)]


def test_keys_match_certs_and_are_private(pki: PkiFiles) -> None:
    pairs = (
        (pki.root_key, pki.root_cert),
        (pki.sub_ca1_key, pki.sub_ca1_cert),
        (pki.sub_ca2_key, pki.sub_ca2_cert),
        (pki.secc_key, pki.secc_cert),
    )
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    for key_path, cert_path in pairs:
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert key.public_key().public_bytes(*raw) == load(cert_path).public_key().public_bytes(
            *raw
        )


def test_unknown_algorithm(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        make_pki(tmp_path, "rsa2048")


def test_cli_writes_into_the_given_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "pki"), "--algorithm", "ed448"]) == 0
    assert (tmp_path / "pki" / "secc_chain.pem").is_file()
    assert "secc_chain" in capsys.readouterr().out
