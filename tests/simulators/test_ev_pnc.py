"""The simulated EV doing Plug & Charge against our SECC, in memory (no sockets): signed
AuthorizationReq with both -20 algorithms, CertificateInstallation, refusals, fallback to EIM,
pause/resume, and the command-line options."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import hashlib
from pathlib import Path
from typing import Any

import pytest

from certs.pnc_pki import PncPki, make_pnc_pki
from evse.protocol import events as sev
from evse.security import PncVerifier
from evse.security.cps import LocalCps
from evse.security.signatures import SignedElement, verify
from exi_codec.schemas import iso20
from simulators.ev import Failed, Finished, get_scenario
from simulators.ev.client import add_ev_arguments, scenario_from_args
from simulators.ev.pnc import PncCredentials, PncState
from tests.simulators.test_ev_vs_secc_sansio import EPOCH, back_to_back, config


@functools.cache
def pki_at_epoch(algorithm: str) -> PncPki:
    """A PKI valid at the back-to-back runs' clock (EPOCH)."""
    return make_pnc_pki(algorithm, now=dt.datetime.fromtimestamp(EPOCH, dt.UTC))


def contract_creds(pki: PncPki, variant: str | None = None) -> PncCredentials:
    chain = pki.variants[variant] if variant else pki.contract
    return PncCredentials(contract_certificate=chain.leaf_der,
                          contract_sub_certificates=chain.sub_ders, contract_key=chain.key)


def secc_config(pki: PncPki, **kw: Any) -> Any:
    kw.setdefault("offer_pnc", True)
    kw.setdefault("pnc_verifier", PncVerifier(mo_roots=pki.mo_roots, oem_roots=pki.oem_roots))
    return config(**kw)


def scenario(name: str = "dc_pnc", **kw: Any) -> Any:
    kw.setdefault("loop_sim_seconds", 30.0)
    kw.setdefault("max_loops", 5)
    return get_scenario(name, **kw)


@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
def test_dc_pnc_session(algorithm: str) -> None:
    pki = pki_at_epoch(algorithm)
    run = back_to_back(scenario(pnc=contract_creds(pki)), secc_config(pki))
    assert isinstance(run.effect, Finished), run.effect
    report = run.report
    assert report.success and report.extra["authorization"] == "PnC"
    assert report.energy_charged_wh > 0
    (asked,) = [e for e in run.secc_effects if isinstance(e, sev.RequestAuthorization)]
    assert (asked.method, asked.emaid) == ("PnC", pki.emaid)
    assert report.request_sequence.count("AuthorizationReq") >= 2  # Ongoing, then granted
    assert run.ended[-1].failed is False


def test_dc_pnc_with_certificate_installation() -> None:
    pki = pki_at_epoch("secp521r1")
    cps = LocalCps(cps_key=pki.cps.key,
                   cps_chain=[pki.cps.leaf.cert, *(s.cert for s in pki.cps.subs)],
                   mo_sub_ca=pki.contract.subs[0].cert, mo_sub_ca_key=pki.contract.subs[0].key,
                   mo_chain=[s.cert for s in pki.contract.subs], emaid="DEEVSC00000077Q",
                   pending_polls=2)
    creds = PncCredentials(
        oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
        oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
        oem_provisioning_key=pki.oem_provisioning.key,
        v2g_roots=(pki.v2g_root.cert,),
        install_certificate=True,
    )
    cfg = secc_config(pki, certificate_installation=cps, pnc_auto_authorize=True)
    run = back_to_back(scenario(pnc=creds), cfg)
    assert isinstance(run.effect, Finished), run.effect
    sequence = run.report.request_sequence
    assert sequence.count("CertificateInstallationReq") == 3  # Ongoing twice, then the data
    assert sequence.index("CertificateInstallationReq") < sequence.index("AuthorizationReq")
    assert run.report.extra["installed_emaid"] == "DEEVSC00000077Q" == cps.issued[0][0]
    assert not [e for e in run.secc_effects if isinstance(e, sev.RequestAuthorization)]


@pytest.mark.parametrize(("variant", "code"), [
    ("contract_expired", "WARNING_CertificateExpired"),
    ("contract_unknown_root", "WARNING_CertificateValidationError"),
])
def test_refused_contract(variant: str, code: str) -> None:
    pki = pki_at_epoch("ed448")
    run = back_to_back(scenario(pnc=contract_creds(pki, variant)), secc_config(pki))
    assert isinstance(run.effect, Failed)
    assert run.effect.reason == f"authorization refused: {code}"
    names = [type(e).__name__ for e in run.secc_effects]
    assert "CloseContactors" not in names and "RequestAuthorization" not in names


def test_fallback_to_eim_when_pnc_is_not_offered() -> None:
    pki = pki_at_epoch("secp521r1")
    run = back_to_back(scenario(pnc=contract_creds(pki)), secc_config(pki, offer_pnc=False))
    assert isinstance(run.effect, Finished), run.effect
    assert any("falling back to EIM" in w for w in run.report.warnings)
    strict = scenario(pnc=contract_creds(pki), pnc_fallback_to_eim=False)
    run = back_to_back(strict, secc_config(pki, offer_pnc=False))
    assert isinstance(run.effect, Failed) and "offers no PnC" in run.effect.reason


def test_no_contract_and_no_installation() -> None:
    pki = pki_at_epoch("secp521r1")
    run = back_to_back(scenario(pnc_fallback_to_eim=False), secc_config(pki))
    assert isinstance(run.effect, Failed) and "without a contract" in run.effect.reason


def test_installation_refused_without_a_contract_fails() -> None:
    pki = pki_at_epoch("ed448")

    class NoCertificateCps:  # a CPS with no contract for this vehicle
        def installation_data(self, req: Any, *, timestamp: int, session_id: bytes) -> Any:
            from evse.protocol.config import InstallationAnswer

            return InstallationAnswer("WARNING_NoCertificateAvailable", reason="none")

    cps = NoCertificateCps()
    creds = PncCredentials(oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
                           oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
                           oem_provisioning_key=pki.oem_provisioning.key,
                           install_certificate=True)
    run = back_to_back(scenario(pnc=creds), secc_config(pki, certificate_installation=cps))
    assert isinstance(run.effect, Failed)
    assert "WARNING_NoCertificateAvailable" in run.effect.reason


def test_pause_and_resume_with_pnc() -> None:
    """Our SECC resumes a paused PnC session straight at ChargeParameterDiscovery: the
    authorization (and the contract the verifier remembers for the SessionID) carries over."""
    pki = pki_at_epoch("secp521r1")
    sc = get_scenario("pause_resume", authorization="PnC", pnc=contract_creds(pki),
                      loop_sim_seconds=30.0)
    cfg = secc_config(pki)
    run = back_to_back(sc, cfg)
    assert isinstance(run.effect, Finished), run.effect
    assert run.connections == 2
    assert run.report.request_sequence.count("AuthorizationSetupReq") == 1
    started = [e for e in run.secc_effects if isinstance(e, sev.SessionStarted)]
    assert started[-1].resumed
    assert cfg.pnc_verifier.contract_of(started[-1].session_id) is not None


def test_command_line_options(tmp_path: Path) -> None:
    pki = pki_at_epoch("secp521r1")
    files = pki.write(tmp_path)
    parser = add_ev_arguments(argparse.ArgumentParser())
    ns = parser.parse_args(["--scenario", "dc", "--contract-cert", str(files["contract"]),
                            "--contract-key", str(files["contract_key"]),
                            "--ca", str(files["v2g_root"])])
    sc = scenario_from_args(ns)
    assert sc.authorization == "PnC"
    assert sc.pnc.contract_certificate == pki.contract.leaf_der
    assert sc.pnc.contract_sub_certificates == pki.contract.sub_ders
    assert sc.pnc.v2g_roots[0] == pki.v2g_root.cert
    run = back_to_back(sc.replace(loop_sim_seconds=30.0, max_loops=3), secc_config(pki))
    assert isinstance(run.effect, Finished), run.effect
    ns = parser.parse_args(["--scenario", "dc_pnc", "--oem-prov-cert",
                            str(files["oem_provisioning"]), "--oem-prov-key",
                            str(files["oem_provisioning_key"]), "--install-certificate"])
    creds = scenario_from_args(ns).pnc
    assert creds.install_certificate and not creds.has_contract
    assert creds.oem_provisioning_sub_certificates == pki.oem_provisioning.sub_ders
    assert scenario_from_args(parser.parse_args(["--scenario", "dc"])).authorization == "EIM"


def test_dc_pnc_scenario_is_registered() -> None:
    sc = get_scenario("dc_pnc")
    assert sc.authorization == "PnC" and sc.service.is_dc and sc.pnc is None
    with pytest.raises(ValueError):
        get_scenario("dc", authorization="RFID")


@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
def test_ev_confirms_the_metering_with_its_contract_key(algorithm: str) -> None:
    pki = pki_at_epoch(algorithm)
    cfg = secc_config(pki, pnc_auto_authorize=True, pnc_metering_confirmation=True)
    run = back_to_back(scenario(pnc=contract_creds(pki), meter_info_every=2), cfg)
    assert isinstance(run.effect, Finished), run.effect
    confirmed = [e for e in run.secc_effects if isinstance(e, sev.MeteringConfirmed)]
    sent = run.report.request_sequence.count("MeteringConfirmationReq")
    assert sent == len(confirmed) == run.report.extra["metering_confirmations"] >= 2
    assert all(c.emaid == pki.emaid for c in confirmed)
    readings = [c.signed_metering_data.meter_info.charged_energy_reading_wh for c in confirmed]
    assert readings == sorted(readings)  # the harness feeds no meter: registers stay 0


def test_ev_can_ignore_a_metering_confirmation_request() -> None:
    pki = pki_at_epoch("secp521r1")
    cfg = secc_config(pki, pnc_auto_authorize=True, pnc_metering_confirmation=True)
    run = back_to_back(scenario(pnc=contract_creds(pki), meter_info_every=2,
                                pnc_metering_confirmation=False), cfg)
    assert isinstance(run.effect, Finished), run.effect
    assert "MeteringConfirmationReq" not in run.report.request_sequence
    assert any(n.endswith(":MeteringConfirmation") for n in run.report.evse_notifications)


def test_dc_pnc_with_ed448_certificate_installation() -> None:
    pki = pki_at_epoch("ed448")
    cps = LocalCps(cps_key=pki.cps.key,
                   cps_chain=[pki.cps.leaf.cert, *(s.cert for s in pki.cps.subs)],
                   mo_sub_ca=pki.contract.subs[0].cert, mo_sub_ca_key=pki.contract.subs[0].key,
                   mo_chain=[s.cert for s in pki.contract.subs], emaid="DEEVSC00000077Q")
    creds = PncCredentials(
        oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
        oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
        oem_provisioning_key=pki.oem_provisioning.key,
        v2g_roots=(pki.v2g_root.cert,), install_certificate=True)
    cfg = secc_config(pki, certificate_installation=cps, pnc_auto_authorize=True,
                      pnc_metering_confirmation=True)
    run = back_to_back(scenario(pnc=creds, meter_info_every=2), cfg)
    assert isinstance(run.effect, Finished), run.effect
    assert run.report.extra["installed_emaid"] == "DEEVSC00000077Q"
    assert run.report.extra["authorization"] == "PnC"
    assert [e for e in run.secc_effects if isinstance(e, sev.MeteringConfirmed)]


@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
def test_ev_signs_with_the_iso20_identifiers(algorithm: str) -> None:
    """Every signed request of the simulated EV: -20's SignatureMethod and the digest that goes
    with it (Ed448 + SHAKE256 of 64 bytes, ECDSA P-521 + SHA-512), verifiable by the SECC."""
    pki = pki_at_epoch(algorithm)
    creds = dataclasses.replace(
        contract_creds(pki), oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
        oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
        oem_provisioning_key=pki.oem_provisioning.key, v2g_roots=(pki.v2g_root.cert,))
    state = PncState.of(creds)
    state.gen_challenge = bytes(16)
    header = iso20.MessageHeaderType(session_id=bytes(range(8)), time_stamp=int(EPOCH))
    meter = iso20.MeterInfoType(meter_id="M1", charged_energy_reading_wh=1, meter_timestamp=1)
    requests = {
        "PnC_AReqAuthorizationMode": state.authorization_req(header),
        "OEMProvisioningCertificateChain": state.certificate_installation_req(header),
        "SignedMeteringData": state.metering_confirmation_req(header, meter, 1),
    }
    if algorithm == "ed448":
        method = "urn:iso:std:iso:15118:-20:Security:xmldsig#Ed448"
        digest_method, digest = ("urn:iso:std:iso:15118:-20:Security:xmlenc#SHAKE256",
                                 lambda b: hashlib.shake_256(b).digest(64))
    else:
        method = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
        digest_method, digest = ("http://www.w3.org/2001/04/xmlenc#sha512",
                                 lambda b: hashlib.sha512(b).digest())
    for name, req in requests.items():
        value = {"PnC_AReqAuthorizationMode": "pnc_a_req_authorization_mode",
                 "OEMProvisioningCertificateChain": "oem_provisioning_certificate_chain",
                 "SignedMeteringData": "signed_metering_data"}[name]
        element = SignedElement(name, getattr(req, value))
        signed_info = req.header.signature.signed_info
        assert signed_info.signature_method.algorithm == method, name
        (ref,) = signed_info.reference
        assert ref.digest_method.algorithm == digest_method, name
        assert bytes(ref.digest_value) == digest(element.fragment()), name
    # The SECC side accepts them (ISO20_POLICY).
    auth = requests["PnC_AReqAuthorizationMode"]
    verify(auth.header.signature,
           [SignedElement("PnC_AReqAuthorizationMode", auth.pnc_a_req_authorization_mode)],
           pki.contract.leaf.cert.public_key())


def _local_cps(pki: PncPki) -> LocalCps:
    return LocalCps(cps_key=pki.cps.key,
                    cps_chain=[pki.cps.leaf.cert, *(s.cert for s in pki.cps.subs)],
                    mo_sub_ca=pki.contract.subs[0].cert, mo_sub_ca_key=pki.contract.subs[0].key,
                    mo_chain=[s.cert for s in pki.contract.subs], emaid="DEEVSC00000077Q")


@pytest.mark.parametrize("days_left", [5, 30])
def test_ev_renews_a_contract_that_expires_soon(days_left: int) -> None:
    """The contract ends `days_left` days after the run's clock: within 14 days the SECC
    answers OK_CertificateExpiresSoon and the EV renews it through CertificateInstallation
    before ServiceDiscovery; otherwise it just charges."""
    issued = dt.datetime.fromtimestamp(EPOCH, dt.UTC) - dt.timedelta(days=365 - days_left)
    pki = make_pnc_pki("ed448", now=issued + dt.timedelta(hours=1))  # contract: 365 days
    creds = dataclasses.replace(
        contract_creds(pki), oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
        oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
        oem_provisioning_key=pki.oem_provisioning.key, v2g_roots=(pki.v2g_root.cert,))
    cfg = secc_config(pki, certificate_installation=_local_cps(pki), pnc_auto_authorize=True)
    run = back_to_back(scenario(pnc=creds), cfg)
    assert isinstance(run.effect, Finished), run.effect
    sequence = run.report.request_sequence
    assert run.report.extra["authorization"] == "PnC"
    if days_left < 14:
        assert (sequence.index("AuthorizationReq") < sequence.index("CertificateInstallationReq")
                < sequence.index("ServiceDiscoveryReq"))
        assert run.report.extra["installed_emaid"] == "DEEVSC00000077Q"
    else:
        assert "CertificateInstallationReq" not in sequence
        assert "installed_emaid" not in run.report.extra
