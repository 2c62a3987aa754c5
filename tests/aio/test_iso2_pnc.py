"""ISO 15118-2 Plug & Charge end to end: the simulated -2 EV against the real SeccServer over
real TLS 1.2 (TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, P-256) on the port that also serves
-20 over TLS 1.3, back to back on one server: certificate installation then DC and AC
charging with a signed MeteringReceipt, an installed contract reused, and contracts that are
revoked / expired / under a foreign MO root -> FAILED with the right code, power safe, the
server keeps serving."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certs.iso2_pki import Iso2Pki, make_iso2_pki
from certs.make_pki import make_pki
from evse.aio.secc_server import SeccServer, Station
from evse.aio.tls import secc_context
from evse.aio.tls_iso2 import iso2_ev_context, iso2_secc_context
from evse.protocol.standards import ISO2
from evse.security.iso2_pnc import Iso2ContractVerifier, Iso2PncService, Iso2Provisioning
from hal.backends.sim import SimBackend
from simulators.ev import iso2_pnc
from simulators.ev.client import Endpoint
from simulators.ev.iso2_client import Iso2Run, drive_iso2
from simulators.ev.iso2_evcc import ISO2_SCENARIOS, Iso2Evcc
from tests.aio.helpers import HOST, Rig, assert_safe_sequence, secc_config


@pytest.fixture(scope="module")
def pki() -> Iso2Pki:
    return make_iso2_pki()


@pytest.fixture(scope="module")
def files(pki: Iso2Pki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return pki.write(tmp_path_factory.mktemp("pki2"))


def _service(pki: Iso2Pki) -> Iso2PncService:
    prov_key, mo_key = pki.prov.key, pki.contract.subs[0].key
    assert isinstance(prov_key, ec.EllipticCurvePrivateKey)
    assert isinstance(mo_key, ec.EllipticCurvePrivateKey)
    provisioning = Iso2Provisioning(
        prov_leaf=pki.prov.leaf.cert, prov_subs=tuple(s.cert for s in pki.prov.subs),
        prov_key=prov_key, mo_sub_ca=tuple(s.cert for s in pki.contract.subs),
        mo_sub_ca_key=mo_key, emaid=pki.emaid)
    return Iso2PncService(Iso2ContractVerifier(pki.mo_roots, crls=[pki.crl]),
                          provisioning=provisioning, receipt_required=True)


@contextlib.asynccontextmanager
async def _secc(pki: Iso2Pki, files: dict[str, Path],
                tmp_path: Path) -> AsyncIterator[Rig]:
    iso20 = make_pki(tmp_path / "pki20")
    station = Station.from_backends([SimBackend()], speedup=10.0)
    server = SeccServer(
        secc_config(protocols=("iso20", "iso2"), allow_plain_tcp_iso20=False,
                    auto_authorize=False, pnc_auto_authorize=True, iso2_pnc=_service(pki)),
        station, address=HOST, port=None,
        tls=secc_context(iso20.secc_chain, iso20.secc_key).context,
        tls_iso2=iso2_secc_context(files["secc"], files["secc_key"]).context,
        tls_port=0, poll_interval=0.01)
    await server.start()
    try:
        yield Rig(server, station)
    finally:
        await server.close()


async def _run(rig: Rig, files: dict[str, Path], name: str, creds: Any) -> Iso2Run:
    backend = rig.connector().backend
    dc = "_ac" not in name
    ev = Iso2Evcc(dataclasses.replace(ISO2_SCENARIOS[name], loops=10),
                  battery=backend.ev_battery if dc else None,
                  on_contactors=lambda closed: setattr(backend, "ev_contactor_closed", closed)
                  if dc else None, credentials=creds)
    run = await drive_iso2(ev, Endpoint(HOST, rig.port, ssl=iso2_ev_context(files["v2g_root"])),
                           response_timeout=5.0)
    await rig.wait_safe(timeout=5.0)
    assert_safe_sequence(rig)
    return run


async def test_back_to_back_iso2_pnc_sessions(pki: Iso2Pki, files: dict[str, Path],
                                              tmp_path: Path) -> None:
    async with _secc(pki, files, tmp_path) as rig:
        # 1. A car without a contract installs one, then charges DC with a signed receipt.
        car = iso2_pnc.credentials(pki)
        run = await _run(rig, files, "iso2_dc_pnc_install", car)
        assert run.success, run.summary()
        requests = [r for r, _ in run.done.log]
        for needed in ("CertificateInstallationReq", "PaymentDetailsReq", "AuthorizationReq",
                       "MeteringReceiptReq", "CurrentDemandReq"):
            assert needed in requests, run.summary()
        assert not [c for _, c in run.done.log if c.startswith("FAILED")]
        assert car.contract_chain is not None  # installed: decrypted and matching
        session = list(rig.server.sessions)[-1]
        assert session.protocol == ISO2 and not session.failed
        assert session.tls_version == "TLSv1.2"
        assert session.authorization == "PnC" and session.emaid == pki.emaid
        assert session.tls_cipher == "ECDHE-ECDSA-AES128-SHA256"
        # 2. The same car again with the contract it installed (no installation), DC.
        run = await _run(rig, files, "iso2_dc_pnc", car)
        assert run.success, run.summary()
        assert "CertificateInstallationReq" not in [r for r, _ in run.done.log]
        # 3. AC with installation.
        run = await _run(rig, files, "iso2_ac_pnc_install", iso2_pnc.credentials(pki))
        assert run.success, run.summary()
        assert "MeteringReceiptReq" in [r for r, _ in run.done.log]
        # 4. Refused contracts: FAILED with the -2 code at PaymentDetails, power safe.
        for variant, code in (("contract_revoked", "FAILED_CertificateRevoked"),
                              ("contract_expired", "FAILED_CertificateExpired"),
                              ("contract_unknown_root", "FAILED_CertChainError")):
            creds = iso2_pnc.credentials(pki, contract=pki.variants[variant])
            run = await _run(rig, files, "iso2_dc_pnc", creds)
            assert not run.success
            assert run.done.log[-1] == ("PaymentDetailsReq", code), run.summary()
            assert list(rig.server.sessions)[-1].failed
        # 5. And the server still serves a good car afterwards.
        run = await _run(rig, files, "iso2_dc_pnc", iso2_pnc.credentials(pki,
                                                                          contract=pki.contract))
        assert run.success, run.summary()
        assert rig.server.errors == 0


async def test_contract_over_plain_tcp_is_not_offered(pki: Iso2Pki) -> None:
    station = Station.from_backends([SimBackend()], speedup=10.0)
    server = SeccServer(secc_config(protocols=("iso2",), iso2_pnc=_service(pki)), station,
                        address=HOST, port=0, poll_interval=0.01)
    await server.start()
    try:
        ev = Iso2Evcc(ISO2_SCENARIOS["iso2_dc_pnc"], credentials=iso2_pnc.credentials(pki))
        run = await drive_iso2(ev, Endpoint(HOST, server.port or 0), response_timeout=5.0)
        assert not run.success and "Contract not offered" in run.done.reason
        assert ev.payment_options == ("ExternalPayment",)
    finally:
        await server.close()
