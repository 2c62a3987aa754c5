"""The CSMS's certificate management reaching ISO 15118-2 Plug & Charge, over loopback
WebSockets to the CSMS simulator and the real SeccServer's TLS 1.2 (-2) / TLS 1.3 (-20)
port: MO roots installed / deleted by the CSMS reach the -2 contract verifier, and the -2
SECC certificate (P-256) renewed by SignCertificate beside the -20 one (P-521)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.iso2_pki import Iso2Pki, make_iso2_pki
from certs.make_pki import make_pki
from certs.make_pki import make_pki as make_v2g_pki
from evse.aio.ocpp_security import StationSecurity
from evse.aio.secc_server import SeccServer, Station
from evse.aio.tls import ev_context, secc_context
from evse.aio.tls_iso2 import iso2_ev_context, iso2_secc_context
from evse.ocpp.cert_store import CertStore
from evse.ocpp.csr import PendingCsr
from hal.backends.sim import SimBackend
from simulators.csms import CsmsSimulator, CsrSigner
from simulators.ev import iso2_pnc
from tests.aio.helpers import HOST, Rig, secc_config
from tests.aio.test_iso2_pnc import _run, _service
from tests.aio.test_ocpp_client import WAIT, running, until
from tests.aio.test_ocpp_security import STATION, _client, _leaf


@pytest.fixture(scope="module")
def pki() -> Iso2Pki:
    return make_iso2_pki()


@pytest.fixture(scope="module")
def files(pki: Iso2Pki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return pki.write(tmp_path_factory.mktemp("pki2"))


@contextlib.asynccontextmanager
async def _secc(pki: Iso2Pki, tls_iso2: Any, tmp_path: Path, tls20: Any = None, **cfg: Any
                ) -> AsyncIterator[Rig]:
    if tls20 is None:
        iso20 = make_pki(tmp_path / "pki20")
        tls20 = secc_context(iso20.secc_chain, iso20.secc_key).context
    station = Station.from_backends([SimBackend()], speedup=10.0)
    server = SeccServer(
        secc_config(protocols=("iso20", "iso2"), allow_plain_tcp_iso20=False,
                    auto_authorize=False, pnc_auto_authorize=True, **cfg),
        station, address=HOST, port=None,
        tls=tls20, tls_iso2=tls_iso2, tls_port=0, poll_interval=0.01)
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



def _pem(path: Path, *certs: Any) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


async def _served_serial(port: int, ctx: ssl.SSLContext) -> int:
    _, writer = await asyncio.open_connection(HOST, port, ssl=ctx)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        writer.close()


async def test_iso2_and_iso20_secc_certificates_renewed_by_one_sign_v2g_trigger(
        pki: Iso2Pki, files: dict[str, Path], tmp_path: Path) -> None:
    """SignV2GCertificate with a -20 (P-521) and a -2 (P-256) SECC certificate: two
    SignCertificate, -20 first, each signed by its PKI's CA; each CertificateSigned goes to
    the CSR whose key it carries; the next TLS 1.3 and TLS 1.2 handshakes present the new
    leaves; a chain for neither pending key is Rejected and changes nothing."""
    v2g20 = make_v2g_pki(tmp_path / "v2g20")
    chain20, key20 = tmp_path / "secc20.pem", tmp_path / "secc20.key"
    shutil.copy(v2g20.secc_chain, chain20)
    shutil.copy(v2g20.secc_key, key20)
    chain2, key2 = tmp_path / "secc2.pem", tmp_path / "secc2.key"
    shutil.copy(files["secc"], chain2)
    shutil.copy(files["secc_key"], key2)
    sub2 = pki.cpo.subs[0]
    sub2_key = tmp_path / "cpo_sub2.key"
    sub2_key.write_bytes(sub2.key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    csms = CsmsSimulator()
    csms.signers["V2GCertificate"] = CsrSigner(
        v2g20.sub_ca2_cert, v2g20.sub_ca2_key, server=True,
        chain=_pem(tmp_path / "subs20.pem", _leaf(v2g20.sub_ca2_cert),
                   _leaf(v2g20.sub_ca1_cert)))
    iso2_signer = CsrSigner(_pem(tmp_path / "cpo_sub2.pem", sub2.cert), sub2_key, server=True,
                            chain=_pem(tmp_path / "cpo_subs.pem",
                                       *(s.cert for s in pki.cpo.subs)))
    csms.more_signers["V2GCertificate"] = [iso2_signer]
    await csms.start()
    client = _client(csms.url, tmp_path, password="s3cret-s3cret-16",
                     v2g_roots=v2g20.root_cert)
    client.cert_store = CertStore(tmp_path / "certs")
    ev20 = ev_context(v2g20.root_cert).context
    ev2 = iso2_ev_context(files["v2g_root"])
    try:
        async with _secc(pki, iso2_secc_context(chain2, key2).context, tmp_path,
                         tls20=secc_context(chain20, key20).context) as rig, running(client):
            security = StationSecurity(
                client, client.config, store=client.cert_store, server=rig.server,
                secc_files=(chain20, key20),
                rebuild_secc=lambda: secc_context(chain20, key20).context,
                iso2_files=(chain2, key2),
                rebuild_iso2=lambda: iso2_secc_context(chain2, key2).context,
                iso2_roots=lambda: [pki.v2g_root.cert])
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            old20 = await _served_serial(rig.port, ev20)
            old2 = await _served_serial(rig.port, ev2)
            assert old2 == _leaf(files["secc"]).serial_number
            res = await csms.call(STATION, "TriggerMessage",
                                  {"requested_message": "SignV2GCertificate"})
            assert res.status == "Accepted"
            await until(lambda: csms.signed_answers == ["Accepted", "Accepted"],
                        "both CertificateSigned")
            sign = csms.calls(STATION, "SignCertificate")
            curves = [x509.load_pem_x509_csr(s["csr"].encode()).public_key().curve.name
                      for s in sign]
            assert curves == ["secp521r1", "secp256r1"]
            assert all(s["certificate_type"] == "V2GCertificate" for s in sign)
            new20 = await _served_serial(rig.port, ev20)
            new2 = await _served_serial(rig.port, ev2)
            assert new20 != old20 and new20 == _leaf(chain20).serial_number
            assert new2 != old2 and new2 == _leaf(chain2).serial_number
            assert _leaf(chain2).public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
            assert len(x509.load_pem_x509_certificates(chain2.read_bytes())) == 3
            assert security.certificates.installed == ["V2GCertificate"] * 2
            assert not security.certificates.pending
            assert not list(tmp_path.glob("*.pending"))
            # a -2 chain for a key that is not pending: Rejected, nothing changes
            iso2_signer.deliver = False
            assert await security.certificates.request("V2GCertificate")
            before = (chain2.read_bytes(), key2.read_bytes())
            stray = PendingCsr.new("V2GCertificate", _leaf(chain2))
            res = await csms.call(STATION, "CertificateSigned", {
                "certificate_chain": iso2_signer.sign(stray.csr_pem),
                "certificate_type": "V2GCertificate"})
            assert res.status == "Rejected"
            assert (chain2.read_bytes(), key2.read_bytes()) == before
            # its own pending key takes the held CSR's chain
            res = await csms.call(STATION, "CertificateSigned", {
                "certificate_chain": iso2_signer.sign(iso2_signer.held[0]),
                "certificate_type": "V2GCertificate"})
            assert res.status == "Accepted"
            assert await _served_serial(rig.port, ev2) == _leaf(chain2).serial_number
    finally:
        await csms.stop()


async def test_evse_secc_with_iso2_pki_renews_both_secc_certificates(tmp_path: Path) -> None:
    """`evse secc` with [tls], [ocpp] and --iso2-pki: SignV2GCertificate renews the -20 chain
    of [tls] and the -2 chain of the --iso2-pki directory; the next TLS 1.2 handshake on the
    shared TLS port presents the new -2 leaf, the next TLS 1.3 one the new -20 leaf."""
    import io
    import re

    from evse.aio.app import SeccOptions, run_secc
    from tests.aio.test_ocpp_security import SECC_CONFIG

    v2g20 = make_v2g_pki(tmp_path / "v2g20")
    chain20, key20 = tmp_path / "secc20.pem", tmp_path / "secc20.key"
    shutil.copy(v2g20.secc_chain, chain20)
    shutil.copy(v2g20.secc_key, key20)
    iso2 = make_iso2_pki()
    d = tmp_path / "pki2"
    files = iso2.write(d)
    sub2 = iso2.cpo.subs[0]
    sub2_key = tmp_path / "cpo_sub2.key"
    sub2_key.write_bytes(sub2.key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    csms = CsmsSimulator(passwords={"CS-SECC-2": "0123456789abcdef"})
    csms.signers["V2GCertificate"] = CsrSigner(
        v2g20.sub_ca2_cert, v2g20.sub_ca2_key, server=True,
        chain=_pem(tmp_path / "subs20.pem", _leaf(v2g20.sub_ca2_cert),
                   _leaf(v2g20.sub_ca1_cert)))
    csms.more_signers["V2GCertificate"] = [CsrSigner(
        _pem(tmp_path / "cpo_sub2.pem", sub2.cert), sub2_key, server=True,
        chain=_pem(tmp_path / "cpo_subs.pem", *(s.cert for s in iso2.cpo.subs)))]
    await csms.start()
    path = tmp_path / "station.toml"
    path.write_text(SECC_CONFIG.format(url=csms.url, chain=chain20, key=key20,
                                       queue=tmp_path / "q.sqlite3", certs=tmp_path / "certs",
                                       roots=v2g20.root_cert))
    options = SeccOptions(config=path, address=HOST, sdp=False, sim_speedup=10.0,
                          poll_interval=0.01, tls_port=0, iso2_pki=d,
                          protocols=("iso20", "iso2"))
    ev20 = ev_context(v2g20.root_cert).context
    ev2 = iso2_ev_context(files["v2g_root"])
    out = io.StringIO()
    ready, stop = asyncio.Event(), asyncio.Event()
    try:
        with contextlib.redirect_stdout(out):
            task = asyncio.create_task(run_secc(options, ready=ready, stop=stop))
            await asyncio.wait_for(ready.wait(), 30)
            m = re.search(r"TLS 1\.2 \(-2\) on port (\d+)", out.getvalue())
            assert m, out.getvalue()
            port = int(m[1])
            try:
                await until(lambda: bool(csms.calls("CS-SECC-2", "StatusNotification")),
                            "the station at the CSMS")
                old20 = await _served_serial(port, ev20)
                old2 = await _served_serial(port, ev2)
                assert old2 == _leaf(files["secc"]).serial_number
                res = await csms.call("CS-SECC-2", "TriggerMessage",
                                      {"requested_message": "SignV2GCertificate"})
                assert res.status == "Accepted"
                await until(lambda: csms.signed_answers == ["Accepted", "Accepted"],
                            "both CertificateSigned")
                new20 = await _served_serial(port, ev20)
                new2 = await _served_serial(port, ev2)
                assert new20 != old20 and new20 == _leaf(chain20).serial_number
                assert new2 != old2 and new2 == _leaf(d / "secc.pem").serial_number
            finally:
                stop.set()
                assert await asyncio.wait_for(task, 20) == 0
    finally:
        await csms.stop()
