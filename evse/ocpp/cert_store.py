"""Root certificates installed by the CSMS (OCPP 2.0.1 M03-M05: InstallCertificate,
DeleteCertificate, GetInstalledCertificateIds): one PEM file per certificate in a directory,
`<type>/<sha256 of the DER>.pem`, identified to the CSMS by its CertificateHashData.

Plain file storage (no network, no clock). Only CA certificates are taken: a leaf, an expired
certificate or something that is not a certificate is refused and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from evse.security.chains import subject_key_bits

__all__ = ["ROOT_TYPES", "ROOT_TYPES_201", "CertStore", "hash_data"]

ROOT_TYPES_201 = ("V2GRootCertificate", "MORootCertificate", "CSMSRootCertificate",
                  "ManufacturerRootCertificate")
# 2.1 adds OEMRootCertificate: roots of the vehicle certificates in -20's two-way TLS
ROOT_TYPES = (*ROOT_TYPES_201, "OEMRootCertificate")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_data(cert: x509.Certificate) -> dict[str, Any]:
    """CertificateHashDataType of a root (its own issuer)."""
    return {"hashAlgorithm": "SHA256", "issuerNameHash": _sha256(cert.issuer.public_bytes()),
            "issuerKeyHash": _sha256(subject_key_bits(cert)),
            "serialNumber": f"{cert.serial_number:x}"}


class CertStore:
    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)
        # called with (certificate type, "installed" | "deleted") after each change, so the
        # SECC's trust follows the store (evse/aio/ocpp_security.py); must not block
        self.listeners: list[Callable[[str, str], None]] = []

    def _changed(self, cert_type: str, what: str) -> None:
        for listener in self.listeners:
            listener(cert_type, what)

    def install(self, cert_type: str, pem: str, now: float) -> tuple[str, str]:
        """(status, reason): Accepted, or Rejected with why."""
        if cert_type not in ROOT_TYPES:
            return "Rejected", f"unknown certificate type {cert_type}"
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            return "Rejected", "not a PEM certificate"
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            return "Rejected", "not a CA certificate"
        when = dt.datetime.fromtimestamp(now, dt.UTC)
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            return "Rejected", "not valid now"
        der = cert.public_bytes(serialization.Encoding.DER)
        path = self.dir / cert_type / f"{_sha256(der)}.pem"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp, path)  # never a half-written root
        self._changed(cert_type, "installed")
        return "Accepted", ""

    def installed(self, cert_types: tuple[str, ...] = ()) -> list[tuple[str, x509.Certificate,
                                                                         Path]]:
        out = []
        for t in ROOT_TYPES:
            if cert_types and t not in cert_types:
                continue
            for path in sorted((self.dir / t).glob("*.pem")):
                out.append((t, x509.load_pem_x509_certificate(path.read_bytes()), path))
        return out

    def ids(self, cert_types: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """CertificateHashDataChainType for GetInstalledCertificateIds."""
        return [{"certificateType": t, "certificateHashData": hash_data(c)}
                for t, c, _p in self.installed(cert_types)]

    def delete(self, data: dict[str, Any]) -> str:
        """Accepted or NotFound (matched by issuer name/key hash and serial)."""
        keys = ("issuerNameHash", "issuerKeyHash", "serialNumber")
        for t, cert, path in self.installed():
            mine = hash_data(cert)
            if all(str(mine[k]).lower() == str(data.get(k, "")).lower() for k in keys):
                path.unlink()
                self._changed(t, "deleted")
                return "Accepted"
        return "NotFound"

    def certificates(self, cert_type: str) -> list[x509.Certificate]:
        """Every installed root of a type (e.g. the MO roots for the PnC verifier)."""
        return [c for _t, c, _p in self.installed((cert_type,))]

    def pem_bundle(self, cert_type: str) -> bytes:
        """Every installed root of a type as one PEM bundle (e.g. MO roots for PnC)."""
        return b"".join(p.read_bytes() for _t, _c, p in self.installed((cert_type,)))
