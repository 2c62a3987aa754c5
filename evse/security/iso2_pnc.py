"""ISO 15118-2 Plug & Charge crypto: contract chains, the Authorization challenge, signed
MeteringReceipt, and the contract key transport of CertificateInstallation/Update.

Every check raises `Iso2PncError` whose `response_code` is the -2 responseCodeType value the
SECC answers with (the protocol core maps it onto the response; this module stays sans-IO: the
time comes in as `now`).

Contract chain (PaymentDetailsReq / CertificateUpdateReq) against the configured MO roots:

    not parseable, unknown root, bad signature, wrong profile -> FAILED_CertChainError
    a certificate on the path expired                          -> FAILED_CertificateExpired
    listed on a CRL of its issuer (or an OCSP "revoked")       -> FAILED_CertificateRevoked
    keys not P-256 or signatures not ecdsa-with-SHA256         -> FAILED_CertChainError

Authorization: the SECC sends a fresh 16-byte GenChallenge in PaymentDetailsRes; the EV signs
its AuthorizationReq (Id + GenChallenge) with the contract key. A different challenge is
FAILED_ChallengeInvalid, a signature that does not verify FAILED_SignatureError.
MeteringReceiptReq signed by the contract key: FAILED_MeteringSignatureNotValid otherwise.

Key transport (the SA side encrypts, the EV decrypts), as -2 specifies it ([V2G2-818] as
cited by the public Josev implementation, whose reading we followed; no copy of the standard
here):

    ephemeral P-256 key pair e; DHpublickey = e's uncompressed point (65 bytes)
    Z  = ECDH(e, recipient)   recipient = the OEM provisioning certificate's key
                              (CertificateInstallation) or the old contract key (Update)
    K  = ConcatKDF (NIST SP 800-56A, single-step, SHA-256)(Z, 16 bytes,
                    OtherInfo = AlgorithmID 0x01 || PartyUInfo "U" || PartyVInfo "V")
    ContractSignatureEncryptedPrivateKey = IV (16) || AES-128-CBC(K, IV, d) (32) = 48 bytes

with d the new contract private key as a 32-byte big-endian integer (two AES blocks: no
padding).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.x509.oid import SignatureAlgorithmOID

from evse.protocol.config import Iso2Provisioned, PncVerdict
from evse.security import iso2_signatures as sig
from evse.security.chains import (
    ChainError,
    ChainFailure,
    ChainPolicy,
    ValidatedChain,
    build_path,
    check_path,
    contract_emaid,
    load_certificate,
)
from evse.security.signatures import Failure, SignatureError
from exi_codec.schemas import iso2

RC = iso2.responseCodeType
ISO2_CHAIN_POLICY = ChainPolicy(max_sub_cas=2, iso20_algorithms=False)
GEN_CHALLENGE_SIZE = 16
OTHER_INFO = b"\x01UV"  # AlgorithmID 0x01, PartyUInfo "U", PartyVInfo "V"
KEY_SIZE = 32
DH_PUBLIC_KEY_SIZE = 65
ENCRYPTED_KEY_SIZE = 48
IV_SIZE = 16


class Iso2PncError(ValueError):
    """A Plug & Charge check failed: answer with `response_code` (FAILED_*)."""

    def __init__(self, response_code: RC, detail: str) -> None:
        super().__init__(f"{response_code.value}: {detail}")
        self.response_code = response_code
        self.detail = detail


def chain_response_code(error: ChainError) -> RC:
    """The -2 response code for a failed chain check."""
    if error.failure == ChainFailure.EXPIRED:
        return RC.FAILED_CertificateExpired
    if error.failure == ChainFailure.REVOKED:
        return RC.FAILED_CertificateRevoked
    return RC.FAILED_CertChainError


def _check_iso2_algorithms(path: Sequence[x509.Certificate]) -> None:
    for i, cert in enumerate(path):
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ChainError(ChainFailure.ALGORITHM, "key is not ECDSA secp256r1", i)
        if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
            raise ChainError(ChainFailure.ALGORITHM,
                             f"signed with {cert.signature_algorithm_oid.dotted_string}, "
                             "not ecdsa-with-SHA256", i)


def _check_crls(path: Sequence[x509.Certificate],
                crls: Sequence[x509.CertificateRevocationList], now: dt.datetime) -> None:
    """Each certificate below the root against the CRLs its issuer signed."""
    for i, cert in enumerate(path[:-1]):
        issuer = path[i + 1]
        for crl in crls:
            if crl.issuer != issuer.subject:
                continue
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                raise ChainError(ChainFailure.MALFORMED, "CRL signature invalid", i)
            next_update = crl.next_update_utc
            if next_update is not None and next_update < now:
                raise ChainError(ChainFailure.OCSP, f"stale CRL of {issuer.subject}", i)
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                raise ChainError(ChainFailure.REVOKED, f"{cert.subject} is on the CRL", i)


def validate_iso2_chain(
    leaf: bytes | x509.Certificate,
    sub_cas: Sequence[bytes | x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
    *,
    crls: Sequence[x509.CertificateRevocationList] = (),
    ocsp_responses: Sequence[bytes] = (),
) -> ValidatedChain:
    """A -2 chain (leaf, up to two Sub-CAs) to one of `roots`; raises ChainError."""
    path = build_path(leaf, sub_cas, roots, policy=ISO2_CHAIN_POLICY)
    validated = check_path(path, now, policy=ISO2_CHAIN_POLICY, ocsp_responses=ocsp_responses)
    _check_iso2_algorithms(validated.path)
    _check_crls(validated.path, crls, now)
    return validated


def chain_certificates(chain: Any) -> tuple[bytes, tuple[bytes, ...]]:
    """(leaf DER, Sub-CA DERs) of a -2 CertificateChainType."""
    if chain is None or not chain.certificate:
        raise Iso2PncError(RC.FAILED_CertChainError, "no certificate chain")
    subs = tuple(chain.sub_certificates.certificate) if chain.sub_certificates else ()
    return bytes(chain.certificate), tuple(bytes(s) for s in subs)


def certificate_chain(leaf: x509.Certificate, subs: Sequence[x509.Certificate],
                      chain_id: str | None = None) -> iso2.CertificateChainType:
    """The -2 CertificateChainType for a leaf and its Sub-CAs (nearest first)."""
    der = serialization.Encoding.DER
    return iso2.CertificateChainType(
        id=chain_id,
        certificate=leaf.public_bytes(der),
        sub_certificates=iso2.SubCertificatesType(
            certificate=tuple(s.public_bytes(der) for s in subs)) if subs else None,
    )


@dataclass(frozen=True, slots=True)
class ContractCheck:
    """A validated contract: its eMAID and the public key Authorization is verified with."""

    emaid: str
    chain: ValidatedChain

    @property
    def public_key(self) -> Any:
        return self.chain.public_key()


class _Signer:
    """The contract's public key, for the Authorization and MeteringReceipt checks."""

    def __init__(self, leaf_der: bytes) -> None:
        self.public_key = load_certificate(leaf_der, 0).public_key()


class Iso2ContractVerifier:
    """The SECC's -2 Plug & Charge checks against the configured MO roots (and CRLs)."""

    def __init__(self, mo_roots: Sequence[x509.Certificate], *,
                 crls: Sequence[x509.CertificateRevocationList] = ()) -> None:
        self.mo_roots = tuple(mo_roots)
        self.crls = tuple(crls)

    def verify_contract(self, chain: Any, emaid: str | None, now: dt.datetime) -> ContractCheck:
        """PaymentDetailsReq: the contract chain to an MO root, the eMAID in its CN."""
        leaf, subs = chain_certificates(chain)
        try:
            validated = validate_iso2_chain(leaf, subs, self.mo_roots, now, crls=self.crls)
            found = contract_emaid(validated.leaf, expected=emaid or None)
        except ChainError as exc:
            raise Iso2PncError(chain_response_code(exc), str(exc)) from None
        return ContractCheck(found, validated)

    @staticmethod
    def new_challenge() -> bytes:
        """GenChallenge for PaymentDetailsRes: 16 random bytes, fresh per session."""
        return secrets.token_bytes(GEN_CHALLENGE_SIZE)

    @staticmethod
    def verify_authorization(req: Any, signature: Any, contract: ContractCheck | _Signer,
                             challenge: bytes) -> None:
        """AuthorizationReq: the challenge we sent, signed (Id referenced) by the contract."""
        if req.gen_challenge is None or bytes(req.gen_challenge) != challenge:
            raise Iso2PncError(RC.FAILED_ChallengeInvalid, "GenChallenge is not the one sent")
        if not req.id:
            raise Iso2PncError(RC.FAILED_SignatureError, "AuthorizationReq without Id")
        try:
            sig.verify(signature, [sig.element("AuthorizationReq", req)], contract.public_key)
        except SignatureError as exc:
            raise Iso2PncError(RC.FAILED_SignatureError, str(exc)) from None

    @staticmethod
    def verify_metering_receipt(req: Any, signature: Any,
                                contract: ContractCheck | _Signer) -> None:
        """MeteringReceiptReq signed (Id referenced) by the contract key."""
        try:
            if not req.id:
                raise SignatureError(Failure.MALFORMED, "MeteringReceiptReq without Id")
            sig.verify(signature, [sig.element("MeteringReceiptReq", req)],
                       contract.public_key)
        except SignatureError as exc:
            raise Iso2PncError(RC.FAILED_MeteringSignatureNotValid, str(exc)) from None


# -- contract key transport -------------------------------------------------------------------

def _session_key(private: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey) -> bytes:
    shared = private.exchange(ec.ECDH(), public)
    return ConcatKDFHash(hashes.SHA256(), 16, OTHER_INFO).derive(shared)


def encrypt_contract_key(recipient: ec.EllipticCurvePublicKey,
                         contract_key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    """(DHpublickey 65 bytes, ContractSignatureEncryptedPrivateKey 48 bytes)."""
    if recipient.curve.name != "secp256r1" or contract_key.curve.name != "secp256r1":
        raise ValueError("-2 key transport is on secp256r1")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    dh_public = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    iv = secrets.token_bytes(IV_SIZE)
    key = _session_key(ephemeral, recipient)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    plain = contract_key.private_numbers().private_value.to_bytes(KEY_SIZE, "big")
    return dh_public, iv + encryptor.update(plain) + encryptor.finalize()


def decrypt_contract_key(recipient: ec.EllipticCurvePrivateKey, dh_public: bytes,
                         encrypted: bytes) -> ec.EllipticCurvePrivateKey:
    """The EV side: the new contract private key. ValueError when the sizes or the point are
    wrong (CBC has no integrity: a wrong key shows as a key that does not match the
    certificate, which `check_contract_key` catches)."""
    if len(dh_public) != DH_PUBLIC_KEY_SIZE or len(encrypted) != ENCRYPTED_KEY_SIZE:
        raise ValueError(f"DHpublickey {len(dh_public)} / encrypted key {len(encrypted)} "
                         f"bytes, not {DH_PUBLIC_KEY_SIZE} / {ENCRYPTED_KEY_SIZE}")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), dh_public)
    iv, body = encrypted[:IV_SIZE], encrypted[IV_SIZE:]
    key = _session_key(recipient, public)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    value = int.from_bytes(decryptor.update(body) + decryptor.finalize(), "big")
    return ec.derive_private_key(value, ec.SECP256R1())


def check_contract_key(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    """The decrypted key must be the certificate's (ValueError otherwise)."""
    ours = key.public_key().public_numbers()
    theirs = cert.public_key()
    if not isinstance(theirs, ec.EllipticCurvePublicKey) or theirs.public_numbers() != ours:
        raise ValueError("the decrypted contract key does not match the contract certificate")


# -- certificate installation / update ------------------------------------------------------

IDS = ("id1", "id2", "id3", "id4")  # chain, encrypted key, DH public key, eMAID


@dataclass(frozen=True, slots=True)
class Provisioned:
    """A CertificateInstallationRes / CertificateUpdateRes body and its header Signature."""

    body: Any
    signature: iso2.SignatureType


def signed_elements(res: Any) -> list[Any]:
    """The elements of an Installation/Update response the SA signs. The eMAID (EMAIDType)
    would be the fourth, but exi_codec's -2 fragment table has no unambiguous grammar for
    `eMAID` (two declarations of that name), so it is neither signed nor checked here."""
    return [
        sig.element("ContractSignatureCertChain", res.contract_signature_cert_chain),
        sig.element("ContractSignatureEncryptedPrivateKey",
                    res.contract_signature_encrypted_private_key),
        sig.element("DHpublickey", res.d_hpublickey),
    ]


@dataclass(frozen=True)
class Iso2Provisioning:
    """A local SA provisioning service for tests and SIL runs: issues contracts under an MO
    Sub-CA 2 and answers CertificateInstallation/Update signed by the provisioning leaf."""

    prov_leaf: x509.Certificate
    prov_subs: tuple[x509.Certificate, ...]
    prov_key: ec.EllipticCurvePrivateKey
    mo_sub_ca: tuple[x509.Certificate, ...]  # Sub-CA 2, Sub-CA 1
    mo_sub_ca_key: ec.EllipticCurvePrivateKey
    emaid: str
    oem_roots: tuple[x509.Certificate, ...] = ()
    contract_days: int = 730

    def _issue(self, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        from cryptography.x509.oid import NameOID  # noqa: PLC0415 - only the local SA needs it

        key = ec.generate_private_key(ec.SECP256R1())
        issuer = self.mo_sub_ca[0]
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.emaid),
                          x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "MO")])
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=self.contract_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(self.mo_sub_ca_key, hashes.SHA256())
        )
        return cert, key

    def _answer(self, kind: type[Any], recipient: ec.EllipticCurvePublicKey, now: dt.datetime,
                **extra: Any) -> Provisioned:
        cert, key = self._issue(now)
        dh_public, encrypted = encrypt_contract_key(recipient, key)
        body = kind(
            response_code=RC.OK,
            sa_provisioning_certificate_chain=certificate_chain(self.prov_leaf, self.prov_subs),
            contract_signature_cert_chain=certificate_chain(cert, self.mo_sub_ca, IDS[0]),
            contract_signature_encrypted_private_key=iso2.ContractSignatureEncryptedPrivateKeyType(
                id=IDS[1], value=encrypted),
            d_hpublickey=iso2.DiffieHellmanPublickeyType(id=IDS[2], value=dh_public),
            e_maid=iso2.EMAIDType(id=IDS[3], value=self.emaid),
            **extra,
        )
        return Provisioned(body, sig.sign(self.prov_key, *signed_elements(body)))

    def install(self, req: Any, now: dt.datetime) -> Provisioned:
        """CertificateInstallationReq: a contract for the OEM provisioning certificate."""
        try:
            oem = load_certificate(bytes(req.oem_provisioning_cert or b""), 0)
            if self.oem_roots:
                # The request carries only the leaf: its chain must end at an installed root
                # through Sub-CAs the SA knows; with none configured only the form is checked.
                validate_iso2_chain(oem, (), self.oem_roots, now)
            public = oem.public_key()
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise ChainError(ChainFailure.ALGORITHM, "OEM key is not ECDSA", 0)
            _check_iso2_algorithms([oem])
        except ChainError as exc:
            raise Iso2PncError(chain_response_code(exc), str(exc)) from None
        return self._answer(iso2.CertificateInstallationResType, public, now)

    def update(self, req: Any, verifier: Iso2ContractVerifier, now: dt.datetime) -> Provisioned:
        """CertificateUpdateReq: a new contract, its key encrypted for the old contract key."""
        old = verifier.verify_contract(req.contract_signature_cert_chain, req.e_maid, now)
        return self._answer(iso2.CertificateUpdateResType, old.public_key, now, retry_counter=0)


def open_provisioned(
    res: Any,
    signature: Any,
    recipient: ec.EllipticCurvePrivateKey,
    v2g_roots: Sequence[x509.Certificate],
    now: dt.datetime,
) -> tuple[iso2.CertificateChainType, ec.EllipticCurvePrivateKey]:
    """The EV side of CertificateInstallation/UpdateRes: the SA provisioning chain to a V2G
    root, its signature over the response, then the contract key decrypted with `recipient`
    (the OEM provisioning key or the old contract key) and matched to the new certificate.
    Raises Iso2PncError (FAILED_CertChainError / FAILED_SignatureError)."""
    try:
        leaf, subs = chain_certificates(res.sa_provisioning_certificate_chain)
        prov = validate_iso2_chain(leaf, subs, v2g_roots, now)
    except ChainError as exc:
        raise Iso2PncError(chain_response_code(exc), f"SA provisioning chain: {exc}") from None
    try:
        sig.verify(signature, signed_elements(res), prov.public_key())
    except SignatureError as exc:
        raise Iso2PncError(RC.FAILED_SignatureError, str(exc)) from None
    contract = res.contract_signature_cert_chain
    key = decrypt_contract_key(recipient, bytes(res.d_hpublickey.value),
                               bytes(res.contract_signature_encrypted_private_key.value))
    check_contract_key(key, load_certificate(bytes(contract.certificate), 0))
    return contract, key


# -- the SECC's backend (evse.protocol.config.Iso2PncBackend) ----------------------------------

def _verdict_failed(exc: Iso2PncError) -> PncVerdict:
    return PncVerdict(response_code=exc.response_code.value, reason=exc.detail)


class Iso2PncService:
    """What the -2 machine calls (SeccConfig.iso2_pnc): contract checks against the MO roots
    (and CRLs), the challenge, signatures, and certificate installation/update through a
    provisioning service (None: FAILED_NoCertificateAvailable)."""

    def __init__(self, verifier: Iso2ContractVerifier, *,
                 provisioning: Iso2Provisioning | None = None,
                 receipt_required: bool = False) -> None:
        self.verifier = verifier
        self.provisioning = provisioning
        self.receipt_required = receipt_required

    @staticmethod
    def _time(timestamp: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(timestamp, dt.UTC)

    def verify_contract(self, chain: Any, emaid: str | None, *, timestamp: int) -> PncVerdict:
        try:
            check = self.verifier.verify_contract(chain, emaid, self._time(timestamp))
        except Iso2PncError as exc:
            return _verdict_failed(exc)
        leaf, subs = chain_certificates(chain)
        return PncVerdict(emaid=check.emaid, certificate_chain=(leaf, *subs))

    def new_challenge(self) -> bytes:
        return self.verifier.new_challenge()

    def verify_authorization(self, req: Any, signature: Any,
                             certificate_chain: tuple[bytes, ...],
                             challenge: bytes) -> PncVerdict:
        try:
            self.verifier.verify_authorization(req, signature, _Signer(certificate_chain[0]),
                                               challenge)
        except Iso2PncError as exc:
            return _verdict_failed(exc)
        return PncVerdict()

    def verify_metering_receipt(self, req: Any, signature: Any,
                                certificate_chain: tuple[bytes, ...]) -> PncVerdict:
        try:
            self.verifier.verify_metering_receipt(req, signature,
                                                  _Signer(certificate_chain[0]))
        except Iso2PncError as exc:
            return _verdict_failed(exc)
        return PncVerdict()

    def _provisioned(self, make: Any) -> Iso2Provisioned:
        if self.provisioning is None:
            return Iso2Provisioned(response_code=RC.FAILED_NoCertificateAvailable.value,
                                   reason="no provisioning service configured")
        try:
            answer: Provisioned = make()
        except Iso2PncError as exc:
            return Iso2Provisioned(response_code=exc.response_code.value, reason=exc.detail)
        return Iso2Provisioned(body=answer.body, signature=answer.signature)

    def install(self, req: Any, *, timestamp: int) -> Iso2Provisioned:
        prov = self.provisioning
        return self._provisioned(lambda: prov.install(req, self._time(timestamp))
                                 if prov is not None else None)

    def update(self, req: Any, *, timestamp: int) -> Iso2Provisioned:
        prov = self.provisioning
        return self._provisioned(lambda: prov.update(req, self.verifier, self._time(timestamp))
                                 if prov is not None else None)


__all__ = [
    "DH_PUBLIC_KEY_SIZE",
    "Iso2PncService",
    "ENCRYPTED_KEY_SIZE",
    "GEN_CHALLENGE_SIZE",
    "ISO2_CHAIN_POLICY",
    "OTHER_INFO",
    "ContractCheck",
    "Iso2ContractVerifier",
    "Iso2PncError",
    "Iso2Provisioning",
    "Provisioned",
    "certificate_chain",
    "chain_certificates",
    "chain_response_code",
    "check_contract_key",
    "decrypt_contract_key",
    "encrypt_contract_key",
    "open_provisioned",
    "signed_elements",
    "validate_iso2_chain",
]
