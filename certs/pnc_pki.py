"""The complete ISO 15118-20 Plug & Charge test PKI, in memory (and optionally on disk).

For tests and SIL runs only: the keys live in memory or are written unencrypted into a
directory you name (tests use a temporary directory; `certs/out/` is git-ignored). Never
commit them.

    python -m certs.pnc_pki OUT_DIR [--algorithm secp521r1|ed448] [--emaid EMAID]

Hierarchies (each CA's pathLenConstraint pins the -20 shape root (2) -> Sub-CA 1 (1) ->
Sub-CA 2 (0) -> leaf), all in one algorithm (ECDSA secp521r1 with SHA-512, or Ed448):

- V2G:  V2G root -> CPO Sub-CA 1 -> CPO Sub-CA 2 -> SECC leaf          (TLS server)
- CPS:  V2G root -> CPS Sub-CA 1 -> CPS Sub-CA 2 -> CPS leaf           (signs installation data)
- MO:   MO root  -> MO Sub-CA 1  -> MO Sub-CA 2  -> contract (CN = eMAID, DC = MO)
- OEM:  OEM root -> OEM Sub-CA 1 -> OEM Sub-CA 2 -> vehicle (CN = EVCCID, TLS client) and
        OEM provisioning certificate (CN = PCID, DC = OEM)

Faulty variants for the negative tests (`PncPki.variants`): contract expired, not yet valid,
signed by the wrong key (names chain, signature does not), issued under an MO root that is not
installed, under an expired MO Sub-CA 2, with CA=true, without digitalSignature, and an OEM
provisioning certificate that expired. OCSP responses (DER, `cryptography.x509.ocsp`) for the
MO Sub-CAs, the contract, the OEM provisioning certificate and the SECC leaf (stapled in TLS):
good ones, plus "revoked" for the contract, each signed by the certificate's issuer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.make_pki import (
    ALGORITHMS,
    PrivateKey,
    _ca_key_usage,
    _leaf_key_usage,
    _name,
    _new_key,
    _sign,
    _signature_hash,
    _write_cert,
    _write_key,
)

DEFAULT_EMAID = "DEEVSC00000001X"
DEFAULT_EVCC_ID = "WMIV1234567890ABCDEX"
DEFAULT_PCID = "WMIV1234567890ABCDEX1"

DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True, slots=True)
class Chain:
    """A leaf with the Sub-CAs that issued it (nearest first) and the root above them."""

    leaf: Credential
    subs: tuple[Credential, ...]  # Sub-CA 2, Sub-CA 1
    root: Credential

    @property
    def leaf_der(self) -> bytes:
        return self.leaf.der

    @property
    def sub_ders(self) -> tuple[bytes, ...]:
        return tuple(s.der for s in self.subs)

    @property
    def key(self) -> PrivateKey:
        return self.leaf.key

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """Leaf, Sub-CA 2, Sub-CA 1, root."""
        return (self.leaf.cert, *(s.cert for s in self.subs), self.root.cert)


def _key_usage(*, sign: bool, agree: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=agree,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue(
    subject: x509.Name,
    key: PrivateKey,
    issuer: Credential | None,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    path_length: int | None,
    ca: bool | None = None,
    key_usage: x509.KeyUsage | None = None,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
    signing_key: PrivateKey | None = None,
) -> x509.Certificate:
    """One certificate. `issuer` None: self-signed. `signing_key` overrides the issuer's key
    (to make a certificate whose names chain but whose signature does not verify).

    Roots get a 62-bit serial number: the EV names them in CertificateInstallationReq
    (ListOfRootCertificateIDs/X509SerialNumber, xs:integer), and exi_codec's decoder does
    not take integers beyond 64 bits yet (RFC 5280 allows 20 octets)."""
    public_key = key.public_key()
    is_ca = (path_length is not None) if ca is None else ca
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number() if issuer is not None
                       else secrets.randbits(61) | 1 << 61)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    if key_usage is None:
        key_usage = _ca_key_usage() if is_ca else _leaf_key_usage(key)
    builder = builder.add_extension(key_usage, critical=True)
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    if signing_key is None:
        signing_key = issuer.key if issuer is not None else key
    return _sign(builder, signing_key)


class _Factory:
    def __init__(self, algorithm: str, now: dt.datetime) -> None:
        self.algorithm = algorithm
        self.now = now

    def key(self) -> PrivateKey:
        return _new_key(self.algorithm)

    def window(self, days: int) -> tuple[dt.datetime, dt.datetime]:
        return self.now - dt.timedelta(hours=1), self.now + days * DAY

    def root(self, cn: str, dc: str | None = None) -> Credential:
        key = self.key()
        nb, na = self.window(3650)
        cert = issue(_name(cn, domain_component=dc), key, None, not_before=nb, not_after=na,
                     path_length=2)
        return Credential(cert, key)

    def ca(self, cn: str, issuer: Credential, path_length: int, *, dc: str | None = None,
           days: int = 1460, not_before: dt.datetime | None = None,
           not_after: dt.datetime | None = None) -> Credential:
        key = self.key()
        nb, na = self.window(days)
        cert = issue(_name(cn, domain_component=dc), key, issuer,
                     not_before=not_before or nb, not_after=not_after or na,
                     path_length=path_length)
        return Credential(cert, key)

    def leaf(self, cn: str, issuer: Credential, *, dc: str | None, days: int = 365,
             not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
             ca: bool = False, sign: bool = True, agree: bool | None = None,
             eku: Sequence[x509.ObjectIdentifier] = (),
             signing_key: PrivateKey | None = None) -> Credential:
        key = self.key()
        nb, na = self.window(days)
        if agree is None:  # an EC key may also do static ECDH; an Ed448 key can only sign
            agree = isinstance(key, ec.EllipticCurvePrivateKey)
        extra: list[tuple[x509.ExtensionType, bool]] = []
        if eku:
            extra.append((x509.ExtendedKeyUsage(list(eku)), False))
        cert = issue(
            _name(cn, domain_component=dc), key, issuer,
            not_before=not_before or nb, not_after=not_after or na,
            path_length=None, ca=ca,
            key_usage=_key_usage(sign=sign, agree=agree) if not ca else _ca_key_usage(),
            extra=extra, signing_key=signing_key,
        )
        return Credential(cert, key)


def ocsp_response(
    cert: x509.Certificate,
    issuer: Credential,
    *,
    now: dt.datetime,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    revoked_at: dt.datetime | None = None,
    valid_for: dt.timedelta = 7 * DAY,
) -> bytes:
    """A DER OCSP response about `cert`, signed by its issuer (no delegated responder)."""
    algorithm = _signature_hash(issuer.key)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer.cert,
        algorithm=hashes.SHA256(),  # CertID hash (SHA-256: what responders commonly use)
        cert_status=status,
        this_update=now - dt.timedelta(minutes=5),
        next_update=now + valid_for,
        revocation_time=(revoked_at or now - DAY)
        if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=x509.ReasonFlags.key_compromise
        if status == ocsp.OCSPCertStatus.REVOKED else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.cert)
    response = builder.sign(issuer.key, algorithm)
    return response.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class PncPki:
    """Every hierarchy of the -20 Plug & Charge ecosystem, plus faulty variants."""

    algorithm: str
    now: dt.datetime
    emaid: str
    evcc_id: str
    pcid: str
    v2g_root: Credential
    cpo: Chain  # SECC leaf
    cps: Chain  # CPS leaf (under the V2G root)
    mo_root: Credential
    contract: Chain
    oem_root: Credential
    vehicle: Chain
    oem_provisioning: Chain
    variants: dict[str, Chain] = field(default_factory=dict)
    ocsp: dict[str, bytes] = field(default_factory=dict)

    @property
    def mo_roots(self) -> tuple[x509.Certificate, ...]:
        return (self.mo_root.cert,)

    @property
    def oem_roots(self) -> tuple[x509.Certificate, ...]:
        return (self.oem_root.cert,)

    def issue_vehicle(self, evcc_id: str, *, days: int = 365) -> Chain:
        """Another vehicle (TLS client) certificate under the same OEM Sub-CA 2, e.g. a
        second car for the pause/resume binding tests."""
        oem2 = self.vehicle.subs[0]
        leaf = _Factory(self.algorithm, self.now).leaf(
            evcc_id, oem2, dc="OEM", days=days, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        return Chain(leaf, self.vehicle.subs, self.oem_root)

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """PEM files: `<name>.pem` (leaf first, then Sub-CAs), `<name>.key` (mode 0600),
        `<root>.pem`. Returns {name: path}."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        for name, root in (("v2g_root", self.v2g_root), ("mo_root", self.mo_root),
                           ("oem_root", self.oem_root)):
            files[name] = _write_cert(out / f"{name}.pem", root.cert)
        chains = {"secc": self.cpo, "cps": self.cps, "contract": self.contract,
                  "vehicle": self.vehicle, "oem_provisioning": self.oem_provisioning}
        for name, chain in {**chains, **self.variants}.items():
            files[name] = _write_cert(out / f"{name}.pem", chain.leaf.cert,
                                      *(s.cert for s in chain.subs))
            files[f"{name}_key"] = _write_key(out / f"{name}.key", chain.key)
        # for a local CPS (`evse secc --cps-sim DIR`): the MO Sub-CA 2 that issues contracts,
        # with its Sub-CA 1, and its key
        mo_subs = self.contract.subs
        files["mo_sub_ca"] = _write_cert(out / "mo_sub_ca.pem", *(s.cert for s in mo_subs))
        files["mo_sub_ca_key"] = _write_key(out / "mo_sub_ca.key", mo_subs[0].key)
        for name, der in self.ocsp.items():
            path = out / f"ocsp_{name}.der"
            path.write_bytes(der)
            files[f"ocsp_{name}"] = path
        return files


def make_pnc_pki(
    algorithm: str = "secp521r1",
    *,
    emaid: str = DEFAULT_EMAID,
    evcc_id: str = DEFAULT_EVCC_ID,
    pcid: str = DEFAULT_PCID,
    evse_id: str = "DE*EVS*E0000001",
    now: dt.datetime | None = None,
) -> PncPki:
    """Create the whole PKI in memory (about 30 key pairs: some 10 ms for either algorithm)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {algorithm!r}")
    now = now or dt.datetime.now(dt.UTC)
    f = _Factory(algorithm, now)

    v2g_root = f.root("V2G Root CA (test)", "V2G")
    cpo1 = f.ca("CPO Sub-CA 1 (test)", v2g_root, 1, dc="CPO")
    cpo2 = f.ca("CPO Sub-CA 2 (test)", cpo1, 0, dc="CPO", days=730)
    secc = f.leaf(evse_id, cpo2, dc="CPO", eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    cps1 = f.ca("CPS Sub-CA 1 (test)", v2g_root, 1, dc="CPS")
    cps2 = f.ca("CPS Sub-CA 2 (test)", cps1, 0, dc="CPS", days=730)
    cps = f.leaf("CPS Leaf (test)", cps2, dc="CPS", agree=False)

    mo_root = f.root("MO Root CA (test)", "MO")
    mo1 = f.ca("MO Sub-CA 1 (test)", mo_root, 1, dc="MO")
    mo2 = f.ca("MO Sub-CA 2 (test)", mo1, 0, dc="MO", days=730)
    contract = f.leaf(emaid, mo2, dc="MO")

    oem_root = f.root("OEM Root CA (test)", "OEM")
    oem1 = f.ca("OEM Sub-CA 1 (test)", oem_root, 1, dc="OEM")
    oem2 = f.ca("OEM Sub-CA 2 (test)", oem1, 0, dc="OEM", days=730)
    vehicle = f.leaf(evcc_id, oem2, dc="OEM", eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    prov = f.leaf(pcid, oem2, dc="OEM", days=3650)

    past = (now - 400 * DAY, now - DAY)
    future = (now + DAY, now + 400 * DAY)
    foreign_root = f.root("Foreign MO Root CA (test)", "MO")
    foreign1 = f.ca("Foreign MO Sub-CA 1 (test)", foreign_root, 1, dc="MO")
    foreign2 = f.ca("Foreign MO Sub-CA 2 (test)", foreign1, 0, dc="MO")
    mo2_expired = f.ca("MO Sub-CA 2 (test, expired)", mo1, 0, dc="MO",
                       not_before=past[0], not_after=past[1])
    mo_subs = (mo2, mo1)
    variants = {
        "contract_expired": Chain(
            f.leaf(emaid, mo2, dc="MO", not_before=past[0], not_after=past[1]), mo_subs, mo_root),
        "contract_not_yet_valid": Chain(
            f.leaf(emaid, mo2, dc="MO", not_before=future[0], not_after=future[1]),
            mo_subs, mo_root),
        # Names chain to MO Sub-CA 2, but Sub-CA 1's key signed it.
        "contract_wrong_chain": Chain(
            f.leaf(emaid, mo2, dc="MO", signing_key=mo1.key), mo_subs, mo_root),
        "contract_unknown_root": Chain(
            f.leaf(emaid, foreign2, dc="MO"), (foreign2, foreign1), foreign_root),
        "contract_sub_ca_expired": Chain(
            f.leaf(emaid, mo2_expired, dc="MO"), (mo2_expired, mo1), mo_root),
        "contract_ca_flag": Chain(f.leaf(emaid, mo2, dc="MO", ca=True), mo_subs, mo_root),
        "contract_no_signature_usage": Chain(
            f.leaf(emaid, mo2, dc="MO", sign=False, agree=True), mo_subs, mo_root),
        "oem_provisioning_expired": Chain(
            f.leaf(pcid, oem2, dc="OEM", not_before=past[0], not_after=past[1]),
            (oem2, oem1), oem_root),
    }
    responses = {
        "mo_sub1": ocsp_response(mo1.cert, mo_root, now=now),
        "mo_sub2": ocsp_response(mo2.cert, mo1, now=now),
        "contract": ocsp_response(contract.cert, mo2, now=now),
        "contract_revoked": ocsp_response(contract.cert, mo2, now=now,
                                          status=ocsp.OCSPCertStatus.REVOKED),
        "oem_provisioning": ocsp_response(prov.cert, oem2, now=now),
        "secc": ocsp_response(secc.cert, cpo2, now=now),  # stapled by the SECC (TLS)
    }
    return PncPki(
        algorithm=algorithm,
        now=now,
        emaid=emaid,
        evcc_id=evcc_id,
        pcid=pcid,
        v2g_root=v2g_root,
        cpo=Chain(secc, (cpo2, cpo1), v2g_root),
        cps=Chain(cps, (cps2, cps1), v2g_root),
        mo_root=mo_root,
        contract=Chain(contract, mo_subs, mo_root),
        oem_root=oem_root,
        vehicle=Chain(vehicle, (oem2, oem1), oem_root),
        oem_provisioning=Chain(prov, (oem2, oem1), oem_root),
        variants=variants,
        ocsp=responses,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="secp521r1")
    parser.add_argument("--emaid", default=DEFAULT_EMAID)
    parser.add_argument("--evcc-id", default=DEFAULT_EVCC_ID)
    args = parser.parse_args(argv)
    pki = make_pnc_pki(args.algorithm, emaid=args.emaid, evcc_id=args.evcc_id)
    for name, path in sorted(pki.write(args.out_dir).items()):
        print(f"{name:34} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
