"""-2 Plug & Charge through the sans-IO core (SeccConnection + Iso2Machine) with the real
crypto backend, back to back with the simulated EV on a fake clock: the flow, the
authorization request the charger gets, and each way a PnC session fails (its -2 code, power
made safe first)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certs.iso2_pki import Iso2Pki, make_iso2_pki
from evse.protocol import events as sev
from evse.security.iso2_pnc import (
    Iso2ContractVerifier,
    Iso2PncService,
    Iso2Provisioning,
    open_provisioned,
)
from exi_codec.schemas import iso2
from simulators.ev import iso2_pnc
from simulators.ev.iso2_evcc import ISO2_SCENARIOS, Iso2Evcc
from tests.protocol.iso2.harness import EPOCH_OFFSET, back_to_back, config

NOW = dt.datetime.fromtimestamp(EPOCH_OFFSET + 100, dt.UTC)
_PKI: list[Iso2Pki] = []


@pytest.fixture
def pki() -> Iso2Pki:
    if not _PKI:
        _PKI.append(make_iso2_pki(now=NOW))
    return _PKI[0]


def _service(pki: Iso2Pki, *, provisioning: bool = True) -> Iso2PncService:
    prov_key, mo_key = pki.prov.key, pki.contract.subs[0].key
    assert isinstance(prov_key, ec.EllipticCurvePrivateKey)
    assert isinstance(mo_key, ec.EllipticCurvePrivateKey)
    prov = Iso2Provisioning(
        prov_leaf=pki.prov.leaf.cert, prov_subs=tuple(s.cert for s in pki.prov.subs),
        prov_key=prov_key, mo_sub_ca=tuple(s.cert for s in pki.contract.subs),
        mo_sub_ca_key=mo_key, emaid=pki.emaid)
    return Iso2PncService(Iso2ContractVerifier(pki.mo_roots, crls=[pki.crl]),
                          provisioning=prov if provisioning else None, receipt_required=True)


def _ev(pki: Iso2Pki, name: str, *, contract: Any = None, cls: type = Iso2Evcc) -> Iso2Evcc:
    creds = iso2_pnc.credentials(pki, contract=contract, now=lambda: NOW)
    scenario = dataclasses.replace(ISO2_SCENARIOS[name], loops=4)
    ev: Iso2Evcc = cls(scenario, credentials=creds)
    return ev


def _run(pki: Iso2Pki, ev: Iso2Evcc, **cfg: Any) -> Any:
    base: dict[str, Any] = dict(iso2_pnc=_service(pki))
    base.update(cfg)
    return back_to_back(ev.scenario, config(**base), tls=True, ev=ev)


def test_pnc_with_installation_and_receipt(pki: Iso2Pki) -> None:
    for name in ("iso2_dc_pnc_install", "iso2_ac_pnc_install"):
        run = _run(pki, _ev(pki, name))
        assert run.done.success, run.done
        requests = [r for r, _ in run.done.log]
        assert requests.index("CertificateInstallationReq") < requests.index(
            "PaymentDetailsReq") < requests.index("AuthorizationReq")
        assert "MeteringReceiptReq" in requests
        (asked,) = run.of(sev.RequestAuthorization)  # the charger decides (no auto)
        assert asked.method == "PnC" and asked.emaid == pki.emaid
        assert len(asked.certificate_chain) == 3  # contract, MO Sub-CA 2, Sub-CA 1


def test_auto_authorized_contract_asks_nobody(pki: Iso2Pki) -> None:
    run = _run(pki, _ev(pki, "iso2_dc_pnc", contract=pki.contract), pnc_auto_authorize=True)
    assert run.done.success and not run.of(sev.RequestAuthorization)


class _WrongChallenge(Iso2Evcc):
    def _on_PaymentDetailsRes(self, res: Any, sid: bytes) -> Any:  # noqa: N802
        assert self.credentials is not None
        return self._send(*iso2_pnc.authorization(self.credentials, bytes(16)))


class _ForgedReceipt(Iso2Evcc):
    def _receipt(self, res: Any) -> Any:
        if not res.receipt_required or self.credentials is None:
            return []
        other = dataclasses.replace(self.credentials,
                                    contract_key=ec.generate_private_key(ec.SECP256R1()))
        return self._send(*iso2_pnc.metering_receipt(other, self.session_id, 1,
                                                     res.meter_info))


class _Updating(Iso2Evcc):
    """Renews its contract with CertificateUpdate (key encrypted for the old contract key)."""

    def _on_PaymentServiceSelectionRes(self, res: Any, sid: bytes) -> Any:  # noqa: N802
        creds = self.credentials
        assert creds is not None
        roots = iso2_pnc.installation_request(creds).list_of_root_certificate_i_ds
        return self._send(iso2.CertificateUpdateReqType(
            id="ID1", contract_signature_cert_chain=creds.contract_chain, e_maid=creds.emaid,
            list_of_root_certificate_i_ds=roots))

    def _on_CertificateUpdateRes(self, res: Any, sid: bytes) -> Any:  # noqa: N802
        creds = self.credentials
        assert creds is not None
        self.old_certificate = bytes(creds.contract_chain.certificate)
        chain, key = open_provisioned(res, self._signature, creds.contract_key,
                                      creds.v2g_roots, creds.now())
        creds.contract_chain, creds.contract_key = chain, key
        return self._send(iso2_pnc.payment_details(creds))


def test_certificate_update_then_charge_with_the_new_contract(pki: Iso2Pki) -> None:
    ev = _ev(pki, "iso2_dc_pnc", contract=pki.contract, cls=_Updating)
    run = _run(pki, ev, pnc_auto_authorize=True)
    assert run.done.success, run.done
    assert [r for r, _ in run.done.log][:7] == [
        "supportedAppProtocolReq", "SessionSetupReq", "ServiceDiscoveryReq",
        "ServiceDetailReq", "PaymentServiceSelectionReq", "CertificateUpdateReq",
        "PaymentDetailsReq"]
    assert ev.credentials is not None
    assert bytes(ev.credentials.contract_chain.certificate) != ev.old_certificate


def test_certificate_update_of_a_revoked_contract(pki: Iso2Pki) -> None:
    ev = _ev(pki, "iso2_dc_pnc", contract=pki.variants["contract_revoked"], cls=_Updating)
    _failed(_run(pki, ev), "CertificateUpdateReq", "FAILED_CertificateRevoked")


def _failed(run: Any, request: str, code: str) -> None:
    assert not run.done.success
    assert run.done.log[-1] == (request, code), run.done.log
    effects = run.secc_effects
    first_send = max(i for i, e in enumerate(effects) if isinstance(e, sev.SendData))
    assert sev.StopPower() in effects[:first_send] and sev.OpenContactors() in effects


def test_wrong_challenge(pki: Iso2Pki) -> None:
    run = _run(pki, _ev(pki, "iso2_dc_pnc", contract=pki.contract, cls=_WrongChallenge))
    _failed(run, "AuthorizationReq", "FAILED_ChallengeInvalid")


def test_signature_by_another_key(pki: Iso2Pki) -> None:
    ev = _ev(pki, "iso2_dc_pnc", contract=pki.contract)
    assert ev.credentials is not None
    ev.credentials.contract_key = ec.generate_private_key(ec.SECP256R1())
    _failed(_run(pki, ev), "AuthorizationReq", "FAILED_SignatureError")


def test_forged_metering_receipt(pki: Iso2Pki) -> None:
    run = _run(pki, _ev(pki, "iso2_dc_pnc", contract=pki.contract, cls=_ForgedReceipt),
               pnc_auto_authorize=True)
    _failed(run, "MeteringReceiptReq", "FAILED_MeteringSignatureNotValid")


@pytest.mark.parametrize(("variant", "code"), [
    ("contract_revoked", "FAILED_CertificateRevoked"),
    ("contract_expired", "FAILED_CertificateExpired"),
    ("contract_unknown_root", "FAILED_CertChainError"),
    ("contract_wrong_chain", "FAILED_CertChainError"),
])
def test_refused_contracts(pki: Iso2Pki, variant: str, code: str) -> None:
    run = _run(pki, _ev(pki, "iso2_dc_pnc", contract=pki.variants[variant]))
    _failed(run, "PaymentDetailsReq", code)


def test_installation_without_a_provisioning_service(pki: Iso2Pki) -> None:
    run = _run(pki, _ev(pki, "iso2_dc_pnc_install"),
               iso2_pnc=_service(pki, provisioning=False))
    _failed(run, "CertificateInstallationReq", "FAILED_NoCertificateAvailable")


def test_contract_needs_tls(pki: Iso2Pki) -> None:
    ev = _ev(pki, "iso2_dc_pnc", contract=pki.contract)
    run = back_to_back(ev.scenario, config(iso2_pnc=_service(pki)), tls=False, ev=ev)
    assert not run.done.success and ev.payment_options == ("ExternalPayment",)
