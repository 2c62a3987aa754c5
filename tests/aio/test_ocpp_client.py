"""The OCPP client (evse/aio/ocpp_client.py) against the CSMS simulator over real WebSockets
on loopback: security profiles 1-3 (real TLS handshakes, client certificates from a test PKI),
subprotocol negotiation, BootNotification Pending/Rejected, StatusNotification per connector,
heartbeat, reconnect, and TransactionEvents that survive a CSMS outage (each once, in order)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from evse.aio.ocpp_client import OcppClient
from evse.config import OcppConfig
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from evse.ocpp.transactions import MeterSample
from simulators.csms import CsmsSimulator
from tests.ocpp.pki import Pki, make_pki, other_root

STATION = "CS1"
PASSWORD = "s3cret-s3cret-16"
WAIT = 30.0  # generous: the machine is shared


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("ocpp-pki"))


def config(url: str, **kw: Any) -> OcppConfig:
    base = OcppConfig(url=url, station_id=STATION, password=PASSWORD, reconnect_min_s=0.05,
                      reconnect_max_s=0.2, call_timeout_s=10.0)
    return replace(base, **kw)


def station() -> OcppStation:
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    st.add_connector(2, 1)
    return st


async def until(pred: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not pred():
            await asyncio.sleep(0.02)
    assert pred(), what


@asynccontextmanager
async def running(client: OcppClient) -> AsyncIterator[OcppClient]:
    client.start()
    try:
        yield client
    finally:
        await client.stop()


def server_ctx(pki: Pki, *, client_certs: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if client_certs:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca)
    return ctx


async def test_profile1_boot_pending_then_accepted_status_and_heartbeat(
        tmp_path: Path) -> None:
    csms = CsmsSimulator(passwords={STATION: PASSWORD},
                         boot_statuses=["Pending", "Rejected", "Accepted"],
                         boot_retry_interval=1, heartbeat_interval=1)
    await csms.start()
    client = OcppClient(config(csms.url, version="2.1"), station(),
                        queue=DurableQueue(tmp_path / "q.db"))
    try:
        async with running(client):
            await until(lambda: len(csms.calls(STATION, "Heartbeat")) >= 1, "a heartbeat")
            assert client.subprotocol == "ocpp2.1"
            actions = [c.action for c in csms.received]
            # three boots (Pending, Rejected, Accepted) and nothing else before acceptance
            assert actions[:3] == ["BootNotification"] * 3
            assert actions[3:5] == ["StatusNotification"] * 2
            assert [(s["evse_id"], s["connector_status"])
                    for s in csms.calls(STATION, "StatusNotification")] == [
                        (1, "Available"), (2, "Available")]
            client.connector_status(2, 1, "Occupied")
            await until(lambda: len(csms.calls(STATION, "StatusNotification")) == 3, "status")
            assert csms.calls(STATION, "StatusNotification")[-1]["connector_status"] == \
                "Occupied"
    finally:
        await csms.stop()


async def test_profile1_wrong_password_is_refused_and_retried(tmp_path: Path) -> None:
    csms = CsmsSimulator(passwords={STATION: "another-password"})
    await csms.start()
    client = OcppClient(config(csms.url), station(), queue=DurableQueue(tmp_path / "q.db"))
    try:
        async with running(client):
            await until(lambda: len(csms.rejected_handshakes) >= 3, "retries")
            assert client.connections == 0 and not client.accepted.is_set()
            assert csms.received == []
            csms.passwords = {STATION: PASSWORD}  # the operator fixes the CSMS side
            await asyncio.wait_for(client.accepted.wait(), WAIT)
    finally:
        await csms.stop()


async def test_subprotocol_negotiation(tmp_path: Path) -> None:
    only201 = CsmsSimulator(subprotocols=["ocpp2.0.1"])
    await only201.start()
    client = OcppClient(config(only201.url, version="2.1"), station(),
                        queue=DurableQueue(tmp_path / "a.db"))
    try:
        async with running(client):
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            assert client.subprotocol == "ocpp2.0.1"
            assert only201.received[0].subprotocol == "2.0.1"
    finally:
        await only201.stop()
    only21 = CsmsSimulator(subprotocols=["ocpp2.1"])
    await only21.start()
    client = OcppClient(config(only21.url, version="2.0.1"), station(),
                        queue=DurableQueue(tmp_path / "b.db"))
    try:
        async with running(client):
            await asyncio.sleep(1.0)  # several attempts at 0.05-0.2 s back-off
            assert client.connections == 0 and only21.received == []
    finally:
        await only21.stop()


async def test_profile2_tls_with_basic_auth(pki: Pki, tmp_path: Path) -> None:
    csms = CsmsSimulator(passwords={STATION: PASSWORD},
                         ssl_context=server_ctx(pki, client_certs=False))
    await csms.start()
    assert csms.url.startswith("wss://")
    good = OcppClient(config(csms.url, security_profile=2, ca_file=pki.ca), station(),
                      queue=DurableQueue(tmp_path / "a.db"))
    try:
        async with running(good):
            await asyncio.wait_for(good.accepted.wait(), WAIT)
        # a station that does not trust the CSMS's root never gets to send anything
        rogue_ca, _ = other_root(tmp_path)
        wary = OcppClient(config(csms.url, security_profile=2, ca_file=rogue_ca,
                                 station_id="CS2"), station(),
                          queue=DurableQueue(tmp_path / "b.db"))
        async with running(wary):
            await asyncio.sleep(1.0)
            assert wary.connections == 0
        assert {c.station_id for c in csms.received} == {STATION}
    finally:
        await csms.stop()


async def test_profile3_client_certificate(pki: Pki, tmp_path: Path) -> None:
    csms = CsmsSimulator(ssl_context=server_ctx(pki, client_certs=True))
    await csms.start()
    cert, key = pki.client(STATION)
    good = OcppClient(config(csms.url, security_profile=3, ca_file=pki.ca, cert_file=cert,
                             key_file=key, password=None), station(),
                      queue=DurableQueue(tmp_path / "a.db"))
    try:
        async with running(good):
            await asyncio.wait_for(good.accepted.wait(), WAIT)
        # a certificate for another station id, and one from a root the CSMS does not trust
        other_cert, other_key = pki.client("CS9")
        _, rogue_key = other_root(tmp_path)
        rogue_cert, rogue_leaf_key = pki.client(STATION, ca_key=rogue_key)
        for cert_file, key_file in ((other_cert, other_key), (rogue_cert, rogue_leaf_key)):
            bad = OcppClient(config(csms.url, security_profile=3, ca_file=pki.ca,
                                    cert_file=cert_file, key_file=key_file, password=None),
                             station(), queue=DurableQueue(tmp_path / f"{cert_file.stem}.db"))
            async with running(bad):
                await asyncio.sleep(1.0)
                assert bad.connections == 0
        assert any("certificate CN" in r for r in csms.rejected_handshakes)
        assert [c.action for c in csms.received].count("BootNotification") == 1
    finally:
        await csms.stop()


async def test_csms_outage_mid_session_every_event_once_in_order(tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    client = OcppClient(config(csms.url, sampled_interval_s=0.0), station(),
                        queue=DurableQueue(tmp_path / "q.db"))
    try:
        async with running(client):
            await asyncio.wait_for(client.accepted.wait(), WAIT)
            client.transaction_started("tx-1", 1, 1, "CablePluggedIn", MeterSample(0.0))
            client.transaction_updated("tx-1", "ChargingStateChanged",
                                       charging_state="Charging")
            await until(lambda: len(csms.calls(STATION, "TransactionEvent")) == 2, "online")
            await csms.stop()  # the CSMS goes away mid-session
            await until(lambda: not client.accepted.is_set(), "connection lost")
            for i in range(5):
                client.meter_sample("tx-1", MeterSample(100.0 * i, 10.0 * i, power_w=-3000.0))
                client.transaction_updated("tx-1", "MeterValuePeriodic", with_meter=True)
            client.transaction_ended("tx-1", "EVCommunicationLost", "EVDisconnected",
                                     MeterSample(600.0, 60.0))
            assert len(client.queue) == 6
            await csms.start()  # back on the same URL
            await until(lambda: len(client.queue) == 0, "queue drained")
            events = csms.calls(STATION, "TransactionEvent")
            assert [e["seq_no"] for e in events] == list(range(8))
            assert [e["event_type"] for e in events] == ["Started"] + ["Updated"] * 6 + ["Ended"]
            assert [bool(e.get("offline")) for e in events] == [False] * 2 + [True] * 6
            export = [sv["value"] for sv in events[-1]["meter_value"][0]["sampled_value"]
                      if sv["measurand"] == "Energy.Active.Export.Register"]
            assert export == [60.0]
            assert client.connections == 2
    finally:
        await csms.stop()


async def test_security_events_are_durable_and_delivered_in_order(tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    url = csms.url
    await csms.stop()  # the CSMS is away when the events happen
    client = OcppClient(config(url), station(), queue=DurableQueue(tmp_path / "q.db"))
    client.security_event("InvalidTLSCipherSuite", "EV offered only TLS 1.2")
    client.security_event("TamperDetectionActivated")
    try:
        async with running(client):
            await csms.start()
            await until(lambda: len(csms.calls(STATION, "SecurityEventNotification")) == 2,
                        "security events")
        got = csms.calls(STATION, "SecurityEventNotification")
        assert [e["type"] for e in got] == ["InvalidTLSCipherSuite", "TamperDetectionActivated"]
        assert got[0]["tech_info"] == "EV offered only TLS 1.2"
        assert len(client.queue) == 0
    finally:
        await csms.stop()
