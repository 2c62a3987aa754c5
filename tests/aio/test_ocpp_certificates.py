"""Plug & Charge certificates through the CSMS over real WebSockets (evse/aio/ocpp_certificates.py):

- a -20 PnC session whose car has no contract yet installs one through Get15118EVCertificate:
  our SeccServer (TLS 1.3, PnC) hands the EV's CertificateInstallationReq to the CSMS simulator
  as EXI, the simulator's CPS (test PKI) builds and signs the CertificateInstallationRes, the
  simulated EV checks the CPS signature, decrypts the contract key and authorizes with it;
- the CSMS answering Failed, not being connected or too slow, or sending an exiResponse that
  is not a usable CertificateInstallationRes: the EV hears WARNING_NoCertificateAvailable (-20's
  code for "no certificate to be had"), nothing is installed or charged (a CPS
  WARNING code reaches the EV as it is); a forged CPS signature is refused by the EV;
- GetCertificateStatus (OCSP) for the contract chain: good, revoked, forged signature, stale,
  UNKNOWN, CSMS failure, the cache until nextUpdate, a delegated responder, and the OCSP
  denial ending a real PnC session with its reason.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import exi_codec
from evse import events as se
from evse.aio.ocpp_auth import OcppAuthorizer
from evse.aio.ocpp_certificates import ISO20_NAMESPACE, OcppCertificateSource, OcppOcspChecker
from evse.aio.ocpp_client import OcppClient
from evse.hooks import AuthorizationRequest, Hooks
from evse.security.cps import LocalCps
from simulators.csms import CsmsSimulator, OcspResponder
from simulators.ev.pnc import PncCredentials
from tests.aio.test_ocpp_auth import STATION, client_for
from tests.aio.test_pnc_tls import Pki, _flip_signature_value, _make, pnc_scenario, pnc_server

INSTALLED = "DEEVSC00000099X"


@pytest.fixture(scope="module")
def p521(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make(tmp_path_factory.mktemp("ocpp-pnc-p521"), "secp521r1")


def _cps(pki: Pki) -> LocalCps:
    p = pki.pki
    mo2 = p.contract.subs[0]
    return LocalCps(cps_key=p.cps.key, cps_chain=[p.cps.leaf.cert, *(s.cert for s in p.cps.subs)],
                    mo_sub_ca=mo2.cert, mo_sub_ca_key=mo2.key,
                    mo_chain=[s.cert for s in p.contract.subs], emaid=INSTALLED)


def _installing_car(pki: Pki) -> PncCredentials:
    p = pki.pki
    return PncCredentials(oem_provisioning_certificate=p.oem_provisioning.leaf_der,
                          oem_provisioning_sub_certificates=p.oem_provisioning.sub_ders,
                          oem_provisioning_key=p.oem_provisioning.key,
                          v2g_roots=(p.v2g_root.cert,), install_certificate=True)


async def _connected(csms: CsmsSimulator, tmp_path: Path) -> OcppClient:
    await csms.start()
    client = client_for(csms.url, tmp_path)
    client.start()
    await asyncio.wait_for(client.accepted.wait(), 30)
    return client


# -- Get15118EVCertificate ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["ocpp2.1", "ocpp2.0.1"])
async def test_contract_installed_through_get15118evcertificate(p521: Pki, tmp_path: Path,
                                                               version: str) -> None:
    csms = CsmsSimulator(subprotocols=(version,))
    cps = _cps(p521)
    csms.cps = cps
    client = await _connected(csms, tmp_path)
    source = OcppCertificateSource(client)
    try:
        async with pnc_server(p521) as r:
            r.server.hooks = Hooks(certificates=source)
            report = await r.ev(pnc_scenario(_installing_car(p521)), p521.ev_tls())
            assert report.success, report.summary()
            seq = report.request_sequence
            assert seq.count("CertificateInstallationReq") >= 2  # Ongoing while the CSMS works
            assert seq.index("CertificateInstallationReq") < seq.index("AuthorizationReq")
            # the EV checked the CPS signature, decrypted the key, and authorized with it
            assert report.extra["installed_emaid"] == INSTALLED
            assert r.server.sessions[-1].emaid == INSTALLED
            assert (r.backend.requests[-1].method, r.backend.requests[-1].emaid) == (
                "PnC", INSTALLED)
        (call,) = csms.calls(STATION, "Get15118EVCertificate")
        assert call["action"] == "Install"
        assert client.subprotocol == version
        if version == "ocpp2.1":  # 2.1: from the EV's request
            assert call["maximum_contract_certificate_chains"] == 1
        else:
            assert "maximum_contract_certificate_chains" not in call
        assert ISO20_NAMESPACE in call.values()
        req = exi_codec.decode(base64.b64decode(call["exi_request"]), "iso20")
        assert type(req).__name__ == "CertificateInstallationReq"
        assert bytes(req.oem_provisioning_certificate_chain.certificate) == \
            p521.pki.oem_provisioning.leaf_der
        assert req.header.signature is not None  # the EV's signature went along, unchanged
        assert [e for e, _ in cps.issued] == [INSTALLED] and not source.failures
    finally:
        await client.stop()
        await csms.stop()


@pytest.mark.parametrize("csms_up", [True, False, None],
                         ids=["csms-failed", "csms-offline", "csms-too-slow"])
async def test_csms_failure_answers_the_ev_no_certificate(p521: Pki, tmp_path: Path,
                                                  csms_up: bool | None) -> None:
    csms = CsmsSimulator()
    csms.cps = _cps(p521)
    if csms_up is None:  # the CPS would answer, but after the station's timeout
        csms.ev_certificate_delay_s = 3.0
    else:
        csms.ev_certificate_status = "Failed"
    client = await _connected(csms, tmp_path)
    if csms_up is False:
        await csms.stop()
    source = OcppCertificateSource(client, timeout_s=1.0)
    try:
        async with pnc_server(p521) as r:
            r.server.hooks = Hooks(certificates=source)
            report = await r.ev(pnc_scenario(_installing_car(p521)), p521.ev_tls())
            assert not report.success
            codes = [m.response_code for m in report.messages
                     if m.request == "CertificateInstallationReq"]
            assert codes[-1] == "WARNING_NoCertificateAvailable", codes
            if csms_up is None:  # Ongoing (OK) while the CSMS was asked, then the WARNING
                assert len(codes) >= 2 and set(codes[:-1]) == {"OK"}, codes
            assert "AuthorizationReq" not in report.request_sequence
            await r.rig.wait_safe()
            names = [a.name for a in r.rig.connector().controller.actions]
            assert "contactors_close" not in names
            summary = r.server.sessions[-1]
            assert summary.failed and summary.emaid is None
        assert len(source.failures) == 1
        if csms_up is None:
            assert "no answer" in source.failures[0]
        elif csms_up:
            assert "Get15118EVCertificate Failed" in source.failures[0]
            assert len(csms.calls(STATION, "Get15118EVCertificate")) == 1
        else:
            assert "no answer" in source.failures[0]
    finally:
        await client.stop()
        await csms.stop()


def _exi(msg: Any) -> str:
    return base64.b64encode(exi_codec.encode(msg)).decode("ascii")


def _warning_res() -> Any:
    from evse.protocol.iso20.handlers.certificate_installation import _placeholder
    from exi_codec.schemas import iso20

    return iso20.CertificateInstallationRes(
        header=iso20.MessageHeaderType(session_id=bytes(8), time_stamp=1),
        response_code=iso20.responseCodeType.WARNING_NoCertificateAvailable,
        evse_processing=iso20.processingType.Finished, **_placeholder())


@pytest.mark.parametrize(("exi_response", "code", "failure"), [
    ("not base64!", "WARNING_NoCertificateAvailable", "does not decode"),
    (base64.b64encode(b"\x80\x00garbage").decode(), "WARNING_NoCertificateAvailable",
     "does not decode"),
    ("SESSION_SETUP", "WARNING_NoCertificateAvailable", "is a SessionSetupRes"),
    ("WARNING", "WARNING_NoCertificateAvailable", None),
], ids=["not-base64", "not-exi", "wrong-message", "cps-warning"])
async def test_bad_exi_response_from_the_csms(p521: Pki, tmp_path: Path, exi_response: str,
                                              code: str, failure: str | None) -> None:
    from exi_codec.schemas import iso20

    if exi_response == "SESSION_SETUP":
        exi_response = _exi(iso20.SessionSetupRes(
            header=iso20.MessageHeaderType(session_id=bytes(8), time_stamp=1),
            response_code=iso20.responseCodeType.OK, evseid="DE*EVS*E1"))
    elif exi_response == "WARNING":
        exi_response = _exi(_warning_res())
    csms = CsmsSimulator()
    csms.ev_certificate_exi = exi_response
    client = await _connected(csms, tmp_path)
    source = OcppCertificateSource(client)
    try:
        async with pnc_server(p521) as r:
            r.server.hooks = Hooks(certificates=source)
            report = await r.ev(pnc_scenario(_installing_car(p521)), p521.ev_tls())
            assert not report.success
            codes = [m.response_code for m in report.messages
                     if m.request == "CertificateInstallationReq"]
            assert codes[-1] == code, codes
            await r.rig.wait_safe()
            assert r.server.sessions[-1].emaid is None
        assert (failure is None and not source.failures) or (
            failure is not None and failure in source.failures[0]), source.failures
    finally:
        await client.stop()
        await csms.stop()


async def test_forged_cps_signature_is_refused_by_the_ev(p521: Pki, tmp_path: Path) -> None:
    """The station forwards the CPS's signature unchanged: a CSMS answer whose signature does
    not verify installs nothing (the EV checks it against its V2G roots)."""
    from exi_codec.schemas import iso20

    answer = _cps(p521).installation_data(
        _installing_car_req(p521), timestamp=int(dt.datetime.now(dt.UTC).timestamp()),
        session_id=bytes(8))
    assert answer is not None
    res = iso20.CertificateInstallationRes(
        header=iso20.MessageHeaderType(session_id=bytes(8), time_stamp=1,
                                       signature=answer.signature),
        response_code=iso20.responseCodeType.OK, evse_processing=iso20.processingType.Finished,
        cps_certificate_chain=answer.cps_certificate_chain,
        signed_installation_data=answer.signed_installation_data,
        remaining_contract_certificate_chains=0)
    csms = CsmsSimulator()
    csms.ev_certificate_exi = _exi(_flip_signature_value(res))
    client = await _connected(csms, tmp_path)
    try:
        async with pnc_server(p521) as r:
            r.server.hooks = Hooks(certificates=OcppCertificateSource(client))
            report = await r.ev(pnc_scenario(_installing_car(p521)), p521.ev_tls())
            assert not report.success and "installed_emaid" not in report.extra
            assert "AuthorizationReq" not in report.request_sequence
            await r.rig.wait_safe()
            assert r.server.sessions[-1].emaid is None
    finally:
        await client.stop()
        await csms.stop()


def _installing_car_req(pki: Pki) -> Any:
    """A CertificateInstallationReq as the installing car sends it."""
    from exi_codec.schemas import iso20
    from simulators.ev.pnc import PncState

    header = iso20.MessageHeaderType(session_id=bytes(8), time_stamp=1)
    return PncState(_installing_car(pki)).certificate_installation_req(header)


# -- GetCertificateStatus (OCSP) ---------------------------------------------------------------


def _responder(pki: Pki, **kw: Any) -> OcspResponder:
    p = pki.pki
    issuers = [(p.mo_root.cert, p.mo_root.key), *((s.cert, s.key) for s in p.contract.subs)]
    return OcspResponder(issuers=issuers, **kw)


def _chain(pki: Pki) -> tuple[bytes, ...]:
    return (pki.pki.contract.leaf_der, *pki.pki.contract.sub_ders)


@pytest.fixture
async def ocsp_rig(p521: Pki, tmp_path: Path) -> AsyncIterator[tuple[CsmsSimulator,
                                                                     OcppOcspChecker]]:
    csms = CsmsSimulator(accept_all_tokens=True)
    csms.ocsp = _responder(p521)
    client = await _connected(csms, tmp_path)
    try:
        yield csms, OcppOcspChecker(client, p521.pki.mo_roots)
    finally:
        await client.stop()
        await csms.stop()


async def test_ocsp_good_chain_and_cache(p521: Pki, ocsp_rig: Any) -> None:
    csms, checker = ocsp_rig
    assert await checker.check(_chain(p521)) is None
    asked = csms.calls(STATION, "GetCertificateStatus")
    assert len(asked) == 3  # leaf, MO Sub-CA 2, MO Sub-CA 1
    contract = x509.load_der_x509_certificate(p521.pki.contract.leaf_der)
    assert asked[0]["ocsp_request_data"]["serial_number"] == f"{contract.serial_number:x}"
    assert asked[0]["ocsp_request_data"]["hash_algorithm"] == "SHA256"
    assert await checker.check(_chain(p521)) is None  # cached until nextUpdate
    assert len(csms.calls(STATION, "GetCertificateStatus")) == 3
    checker.cache.clear()
    csms.ocsp.revoked.add(contract.serial_number)  # the cache cleared: asked again
    reason = await checker.check(_chain(p521))
    assert reason is not None and "revoked" in reason and "key_compromise" in reason


@pytest.mark.parametrize(("mode", "expected"), [
    ("forged", "signature invalid"),
    ("stale", "stale"),
    ("unknown", "UNKNOWN"),
    ("failed", "GetCertificateStatus Failed"),
    ("garbage", "not an OCSP response"),
])
async def test_ocsp_bad_answers_deny(p521: Pki, ocsp_rig: Any, mode: str,
                                     expected: str) -> None:
    csms, checker = ocsp_rig
    csms.ocsp.mode = mode
    csms.ocsp.forger_key = ec.generate_private_key(ec.SECP521R1())
    reason = await checker.check(_chain(p521))
    assert reason is not None and expected in reason, reason
    assert not checker.cache._good_until  # nothing cached from a bad answer


async def test_ocsp_revoked_sub_ca_denies(p521: Pki, ocsp_rig: Any) -> None:
    csms, checker = ocsp_rig
    csms.ocsp.revoked.add(p521.pki.contract.subs[-1].cert.serial_number)  # MO Sub-CA 1
    reason = await checker.check(_chain(p521))
    assert reason is not None and "revoked" in reason


async def test_ocsp_csms_offline_denies(p521: Pki, ocsp_rig: Any) -> None:
    csms, checker = ocsp_rig
    await csms.stop()
    checker.timeout_s = 1.0
    reason = await checker.check(_chain(p521))
    assert reason is not None and "no answer" in reason


def _delegate(issuer: x509.Certificate, issuer_key: Any, *, ocsp_signing: bool
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = [ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing
             else ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OCSP responder")]))
            .issuer_name(issuer.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .sign(issuer_key, hashes.SHA512()))
    return cert, key


@pytest.mark.parametrize("ocsp_signing", [True, False], ids=["authorized", "no-ocsp-eku"])
async def test_ocsp_delegated_responder(p521: Pki, ocsp_rig: Any, ocsp_signing: bool) -> None:
    """The contract's status signed by a responder MO Sub-CA 2 certified: taken only with
    the id-kp-OCSPSigning EKU [RFC 6960 4.2.2.2]."""
    csms, checker = ocsp_rig
    sub2 = p521.pki.contract.subs[0]  # issues the contract
    csms.ocsp.delegate = _delegate(sub2.cert, sub2.key, ocsp_signing=ocsp_signing)
    reason = await checker.check(_chain(p521))
    if ocsp_signing:
        assert reason is None
    else:
        assert reason is not None and "responder it authorized" in reason


async def test_authorize_without_certificate_status_falls_back_to_ocsp(
        p521: Pki, tmp_path: Path) -> None:
    """A PnC Authorize answered without certificateStatus: the station asks OCSP itself."""
    csms = CsmsSimulator(accept_all_tokens=True)
    csms.pnc_certificate_status = False  # the CSMS leaves the contract check to the station
    csms.ocsp = _responder(p521)
    client = await _connected(csms, tmp_path)
    auth = OcppAuthorizer(client, ocsp=OcppOcspChecker(client, p521.pki.mo_roots))
    request = AuthorizationRequest("1", "AB", "PnC", "EV1", p521.pki.emaid, _chain(p521))
    try:
        decision = await auth.authorize(request)
        assert decision.granted, decision.reason
        assert len(csms.calls(STATION, "GetCertificateStatus")) == 3
        auth.ocsp.cache.clear()  # type: ignore[union-attr]
        csms.ocsp.revoked.add(x509.load_der_x509_certificate(_chain(p521)[0]).serial_number)
        decision = await auth.authorize(request)
        assert not decision.granted and "revoked" in decision.reason
    finally:
        await client.stop()
        await csms.stop()


async def test_ocsp_denial_ends_a_pnc_session_with_its_reason(p521: Pki, tmp_path: Path
                                                              ) -> None:
    csms = CsmsSimulator(accept_all_tokens=True)
    csms.pnc_certificate_status = False
    csms.ocsp = _responder(p521, mode="stale")
    client = await _connected(csms, tmp_path)
    auth = OcppAuthorizer(client, ocsp=OcppOcspChecker(client, p521.pki.mo_roots))
    try:
        async with pnc_server(p521) as r:
            r.server.hooks = Hooks(authorizer=auth)
            stream = r.rig.station.events()
            report = await r.ev(pnc_scenario(p521.contract()), p521.ev_tls())
            assert not report.success
            await r.rig.wait_safe()
            names = [a.name for a in r.rig.connector().controller.actions]
            assert "contactors_close" not in names
            assert r.server.sessions[-1].failed and r.server.sessions[-1].emaid is None
            async with asyncio.timeout(10):
                async for event in stream:
                    if isinstance(event, se.AuthorizationDecided):
                        break
            stream.close()
            # the session's denial names the OCSP failure
            assert not event.granted and "OCSP" in event.reason and "stale" in event.reason
    finally:
        await client.stop()
        await csms.stop()
