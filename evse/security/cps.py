"""Certificate installation: the contract key transport, and a local CPS for tests and SIL.

The certificate provisioning service (CPS) answers a CertificateInstallationReq with a new
contract certificate chain and the contract's private key, encrypted for the vehicle:

    ephemeral P-521 key pair e (DHPublicKey = e's uncompressed point, 133 bytes)
    Z   = ECDH(e, public key of the OEM provisioning certificate)
    K   = ConcatKDF-SHA-512(Z, 32 bytes, OtherInfo = 0x01 || "U" || "V")   (NIST SP 800-56A)
    SECP521_EncryptedPrivateKey = IV (12) || AES-256-GCM(K, IV, d) (66) || tag (16) = 94 bytes

with d the contract private scalar as a 66-byte big-endian integer. The 94-byte length is the
schema's; the KDF OtherInfo and the IV || ciphertext || tag order are our reading (the -2 scheme
carried over to SHA-512/AES-GCM) and are not verified against the text of ISO 15118-20.

X448 (Ed448 vehicles), the same scheme on curve448:

    recipient u = the X448 public key of the OEM provisioning certificate's Ed448 key, by the
                  RFC 7748 4-isogeny u = y^2 / x^2 (the EV's matching X448 private key is the
                  first 56 bytes of SHAKE256(Ed448 seed, 114), RFC 8032's key expansion)
    ephemeral X448 key pair e; DHPublicKey = e's 56-byte public key || 77 zero bytes (133)
    Z   = X448(e, u);  K = ConcatKDF-SHA-512(Z, 32, OtherInfo 0x01 "U" "V")
    X448_EncryptedPrivateKey = IV (12) || AES-256-GCM(K, IV, seed[:56]) (56) || tag (16) = 84

The schema's 84 bytes leave room for 56 key bytes, but an Ed448 private key (seed) has 57: our
CPS issues Ed448 contract keys whose 57th seed byte is zero (448 random bits, above Ed448's
224-bit security level) and the EV appends it. The conversion, the zero padding of
DHPublicKey and the 56-byte seed are our reading, unverified against the standard's text.

SignedInstallationData (Id "id1") is signed by the CPS leaf: the response header Signature.
`LocalCps` implements `evse.protocol.config.CertificateInstallationBackend`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.x509.oid import NameOID

from evse.protocol.config import InstallationAnswer
from evse.security.signatures import SignedElement, sign
from exi_codec.schemas import iso20

OTHER_INFO = b"\x01UV"
SCALAR_SIZE = 66  # secp521r1
DH_PUBLIC_KEY_SIZE = 133
ENCRYPTED_KEY_SIZE = 94
X448_KEY_SIZE = 56
X448_ENCRYPTED_KEY_SIZE = 84
_P448 = 2**448 - 2**224 - 1
_D448 = -39081 % _P448
INSTALLATION_DATA_ID = "id1"


class KeyTransportError(ValueError):
    pass


def _kek(private: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey) -> bytes:
    shared = private.exchange(ec.ECDH(), public)
    return ConcatKDFHash(hashes.SHA512(), 32, OTHER_INFO).derive(shared)


def encrypt_contract_key(
    contract_key: ec.EllipticCurvePrivateKey, recipient: ec.EllipticCurvePublicKey
) -> tuple[bytes, bytes]:
    """(DHPublicKey, SECP521_EncryptedPrivateKey) for the holder of `recipient`'s key."""
    if not isinstance(recipient, ec.EllipticCurvePublicKey) or recipient.curve.name != "secp521r1":
        raise KeyTransportError("the OEM provisioning key must be ECDSA secp521r1 (SECP521)")
    ephemeral = ec.generate_private_key(ec.SECP521R1())
    dh_public = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    scalar = contract_key.private_numbers().private_value.to_bytes(SCALAR_SIZE, "big")
    iv = os.urandom(12)
    sealed = AESGCM(_kek(ephemeral, recipient)).encrypt(iv, scalar, None)
    return dh_public, iv + sealed


def decrypt_contract_key(
    dh_public_key: bytes, encrypted: bytes,
    recipient_key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey,
) -> ec.EllipticCurvePrivateKey:
    """The EV side: recover the contract private key with the OEM provisioning key."""
    if not isinstance(recipient_key, ec.EllipticCurvePrivateKey):
        raise KeyTransportError("SECP521 key transport needs a P-521 OEM provisioning key")
    if len(dh_public_key) != DH_PUBLIC_KEY_SIZE or len(encrypted) != ENCRYPTED_KEY_SIZE:
        raise KeyTransportError("DHPublicKey must be 133 and the encrypted key 94 bytes")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP521R1(), bytes(dh_public_key))
        scalar = AESGCM(_kek(recipient_key, peer)).decrypt(encrypted[:12], encrypted[12:], None)
    except Exception as exc:  # InvalidTag, ValueError: one answer for every bad input
        raise KeyTransportError(f"cannot decrypt the contract key: {exc!r}") from None
    return ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP521R1())


def ed448_to_x448_public(key: ed448.Ed448PublicKey) -> x448.X448PublicKey:
    """The X448 public key of an Ed448 public key (RFC 7748's 4-isogeny, u = y^2 / x^2)."""
    n = int.from_bytes(key.public_bytes_raw(), "little")
    y = n & ((1 << 455) - 1)
    if y >= _P448:
        raise KeyTransportError("not a valid Ed448 public key")
    y2 = y * y % _P448
    x2 = (y2 - 1) * pow(_D448 * y2 - 1, _P448 - 2, _P448) % _P448
    if x2 == 0:
        raise KeyTransportError("Ed448 public key of low order")
    u = y2 * pow(x2, _P448 - 2, _P448) % _P448
    return x448.X448PublicKey.from_public_bytes(u.to_bytes(X448_KEY_SIZE, "little"))


def ed448_to_x448_private(key: ed448.Ed448PrivateKey) -> x448.X448PrivateKey:
    """The X448 private key matching `ed448_to_x448_public(key.public_key())`."""
    digest = hashlib.shake_256(key.private_bytes_raw()).digest(114)
    return x448.X448PrivateKey.from_private_bytes(digest[:X448_KEY_SIZE])


def new_x448_transportable_ed448_key() -> ed448.Ed448PrivateKey:
    """An Ed448 contract key whose seed fits X448_EncryptedPrivateKey (57th byte zero)."""
    return ed448.Ed448PrivateKey.from_private_bytes(os.urandom(X448_KEY_SIZE) + b"\x00")


def _kek448(private: x448.X448PrivateKey, public: x448.X448PublicKey) -> bytes:
    return ConcatKDFHash(hashes.SHA512(), 32, OTHER_INFO).derive(private.exchange(public))


def encrypt_contract_key_x448(
    contract_key: ed448.Ed448PrivateKey, recipient: ed448.Ed448PublicKey
) -> tuple[bytes, bytes]:
    """(DHPublicKey, X448_EncryptedPrivateKey) for the holder of the Ed448 `recipient` key."""
    if not isinstance(recipient, ed448.Ed448PublicKey):
        raise KeyTransportError("the OEM provisioning key must be Ed448 (X448)")
    seed = contract_key.private_bytes_raw()
    if seed[X448_KEY_SIZE:] != b"\x00":
        raise KeyTransportError("the Ed448 seed does not fit X448_EncryptedPrivateKey")
    ephemeral = x448.X448PrivateKey.generate()
    dh_public = ephemeral.public_key().public_bytes_raw().ljust(DH_PUBLIC_KEY_SIZE, b"\x00")
    iv = os.urandom(12)
    sealed = AESGCM(_kek448(ephemeral, ed448_to_x448_public(recipient))).encrypt(
        iv, seed[:X448_KEY_SIZE], None)
    return dh_public, iv + sealed


def decrypt_contract_key_x448(
    dh_public_key: bytes, encrypted: bytes,
    recipient_key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey,
) -> ed448.Ed448PrivateKey:
    """The EV side of the X448 key transport, with its Ed448 OEM provisioning key."""
    dh = bytes(dh_public_key)
    if len(dh) != DH_PUBLIC_KEY_SIZE or len(encrypted) != X448_ENCRYPTED_KEY_SIZE \
            or any(dh[X448_KEY_SIZE:]):
        raise KeyTransportError("DHPublicKey must be 56 bytes + zero padding (133), "
                                "the encrypted key 84 bytes")
    if not isinstance(recipient_key, ed448.Ed448PrivateKey):
        raise KeyTransportError("X448 key transport needs an Ed448 OEM provisioning key")
    try:
        peer = x448.X448PublicKey.from_public_bytes(dh[:X448_KEY_SIZE])
        kek = _kek448(ed448_to_x448_private(recipient_key), peer)
        seed = AESGCM(kek).decrypt(encrypted[:12], encrypted[12:], None)
    except Exception as exc:  # InvalidTag, ValueError (all-zero shared secret)
        raise KeyTransportError(f"cannot decrypt the contract key: {exc!r}") from None
    return ed448.Ed448PrivateKey.from_private_bytes(seed + b"\x00")


def _chain(leaf: bytes, subs: Sequence[bytes], cls: Any) -> Any:
    sub = iso20.SubCertificatesType(certificate=tuple(subs)) if subs else None
    return cls(certificate=leaf, sub_certificates=sub)


@dataclass(frozen=True, slots=True)
class InstalledContract:
    """What the EV keeps from a CertificateInstallationRes."""

    emaid: str
    certificate: bytes  # DER contract certificate
    sub_certificates: tuple[bytes, ...]  # DER MO Sub-CAs
    key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey


def accept_installation(
    res: Any,
    oem_provisioning_key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey,
    *,
    v2g_roots: Sequence[x509.Certificate] = (),
    now: dt.datetime | None = None,
) -> InstalledContract:
    """The EV side of a CertificateInstallationRes: check the CPS signature over
    SignedInstallationData (and the CPS chain up to a V2G root when `v2g_roots` is given),
    decrypt the contract key and check it belongs to the contract certificate.
    Raises SignatureError, ChainError or KeyTransportError."""
    from evse.security.chains import common_name, validate_chain
    from evse.security.signatures import verify

    data = res.signed_installation_data
    cps = res.cps_certificate_chain
    cps_subs = tuple(bytes(c) for c in cps.sub_certificates.certificate) \
        if cps.sub_certificates is not None else ()
    if v2g_roots:
        key = validate_chain(bytes(cps.certificate), cps_subs, v2g_roots,
                             now or dt.datetime.now(dt.UTC)).public_key()
    else:
        key = x509.load_der_x509_certificate(bytes(cps.certificate)).public_key()
    verify(res.header.signature, [SignedElement("SignedInstallationData", data)], key)
    contract_key: Any
    if str(data.ecdh_curve) == "SECP521" and data.secp521_encrypted_private_key is not None:
        contract_key = decrypt_contract_key(bytes(data.dh_public_key),
                                            bytes(data.secp521_encrypted_private_key),
                                            oem_provisioning_key)
    elif str(data.ecdh_curve) == "X448" and data.x448_encrypted_private_key is not None:
        contract_key = decrypt_contract_key_x448(bytes(data.dh_public_key),
                                                 bytes(data.x448_encrypted_private_key),
                                                 oem_provisioning_key)
    else:
        raise KeyTransportError(f"ECDHCurve {data.ecdh_curve} without its encrypted key")
    chain = data.contract_certificate_chain
    cert = x509.load_der_x509_certificate(bytes(chain.certificate))
    if cert.public_key() != contract_key.public_key():
        raise KeyTransportError("the decrypted key does not belong to the contract certificate")
    return InstalledContract(
        emaid=common_name(cert),
        certificate=bytes(chain.certificate),
        sub_certificates=tuple(bytes(c) for c in chain.sub_certificates.certificate),
        key=contract_key,
    )


@dataclass(eq=False)
class LocalCps:
    """A certificate provisioning service in process: issues a contract under an MO Sub-CA,
    encrypts its key for the vehicle and signs the installation data with the CPS leaf.

    `pending_polls`: answer None (pending) this many times per request first, to exercise
    EVSEProcessing=Ongoing. `issued` lists (eMAID, contract certificate) in order.
    """

    cps_key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
    cps_chain: Sequence[x509.Certificate]  # CPS leaf, Sub-CA 2, Sub-CA 1
    mo_sub_ca: x509.Certificate  # issues the contract (MO Sub-CA 2)
    mo_sub_ca_key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
    mo_chain: Sequence[x509.Certificate]  # MO Sub-CA 2, Sub-CA 1 (sent with the contract)
    emaid: str
    validity: dt.timedelta = dt.timedelta(days=365)
    pending_polls: int = 0
    issued: list[tuple[str, x509.Certificate]] = field(default_factory=list)
    _polls: dict[bytes, int] = field(default_factory=dict)

    def _issue_contract(
        self, emaid: str, key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey,
        now: dt.datetime
    ) -> x509.Certificate:
        public = key.public_key()
        ski = self.mo_sub_ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.COMMON_NAME, emaid),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evse-stack test CPS"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "MO"),
            ]))
            .issuer_name(self.mo_sub_ca.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + self.validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
        )
        algorithm = hashes.SHA512() if isinstance(self.mo_sub_ca_key,
                                                  ec.EllipticCurvePrivateKey) else None
        return builder.sign(self.mo_sub_ca_key, algorithm)

    def installation_data(
        self, req: Any, *, timestamp: int, session_id: bytes
    ) -> InstallationAnswer | None:
        key = bytes(session_id) + bytes(req.oem_provisioning_certificate_chain.certificate)
        polls = self._polls.get(key, 0)
        if polls < self.pending_polls:
            self._polls[key] = polls + 1
            return None
        self._polls.pop(key, None)
        if not req.maximum_contract_certificate_chains:
            return InstallationAnswer("WARNING_NoCertificateAvailable", reason="EV takes none")
        prov = x509.load_der_x509_certificate(bytes(req.oem_provisioning_certificate_chain
                                                    .certificate))
        recipient = prov.public_key()
        if not isinstance(recipient, (ec.EllipticCurvePublicKey, ed448.Ed448PublicKey)):
            return InstallationAnswer("WARNING_NoCertificateAvailable",
                                      reason="OEM provisioning key is neither P-521 nor Ed448")
        wanted = req.prioritized_emai_ds.emaid if req.prioritized_emai_ds is not None else ()
        emaid = wanted[0] if wanted else self.emaid
        now = dt.datetime.fromtimestamp(timestamp, dt.UTC)
        der = serialization.Encoding.DER
        contract_key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
        if isinstance(recipient, ed448.Ed448PublicKey):
            contract_key = new_x448_transportable_ed448_key()
            dh_public, encrypted = encrypt_contract_key_x448(contract_key, recipient)
            sealed: dict[str, Any] = {"ecdh_curve": iso20.ecdhCurveType.X448,
                                      "x448_encrypted_private_key": encrypted}
        else:
            contract_key = ec.generate_private_key(ec.SECP521R1())
            dh_public, encrypted = encrypt_contract_key(contract_key, recipient)
            sealed = {"ecdh_curve": iso20.ecdhCurveType.SECP521,
                      "secp521_encrypted_private_key": encrypted}
        contract = self._issue_contract(emaid, contract_key, now)
        data = iso20.SignedInstallationDataType(
            id=INSTALLATION_DATA_ID,
            contract_certificate_chain=_chain(contract.public_bytes(der),
                                              [c.public_bytes(der) for c in self.mo_chain],
                                              iso20.ContractCertificateChainType),
            dh_public_key=dh_public,
            **sealed,
        )
        signature = sign(self.cps_key, SignedElement("SignedInstallationData", data))
        cps = [c.public_bytes(der) for c in self.cps_chain]
        self.issued.append((emaid, contract))
        return InstallationAnswer(
            "OK",
            cps_certificate_chain=_chain(cps[0], cps[1:], iso20.CertificateChainType),
            signed_installation_data=data,
            signature=signature,
            remaining_contract_certificate_chains=0,
        )


__all__ = [
    "InstalledContract",
    "KeyTransportError",
    "LocalCps",
    "accept_installation",
    "decrypt_contract_key",
    "decrypt_contract_key_x448",
    "ed448_to_x448_private",
    "ed448_to_x448_public",
    "encrypt_contract_key",
    "encrypt_contract_key_x448",
    "new_x448_transportable_ed448_key",
]
