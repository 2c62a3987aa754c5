"""The CSMS's certificate management reaching ISO 15118-2 Plug & Charge, over loopback
WebSockets to the CSMS simulator and the real SeccServer's TLS 1.2 (-2) / TLS 1.3 (-20)
port: MO roots installed / deleted by the CSMS reach the -2 contract verifier, and the -2
SECC certificate (P-256) renewed by SignCertificate beside the -20 one (P-521)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from certs.iso2_pki import Iso2Pki, make_iso2_pki
from certs.make_pki import make_pki
from evse.aio.ocpp_security import StationSecurity
from evse.aio.secc_server import SeccServer, Station
from evse.aio.tls import secc_context
from evse.aio.tls_iso2 import iso2_secc_context
from evse.ocpp.cert_store import CertStore
from hal.backends.sim import SimBackend
from simulators.csms import CsmsSimulator
from simulators.ev import iso2_pnc
from tests.aio.helpers import HOST, Rig, secc_config
from tests.aio.test_iso2_pnc import _run, _service
from tests.aio.test_ocpp_client import WAIT, running
from tests.aio.test_ocpp_security import STATION, _client


@pytest.fixture(scope="module")
def pki() -> Iso2Pki:
    return make_iso2_pki()


@pytest.fixture(scope="module")
def files(pki: Iso2Pki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return pki.write(tmp_path_factory.mktemp("pki2"))


@contextlib.asynccontextmanager
async def _secc(pki: Iso2Pki, tls_iso2: Any, tmp_path: Path, **cfg: Any
                ) -> AsyncIterator[Rig]:
    iso20 = make_pki(tmp_path / "pki20")
    station = Station.from_backends([SimBackend()], speedup=10.0)
    server = SeccServer(
        secc_config(protocols=("iso20", "iso2"), allow_plain_tcp_iso20=False,
                    auto_authorize=False, pnc_auto_authorize=True, **cfg),
        station, address=HOST, port=None,
        tls=secc_context(iso20.secc_chain, iso20.secc_key).context,
        tls_iso2=tls_iso2, tls_port=0, poll_interval=0.01)
    await server.start()
    try:
        yield Rig(server, station)
    finally:
        await server.close()


async def test_mo_root_from_the_csms_reaches_the_iso2_contract_check(
        pki: Iso2Pki, files: dict[str, Path], tmp_path: Path) -> None:
    """A -2 PnC car whose MO root the SECC does not trust is refused at PaymentDetails;
    InstallCertificate of the root makes the next session charge (no restart);
    DeleteCertificate refuses again."""
    service = _service(pki)
    service.verifier.mo_roots = ()  # nothing configured: only what the CSMS installs
    mo_pem = pki.mo_root.cert.public_bytes(serialization.Encoding.PEM).decode()
    csms = CsmsSimulator()
    await csms.start()
    client = _client(csms.url, tmp_path, password="s3cret-s3cret-16")
    client.cert_store = CertStore(tmp_path / "certs")
    tls_iso2 = iso2_secc_context(files["secc"], files["secc_key"]).context
    try:
        async with _secc(pki, tls_iso2, tmp_path, iso2_pnc=service) as rig, running(client):
            StationSecurity(client, client.config, store=client.cert_store, server=rig.server)
            await asyncio.wait_for(client.accepted.wait(), WAIT)

            async def session() -> Any:
                return await _run(rig, files, "iso2_dc_pnc",
                                  iso2_pnc.credentials(pki, contract=pki.contract))

            denied = await session()
            assert not denied.success
            assert denied.done.log[-1] == ("PaymentDetailsReq", "FAILED_CertChainError")
            res = await csms.call(STATION, "InstallCertificate", {
                "certificate_type": "MORootCertificate", "certificate": mo_pem})
            assert res.status == "Accepted"
            granted = await session()
            assert granted.success, granted.summary()
            assert rig.server.sessions[-1].emaid == pki.emaid
            ids = await csms.call(STATION, "GetInstalledCertificateIds",
                                  {"certificate_type": ["MORootCertificate"]})
            (entry,) = ids.certificate_hash_data_chain
            res = await csms.call(STATION, "DeleteCertificate", {
                "certificate_hash_data": entry["certificate_hash_data"]})
            assert res.status == "Accepted"
            again = await session()
            assert not again.success
            assert again.done.log[-1] == ("PaymentDetailsReq", "FAILED_CertChainError")
            assert rig.server.errors == 0
    finally:
        await csms.stop()

