"""OCPP 2.1 OEMRootCertificate ("OEM root certificate for 2-way TLS with EV") installed and
deleted by the CSMS over a loopback WebSocket: the SECC's next TLS 1.3 handshakes check the
vehicle certificate with it, beside the configured `[tls] trust_roots`."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.make_pki import make_pki
from evse.aio.ocpp_security import StationSecurity
from evse.aio.tls import ev_context, secc_context
from evse.ocpp.cert_store import CertStore
from simulators.csms import CsmsSimulator
from tests.aio.helpers import HOST
from tests.aio.helpers import running as secc_running
from tests.aio.test_ocpp_client import WAIT, running, until
from tests.aio.test_ocpp_security import STATION, _client
from tests.aio.test_tls_profile import _vehicle_pki


async def _vehicle_accepted(port: int, v2g_root: Path, vehicle: dict[str, Path]) -> bool:
    """True when the SECC completes TLS with this vehicle certificate (P-521) and keeps the
    connection; False when it refuses it (TLS 1.3: the alert comes after the handshake)."""
    ctx = ev_context(v2g_root, cert=vehicle["secp521r1"], key=vehicle["secp521r1_key"]).context
    try:
        reader, writer = await asyncio.open_connection(HOST, port, ssl=ctx)
    except (ssl.SSLError, ConnectionError):
        return False
    try:
        return await asyncio.wait_for(reader.read(1), 0.5) != b""
    except TimeoutError:
        return True  # still open: the SECC waits for the EV's first message
    except (ssl.SSLError, ConnectionError):
        return False
    finally:
        writer.close()


async def test_oem_root_from_the_csms_becomes_vehicle_trust(tmp_path: Path) -> None:
    v2g = make_pki(tmp_path / "v2g")
    chain, key = tmp_path / "secc.pem", tmp_path / "secc.key"
    shutil.copy(v2g.secc_chain, chain)
    shutil.copy(v2g.secc_key, key)
    (tmp_path / "configured").mkdir()
    (tmp_path / "oem").mkdir()
    configured = _vehicle_pki(tmp_path / "configured")  # [tls] trust_roots
    oem = _vehicle_pki(tmp_path / "oem", "OEM root (test)")  # the CSMS's OEM root
    oem_pem = x509.load_pem_x509_certificate(oem["root"].read_bytes()).public_bytes(
        serialization.Encoding.PEM).decode()
    csms = CsmsSimulator()
    await csms.start()
    client = _client(csms.url, tmp_path, password="s3cret-s3cret-16")
    assert client.config.version == "2.1"
    client.cert_store = CertStore(tmp_path / "certs")
    holder: list[StationSecurity] = []

    def rebuild() -> ssl.SSLContext:
        return secc_context(chain, key, vehicle_roots=holder[0].vehicle_trust(),
                            require_vehicle_cert=True).context

    tls = secc_context(chain, key, vehicle_roots=configured["root"],
                       require_vehicle_cert=True).context
    try:
        async with secc_running(tls=tls, plain=False) as rig, running(client):
            holder.append(StationSecurity(
                client, client.config, store=client.cert_store, server=rig.server,
                secc_files=(chain, key), rebuild_secc=rebuild,
                vehicle_roots=configured["root"]))
            await asyncio.wait_for(client.accepted.wait(), WAIT)

            async def accepted(vehicle: dict[str, Path]) -> bool:
                return await _vehicle_accepted(rig.port, v2g.root_cert, vehicle)

            assert await accepted(configured)
            assert not await accepted(oem)
            res = await csms.call(STATION, "InstallCertificate", {
                "certificate_type": "OEMRootCertificate", "certificate": oem_pem})
            assert res.status == "Accepted"
            assert await accepted(oem)
            assert await accepted(configured)  # the configured roots stay
            ids = await csms.call(STATION, "GetInstalledCertificateIds",
                                  {"certificate_type": ["OEMRootCertificate"]})
            (entry,) = ids.certificate_hash_data_chain
            assert entry["certificate_type"] == "OEMRootCertificate"
            res = await csms.call(STATION, "DeleteCertificate", {
                "certificate_hash_data": entry["certificate_hash_data"]})
            assert res.status == "Accepted"
            assert not await accepted(oem)
            assert await accepted(configured)
    finally:
        await csms.stop()




async def test_a_2_0_1_csms_neither_installs_nor_sees_oem_roots(tmp_path: Path) -> None:
    """2.0.1 has no OEMRootCertificate: InstallCertificate of one is a CallError (schema),
    and GetInstalledCertificateIds for every type leaves an OEM root installed over 2.1 out
    (its answer could not name the type)."""
    (tmp_path / "oem").mkdir()
    oem = _vehicle_pki(tmp_path / "oem", "OEM root (test)")
    pem = oem["root"].read_text()
    store = CertStore(tmp_path / "certs")
    assert store.install("OEMRootCertificate", pem, time.time())[0] == "Accepted"
    v2g = make_pki(tmp_path / "v2g")
    assert store.install("V2GRootCertificate", v2g.root_cert.read_text(),
                         time.time())[0] == "Accepted"
    csms = CsmsSimulator()
    await csms.start()
    client = _client(csms.url, tmp_path, password="s3cret-s3cret-16", version="2.0.1")
    client.cert_store = store
    try:
        async with running(client):
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            ids = await csms.call(STATION, "GetInstalledCertificateIds", {})
            assert ids.status == "Accepted"
            assert [e["certificate_type"] for e in ids.certificate_hash_data_chain] == [
                "V2GRootCertificate"]
            await csms.send_raw(STATION, '[2,"o1","InstallCertificate",{"certificateType":'
                                         f'"OEMRootCertificate","certificate":{json.dumps(pem)}}}]')
            await until(lambda: any('"o1"' in f and f.startswith("[4")
                                    for f in csms.frames.get(STATION, [])), "CallError")
        assert len(store.certificates("OEMRootCertificate")) == 1  # unchanged
    finally:
        await csms.stop()


async def test_oem_roots_installed_before_a_restart_apply_at_start(tmp_path: Path) -> None:
    v2g = make_pki(tmp_path / "v2g")
    (tmp_path / "configured").mkdir()
    (tmp_path / "oem").mkdir()
    configured = _vehicle_pki(tmp_path / "configured")
    oem = _vehicle_pki(tmp_path / "oem", "OEM root (test)")
    store = CertStore(tmp_path / "certs")
    assert store.install("OEMRootCertificate", oem["root"].read_text(),
                         time.time())[0] == "Accepted"
    csms = CsmsSimulator()
    await csms.start()
    client = _client(csms.url, tmp_path, password="s3cret-s3cret-16")
    client.cert_store = store
    holder: list[StationSecurity] = []

    def rebuild() -> ssl.SSLContext:
        return secc_context(v2g.secc_chain, v2g.secc_key,
                            vehicle_roots=holder[0].vehicle_trust(),
                            require_vehicle_cert=True).context

    tls = secc_context(v2g.secc_chain, v2g.secc_key, vehicle_roots=configured["root"],
                       require_vehicle_cert=True).context
    try:
        async with secc_running(tls=tls, plain=False) as rig, running(client):
            security = StationSecurity(
                client, client.config, store=store, server=rig.server,
                secc_files=(v2g.secc_chain, v2g.secc_key), rebuild_secc=rebuild,
                vehicle_roots=configured["root"])
            holder.append(security)
            assert not await _vehicle_accepted(rig.port, v2g.root_cert, oem)
            security.start()
            try:
                assert await _vehicle_accepted(rig.port, v2g.root_cert, oem)
                assert await _vehicle_accepted(rig.port, v2g.root_cert, configured)
            finally:
                await security.stop()
    finally:
        await csms.stop()
