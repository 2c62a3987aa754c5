"""ISO 15118-2 Plug & Charge crypto: the P-256 test PKI, signatures over -2 EXI fragments
(through a real V2G_Message encode/decode), contract chains -> -2 response codes, the
Authorization challenge, MeteringReceipt, and the ECDH + ConcatKDF + AES-128-CBC key transport
of CertificateInstallation/Update."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import SignatureAlgorithmOID

import exi_codec
from certs.iso2_pki import Iso2Pki, main, make_iso2_pki
from evse.security import iso2_signatures as sig
from evse.security.chains import contract_emaid
from evse.security.iso2_pnc import (
    Iso2ContractVerifier,
    Iso2PncError,
    Iso2Provisioning,
    certificate_chain,
    decrypt_contract_key,
    encrypt_contract_key,
    open_provisioned,
)
from evse.security.signatures import Failure, SignatureError
from exi_codec.schemas import iso2

RC = iso2.responseCodeType
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
_PKI: list[Iso2Pki] = []


@pytest.fixture
def pki() -> Iso2Pki:
    if not _PKI:
        _PKI.append(make_iso2_pki(now=NOW))
    return _PKI[0]


def _chain(pki: Iso2Pki, name: str = "contract") -> iso2.CertificateChainType:
    chain = pki.contract if name == "contract" else pki.variants[name]
    return certificate_chain(chain.leaf.cert, [s.cert for s in chain.subs], "id1")


def _over_the_wire(body: iso2.BodyType, signature: Any) -> iso2.V2G_Message:
    """Encode and decode a whole V2G_Message: what the SECC verifies is what came in."""
    msg = iso2.V2G_Message(
        header=iso2.MessageHeaderType(session_id=bytes(8), signature=signature), body=body)
    return exi_codec.decode(exi_codec.encode(msg), "iso2")


# -- PKI --------------------------------------------------------------------------------------

def test_pki_profiles(pki: Iso2Pki) -> None:
    chains = {"secc": pki.cpo, "prov": pki.prov, "contract": pki.contract,
              "oem": pki.oem_provisioning}
    for name, chain in chains.items():
        for cert in chain.certificates:
            key = cert.public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey), name
            assert key.curve.name == "secp256r1", name
            assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
        lengths = [c.extensions.get_extension_for_class(x509.BasicConstraints).value
                   for c in chain.certificates]
        assert [b.ca for b in lengths] == [False, True, True, True]
        assert [b.path_length for b in lengths[1:]] == [0, 1, 2]
        leaf_usage = chain.leaf.cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert leaf_usage.digital_signature
        for ca in chain.certificates[1:]:
            usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
            assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert contract_emaid(pki.contract.leaf.cert) == pki.emaid
    assert pki.cpo.leaf.cert.not_valid_after_utc - NOW <= dt.timedelta(days=90)
    assert pki.crl.get_revoked_certificate_by_serial_number(
        pki.variants["contract_revoked"].leaf.cert.serial_number) is not None
    assert pki.crl.is_signature_valid(pki.contract.subs[0].cert.public_key())  # type: ignore[arg-type]


def test_pki_cli_writes_pem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 0
    assert "contract_revoked" in capsys.readouterr().out
    certs = x509.load_pem_x509_certificates((tmp_path / "secc.pem").read_bytes())
    assert len(certs) == 3  # leaf, Sub-CA 2, Sub-CA 1
    assert (tmp_path / "contract.key").stat().st_mode & 0o777 == 0o600
    x509.load_pem_x509_crl((tmp_path / "mo_crl.pem").read_bytes())


# -- signatures -------------------------------------------------------------------------------

def _signed_authorization(pki: Iso2Pki, challenge: bytes,
                          key: Any = None) -> tuple[Any, Any]:
    req = iso2.AuthorizationReqType(id="ID1", gen_challenge=challenge)
    signature = sig.sign(key or pki.contract.key, sig.element("AuthorizationReq", req))
    msg = _over_the_wire(iso2.BodyType(authorization_req=req), signature)
    return msg.body.authorization_req, msg.header.signature


def test_signature_layout_and_wire_roundtrip(pki: Iso2Pki) -> None:
    challenge = bytes(range(16))
    req, signature = _signed_authorization(pki, challenge)
    si = signature.signed_info
    assert si.canonicalization_method.algorithm == "http://www.w3.org/TR/canonical-exi/"
    assert si.signature_method.algorithm == "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    (ref,) = si.reference
    assert ref.uri == "#ID1"
    assert ref.digest_method.algorithm == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert ref.transforms.transform[0].algorithm == "http://www.w3.org/TR/canonical-exi/"
    assert len(signature.signature_value.value) == 64
    # The digest is SHA-256 of the -2 fragment encoding of the element, independently computed.
    h = hashes.Hash(hashes.SHA256())
    h.update(exi_codec.encode_fragment("AuthorizationReq", req, "iso2", "schema"))
    assert ref.digest_value == h.finalize()
    sig.verify(signature, [sig.element("AuthorizationReq", req)],
               pki.contract.leaf.cert.public_key())


def test_signature_failures(pki: Iso2Pki) -> None:
    req, signature = _signed_authorization(pki, bytes(16))
    public = pki.contract.leaf.cert.public_key()
    tampered = iso2.AuthorizationReqType(id=req.id, gen_challenge=b"\x01" * 16)
    with pytest.raises(SignatureError) as info:
        sig.verify(signature, [sig.element("AuthorizationReq", tampered)], public)
    assert info.value.failure == Failure.DIGEST_MISMATCH
    with pytest.raises(SignatureError) as info:
        sig.verify(signature, [sig.element("AuthorizationReq", req)],
                   pki.oem_provisioning.leaf.cert.public_key())
    assert info.value.failure == Failure.BAD_SIGNATURE
    # -20 algorithms (P-521, SHA-512) are refused on a -2 signature.
    p521 = ec.generate_private_key(ec.SECP521R1())
    with pytest.raises(ValueError):
        sig.sign(p521, sig.element("AuthorizationReq", req))


# -- contract chain, challenge, receipt -----------------------------------------------------

@pytest.mark.parametrize(("variant", "code"), [
    ("contract_expired", RC.FAILED_CertificateExpired),
    ("contract_revoked", RC.FAILED_CertificateRevoked),
    ("contract_unknown_root", RC.FAILED_CertChainError),
    ("contract_wrong_chain", RC.FAILED_CertChainError),
])
def test_contract_chain_failures(pki: Iso2Pki, variant: str, code: RC) -> None:
    verifier = Iso2ContractVerifier(pki.mo_roots, crls=[pki.crl])
    with pytest.raises(Iso2PncError) as info:
        verifier.verify_contract(_chain(pki, variant), pki.emaid, NOW)
    assert info.value.response_code == code


def test_contract_ok_and_emaid(pki: Iso2Pki) -> None:
    verifier = Iso2ContractVerifier(pki.mo_roots, crls=[pki.crl])
    check = verifier.verify_contract(_chain(pki), pki.emaid, NOW)
    assert check.emaid == pki.emaid
    with pytest.raises(Iso2PncError) as info:
        verifier.verify_contract(_chain(pki), "DEXYZ123456789", NOW)
    assert info.value.response_code == RC.FAILED_CertChainError
    # Without the CRL the revoked contract passes: the CRL is what revokes it.
    Iso2ContractVerifier(pki.mo_roots).verify_contract(_chain(pki, "contract_revoked"),
                                                       pki.emaid, NOW)
    # A CRL past its nextUpdate is not trusted to say "good": fail closed.
    with pytest.raises(Iso2PncError) as info:
        verifier.verify_contract(_chain(pki), pki.emaid, NOW + dt.timedelta(days=8))
    assert info.value.response_code == RC.FAILED_CertChainError


def test_contract_with_minus20_algorithms_refused() -> None:
    from certs.pnc_pki import make_pnc_pki

    pnc = make_pnc_pki("secp521r1", now=NOW)
    verifier = Iso2ContractVerifier(pnc.mo_roots)
    chain = certificate_chain(pnc.contract.leaf.cert, [s.cert for s in pnc.contract.subs])
    with pytest.raises(Iso2PncError) as info:
        verifier.verify_contract(chain, pnc.emaid, NOW)
    assert info.value.response_code == RC.FAILED_CertChainError
    assert "secp256r1" in info.value.detail


def test_authorization_challenge(pki: Iso2Pki) -> None:
    verifier = Iso2ContractVerifier(pki.mo_roots)
    contract = verifier.verify_contract(_chain(pki), pki.emaid, NOW)
    challenge = verifier.new_challenge()
    assert len(challenge) == 16 and challenge != verifier.new_challenge()
    req, signature = _signed_authorization(pki, challenge)
    verifier.verify_authorization(req, signature, contract, challenge)
    with pytest.raises(Iso2PncError) as info:
        verifier.verify_authorization(req, signature, contract, verifier.new_challenge())
    assert info.value.response_code == RC.FAILED_ChallengeInvalid
    # Signed by another key (the OEM one): the challenge is right, the signature is not.
    req, signature = _signed_authorization(pki, challenge, key=pki.oem_provisioning.key)
    with pytest.raises(Iso2PncError) as info:
        verifier.verify_authorization(req, signature, contract, challenge)
    assert info.value.response_code == RC.FAILED_SignatureError
    with pytest.raises(Iso2PncError) as info:
        verifier.verify_authorization(req, None, contract, challenge)
    assert info.value.response_code == RC.FAILED_SignatureError


def test_metering_receipt(pki: Iso2Pki) -> None:
    verifier = Iso2ContractVerifier(pki.mo_roots)
    contract = verifier.verify_contract(_chain(pki), pki.emaid, NOW)
    req = iso2.MeteringReceiptReqType(
        id="ID2", session_id=bytes(range(8)), sa_schedule_tuple_id=1,
        meter_info=iso2.MeterInfoType(meter_id="M1", meter_reading=12345, t_meter=1700000000))
    signature = sig.sign(pki.contract.key, sig.element("MeteringReceiptReq", req))
    msg = _over_the_wire(iso2.BodyType(metering_receipt_req=req), signature)
    verifier.verify_metering_receipt(msg.body.metering_receipt_req, msg.header.signature,
                                     contract)
    forged = iso2.MeteringReceiptReqType(
        id="ID2", session_id=bytes(range(8)), sa_schedule_tuple_id=1,
        meter_info=iso2.MeterInfoType(meter_id="M1", meter_reading=1, t_meter=1700000000))
    with pytest.raises(Iso2PncError) as info:
        verifier.verify_metering_receipt(forged, msg.header.signature, contract)
    assert info.value.response_code == RC.FAILED_MeteringSignatureNotValid


# -- key transport, installation, update ----------------------------------------------------

def test_key_transport_is_concat_kdf_sha256_aes128_cbc(pki: Iso2Pki) -> None:
    """Decrypt independently of the module: ECDH, then SP 800-56A single-step KDF written out
    by hand (counter 1 || Z || OtherInfo, SHA-256, first 16 bytes), then AES-128-CBC."""
    oem_key = pki.oem_provisioning.key
    assert isinstance(oem_key, ec.EllipticCurvePrivateKey)
    new_key = ec.generate_private_key(ec.SECP256R1())
    dh_public, encrypted = encrypt_contract_key(oem_key.public_key(), new_key)
    assert len(dh_public) == 65 and dh_public[0] == 4 and len(encrypted) == 48
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), dh_public)
    z = oem_key.exchange(ec.ECDH(), peer)
    h = hashes.Hash(hashes.SHA256())
    h.update(b"\x00\x00\x00\x01" + z + b"\x01" + b"U" + b"V")
    k = h.finalize()[:16]
    d = Cipher(algorithms.AES(k), modes.CBC(encrypted[:16])).decryptor()
    plain = d.update(encrypted[16:]) + d.finalize()
    assert int.from_bytes(plain, "big") == new_key.private_numbers().private_value
    assert decrypt_contract_key(oem_key, dh_public, encrypted).private_numbers() == \
        new_key.private_numbers()
    with pytest.raises(ValueError):
        decrypt_contract_key(oem_key, dh_public[:-1], encrypted)


def _provisioning(pki: Iso2Pki) -> Iso2Provisioning:
    prov_key, mo_key = pki.prov.key, pki.contract.subs[0].key
    assert isinstance(prov_key, ec.EllipticCurvePrivateKey)
    assert isinstance(mo_key, ec.EllipticCurvePrivateKey)
    return Iso2Provisioning(
        prov_leaf=pki.prov.leaf.cert, prov_subs=tuple(s.cert for s in pki.prov.subs),
        prov_key=prov_key, mo_sub_ca=tuple(s.cert for s in pki.contract.subs),
        mo_sub_ca_key=mo_key, emaid=pki.emaid)


def test_certificate_installation_end_to_end(pki: Iso2Pki) -> None:
    oem_der = pki.oem_provisioning.leaf.cert.public_bytes(serialization.Encoding.DER)
    req = iso2.CertificateInstallationReqType(
        id="ID1", oem_provisioning_cert=oem_der,
        list_of_root_certificate_i_ds=iso2.ListOfRootCertificateIDsType(root_certificate_id=(
            iso2.X509IssuerSerialType(x509_issuer_name=pki.mo_root.cert.subject.rfc4514_string(),
                                      x509_serial_number=pki.mo_root.cert.serial_number),)))
    answer = _provisioning(pki).install(req, NOW)
    msg = _over_the_wire(iso2.BodyType(certificate_installation_res=answer.body),
                         answer.signature)
    res = msg.body.certificate_installation_res
    assert res.response_code == RC.OK
    oem_key = pki.oem_provisioning.key
    assert isinstance(oem_key, ec.EllipticCurvePrivateKey)
    chain, key = open_provisioned(res, msg.header.signature, oem_key, pki.v2g_roots, NOW)
    # The installed contract works: it validates to the MO root and signs an Authorization.
    verifier = Iso2ContractVerifier(pki.mo_roots, crls=[pki.crl])
    contract = verifier.verify_contract(chain, pki.emaid, NOW)
    challenge = verifier.new_challenge()
    auth, signature = _signed_authorization(pki, challenge, key=key)
    verifier.verify_authorization(auth, signature, contract, challenge)
    # Another car's OEM key cannot open it; a changed byte breaks the SA signature.
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match="does not match"):
        open_provisioned(res, msg.header.signature, other, pki.v2g_roots, NOW)
    broken = iso2.ContractSignatureEncryptedPrivateKeyType(
        id=res.contract_signature_encrypted_private_key.id, value=bytes(48))
    forged = iso2.CertificateInstallationResType(
        response_code=res.response_code,
        sa_provisioning_certificate_chain=res.sa_provisioning_certificate_chain,
        contract_signature_cert_chain=res.contract_signature_cert_chain,
        contract_signature_encrypted_private_key=broken, d_hpublickey=res.d_hpublickey,
        e_maid=res.e_maid)
    with pytest.raises(Iso2PncError) as info:
        open_provisioned(forged, msg.header.signature, oem_key, pki.v2g_roots, NOW)
    assert info.value.response_code == RC.FAILED_SignatureError
    # An SA chain that does not end at the EV's V2G root is refused.
    with pytest.raises(Iso2PncError) as info:
        open_provisioned(res, msg.header.signature, oem_key, pki.mo_roots, NOW)
    assert info.value.response_code == RC.FAILED_CertChainError


def test_certificate_update(pki: Iso2Pki) -> None:
    verifier = Iso2ContractVerifier(pki.mo_roots, crls=[pki.crl])
    req = iso2.CertificateUpdateReqType(
        id="ID1", contract_signature_cert_chain=_chain(pki), e_maid=pki.emaid,
        list_of_root_certificate_i_ds=iso2.ListOfRootCertificateIDsType(root_certificate_id=(
            iso2.X509IssuerSerialType(x509_issuer_name="CN=x", x509_serial_number=1),)))
    answer = _provisioning(pki).update(req, verifier, NOW)
    msg = _over_the_wire(iso2.BodyType(certificate_update_res=answer.body), answer.signature)
    res = msg.body.certificate_update_res
    old_key = pki.contract.key
    assert isinstance(old_key, ec.EllipticCurvePrivateKey)
    chain, key = open_provisioned(res, msg.header.signature, old_key, pki.v2g_roots, NOW)
    assert chain.certificate != _chain(pki).certificate
    assert verifier.verify_contract(chain, pki.emaid, NOW).emaid == pki.emaid
    revoked = iso2.CertificateUpdateReqType(
        id="ID1", contract_signature_cert_chain=_chain(pki, "contract_revoked"),
        e_maid=pki.emaid, list_of_root_certificate_i_ds=req.list_of_root_certificate_i_ds)
    with pytest.raises(Iso2PncError) as info:
        _provisioning(pki).update(revoked, verifier, NOW)
    assert info.value.response_code == RC.FAILED_CertificateRevoked


def test_installation_refuses_a_non_p256_oem_certificate(pki: Iso2Pki) -> None:
    from certs.pnc_pki import make_pnc_pki

    pnc = make_pnc_pki("secp521r1", now=NOW)
    req = iso2.CertificateInstallationReqType(
        id="ID1",
        oem_provisioning_cert=pnc.oem_provisioning.leaf.cert.public_bytes(
            serialization.Encoding.DER),
        list_of_root_certificate_i_ds=iso2.ListOfRootCertificateIDsType(root_certificate_id=(
            iso2.X509IssuerSerialType(x509_issuer_name="CN=x", x509_serial_number=1),)))
    with pytest.raises(Iso2PncError) as info:
        _provisioning(pki).install(req, NOW)
    assert info.value.response_code == RC.FAILED_CertChainError
