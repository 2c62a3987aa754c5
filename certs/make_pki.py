"""ISO 15118-20 test PKI: V2G root CA -> CPO Sub-CA 1 -> CPO Sub-CA 2 -> SECC leaf.

For tests and SIL runs only: private keys are written unencrypted. Write them outside the
repository or into certs/out/ (git-ignored); never commit them.

    python -m certs.make_pki [OUT_DIR] [--algorithm secp521r1|ed448]

-20 signs with ECDSA on secp521r1 using SHA-512, or with Ed448. pathLenConstraint pins the
hierarchy to the -20 shape: root (2) -> Sub-CA 1 (1) -> Sub-CA 2 (0) -> leaf.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ALGORITHMS = ("secp521r1", "ed448")
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "out"

PrivateKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey


@dataclass(frozen=True, slots=True)
class PkiFiles:
    """Paths of the PEM files `make_pki` wrote."""

    root_cert: Path
    root_key: Path
    sub_ca1_cert: Path
    sub_ca1_key: Path
    sub_ca2_cert: Path
    sub_ca2_key: Path
    secc_cert: Path
    secc_key: Path
    secc_chain: Path  # leaf, Sub-CA 2, Sub-CA 1: what the SECC sends in TLS


def _new_key(algorithm: str) -> PrivateKey:
    if algorithm == "secp521r1":
        return ec.generate_private_key(ec.SECP521R1())
    if algorithm == "secp256r1":  # ISO 15118-2 (certs/iso2_pki.py)
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ed448":
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {algorithm!r}")


def _name(common_name: str, *, domain_component: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evse-stack test PKI"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
    ]
    if domain_component is not None:
        attributes.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, domain_component))
    return x509.Name(attributes)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage(key: PrivateKey) -> x509.KeyUsage:
    # An EC key may also do static ECDH; an Ed448 key can only sign.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=isinstance(key, ec.EllipticCurvePrivateKey),
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _sign(builder: x509.CertificateBuilder, issuer_key: PrivateKey) -> x509.Certificate:
    # ECDSA signs with SHA-512 (ecdsa_secp521r1_sha512), or SHA-256 on the -2 curve P-256
    # (ecdsa-with-SHA256); Ed448 hashes internally.
    return builder.sign(issuer_key, _signature_hash(issuer_key))


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA512 | None:
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return hashes.SHA256() if key.curve.name == "secp256r1" else hashes.SHA512()


def _issue(
    subject: x509.Name,
    key: PrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: PrivateKey,
    *,
    now: dt.datetime,
    days: int,
    path_length: int | None,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))  # tolerate small clock skew
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.BasicConstraints(ca=path_length is not None, path_length=path_length),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    if path_length is not None:
        builder = builder.add_extension(_ca_key_usage(), critical=True)
    return _sign(builder, issuer_key)


def _write_cert(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def _write_key(path: Path, key: PrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return path


def make_pki(
    out_dir: str | os.PathLike[str],
    algorithm: str = "secp521r1",
    *,
    evse_id: str = "DE*EVS*E0000001",
    hostname: str = "secc.local",
    now: dt.datetime | None = None,
) -> PkiFiles:
    """Create the four-level -20 SECC PKI in `out_dir` and return the file paths.

    The SECC leaf's CN is the EVSE ID and its subjectAltName the charger's DNS name; the EV
    reaches the SECC by a link-local address, so the EV does not match the name, but TLS
    tooling and our own tests can.
    """
    now = now or dt.datetime.now(dt.UTC)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    root_key, sub1_key, sub2_key, secc_key = (_new_key(algorithm) for _ in range(4))
    root_name = _name("V2G Root CA (test)")
    root = _issue(root_name, root_key, None, root_key, now=now, days=3650, path_length=2)
    sub1 = _issue(
        _name("CPO Sub-CA 1 (test)"),
        sub1_key,
        root,
        root_key,
        now=now,
        days=1460,
        path_length=1,
    )
    sub2 = _issue(
        _name("CPO Sub-CA 2 (test)"),
        sub2_key,
        sub1,
        sub1_key,
        now=now,
        days=730,
        path_length=0,
    )
    secc = _issue(
        _name(evse_id, domain_component="CPO"),
        secc_key,
        sub2,
        sub2_key,
        now=now,
        days=365,
        path_length=None,
        extra=(
            (_leaf_key_usage(secc_key), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectAlternativeName([x509.DNSName(hostname)]), False),
        ),
    )
    return PkiFiles(
        root_cert=_write_cert(out / "v2g_root_ca.pem", root),
        root_key=_write_key(out / "v2g_root_ca.key", root_key),
        sub_ca1_cert=_write_cert(out / "cpo_sub_ca1.pem", sub1),
        sub_ca1_key=_write_key(out / "cpo_sub_ca1.key", sub1_key),
        sub_ca2_cert=_write_cert(out / "cpo_sub_ca2.pem", sub2),
        sub_ca2_key=_write_key(out / "cpo_sub_ca2.key", sub2_key),
        secc_cert=_write_cert(out / "secc.pem", secc),
        secc_key=_write_key(out / "secc.key", secc_key),
        secc_chain=_write_cert(out / "secc_chain.pem", secc, sub2, sub1),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir", nargs="?", default=str(DEFAULT_OUT_DIR))
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="secp521r1")
    parser.add_argument("--evse-id", default="DE*EVS*E0000001")
    parser.add_argument("--hostname", default="secc.local")
    args = parser.parse_args(argv)
    files = make_pki(args.out_dir, args.algorithm, evse_id=args.evse_id, hostname=args.hostname)
    for field in files.__dataclass_fields__:
        print(f"{field:13} {getattr(files, field)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
