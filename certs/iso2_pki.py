"""The ISO 15118-2 Plug & Charge test PKI (P-256), in memory (and optionally on disk).

For tests and SIL runs only, like `certs.pnc_pki` (the -20 one): keys live in memory or are
written unencrypted into a directory you name; never commit them.

    python -m certs.iso2_pki OUT_DIR [--emaid EMAID]

-2 uses one algorithm everywhere: keys on secp256r1, certificate signatures ecdsa-with-SHA256.
The hierarchies have the -2 shape, pinned by pathLenConstraint root (2) -> Sub-CA 1 (1) ->
Sub-CA 2 (0) -> leaf, with CAs carrying keyCertSign + cRLSign (critical) and leaves
digitalSignature (+ keyAgreement: the SECC leaf for the TLS suites, the contract and OEM
provisioning keys for the ECDH of certificate installation):

- V2G:  V2G root -> CPO Sub-CA 1 -> CPO Sub-CA 2 -> SECC leaf (CN = EVSE ID, DC = CPO; TLS)
- Prov: V2G root -> Prov Sub-CA 1 -> Prov Sub-CA 2 -> SA provisioning leaf (signs the
        CertificateInstallation/Update responses)
- MO:   MO root  -> MO Sub-CA 1  -> MO Sub-CA 2  -> contract (CN = eMAID, DC = MO)
- OEM:  OEM root -> OEM Sub-CA 1 -> OEM Sub-CA 2 -> OEM provisioning (CN = PCID, DC = OEM)

Validity periods are ours (root 10 years, Sub-CA 1 4 years, Sub-CA 2 2 years, SECC leaf 90
days, contract 2 years, OEM provisioning 10 years): the standard's maxima are not verified
here (no copy of ISO 15118-2 at hand).

Faulty contract variants for the negative tests (`Iso2Pki.variants`): expired, issued under
an MO root that is not installed (wrong root), signed by the wrong key, and revoked (listed in
`Iso2Pki.crl`, the CRL MO Sub-CA 2 issues; also an OCSP "revoked" response in `ocsp`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.make_pki import _write_cert, _write_key
from certs.pnc_pki import DAY, Chain, Credential, _Factory, ocsp_response

ALGORITHM = "secp256r1"
DEFAULT_EMAID = "DEEVSC00000002X"
DEFAULT_PCID = "WMIV1234567890ABCD2"
DEFAULT_EVSE_ID = "DE*EVS*E0000002"


@dataclass(frozen=True)
class Iso2Pki:
    """Every hierarchy of the -2 Plug & Charge ecosystem, plus faulty contract variants."""

    now: dt.datetime
    emaid: str
    pcid: str
    v2g_root: Credential
    cpo: Chain  # SECC leaf (TLS 1.2 server)
    prov: Chain  # SA provisioning leaf (signs CertificateInstallation/UpdateRes)
    mo_root: Credential
    contract: Chain
    oem_root: Credential
    oem_provisioning: Chain
    crl: x509.CertificateRevocationList  # by MO Sub-CA 2: lists variants["contract_revoked"]
    variants: dict[str, Chain] = field(default_factory=dict)
    ocsp: dict[str, bytes] = field(default_factory=dict)
    _factory: _Factory | None = field(default=None, repr=False, compare=False)

    @property
    def mo_roots(self) -> tuple[x509.Certificate, ...]:
        return (self.mo_root.cert,)

    @property
    def v2g_roots(self) -> tuple[x509.Certificate, ...]:
        return (self.v2g_root.cert,)

    def issue_contract(self, emaid: str, *, days: int = 730) -> Chain:
        """A new contract certificate under MO Sub-CA 2 (what a CPS hands out)."""
        factory = self._factory or _Factory(ALGORITHM, self.now)
        mo2 = self.contract.subs[0]
        return Chain(factory.leaf(emaid, mo2, dc="MO", days=days), self.contract.subs,
                     self.mo_root)

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """PEM files as `certs.pnc_pki` writes them, plus `mo_crl.pem`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        for name, root in (("v2g_root", self.v2g_root), ("mo_root", self.mo_root),
                           ("oem_root", self.oem_root)):
            files[name] = _write_cert(out / f"{name}.pem", root.cert)
        chains = {"secc": self.cpo, "prov": self.prov, "contract": self.contract,
                  "oem_provisioning": self.oem_provisioning}
        for name, chain in {**chains, **self.variants}.items():
            files[name] = _write_cert(out / f"{name}.pem", chain.leaf.cert,
                                      *(s.cert for s in chain.subs))
            files[f"{name}_key"] = _write_key(out / f"{name}.key", chain.key)
        mo_subs = self.contract.subs
        files["mo_sub_ca"] = _write_cert(out / "mo_sub_ca.pem", *(s.cert for s in mo_subs))
        files["mo_sub_ca_key"] = _write_key(out / "mo_sub_ca.key", mo_subs[0].key)
        crl = out / "mo_crl.pem"
        crl.write_bytes(self.crl.public_bytes(serialization.Encoding.PEM))
        files["mo_crl"] = crl
        return files


def make_crl(issuer: Credential, revoked: Sequence[x509.Certificate], *,
             now: dt.datetime) -> x509.CertificateRevocationList:
    """A CRL signed by `issuer` (ecdsa-with-SHA256) listing `revoked`."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + 7 * DAY)
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - DAY)
            .build()
        )
    return builder.sign(issuer.key, hashes.SHA256())


def make_iso2_pki(
    *,
    emaid: str = DEFAULT_EMAID,
    pcid: str = DEFAULT_PCID,
    evse_id: str = DEFAULT_EVSE_ID,
    now: dt.datetime | None = None,
) -> Iso2Pki:
    """Create the whole -2 PKI in memory (some 25 P-256 key pairs: a few ms)."""
    now = now or dt.datetime.now(dt.UTC)
    f = _Factory(ALGORITHM, now)

    v2g_root = f.root("V2G Root CA (-2 test)", "V2G")
    cpo1 = f.ca("CPO Sub-CA 1 (-2 test)", v2g_root, 1, dc="CPO")
    cpo2 = f.ca("CPO Sub-CA 2 (-2 test)", cpo1, 0, dc="CPO", days=730)
    secc = f.leaf(evse_id, cpo2, dc="CPO", days=90, eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    prov1 = f.ca("Prov Sub-CA 1 (-2 test)", v2g_root, 1, dc="CPS")
    prov2 = f.ca("Prov Sub-CA 2 (-2 test)", prov1, 0, dc="CPS", days=730)
    prov = f.leaf("SA Provisioning (-2 test)", prov2, dc="CPS", agree=False)

    mo_root = f.root("MO Root CA (-2 test)", "MO")
    mo1 = f.ca("MO Sub-CA 1 (-2 test)", mo_root, 1, dc="MO")
    mo2 = f.ca("MO Sub-CA 2 (-2 test)", mo1, 0, dc="MO", days=730)
    mo_subs = (mo2, mo1)
    contract = f.leaf(emaid, mo2, dc="MO", days=730)

    oem_root = f.root("OEM Root CA (-2 test)", "OEM")
    oem1 = f.ca("OEM Sub-CA 1 (-2 test)", oem_root, 1, dc="OEM")
    oem2 = f.ca("OEM Sub-CA 2 (-2 test)", oem1, 0, dc="OEM", days=730)
    prov_oem = f.leaf(pcid, oem2, dc="OEM", days=3650)

    past = (now - 400 * DAY, now - DAY)
    foreign_root = f.root("Foreign MO Root CA (-2 test)", "MO")
    foreign1 = f.ca("Foreign MO Sub-CA 1 (-2 test)", foreign_root, 1, dc="MO")
    foreign2 = f.ca("Foreign MO Sub-CA 2 (-2 test)", foreign1, 0, dc="MO")
    revoked = f.leaf(emaid, mo2, dc="MO")
    variants = {
        "contract_expired": Chain(
            f.leaf(emaid, mo2, dc="MO", not_before=past[0], not_after=past[1]), mo_subs, mo_root),
        "contract_unknown_root": Chain(
            f.leaf(emaid, foreign2, dc="MO"), (foreign2, foreign1), foreign_root),
        # Names chain to MO Sub-CA 2, but Sub-CA 1's key signed it.
        "contract_wrong_chain": Chain(
            f.leaf(emaid, mo2, dc="MO", signing_key=mo1.key), mo_subs, mo_root),
        "contract_revoked": Chain(revoked, mo_subs, mo_root),
    }
    responses = {
        "contract": ocsp_response(contract.cert, mo2, now=now),
        "contract_revoked": ocsp_response(revoked.cert, mo2, now=now,
                                          status=ocsp.OCSPCertStatus.REVOKED),
    }
    return Iso2Pki(
        now=now,
        emaid=emaid,
        pcid=pcid,
        v2g_root=v2g_root,
        cpo=Chain(secc, (cpo2, cpo1), v2g_root),
        prov=Chain(prov, (prov2, prov1), v2g_root),
        mo_root=mo_root,
        contract=Chain(contract, mo_subs, mo_root),
        oem_root=oem_root,
        oem_provisioning=Chain(prov_oem, (oem2, oem1), oem_root),
        crl=make_crl(mo2, [revoked.cert], now=now),
        variants=variants,
        ocsp=responses,
        _factory=f,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir")
    parser.add_argument("--emaid", default=DEFAULT_EMAID)
    parser.add_argument("--pcid", default=DEFAULT_PCID)
    parser.add_argument("--evse-id", default=DEFAULT_EVSE_ID)
    args = parser.parse_args(argv)
    pki = make_iso2_pki(emaid=args.emaid, pcid=args.pcid, evse_id=args.evse_id)
    for name, path in sorted(pki.write(args.out_dir).items()):
        print(f"{name:34} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
