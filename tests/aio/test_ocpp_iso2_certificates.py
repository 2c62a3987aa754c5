"""ISO 15118-2 CertificateInstallation / CertificateUpdate through the CSMS over real
WebSockets and real TLS 1.2 (evse/aio/ocpp_certificates.py `iso2_certificate`):

- a -2 PnC car without a contract: our SeccServer holds its CertificateInstallationReq, sends
  it (the whole V2G_Message EXI) in Get15118EVCertificate (iso15118SchemaVersion
  urn:iso:15118:2:2013:MsgDef, action Install), the CSMS simulator's -2 provisioning service
  (test PKI) answers the signed CertificateInstallationRes, the car checks the SA signature,
  decrypts the contract key (ECDH + ConcatKDF + AES-128-CBC) and authorizes with it (its
  AuthorizationReq signature is verified by the SECC); the SECC's own provisioning service is
  left without an SA, so only the CSMS can have provisioned it;
- CertificateUpdate the same way (action Update, key encrypted for the old contract key);
- the CSMS answering Failed, offline, too slow, or a certificate source that hangs: the car
  hears FAILED within the 4.5 s performance time, nothing is charged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import exi_codec
from certs.iso2_pki import Iso2Pki
from certs.make_pki import make_pki
from evse.aio.ocpp_certificates import ISO2_NAMESPACE, OcppCertificateSource
from evse.aio.ocpp_client import OcppClient
from evse.aio.secc_server import SeccServer, Station
from evse.aio.tls import secc_context
from evse.aio.tls_iso2 import iso2_ev_context, iso2_secc_context
from evse.hooks import Hooks
from evse.protocol.iso2.timeouts import PERFORMANCE_TIME_SLOW
from evse.protocol.standards import ISO2
from evse.security.iso2_pnc import Iso2PncService
from hal.backends.sim import SimBackend
from simulators.csms import CsmsSimulator
from simulators.ev import iso2_pnc
from simulators.ev.client import Endpoint
from simulators.ev.iso2_client import Iso2Run, drive_iso2
from simulators.ev.iso2_evcc import ISO2_SCENARIOS, Iso2Evcc
from tests.aio.helpers import HOST, Rig, assert_safe_sequence, secc_config
from tests.aio.test_iso2_pnc import _service, files, pki  # noqa: F401
from tests.aio.test_ocpp_auth import STATION, client_for
from tests.protocol.iso2.test_pnc import _Updating


def _no_sa(pki: Iso2Pki) -> Iso2PncService:  # noqa: F811
    """The station's -2 PnC checks without a local provisioning service."""
    local = _service(pki)
    return Iso2PncService(local.verifier, provisioning=None, receipt_required=False)


@contextlib.asynccontextmanager
async def _secc(pki: Iso2Pki, files: dict[str, Path], tmp_path: Path,  # noqa: F811
                source: Any) -> AsyncIterator[Rig]:
    iso20 = make_pki(tmp_path / "pki20")
    station = Station.from_backends([SimBackend()], speedup=10.0)
    server = SeccServer(
        secc_config(protocols=("iso20", "iso2"), allow_plain_tcp_iso20=False,
                    auto_authorize=False, pnc_auto_authorize=True, iso2_pnc=_no_sa(pki)),
        station, address=HOST, port=None,
        tls=secc_context(iso20.secc_chain, iso20.secc_key).context,
        tls_iso2=iso2_secc_context(files["secc"], files["secc_key"]).context,
        tls_port=0, poll_interval=0.01, hooks=Hooks(certificates=source))
    await server.start()
    try:
        yield Rig(server, station)
    finally:
        await server.close()


async def _connected(csms: CsmsSimulator, tmp_path: Path) -> OcppClient:
    await csms.start()
    client = client_for(csms.url, tmp_path)
    client.start()
    await asyncio.wait_for(client.accepted.wait(), 30)
    return client


async def _run(rig: Rig, files: dict[str, Path], name: str, creds: Any,  # noqa: F811
               cls: type[Iso2Evcc] = Iso2Evcc) -> Iso2Run:
    backend = rig.connector().backend
    ev = cls(dataclasses.replace(ISO2_SCENARIOS[name], loops=4),
             battery=backend.ev_battery,
             on_contactors=lambda closed: setattr(backend, "ev_contactor_closed", closed),
             credentials=creds)
    # the EV waits 5 s for a Certificate* response (the SECC's performance time is 4.5 s)
    run = await drive_iso2(ev, Endpoint(HOST, rig.port, ssl=iso2_ev_context(files["v2g_root"])),
                           response_timeout=5.0)
    await rig.wait_safe(timeout=5.0)
    assert_safe_sequence(rig)
    return run


def _rtt(run: Iso2Run, request: str) -> float:
    (rtt,) = [t for name, t in run.rtts if name == request]
    return rtt


@pytest.mark.parametrize("version", ["ocpp2.1", "ocpp2.0.1"])
async def test_iso2_contract_installed_through_get15118evcertificate(
        pki: Iso2Pki, files: dict[str, Path], tmp_path: Path, version: str) -> None:  # noqa: F811
    csms = CsmsSimulator(subprotocols=(version,))
    csms.iso2_pnc = _service(pki)  # the CSMS's provisioning service on the test PKI
    client = await _connected(csms, tmp_path)
    source = OcppCertificateSource(client)
    try:
        async with _secc(pki, files, tmp_path, source) as rig:
            car = iso2_pnc.credentials(pki)
            assert car.contract_chain is None
            run = await _run(rig, files, "iso2_dc_pnc_install", car)
            assert run.success, run.summary()
            requests = [r for r, _ in run.done.log]
            assert requests.count("CertificateInstallationReq") == 1
            assert requests.index("CertificateInstallationReq") < requests.index(
                "PaymentDetailsReq") < requests.index("AuthorizationReq")
            assert ("AuthorizationReq", "OK") in run.done.log
            assert car.contract_chain is not None  # decrypted and matching its certificate
            assert _rtt(run, "CertificateInstallationReq") < PERFORMANCE_TIME_SLOW
            session = rig.server.sessions[-1]
            assert session.protocol == ISO2 and not session.failed
            assert session.authorization == "PnC" and session.emaid == pki.emaid
            assert rig.server.late_responses == 0 and rig.server.errors == 0
        (call,) = csms.calls(STATION, "Get15118EVCertificate")
        assert client.subprotocol == version
        assert call["action"] == "Install"
        assert call["iso15118_schema_version"] == ISO2_NAMESPACE
        msg = exi_codec.decode(base64.b64decode(call["exi_request"]), "iso2")
        assert msg.body.certificate_installation_req is not None  # the whole V2G_Message
        assert bytes(msg.body.certificate_installation_req.oem_provisioning_cert) == \
            pki.oem_provisioning.leaf.cert.public_bytes(Encoding.DER)
        assert not source.failures
    finally:
        await client.stop()
        await csms.stop()


async def test_iso2_contract_updated_through_get15118evcertificate(
        pki: Iso2Pki, files: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    csms = CsmsSimulator()
    csms.iso2_pnc = _service(pki)
    client = await _connected(csms, tmp_path)
    source = OcppCertificateSource(client)
    try:
        async with _secc(pki, files, tmp_path, source) as rig:
            car = iso2_pnc.credentials(pki, contract=pki.contract)
            run = await _run(rig, files, "iso2_dc_pnc", car, cls=_Updating)
            assert run.success, run.summary()
            assert ("CertificateUpdateReq", "OK") in run.done.log
            assert car.contract_chain is not None
            assert bytes(car.contract_chain.certificate) != pki.contract.leaf_der
            assert rig.server.sessions[-1].emaid == pki.emaid
        (call,) = csms.calls(STATION, "Get15118EVCertificate")
        assert call["action"] == "Update" and call["iso15118_schema_version"] == ISO2_NAMESPACE
        msg = exi_codec.decode(base64.b64decode(call["exi_request"]), "iso2")
        assert msg.body.certificate_update_req is not None
    finally:
        await client.stop()
        await csms.stop()


@pytest.mark.parametrize("case", ["failed", "offline", "slow", "hangs"])
async def test_csms_failure_answers_the_iso2_ev_failed(
        pki: Iso2Pki, files: dict[str, Path], tmp_path: Path, case: str) -> None:  # noqa: F811
    csms = CsmsSimulator()
    csms.iso2_pnc = _service(pki)
    if case == "failed":
        csms.ev_certificate_status = "Failed"
    elif case in ("slow", "hangs"):  # would answer, but after the EV's patience
        csms.ev_certificate_delay_s = 6.0
    client = await _connected(csms, tmp_path)
    if case == "offline":
        await csms.stop()
    # "hangs": the source itself would wait 30 s: the SECC's own timer answers FAILED
    source = OcppCertificateSource(client, iso2_timeout_s=30.0 if case == "hangs" else 3.5)
    try:
        async with _secc(pki, files, tmp_path, source) as rig:
            run = await _run(rig, files, "iso2_dc_pnc_install", iso2_pnc.credentials(pki))
            assert not run.success
            request, code = run.done.log[-1]
            assert request == "CertificateInstallationReq" and code.startswith("FAILED"), \
                run.summary()
            assert _rtt(run, "CertificateInstallationReq") < PERFORMANCE_TIME_SLOW
            names = [a.name for a in rig.connector().controller.actions]
            assert "contactors_close" not in names
            summary = rig.server.sessions[-1]
            assert summary.failed and summary.emaid is None
            assert rig.server.late_responses == 0 and rig.server.errors == 0
        if case == "hangs":
            assert not source.failures  # never answered: the SECC gave up first
            assert "did not answer" in (rig.server.sessions[-1].reason or "")
        else:
            assert len(source.failures) == 1
            assert ("Failed" if case == "failed" else "no answer") in source.failures[0]
    finally:
        await client.stop()
        await csms.stop()


def _b64(msg: Any) -> str:
    return base64.b64encode(exi_codec.encode(msg, strict=False)).decode("ascii")


def _scripted(pki: Iso2Pki, kind: str) -> str:  # noqa: F811
    """A bad exiResponse of `kind` (scripted into the CSMS simulator)."""
    from evse.protocol.iso2.messages import wrap
    from exi_codec.schemas import iso2

    if kind == "garbage":
        return "not base64!"
    if kind == "iso20":  # a -20 message where -2 is expected
        from tests.aio.test_ocpp_certificates import _warning_res

        return base64.b64encode(exi_codec.encode(_warning_res())).decode("ascii")
    answer = _service(pki).install(iso2_pnc.installation_request(iso2_pnc.credentials(pki)),
                                   timestamp=int(pki.now.timestamp()) + 60)
    assert answer.ok
    if kind == "unsigned":  # the provisioning signature left out
        return _b64(wrap(answer.body, bytes(8)))
    b = answer.body
    fields = dict(response_code=b.response_code,
                  sa_provisioning_certificate_chain=b.sa_provisioning_certificate_chain,
                  contract_signature_cert_chain=b.contract_signature_cert_chain,
                  contract_signature_encrypted_private_key=b
                  .contract_signature_encrypted_private_key,
                  d_hpublickey=b.d_hpublickey, e_maid=b.e_maid)
    if kind == "forged":  # signed, but the signature does not cover this key any more
        fields["contract_signature_encrypted_private_key"] = \
            iso2.ContractSignatureEncryptedPrivateKeyType(id="id2", value=bytes(48))
        return _b64(wrap(iso2.CertificateInstallationResType(**fields), bytes(8),
                         answer.signature))
    assert kind == "wrong-body"  # an Update response to an Install request
    update = iso2.CertificateUpdateResType(**fields, retry_counter=0)
    return _b64(wrap(update, bytes(8), answer.signature))


@pytest.mark.parametrize(("kind", "failure"), [
    ("garbage", "does not decode"), ("iso20", "does not decode"),
    ("unsigned", "without the provisioning signature"),
    ("wrong-body", "holds no certificate_installation_res"), ("forged", None)])
async def test_bad_exi_response_never_reaches_a_charge(
        pki: Iso2Pki, files: dict[str, Path], tmp_path: Path,  # noqa: F811
        kind: str, failure: str | None) -> None:
    csms = CsmsSimulator()
    csms.ev_certificate_exi = _scripted(pki, kind)
    client = await _connected(csms, tmp_path)
    source = OcppCertificateSource(client)
    try:
        async with _secc(pki, files, tmp_path, source) as rig:
            car = iso2_pnc.credentials(pki)
            run = await _run(rig, files, "iso2_dc_pnc_install", car)
            assert not run.success and car.contract_chain is None
            names = [a.name for a in rig.connector().controller.actions]
            assert "contactors_close" not in names
            if failure is None:  # forwarded; the EV's own check refuses the forged key
                assert run.done.log[-1] == ("CertificateInstallationReq", "OK"), run.summary()
                assert "PaymentDetailsReq" not in [r for r, _ in run.done.log]
                assert not source.failures
            else:
                assert run.done.log[-1][0] == "CertificateInstallationReq"
                assert run.done.log[-1][1] == "FAILED", run.summary()
                (reason,) = source.failures
                assert failure in reason
    finally:
        await client.stop()
        await csms.stop()


# -- the hook runner's -2 adapters ---------------------------------------------------------------


def _request(action: str = "Install") -> Any:
    from evse.protocol import events as ev
    from exi_codec.schemas import iso2

    req = iso2.CertificateInstallationReqType(id="ID1", oem_provisioning_cert=b"x",
                                              list_of_root_certificate_i_ds=None)
    msg = iso2.V2G_Message(header=iso2.MessageHeaderType(session_id=bytes(8)),
                           body=iso2.BodyType(certificate_installation_req=req))
    return ev.RequestIso2Certificate(action=action, message=msg, session_id=bytes(8),
                                     timestamp=1, deadline=4.0)


async def test_a_failing_or_confused_source_is_failed() -> None:
    from evse.aio.hook_runner import provision_iso2, provision_local
    from evse.hooks import CertificateRequest

    class Raises:
        async def iso2_certificate(self, request: CertificateRequest) -> Any:
            raise RuntimeError("boom")

    class Confused:
        asked: list[CertificateRequest] = []

        async def iso2_certificate(self, request: CertificateRequest) -> Any:
            self.asked.append(request)
            return "a string"

    for source, why in ((Raises(), "boom"), (Confused(), "str")):
        event = await provision_iso2(source, "1", _request())
        assert event.answer.response_code == "FAILED" and why in event.answer.reason
    (asked,) = Confused.asked
    assert (asked.standard, asked.action, asked.connector_id) == ("iso2", "Install", "1")
    # no provisioning service at all: FAILED at once
    assert provision_local(None, _request()).answer.response_code == "FAILED"
