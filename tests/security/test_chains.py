"""Contract / OEM provisioning chain validation: good chains, every failure, OCSP, eMAIDs, the
real contract chain of the public interop vector, and the verifier's response codes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

import exi_codec
from certs.pnc_pki import Chain, Credential, PncPki, issue, ocsp_response
from evse.security.chains import (
    ChainError,
    ChainFailure,
    ChainPolicy,
    contract_emaid,
    is_emaid,
    normalize_emaid,
    validate_chain,
)
from evse.security.pnc import PncVerifier, chain_response_code
from exi_codec.schemas import iso20
from tests.security.helpers import NOW, NOW_TS, authorization_req

DAY = dt.timedelta(days=1)


def check(chain: Chain, roots: Any, now: dt.datetime = NOW, **kw: Any) -> Any:
    return validate_chain(chain.leaf_der, chain.sub_ders, roots, now, **kw)


def failure_of(chain: Chain, roots: Any, now: dt.datetime = NOW, **kw: Any) -> ChainError:
    with pytest.raises(ChainError) as info:
        check(chain, roots, now, **kw)
    return info.value


def test_good_contract_chain(pki: PncPki) -> None:
    path = check(pki.contract, pki.mo_roots)
    assert path.path == pki.contract.certificates
    assert path.leaf == pki.contract.leaf.cert and path.root == pki.mo_root.cert
    assert contract_emaid(path.leaf) == pki.emaid
    # Sub-CAs in any order; certificate objects as well as DER.
    reverse = validate_chain(pki.contract.leaf.cert, tuple(reversed(pki.contract.sub_ders)),
                             pki.mo_roots, NOW)
    assert reverse.path == path.path


def test_other_good_chains(pki: PncPki) -> None:
    check(pki.oem_provisioning, pki.oem_roots)
    check(pki.vehicle, pki.oem_roots)
    check(pki.cpo, (pki.v2g_root.cert,))
    check(pki.cps, (pki.v2g_root.cert,))


def test_validity_at_the_edges(pki: PncPki) -> None:
    leaf = pki.contract.leaf.cert
    check(pki.contract, pki.mo_roots, leaf.not_valid_after_utc)
    assert failure_of(pki.contract, pki.mo_roots,
                      leaf.not_valid_after_utc + dt.timedelta(seconds=1)).failure \
        == ChainFailure.EXPIRED
    assert failure_of(pki.contract, pki.mo_roots,
                      leaf.not_valid_before_utc - dt.timedelta(seconds=1)).failure \
        == ChainFailure.NOT_YET_VALID
    check(pki.contract, pki.mo_roots, NOW.replace(tzinfo=None))  # naive means UTC


@pytest.mark.parametrize(
    ("variant", "expected", "index"),
    [
        ("contract_expired", ChainFailure.EXPIRED, 0),
        ("contract_not_yet_valid", ChainFailure.NOT_YET_VALID, 0),
        ("contract_sub_ca_expired", ChainFailure.EXPIRED, 1),
        ("contract_unknown_root", ChainFailure.UNKNOWN_ROOT, 2),
        ("contract_wrong_chain", ChainFailure.BAD_SIGNATURE, 0),
        ("contract_ca_flag", ChainFailure.LEAF_IS_CA, 0),
        ("contract_no_signature_usage", ChainFailure.KEY_USAGE, 0),
    ],
)
def test_faulty_contract_chains(pki: PncPki, variant: str, expected: ChainFailure,
                                index: int) -> None:
    error = failure_of(pki.variants[variant], pki.mo_roots)
    assert (error.failure, error.index) == (expected, index), error


def test_unknown_root_and_incomplete_chains(pki: PncPki) -> None:
    assert failure_of(pki.contract, pki.oem_roots).failure == ChainFailure.UNKNOWN_ROOT
    assert failure_of(pki.contract, ()).failure == ChainFailure.UNKNOWN_ROOT
    missing = Chain(pki.contract.leaf, pki.contract.subs[1:], pki.mo_root)
    assert failure_of(missing, pki.mo_roots).failure == ChainFailure.UNKNOWN_ROOT
    foreign_sub = Chain(pki.contract.leaf, pki.variants["contract_unknown_root"].subs,
                        pki.mo_root)
    assert failure_of(foreign_sub, pki.mo_roots).failure == ChainFailure.UNKNOWN_ROOT


def test_a_root_of_the_same_name_but_another_key(pki: PncPki) -> None:
    impostor_key = pki.variants["contract_unknown_root"].key
    impostor = Credential(
        issue(pki.mo_root.cert.subject, impostor_key, None, not_before=NOW - DAY,
              not_after=NOW + DAY, path_length=2), impostor_key)
    assert failure_of(pki.contract, (impostor.cert,)).failure == ChainFailure.BAD_SIGNATURE
    check(pki.contract, (impostor.cert, pki.mo_root.cert))  # the right one is tried too


def test_too_long_and_path_length(pki: PncPki) -> None:
    sub2 = pki.contract.subs[0]
    # Sub-CA 2 (pathLen 0) issues another CA which issues a leaf: one CA too many.
    key3 = pki.variants["contract_expired"].key
    sub3 = Credential(issue(x509.Name.from_rfc4514_string("CN=Sub-CA 3"), key3, sub2,
                            not_before=NOW - DAY, not_after=NOW + DAY, path_length=0), key3)
    leaf_key = pki.variants["contract_not_yet_valid"].key
    leaf = Credential(issue(x509.Name.from_rfc4514_string("CN=DEEVSC00000001X"), leaf_key,
                            sub3, not_before=NOW - DAY, not_after=NOW + DAY, path_length=None),
                      leaf_key)
    chain = Chain(leaf, (sub3, *pki.contract.subs), pki.mo_root)
    assert failure_of(chain, pki.mo_roots).failure == ChainFailure.TOO_LONG
    error = failure_of(chain, pki.mo_roots, policy=ChainPolicy(max_sub_cas=3))
    assert (error.failure, error.index) == (ChainFailure.PATH_LENGTH, 2)


def test_a_leaf_as_issuer_is_not_a_ca(pki: PncPki) -> None:
    key = pki.variants["contract_expired"].key
    leaf = Credential(issue(x509.Name.from_rfc4514_string("CN=DEEVSC00000001X"), key,
                            pki.contract.leaf, not_before=NOW - DAY, not_after=NOW + DAY,
                            path_length=None), key)
    chain = Chain(leaf, (pki.contract.leaf, *pki.contract.subs), pki.mo_root)
    error = failure_of(chain, pki.mo_roots, policy=ChainPolicy(max_sub_cas=3))
    assert (error.failure, error.index) == (ChainFailure.NOT_A_CA, 1)


def test_malformed_certificates(pki: PncPki) -> None:
    with pytest.raises(ChainError) as info:
        validate_chain(b"\x30\x03\x02\x01\x00", (), pki.mo_roots, NOW)
    assert (info.value.failure, info.value.index) == (ChainFailure.MALFORMED, 0)
    with pytest.raises(ChainError) as info:
        validate_chain(pki.contract.leaf_der, (pki.contract.sub_ders[0], b"junk"),
                       pki.mo_roots, NOW)
    assert (info.value.failure, info.value.index) == (ChainFailure.MALFORMED, 2)


# -- OCSP --------------------------------------------------------------------------------------


def test_ocsp_good_and_revoked(pki: PncPki) -> None:
    good = [pki.ocsp["contract"], pki.ocsp["mo_sub2"], pki.ocsp["mo_sub1"]]
    required = ChainPolicy(require_ocsp=True)
    check(pki.contract, pki.mo_roots, ocsp_responses=good, policy=required)
    check(pki.contract, pki.mo_roots, ocsp_responses=good[:1])  # optional: partial is fine
    error = failure_of(pki.contract, pki.mo_roots, ocsp_responses=[pki.ocsp["contract_revoked"]])
    assert (error.failure, error.index) == (ChainFailure.REVOKED, 0)
    error = failure_of(pki.contract, pki.mo_roots, ocsp_responses=good[:2], policy=required)
    assert (error.failure, error.index) == (ChainFailure.OCSP, 2)  # none for Sub-CA 1


def test_ocsp_stale_or_signed_by_the_wrong_key(pki: PncPki) -> None:
    good = [pki.ocsp["contract"]]
    stale = failure_of(pki.contract, pki.mo_roots, NOW + 30 * DAY, ocsp_responses=good)
    assert stale.failure == ChainFailure.OCSP
    sub2, sub1 = pki.contract.subs
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=pki.contract.leaf.cert, issuer=sub2.cert, algorithm=hashes.SHA256(),
        cert_status=ocsp.OCSPCertStatus.GOOD, this_update=NOW - DAY, next_update=NOW + DAY,
        revocation_time=None, revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, sub1.cert)
    algorithm = hashes.SHA512() if pki.algorithm == "secp521r1" else None
    forged = builder.sign(sub1.key, algorithm).public_bytes(serialization.Encoding.DER)
    assert failure_of(pki.contract, pki.mo_roots,
                      ocsp_responses=[forged]).failure == ChainFailure.OCSP
    unknown = ocsp_response(pki.contract.leaf.cert, sub2, now=NOW,
                            status=ocsp.OCSPCertStatus.UNKNOWN)
    check(pki.contract, pki.mo_roots, ocsp_responses=[unknown])
    assert failure_of(pki.contract, pki.mo_roots, ocsp_responses=[unknown],
                      policy=ChainPolicy(require_ocsp=True)).failure == ChainFailure.OCSP
    # A response about another certificate does not count; garbage is ignored.
    check(pki.contract, pki.mo_roots, ocsp_responses=[pki.ocsp["oem_provisioning"], b"junk"])


# -- eMAID -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["DEEVSC00000001X", "DE-EVS-C00000001-X", "UKSWI123456791A",
                                   "de8aa1a2b3c4d5", "DE8AA1A2B3C4D5"])
def test_emaid_forms(value: str) -> None:
    assert is_emaid(value)


@pytest.mark.parametrize("value", ["", "DE", "DE*EVS*E0000001", "D1EVSC00000001X",
                                   "DEEVSC00000001XYZ", "WMIV1234567890ABCDEX"])
def test_not_emaids(value: str) -> None:
    assert not is_emaid(value)


def test_contract_emaid(pki: PncPki) -> None:
    cert = pki.contract.leaf.cert
    assert contract_emaid(cert, expected="de-evs-c00000001-x") == pki.emaid
    assert normalize_emaid("de-evs-c00000001-x") == pki.emaid
    with pytest.raises(ChainError) as info:
        contract_emaid(cert, expected="DEEVSC00000002X")
    assert info.value.failure == ChainFailure.EMAID
    with pytest.raises(ChainError) as info:
        contract_emaid(pki.oem_provisioning.leaf.cert)  # a PCID is not an eMAID
    assert info.value.failure == ChainFailure.EMAID


# -- the real contract chain of the public PnC interop vector ------------------------------------


def test_vector_contract_chain(vectors: dict[str, dict[str, Any]]) -> None:
    """A P-256 / SHA-256 (-2 era) chain from a logged session: names and signatures chain
    (with its MO Sub-CA 1 as the trust anchor), the -20 algorithm policy refuses it."""
    raw = bytes.fromhex(vectors["iso20-PnC_AReqAuthorizationMode-001"]["hex"])
    _, mode = exi_codec.decode_fragment(raw, "iso20")
    chain = mode.contract_certificate_chain
    leaf, sub2, sub1 = chain.certificate, *chain.sub_certificates.certificate
    anchor = x509.load_der_x509_certificate(sub1)
    when = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    legacy = ChainPolicy(iso20_algorithms=False)
    path = validate_chain(leaf, [sub2], [anchor], when, policy=legacy)
    assert contract_emaid(path.leaf) == "UKSWI123456791A"
    with pytest.raises(ChainError) as info:
        validate_chain(leaf, [sub2], [anchor], when)
    assert info.value.failure == ChainFailure.ALGORITHM
    with pytest.raises(ChainError) as info:  # its MO root is not in the vector
        validate_chain(leaf, [sub2, sub1], [], when, policy=legacy)
    assert info.value.failure == ChainFailure.UNKNOWN_ROOT
    with pytest.raises(ChainError) as info:
        validate_chain(leaf, [sub2], [anchor], dt.datetime(2028, 8, 1, tzinfo=dt.UTC),
                       policy=legacy)
    assert info.value.failure == ChainFailure.EXPIRED


# -- the verifier's response codes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("contract_expired", "WARNING_CertificateExpired"),
        ("contract_not_yet_valid", "WARNING_CertificateNotYetValid"),
        ("contract_sub_ca_expired", "WARNING_CertificateExpired"),
        ("contract_unknown_root", "WARNING_CertificateValidationError"),
        ("contract_wrong_chain", "WARNING_CertificateValidationError"),
        ("contract_ca_flag", "WARNING_CertificateValidationError"),
        ("contract_no_signature_usage", "WARNING_CertificateValidationError"),
    ],
)
def test_verifier_codes_for_faulty_contracts(pki: PncPki, variant: str, code: str) -> None:
    header = iso20.MessageHeaderType(session_id=bytes(8), time_stamp=NOW_TS)
    req = authorization_req(pki.variants[variant], bytes(16), header)
    verdict = PncVerifier(mo_roots=pki.mo_roots).verify_authorization(
        req, timestamp=NOW_TS, session_id=bytes(8))
    assert verdict.response_code == code and not verdict.ok
    assert verdict.emaid is None


def test_verifier_revocation_through_ocsp(pki: PncPki) -> None:
    header = iso20.MessageHeaderType(session_id=bytes(8), time_stamp=NOW_TS)
    req = authorization_req(pki.contract, bytes(16), header)
    revoked = PncVerifier(mo_roots=pki.mo_roots,
                          ocsp=lambda cert: [pki.ocsp["contract_revoked"]])
    verdict = revoked.verify_authorization(req, timestamp=NOW_TS, session_id=bytes(8))
    assert verdict.response_code == "WARNING_CertificateRevoked"
    responses = [pki.ocsp[n] for n in ("contract", "mo_sub2", "mo_sub1")]
    good = PncVerifier(mo_roots=pki.mo_roots, ocsp=lambda cert: responses,
                       chain_policy=ChainPolicy(require_ocsp=True))
    verdict = good.verify_authorization(req, timestamp=NOW_TS, session_id=bytes(8))
    assert verdict.ok and verdict.emaid == pki.emaid
    assert verdict.certificate_chain == (pki.contract.leaf_der, *pki.contract.sub_ders)


def test_verifier_says_when_the_contract_expires_within_14_days(pki: PncPki) -> None:
    header = iso20.MessageHeaderType(session_id=bytes(8), time_stamp=NOW_TS)
    req = authorization_req(pki.contract, bytes(16), header)
    verifier = PncVerifier(mo_roots=pki.mo_roots)
    end = int(pki.contract.leaf.cert.not_valid_after_utc.timestamp())
    edge = end - 14 * 86_400

    def code(timestamp: int) -> str:
        verdict = verifier.verify_authorization(req, timestamp=timestamp, session_id=bytes(8))
        assert verdict.ok == (verdict.emaid == pki.emaid)  # an accepted contract has its eMAID
        return verdict.response_code

    assert code(NOW_TS) == "OK"
    assert code(edge - 1) == "OK"
    assert code(edge) == "OK_CertificateExpiresSoon"
    assert code(end) == "OK_CertificateExpiresSoon"  # still valid in its last second
    assert code(end + 1) == "WARNING_CertificateExpired"


def test_chain_response_code_mapping() -> None:
    assert chain_response_code(ChainError(ChainFailure.REVOKED, "x")) == \
        "WARNING_CertificateRevoked"
    assert chain_response_code(ChainError(ChainFailure.EMAID, "x")) == \
        "WARNING_CertificateValidationError"


def test_load_pem_certificates(pki: PncPki, tmp_path: Any) -> None:
    from evse.security import load_pem_certificates

    files = pki.write(tmp_path)
    assert load_pem_certificates(files["mo_root"]) == [pki.mo_root.cert]
    assert len(load_pem_certificates(files["contract"])) == 3


def test_resume_binding() -> None:
    import hashlib

    from evse.security import resume_binding

    sid, cert = bytes(range(8)), b"vehicle certificate DER"
    expected = hashlib.sha512(sid + hashlib.sha512(cert).digest()).digest()
    assert resume_binding(sid, cert) == expected and len(expected) == 64
    assert resume_binding(sid, cert + b"x") != expected
