"""The PnC pieces of `evse demo --pnc`: the full test PKI (`certs.pnc_pki`) written to a
directory, the SECC's TLS 1.3 context with mutual authentication, the SECC configuration
changes (PnC offered, MO roots installed, optional local CPS), an authorization hook that
grants PnC only (so a silent EIM fallback cannot succeed), and the EV's credentials.

Moved out of `evse.aio.pnc` (issue 12): the charger never imports the test PKI generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evse.aio.pnc import (
    DEMO_INSTALLED_EMAID,
    RecordingVerifier,
    signature_algorithm_name,
)


@dataclass
class PncDemo:
    """The PnC pieces of `evse demo --pnc` (see the module docstring)."""

    algorithm: str
    install_certificate: bool
    pki: Any  # certs.pnc_pki.PncPki
    files: dict[str, Path]
    verifier: RecordingVerifier
    cps: Any = None  # evse.security.cps.LocalCps with --install-certificate
    authorizations: list[Any] = field(default_factory=list)  # RequestAuthorization seen

    @classmethod
    def create(cls, directory: str | Path, algorithm: str = "secp521r1", *,
               install_certificate: bool = False) -> PncDemo:
        from certs.pnc_pki import make_pnc_pki
        from evse.security import PncVerifier

        pki = make_pnc_pki(algorithm)
        files = pki.write(directory)
        verifier = RecordingVerifier(PncVerifier(mo_roots=pki.mo_roots, oem_roots=pki.oem_roots))
        cps = None
        if install_certificate:
            from evse.security.cps import LocalCps

            mo2 = pki.contract.subs[0]
            cps = LocalCps(cps_key=pki.cps.key,
                           cps_chain=[pki.cps.leaf.cert, *(s.cert for s in pki.cps.subs)],
                           mo_sub_ca=mo2.cert, mo_sub_ca_key=mo2.key,
                           mo_chain=[s.cert for s in pki.contract.subs],
                           emaid=DEMO_INSTALLED_EMAID)
        return cls(algorithm, install_certificate, pki, files, verifier, cps)

    # -- SECC side ---------------------------------------------------------------------------

    def secc_tls(self) -> Any:
        """TLS 1.3 server context: SECC chain, vehicle certificate requested (CERT_OPTIONAL)
        and verified against the OEM root."""
        from evse.aio.tls import secc_context

        return secc_context(self.files["secc"], self.files["secc_key"],
                            vehicle_roots=self.files["oem_root"]).context

    def config_changes(self) -> dict[str, Any]:
        """PnC offered and verified; EIM never authorized automatically (no silent fallback)."""
        return {"offer_pnc": True, "pnc_verifier": self.verifier, "pnc_auto_authorize": False,
                "auto_authorize": False, "certificate_installation": self.cps,
                "pnc_metering_confirmation": True}

    def authorize(self, request: Any, connector: str) -> bool:
        """The demo's backend: grants a verified PnC contract, refuses anything else."""
        self.authorizations.append(request)
        return bool(request.method == "PnC" and request.emaid)

    # -- EV side -----------------------------------------------------------------------------

    def ev_tls(self) -> Any:
        """The EV's context: trusts the V2G root, presents the vehicle certificate."""
        from simulators.ev.client import make_ssl_context

        return make_ssl_context(self.files["v2g_root"], cert_file=self.files["vehicle"],
                                key_file=self.files["vehicle_key"])

    def credentials(self) -> Any:
        from simulators.ev.pnc import PncCredentials

        pki = self.pki
        if self.install_certificate:  # no contract yet: get one through the local CPS
            return PncCredentials(
                oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
                oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
                oem_provisioning_key=pki.oem_provisioning.key,
                v2g_roots=(pki.v2g_root.cert,),
                install_certificate=True,
            )
        return PncCredentials(contract_certificate=pki.contract.leaf_der,
                              contract_sub_certificates=pki.contract.sub_ders,
                              contract_key=pki.contract.key, v2g_roots=(pki.v2g_root.cert,))

    def scenario(self, scenario: Any) -> Any:
        """`scenario` with PnC in strict mode (no fallback to EIM)."""
        return scenario.replace(authorization="PnC", pnc=self.credentials(),
                                pnc_fallback_to_eim=False)

    # -- outcome -----------------------------------------------------------------------------

    def expected_emaid(self) -> str:
        return DEMO_INSTALLED_EMAID if self.install_certificate else self.pki.emaid

    def used_pnc(self, report: Any, sessions: list[Any]) -> bool:
        """True when the EV authorized with PnC and the SECC granted the expected eMAID."""
        granted = [s for s in sessions if s.authorization == "PnC"]
        return bool(report.extra.get("authorization") == "PnC" and granted
                    and all(s.emaid == self.expected_emaid() for s in granted))

    def summary_rows(self, report: Any, sessions: list[Any]) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        auth = [r for r in self.verifier.of("authorization")]
        ok = [r for r in auth if r.ok]
        granted = next((s for s in sessions if s.authorization), None)
        if granted is not None and granted.authorization == "PnC":
            rows.append(("authorization", f"Plug & Charge, eMAID {granted.emaid} "
                                          f"(contract chain to the MO root verified)"))
        else:
            method = granted.authorization if granted is not None else "none"
            rows.append(("authorization", f"NOT Plug & Charge ({method}); EV: "
                                          f"{report.extra.get('authorization', 'EIM')}"))
        if ok:
            rows.append(("PnC signature", f"{signature_algorithm_name(ok[0].signature_algorithm)}"
                                          f" over PnC_AReqAuthorizationMode ({self.algorithm} "
                                          "PKI)"))
            text = f"{ok[0].seconds * 1e3:.2f} ms (contract chain + signature)"
            if len(ok) > 1:
                text += (f"; {len(ok) - 1} repeat(s) while Ongoing "
                         f"{min(r.seconds for r in ok[1:]) * 1e3:.2f} ms (chain cached)")
            rows.append(("PnC verification", text))
        for r in auth:
            if not r.ok:
                rows.append(("PnC refused", f"{r.response_code}: {r.reason}"))
        if self.install_certificate:
            installs = self.verifier.of("certificate_installation")
            issued = self.cps.issued if self.cps is not None else []
            text = (f"contract {issued[0][0]} issued by the local CPS, installed by the EV"
                    if issued else "no contract issued")
            if installs:
                text += f" (OEM provisioning signature checked in {installs[0].seconds * 1e3:.2f}"\
                        " ms)"
            rows.append(("certificate installation", text))
        if sessions and sessions[0].tls_version:
            s = sessions[0]
            rows.append(("TLS", f"{s.tls_version} {s.tls_cipher}, vehicle certificate "
                                f"{s.vehicle_certificate or 'none'} (mutual authentication)"))
        return rows


__all__ = ["DEMO_INSTALLED_EMAID", "PncDemo"]
