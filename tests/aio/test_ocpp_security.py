"""The station's own certificates over real WebSockets (and TLS) against the CSMS simulator:
TriggerMessage -> SignCertificate -> CertificateSigned for the profile-3 client certificate
(the station reconnects with it) and for the SECC's -20 certificate (the next TLS handshake
presents it); bad chains are Rejected and change nothing; failed SECC TLS handshakes become
bounded SecurityEventNotifications (evse/aio/ocpp_security.py)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import stat
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.make_pki import PkiFiles
from certs.make_pki import make_pki as make_v2g_pki
from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_security import AggregatedEvents, CertificateSlot, StationCertificates
from evse.aio.tls import ev_context, secc_context
from evse.config import OcppConfig
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from simulators.csms import CsmsSimulator, CsrSigner
from tests.aio.helpers import running as secc_running
from tests.aio.test_ocpp_client import WAIT, running, server_ctx, until
from tests.ocpp.pki import Pki, make_pki, other_root

STATION = "CS1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("ocpp-pki"))


@pytest.fixture(scope="module")
def v2g(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return make_v2g_pki(tmp_path_factory.mktemp("v2g-pki"))


def _leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def _roots(path: Path) -> Any:
    return lambda: x509.load_pem_x509_certificates(path.read_bytes())


def _client(url: str, tmp: Path, **kw: Any) -> OcppClient:
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    cfg = replace(OcppConfig(url=url, station_id=STATION, password=None, reconnect_min_s=0.05,
                             reconnect_max_s=0.2, call_timeout_s=10.0), **kw)
    return OcppClient(cfg, st, queue=DurableQueue(tmp / "q.db"))


async def test_profile3_client_certificate_renewed_and_used_for_the_next_connection(
        pki: Pki, tmp_path: Path) -> None:
    csms = CsmsSimulator(ssl_context=server_ctx(pki, client_certs=True))
    csms.signers["ChargingStationCertificate"] = CsrSigner(pki.ca, pki.dir / "ca.key")
    await csms.start()
    cert0, key0 = pki.client(STATION)
    cert, key = tmp_path / "station.pem", tmp_path / "station.key"
    shutil.copy(cert0, cert)
    shutil.copy(key0, key)
    client = _client(csms.url, tmp_path, security_profile=3, ca_file=pki.ca, cert_file=cert,
                     key_file=key)
    certs = StationCertificates(client, [CertificateSlot(
        "ChargingStationCertificate", cert, key, _roots(pki.ca))])
    client.certificates = certs
    old_serial = _leaf(cert).serial_number
    try:
        async with running(client):
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            res = await csms.call(STATION, "TriggerMessage",
                                  {"requested_message": "SignChargingStationCertificate"})
            assert res.status == "Accepted"
            await until(lambda: bool(csms.signed_answers), "CertificateSigned")
            assert csms.signed_answers == ["Accepted"]
            await until(lambda: client.connections == 2 and client.accepted.is_set(),
                        "reconnected with the new certificate")
            # a V2G certificate this station does not renew: Rejected, no CSR
            res = await csms.call(STATION, "TriggerMessage",
                                  {"requested_message": "SignV2GCertificate"})
            assert res.status == "Rejected"
            await until(lambda: len(csms.calls(STATION, "SecurityEventNotification")) == 1,
                        "the renewal reported")
        new = _leaf(cert)
        assert new.serial_number != old_serial
        assert new.subject == _leaf(cert0).subject
        key_obj = serialization.load_pem_private_key(key.read_bytes(), None)
        assert key_obj.public_key().public_numbers() == \
            new.public_key().public_numbers()  # type: ignore[union-attr]
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        sign = csms.calls(STATION, "SignCertificate")
        assert [s["certificate_type"] for s in sign] == ["ChargingStationCertificate"]
        assert csms.signers["ChargingStationCertificate"].csr_valid == [True]
        # the CSMS saw the old certificate, then the new one, on the second connection
        assert [int(s, 16) for s in csms.client_serials] == [old_serial, new.serial_number]
        event = csms.calls(STATION, "SecurityEventNotification")[0]
        assert event["type"] == "ReconfigurationOfSecurityParameters"
        assert certs.installed == ["ChargingStationCertificate"]
    finally:
        await csms.stop()


async def test_bad_certificate_signed_is_rejected_and_changes_nothing(
        pki: Pki, tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    cert0, key0 = pki.client(STATION)
    cert, key = tmp_path / "station.pem", tmp_path / "station.key"
    shutil.copy(cert0, cert)
    shutil.copy(key0, key)
    client = _client(csms.url, tmp_path, password="s3cret-s3cret-16")
    certs = StationCertificates(client, [CertificateSlot(
        "ChargingStationCertificate", cert, key, _roots(pki.ca))])
    client.certificates = certs
    before = (cert.read_bytes(), key.read_bytes())
    rogue_ca, rogue_key = other_root(tmp_path)
    good = CsrSigner(pki.ca, pki.dir / "ca.key")
    expired = CsrSigner(pki.ca, pki.dir / "ca.key", days=-0.001)

    async def signed(chain: str) -> Any:
        return await csms.call(STATION, "CertificateSigned", {
            "certificate_chain": chain, "certificate_type": "ChargingStationCertificate"})

    try:
        async with running(client):
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            # nothing pending: Rejected
            res = await signed(good.sign(PendingCsrFor(cert).csr_pem))
            assert res.status == "Rejected"
            assert await certs.request("ChargingStationCertificate") is False  # no signer
            csms.signers["ChargingStationCertificate"] = CsrSigner(rogue_ca, rogue_key)
            assert await certs.request("ChargingStationCertificate")
            await until(lambda: csms.signed_answers == ["Rejected"], "untrusted chain")
            assert key in certs.pending
            pending = certs.pending[key][1]
            stored = key.with_name("station.key.pending")  # the key survives a restart
            assert stat.S_IMODE(stored.stat().st_mode) == 0o600
            other = PendingCsrFor(cert)  # a key that is not the pending one
            for chain in (good.sign(other.csr_pem), expired.sign(pending.csr_pem),
                          "not a certificate at all",
                          "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"):
                res = await signed(chain)
                assert res.status == "Rejected", chain[:40]
                assert res.status_info["reason_code"] == "InvalidCertificate"
            assert (cert.read_bytes(), key.read_bytes()) == before
            await until(lambda: len(csms.calls(STATION, "SecurityEventNotification")) == 5,
                        "security events")
            types = {e["type"] for e in csms.calls(STATION, "SecurityEventNotification")}
            assert types == {"InvalidChargingStationCertificate"}
            # the pending key still takes its own good chain afterwards
            res = await signed(good.sign(pending.csr_pem))
            assert res.status == "Accepted"
            assert cert.read_bytes() != before[0]
            assert not stored.exists() and not certs.pending
            # schema-invalid CertificateSigned: the library's CallError, nothing changes
            after = cert.read_bytes()
            await csms.send_raw(STATION, '[2,"x1","CertificateSigned",{"certificateChain":5}]')
            await until(lambda: any('"x1"' in f for f in csms.frames.get(STATION, [])),
                        "CallError")
            assert cert.read_bytes() == after
    finally:
        await csms.stop()


def PendingCsrFor(cert: Path) -> Any:  # noqa: N802 - reads like the class it makes
    from evse.ocpp.csr import PendingCsr

    return PendingCsr.new("ChargingStationCertificate", _leaf(cert))


async def _served_serial(port: int, root: Path) -> int:
    ctx = ev_context(root).context
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        ssl_obj = writer.get_extra_info("ssl_object")
        der = ssl_obj.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        writer.close()


async def test_secc_certificate_renewed_and_presented_by_the_next_tls13_handshake(
        v2g: PkiFiles, tmp_path: Path) -> None:
    chain, key = tmp_path / "secc_chain.pem", tmp_path / "secc.key"
    shutil.copy(v2g.secc_chain, chain)
    shutil.copy(v2g.secc_key, key)
    subs = tmp_path / "subs.pem"
    subs.write_bytes(v2g.sub_ca2_cert.read_bytes() + v2g.sub_ca1_cert.read_bytes())
    csms = CsmsSimulator()
    csms.signers["V2GCertificate"] = CsrSigner(v2g.sub_ca2_cert, v2g.sub_ca2_key, chain=subs,
                                               server=True)
    await csms.start()
    client = _client(csms.url, tmp_path, password="s3cret-s3cret-16")
    tls = secc_context(chain, key).context
    try:
        async with secc_running(tls=tls, plain=False) as rig, running(client):
            slot = CertificateSlot("V2GCertificate", chain, key, _roots(v2g.root_cert))
            slot.on_installed.append(lambda: rig.server.set_tls_contexts(
                secc_context(chain, key).context))
            client.certificates = StationCertificates(client, [slot])
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            old = await _served_serial(rig.port, v2g.root_cert)
            assert old == _leaf(v2g.secc_cert).serial_number
            res = await csms.call(STATION, "TriggerMessage",
                                  {"requested_message": "SignV2GCertificate"})
            assert res.status == "Accepted"
            await until(lambda: csms.signed_answers == ["Accepted"], "CertificateSigned")
            new = await _served_serial(rig.port, v2g.root_cert)
            assert new != old and new == _leaf(chain).serial_number
            assert len(x509.load_pem_x509_certificates(chain.read_bytes())) == 3
            assert client.connections == 1  # the OCPP connection was left alone
            assert csms.signers["V2GCertificate"].csr_valid == [True]
    finally:
        await csms.stop()


async def test_renewal_when_the_certificate_nears_its_end(pki: Pki, tmp_path: Path) -> None:
    """The station's clock 0.6 days on: its one-day certificate is past half its life (the
    window, 2 days, is longer than its life), so it is renewed - once: the new two-day one is
    not due again."""
    csms = CsmsSimulator()
    csms.signers["ChargingStationCertificate"] = CsrSigner(pki.ca, pki.dir / "ca.key", days=2)
    await csms.start()
    cert0, key0 = pki.client(STATION)  # valid for a day
    cert, key = tmp_path / "station.pem", tmp_path / "station.key"
    shutil.copy(cert0, cert)
    shutil.copy(key0, key)
    client = _client(csms.url, tmp_path, password="s3cret-s3cret-16")
    slot = CertificateSlot("ChargingStationCertificate", cert, key, _roots(pki.ca))
    certs = StationCertificates(client, [slot], renew_before_days=2.0, check_interval_s=0.05)
    assert certs.due(time.time()) == []  # a day left, half its life not reached
    client._clock = lambda: time.time() + 0.6 * 86400
    assert certs.due(client._clock()) == ["ChargingStationCertificate"]
    client.certificates = certs
    try:
        async with running(client):
            certs.start()
            await until(lambda: csms.signed_answers == ["Accepted"], "renewed before expiry")
            await asyncio.sleep(0.5)  # ten more checks
            await certs.stop()
        assert certs.installed == ["ChargingStationCertificate"]
        assert len(csms.calls(STATION, "SignCertificate")) == 1
        assert _leaf(cert).serial_number != _leaf(cert0).serial_number
    finally:
        await csms.stop()


def test_tls_failure_events_are_aggregated_and_bounded() -> None:
    sent: list[tuple[str, str]] = []
    now = [0.0]
    events = AggregatedEvents(lambda t, i: sent.append((t, i)), window_s=60.0,
                              clock=lambda: now[0])
    events.failed("[::1]:1", "TLS handshake failed: UNSUPPORTED_PROTOCOL")
    assert sent == [("InvalidTLSVersion", "SECC TLS handshakes failed: 1 (1 InvalidTLSVersion) "
                                          "from [::1]")]
    for i in range(10_000):  # a flood within one window: nothing more yet
        events.failed(f"[fe80::{i:x}]:5", "TLS handshake failed: NO_SHARED_CIPHER")
    events.failed("[::1]:2", "TLS handshake timeout (5 s)")  # not a security event
    assert len(sent) == 1 and len(events._peers) <= events.max_peers
    now[0] = 61.0
    events.failed("[::1]:3", "bad vehicle certificate: unable to get local issuer certificate")
    assert len(sent) == 2
    kind, info = sent[1]
    assert kind == "InvalidTLSCipherSuite"
    assert "10001" in info and "10000 InvalidTLSCipherSuite" in info


async def test_secc_handshake_failures_reach_the_csms(v2g: PkiFiles, tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    client = _client(csms.url, tmp_path, password="s3cret-s3cret-16")
    tls = secc_context(v2g.secc_chain, v2g.secc_key).context
    try:
        async with secc_running(tls=tls, plain=False) as rig, running(client):
            events = AggregatedEvents(client.security_event, window_s=0.2)
            rig.server.on_tls_failure = events.failed
            flusher = asyncio.create_task(events.run())
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # TLS 1.2 only: refused by -20
            old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
            old.maximum_version = ssl.TLSVersion.TLSv1_2
            for _ in range(20):
                with pytest.raises((ssl.SSLError, ConnectionError)):
                    await asyncio.open_connection("127.0.0.1", rig.port, ssl=old)
            await until(lambda: len(csms.calls(STATION, "SecurityEventNotification")) >= 2,
                        "the first failure and the window's aggregate")
            await asyncio.sleep(0.5)
            flusher.cancel()
            got = csms.calls(STATION, "SecurityEventNotification")
            assert len(got) <= 4  # 20 failures, a handful of events
            assert {e["type"] for e in got} == {"InvalidTLSVersion"}
            assert sum(int(e["tech_info"].split(": ")[1].split(" ")[0]) for e in got) == 20
    finally:
        await csms.stop()


async def test_mo_root_installed_by_the_csms_reaches_the_pnc_check(tmp_path: Path) -> None:
    """A PnC session whose MO root is not trusted is denied; InstallCertificate of that root
    makes the next session succeed, without a restart; DeleteCertificate denies again."""
    from evse.aio.ocpp_security import StationSecurity
    from evse.aio.pnc import RecordingVerifier
    from evse.ocpp.cert_store import CertStore
    from evse.security import PncVerifier
    from tests.aio.test_pnc_tls import _make, auth_codes, pnc_scenario, pnc_server

    pki = _make(tmp_path / "pnc", "secp521r1")
    mo_root = pki.pki.mo_roots[0]
    mo_pem = mo_root.public_bytes(serialization.Encoding.PEM).decode()
    csms = CsmsSimulator()
    await csms.start()
    client = _client(csms.url, tmp_path, password="s3cret-s3cret-16")
    client.cert_store = CertStore(tmp_path / "certs")
    verifier = RecordingVerifier(PncVerifier(mo_roots=[], oem_roots=pki.pki.oem_roots))
    try:
        async with pnc_server(pki, pnc_verifier=verifier) as r, running(client):
            StationSecurity(client, client.config, store=client.cert_store, server=r.server)
            await asyncio.wait_for(client.accepted.wait(), WAIT)

            async def session() -> Any:
                report = await r.ev(pnc_scenario(pki.contract()), pki.ev_tls())
                await r.rig.wait_safe()
                return report

            denied = await session()
            assert not denied.success and auth_codes(denied) == [
                "WARNING_CertificateValidationError"]
            res = await csms.call(STATION, "InstallCertificate", {
                "certificate_type": "MORootCertificate", "certificate": mo_pem})
            assert res.status == "Accepted"
            granted = await session()
            assert granted.success, granted.summary()
            assert r.server.sessions[-1].emaid == pki.pki.emaid
            ids = await csms.call(STATION, "GetInstalledCertificateIds",
                                  {"certificate_type": ["MORootCertificate"]})
            (entry,) = ids.certificate_hash_data_chain
            res = await csms.call(STATION, "DeleteCertificate", {
                "certificate_hash_data": entry["certificate_hash_data"]})
            assert res.status == "Accepted"
            again = await session()
            assert not again.success and auth_codes(again) == [
                "WARNING_CertificateValidationError"]
            await until(lambda: len(csms.calls(STATION, "SecurityEventNotification")) == 3,
                        "the refused contract, the install and the delete reported")
            got = csms.calls(STATION, "SecurityEventNotification")
            assert [e["type"] for e in got] == ["InvalidContractCertificate"] + [
                "ReconfigurationOfSecurityParameters"] * 2
            assert got[0]["tech_info"].startswith("PnC certificate checks failed: 1 ")
            assert [e["tech_info"] for e in got[1:]] == ["MORootCertificate installed",
                                                         "MORootCertificate deleted"]
            # the second refusal waits for its window (60 s): one event per window
    finally:
        await csms.stop()


async def test_invalid_csms_certificate_is_reported_once_per_outage(
        pki: Pki, tmp_path: Path) -> None:
    """A CSMS whose certificate the station does not trust: InvalidCsmsCertificate is queued
    once (not once per retry), and sent once a trusted connection is up."""
    rogue_ca, rogue_key = other_root(tmp_path)
    rogue_cert, rogue_leaf_key = pki.client("csms", ca_key=rogue_key)  # no SAN, rogue root
    bad_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    bad_ctx.load_cert_chain(rogue_cert, rogue_leaf_key)
    bad = CsmsSimulator(ssl_context=bad_ctx)
    await bad.start()
    client = _client(bad.url, tmp_path, security_profile=2, ca_file=pki.ca,
                     password="s3cret-s3cret-16")
    try:
        async with running(client):
            await asyncio.sleep(1.0)  # many retries at 0.05-0.2 s
        assert client.connections == 0
        item = client.queue.peek()
        assert len(client.queue) == 1 and item is not None
        assert item.action == "SecurityEventNotification"
        assert item.payload["type"] == "InvalidCsmsCertificate"
    finally:
        await bad.stop()
    good = CsmsSimulator(ssl_context=server_ctx(pki, client_certs=False))
    await good.start()
    client2 = OcppClient(replace(client.config, url=good.url), client.station,
                         queue=client.queue)
    try:
        async with running(client2):
            await until(lambda: len(good.calls(STATION, "SecurityEventNotification")) == 1,
                        "the event after the outage")
        assert good.calls(STATION, "SecurityEventNotification")[0]["type"] == \
            "InvalidCsmsCertificate"
    finally:
        await good.stop()


SECC_CONFIG = """
[station]
id = "CS-SECC-2"

[[connectors]]
id = 1
type = "DC"
services = ["DC"]

[limits]
max_voltage = 500
max_charge_current = 100
max_charge_power = 40000

[tls]
cert_chain = "{chain}"
private_key = "{key}"

[network]
interface = "lo"

[ocpp]
url = "{url}"
password = "0123456789abcdef"
reconnect_min_s = 0.05
reconnect_max_s = 0.2
queue_file = "{queue}"
certificates_dir = "{certs}"
v2g_roots = "{roots}"
"""


async def test_evse_secc_renews_its_secc_certificate_without_a_restart(
        v2g: PkiFiles, tmp_path: Path) -> None:
    """`evse secc` with [tls] and [ocpp]: SignV2GCertificate from the CSMS, the new chain
    and key written over the configured files, and the next TLS handshake presents it."""
    import contextlib
    import io
    import re

    from evse.aio.app import SeccOptions, run_secc

    chain, key = tmp_path / "secc_chain.pem", tmp_path / "secc.key"
    shutil.copy(v2g.secc_chain, chain)
    shutil.copy(v2g.secc_key, key)
    subs = tmp_path / "subs.pem"
    subs.write_bytes(v2g.sub_ca2_cert.read_bytes() + v2g.sub_ca1_cert.read_bytes())
    csms = CsmsSimulator(passwords={"CS-SECC-2": "0123456789abcdef"})
    csms.signers["V2GCertificate"] = CsrSigner(v2g.sub_ca2_cert, v2g.sub_ca2_key, chain=subs,
                                               server=True)
    await csms.start()
    path = tmp_path / "station.toml"
    path.write_text(SECC_CONFIG.format(url=csms.url, chain=chain, key=key,
                                       queue=tmp_path / "q.sqlite3", certs=tmp_path / "certs",
                                       roots=v2g.root_cert))
    options = SeccOptions(config=path, address="127.0.0.1", sdp=False, sim_speedup=10.0,
                          poll_interval=0.01, tls_port=0)
    out = io.StringIO()
    ready, stop = asyncio.Event(), asyncio.Event()
    try:
        with contextlib.redirect_stdout(out):
            task = asyncio.create_task(run_secc(options, ready=ready, stop=stop))
            await asyncio.wait_for(ready.wait(), 30)
            m = re.search(r"TLS 1.3 on port (\d+)", out.getvalue())
            assert m, out.getvalue()
            port = int(m[1])
            try:
                await until(lambda: bool(csms.calls("CS-SECC-2", "StatusNotification")),
                            "the station at the CSMS")
                old = await _served_serial(port, v2g.root_cert)
                res = await csms.call("CS-SECC-2", "TriggerMessage",
                                      {"requested_message": "SignV2GCertificate"})
                assert res.status == "Accepted"
                await until(lambda: bool(csms.signed_answers), "CertificateSigned")
                assert csms.signed_answers == ["Accepted"]
                new = await _served_serial(port, v2g.root_cert)
                assert new != old and new == _leaf(chain).serial_number
                # the client certificate is not this station's to renew (profile 1)
                res = await csms.call("CS-SECC-2", "TriggerMessage",
                                      {"requested_message": "SignChargingStationCertificate"})
                assert res.status == "Rejected"
            finally:
                stop.set()
                assert await asyncio.wait_for(task, 20) == 0
    finally:
        await csms.stop()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


async def test_csms_offering_only_weak_cipher_suites_is_reported_once(
        pki: Pki, tmp_path: Path) -> None:
    """A CSMS (a blocking TLS server: it writes OpenSSL's alert, as a real one does) that
    only speaks TLS 1.2 with a SHA-1 suite the station does not offer: the handshake fails
    with handshake_failure, InvalidTLSCipherSuite is queued once for all the retries."""
    import socket
    import threading

    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(pki.server_cert, pki.server_key)
    srv.maximum_version = ssl.TLSVersion.TLSv1_2
    srv.set_ciphers("ECDHE-ECDSA-AES256-SHA")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0.2)
    done = threading.Event()
    handshakes = []

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            try:
                srv.wrap_socket(conn, server_side=True)
            except ssl.SSLError as exc:
                handshakes.append(exc.reason)
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = _client(f"wss://127.0.0.1:{sock.getsockname()[1]}", tmp_path,
                     security_profile=2, ca_file=pki.ca, password="s3cret-s3cret-16")
    try:
        async with running(client):
            await until(lambda: len(handshakes) >= 3, "a few attempts")
    finally:
        done.set()
        await asyncio.to_thread(thread.join)
        sock.close()
    assert set(handshakes) == {"NO_SHARED_CIPHER"}
    item = client.queue.peek()
    assert len(client.queue) == 1 and item is not None
    assert item.payload["type"] == "InvalidTLSCipherSuite"


async def test_pending_csr_survives_a_restart_and_expires(pki: Pki, tmp_path: Path) -> None:
    """SignCertificate Accepted, the station restarts before CertificateSigned comes: the key
    stored beside the slot's key (0600) is reloaded and the chain Accepted. A stored CSR
    older than the wait limit is dropped at start, its chain then Rejected."""
    csms = CsmsSimulator()
    signer = CsrSigner(pki.ca, pki.dir / "ca.key", deliver=False)
    csms.signers["ChargingStationCertificate"] = signer
    await csms.start()
    cert0, key0 = pki.client(STATION)
    cert, key = tmp_path / "station.pem", tmp_path / "station.key"
    shutil.copy(cert0, cert)
    shutil.copy(key0, key)
    stored = tmp_path / "station.key.pending"

    def station(ahead_s: float = 0.0) -> tuple[OcppClient, StationCertificates]:
        client = _client(csms.url, tmp_path, password="s3cret-s3cret-16")
        client._clock = lambda: time.time() + ahead_s
        certs = StationCertificates(client, [CertificateSlot(
            "ChargingStationCertificate", cert, key, _roots(pki.ca))], wait_signed_s=600.0)
        client.certificates = certs
        return client, certs

    async def signed(csr: str) -> Any:
        return await csms.call(STATION, "CertificateSigned", {
            "certificate_chain": signer.sign(csr),
            "certificate_type": "ChargingStationCertificate"})

    try:
        client, certs = station()
        async with running(client):
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            res = await csms.call(STATION, "TriggerMessage",
                                  {"requested_message": "SignChargingStationCertificate"})
            assert res.status == "Accepted"
            await until(lambda: bool(signer.held), "the CSR at the CSMS")
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        before = cert.read_bytes()
        client, certs = station()  # the restart: a new client and renewal state
        assert key in certs.pending
        async with running(client):
            await until(lambda: client.connections == 1 and client.accepted.is_set(),
                        "the restarted station at the CSMS")
            res = await signed(signer.held[0])
            assert res.status == "Accepted"
        assert cert.read_bytes() != before and not stored.exists()
        new = _leaf(cert)
        key_obj = serialization.load_pem_private_key(key.read_bytes(), None)
        assert key_obj.public_key().public_numbers() == \
            new.public_key().public_numbers()  # type: ignore[union-attr]
        assert certs.installed == ["ChargingStationCertificate"]

        # a second CSR, then a restart after the wait limit: dropped, its chain Rejected
        client, certs = station()
        async with running(client):
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            assert await certs.request("ChargingStationCertificate")
        assert stored.exists()
        assert key in station(ahead_s=590.0)[1].pending
        client, certs = station(ahead_s=610.0)
        assert not certs.pending and not stored.exists()
        after = cert.read_bytes()
        async with running(client):
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            res = await signed(signer.held[1])
            assert res.status == "Rejected"
        assert cert.read_bytes() == after
        # a damaged stored CSR is dropped, not trusted
        stored.write_bytes(b'{"certificateType": "ChargingStationCertificate"}')
        _, certs = station()
        assert not certs.pending and not stored.exists()
    finally:
        await csms.stop()
