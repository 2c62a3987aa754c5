"""Plug & Charge wiring for `evse secc`.

- `load_verifier(mo_roots, oem_roots=None)`: an `evse.security.PncVerifier` from PEM bundles
  (`evse secc --pnc-mo-roots FILE`, `[tls] pnc_mo_roots`);
- `RecordingVerifier`: wraps any verifier and records every check it made (outcome, eMAID,
  the request's signature algorithm, wall time of the check), for logs and the demo summary.
  It lives here and not in `evse.security` because it reads a clock;
- `secc_pnc_changes(...)`: the SeccConfig changes of `evse secc --pnc-mo-roots` and friends.

`evse demo --pnc` (the test PKI, the EV's credentials) lives in `simulators.demo.pnc`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evse.protocol.config import SeccConfig

log = logging.getLogger("evse.pnc")

SIGNATURE_ALGORITHMS = {
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": "ECDSA secp521r1 + SHA-512",
    "urn:iso:std:iso:15118:-20:Security:xmldsig#Ed448": "Ed448 + SHAKE256",
    "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed448": "Ed448, RFC 9231 URI (not -20)",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": "ECDSA + SHA-256 (-2 style)",
}


def signature_algorithm_name(uri: str | None) -> str:
    if uri is None:
        return "none"
    return SIGNATURE_ALGORITHMS.get(uri, uri)


def load_verifier(mo_roots: str | Path, oem_roots: str | Path | None = None) -> Any:
    """A PncVerifier trusting the MO roots (and OEM roots) of these PEM bundles.

    Raises ValueError when a file holds no certificate, OSError when it cannot be read."""
    from evse.security import PncVerifier, load_pem_certificates

    mo = load_pem_certificates(mo_roots)
    oem = load_pem_certificates(oem_roots) if oem_roots is not None else []
    if not mo:
        raise ValueError(f"no certificate in {mo_roots}")
    return PncVerifier(mo_roots=mo, oem_roots=oem)


# -- recording -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerificationRecord:
    """One check a verifier made."""

    check: str  # "authorization", "certificate_installation", "metering_confirmation"
    session_id: str  # hex
    response_code: str
    reason: str
    emaid: str | None
    signature_algorithm: str | None  # SignatureMethod URI in the request header, if any
    seconds: float  # wall time of the check (perf_counter)

    @property
    def ok(self) -> bool:
        return self.response_code.startswith("OK")


def _signature_method(req: Any) -> str | None:
    signature = getattr(getattr(req, "header", None), "signature", None)
    signed_info = getattr(signature, "signed_info", None)
    method = getattr(signed_info, "signature_method", None)
    algorithm = getattr(method, "algorithm", None)
    return None if algorithm is None else str(algorithm)


class RecordingVerifier:
    """Delegates to `inner` (an `evse.protocol.config.PncVerifier`) and records each check.

    Any other attribute (e.g. `contract_of`) is the inner verifier's."""

    def __init__(self, inner: Any, *, maxlen: int = 1000,
                 on_record: Callable[[VerificationRecord], None] | None = None) -> None:
        self.inner = inner
        self.records: deque[VerificationRecord] = deque(maxlen=maxlen)
        self.on_record = on_record

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _run(self, check: str, method: Callable[..., Any], req: Any, timestamp: int,
             session_id: bytes) -> Any:
        t0 = time.perf_counter()
        verdict = method(req, timestamp=timestamp, session_id=session_id)
        record = VerificationRecord(
            check=check, session_id=bytes(session_id).hex().upper(),
            response_code=verdict.response_code, reason=verdict.reason, emaid=verdict.emaid,
            signature_algorithm=_signature_method(req), seconds=time.perf_counter() - t0,
        )
        self.records.append(record)
        log.log(logging.INFO if record.ok else logging.WARNING,
                "PnC %s check, session %s: %s%s (%s, %.2f ms)%s", check, record.session_id,
                record.response_code, f" eMAID {record.emaid}" if record.emaid else "",
                signature_algorithm_name(record.signature_algorithm), record.seconds * 1e3,
                f": {record.reason}" if record.reason else "")
        if self.on_record is not None:
            self.on_record(record)
        return verdict

    def verify_authorization(self, req: Any, *, timestamp: int, session_id: bytes) -> Any:
        return self._run("authorization", self.inner.verify_authorization, req, timestamp,
                         session_id)

    def verify_certificate_installation(self, req: Any, *, timestamp: int,
                                        session_id: bytes) -> Any:
        return self._run("certificate_installation", self.inner.verify_certificate_installation,
                         req, timestamp, session_id)

    def verify_metering_confirmation(self, req: Any, *, timestamp: int,
                                     session_id: bytes) -> Any:
        return self._run("metering_confirmation", self.inner.verify_metering_confirmation, req,
                         timestamp, session_id)

    def of(self, check: str) -> list[VerificationRecord]:
        return [r for r in self.records if r.check == check]


# -- `evse secc` options ---------------------------------------------------------------------


def secc_pnc_changes(mo_roots: str | Path | None, *, oem_roots: str | Path | None = None,
                     cps_sim: str | Path | None = None) -> dict[str, Any]:
    """SeccConfig changes for `--pnc-mo-roots` / `[tls] pnc_mo_roots` ({} without roots).

    PnC is offered (over TLS only, the core's rule); a verified contract still goes to the
    server's authorization hook (RequestAuthorization with the eMAID): without a backend the
    adapter grants it and logs the eMAID. PnC sessions are asked for MeteringConfirmation.
    `oem_roots` (PEM): the OEM provisioning chain of a CertificateInstallationReq is checked
    against them. `cps_sim` (a `python -m certs.pnc_pki DIR` directory): offer
    CertificateInstallation, answered by a local CPS (test benches only)."""
    if mo_roots is None:
        if oem_roots is not None or cps_sim is not None:
            raise ValueError("OEM roots and a CPS need Plug & Charge (MO roots)")
        return {}
    verifier = RecordingVerifier(load_verifier(mo_roots, oem_roots))
    changes: dict[str, Any] = {"offer_pnc": True, "pnc_verifier": verifier,
                               "pnc_metering_confirmation": True}
    if cps_sim is not None:
        changes["certificate_installation"] = local_cps_from_dir(cps_sim)
    return changes


def local_cps_from_dir(directory: str | Path, emaid: str | None = None) -> Any:
    """A LocalCps from a `certs.pnc_pki` directory: cps.pem/.key (the CPS chain and leaf key),
    mo_sub_ca.pem/.key (MO Sub-CA 2 + Sub-CA 1, the key of Sub-CA 2). Test benches only."""
    from cryptography.hazmat.primitives import serialization

    from evse.security import load_pem_certificates
    from evse.security.cps import LocalCps

    d = Path(directory)
    missing = [n for n in ("cps.pem", "cps.key", "mo_sub_ca.pem", "mo_sub_ca.key")
               if not (d / n).is_file()]
    if missing:
        raise ValueError(f"{d} is not a certs.pnc_pki directory (missing {', '.join(missing)})")

    def key(name: str) -> Any:
        return serialization.load_pem_private_key((d / name).read_bytes(), password=None)

    mo_chain = load_pem_certificates(d / "mo_sub_ca.pem")
    return LocalCps(cps_key=key("cps.key"), cps_chain=load_pem_certificates(d / "cps.pem"),
                    mo_sub_ca=mo_chain[0], mo_sub_ca_key=key("mo_sub_ca.key"),
                    mo_chain=mo_chain, emaid=emaid or DEMO_INSTALLED_EMAID)


# The eMAID the local CPS issues unless told otherwise (`--cps-sim`, the demo).
DEMO_INSTALLED_EMAID = "DEEVSC00000042K"


def replace_config(config: SeccConfig, changes: dict[str, Any]) -> SeccConfig:
    """`config` with these field changes (itself without any)."""
    return dataclasses.replace(config, **changes) if changes else config


__all__ = [
    "RecordingVerifier",
    "VerificationRecord",
    "load_verifier",
    "replace_config",
    "secc_pnc_changes",
    "signature_algorithm_name",
]


def iso2_pnc_from_dir(directory: str | Path, *, receipt_required: bool = True) -> Any:
    """-2 Plug & Charge from a `certs.iso2_pki` directory (test benches): the contract checks
    against mo_root.pem (and mo_crl.pem), a local SA provisioning service from prov.pem/.key
    and mo_sub_ca.pem/.key (issuing contracts for the eMAID of contract.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from evse.security.chains import common_name, load_pem_certificates
    from evse.security.iso2_pnc import Iso2ContractVerifier, Iso2PncService, Iso2Provisioning

    d = Path(directory)

    def key(name: str) -> ec.EllipticCurvePrivateKey:
        loaded = load_pem_private_key((d / name).read_bytes(), None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{d / name}: not an EC key")
        return loaded

    crl = d / "mo_crl.pem"
    crls = [x509.load_pem_x509_crl(crl.read_bytes())] if crl.exists() else []
    verifier = Iso2ContractVerifier(load_pem_certificates(d / "mo_root.pem"), crls=crls)
    prov = load_pem_certificates(d / "prov.pem")
    emaid = common_name(load_pem_certificates(d / "contract.pem")[0])
    provisioning = Iso2Provisioning(
        prov_leaf=prov[0], prov_subs=tuple(prov[1:]), prov_key=key("prov.key"),
        mo_sub_ca=tuple(load_pem_certificates(d / "mo_sub_ca.pem")),
        mo_sub_ca_key=key("mo_sub_ca.key"), emaid=emaid)
    return Iso2PncService(verifier, provisioning=provisioning,
                          receipt_required=receipt_required)
