"""Authorization through the CSMS (evse/aio/ocpp_auth.py) over real WebSockets: EIM sessions of
the simulated EV granted or denied by the CSMS simulator's Authorize through the authorization
hook; the local cache while the CSMS is away; PnC with the contract's certificate hash data and
the CSMS's certificate status, and the offline fallback to the station's MO-root check."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from evse import events as se
from evse.aio.ocpp_auth import OcppAuthorizer
from evse.aio.ocpp_client import OcppClient
from evse.config import OcppConfig
from evse.hooks import AuthorizationRequest, Hooks
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from simulators.csms import CsmsSimulator
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, fast_scenario, running
from tests.ocpp.pki import make_pki

STATION = "CS1"
EVCC_ID = "WEVSESTACKSIM0001"  # the simulated EV's EVCCID


def client_for(url: str, tmp_path: Path) -> OcppClient:
    cfg = OcppConfig(url=url, station_id=STATION, password="p" * 16, reconnect_min_s=0.05,
                     reconnect_max_s=0.2, call_timeout_s=10.0, sampled_interval_s=0.0)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    return OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))


async def _session(rig: object) -> tuple[object, list[se.SessionEvent]]:
    stream = rig.station.events()  # type: ignore[attr-defined]
    scenario = fast_scenario("dc")
    report = await asyncio.wait_for(run_session(
        scenario, host=HOST, port=rig.port,  # type: ignore[attr-defined]
        battery=rig.link(0, dc=True)), 60)  # type: ignore[attr-defined]
    got: list[se.SessionEvent] = []
    async with asyncio.timeout(30):
        async for event in stream:
            got.append(event)
            if isinstance(event, se.SessionEnded):
                break
    stream.close()
    return report, got


async def test_eim_sessions_granted_and_denied_by_the_csms(tmp_path: Path) -> None:
    csms = CsmsSimulator(accepted_tokens=[EVCC_ID])
    await csms.start()
    client = client_for(csms.url, tmp_path)
    auth = OcppAuthorizer(client)
    client.start()
    try:
        await asyncio.wait_for(client.accepted.wait(), 30)
        async with running(auto_authorize=False) as rig:
            rig.server.hooks = Hooks(authorizer=auth)
            report, got = await _session(rig)
            assert report.success  # type: ignore[attr-defined]
            assert csms.calls(STATION, "Authorize") == [
                {"id_token": {"id_token": EVCC_ID, "type": "MacAddress"}}]
            decided = [e for e in got if isinstance(e, se.AuthorizationDecided)]
            assert [d.granted for d in decided] == [True]
            await rig.wait_safe(timeout=10)
            csms.accepted_tokens.clear()  # the CSMS now refuses this vehicle
            report, got = await _session(rig)
            assert not report.success  # type: ignore[attr-defined]
            decided = [e for e in got if isinstance(e, se.AuthorizationDecided)]
            assert [d.granted for d in decided] == [False]
            assert "CSMS: idToken Invalid" in decided[0].reason
    finally:
        await client.stop()
        await csms.stop()


async def test_offline_eim_uses_the_local_cache(tmp_path: Path) -> None:
    csms = CsmsSimulator(accepted_tokens=[EVCC_ID])
    await csms.start()
    client = client_for(csms.url, tmp_path)
    auth = OcppAuthorizer(client)
    client.start()
    try:
        await asyncio.wait_for(client.accepted.wait(), 30)
        req = AuthorizationRequest("1", "AB", "EIM", EVCC_ID)
        assert (await auth.authorize(req)).granted
        await csms.stop()
        async with asyncio.timeout(30):
            while client.accepted.is_set():
                await asyncio.sleep(0.02)
        n = len(csms.received)
        assert (await auth.authorize(req)).granted  # cached Accepted
        other = await auth.authorize(AuthorizationRequest("1", "AC", "EIM", "UNKNOWNEV"))
        assert not other.granted and "not cached" in other.reason
        assert len(csms.received) == n  # nothing reached the CSMS
    finally:
        await client.stop()
        await csms.stop()


async def test_pnc_with_certificate_hash_data_and_offline_fallback(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    emaid = "DEABCC00000001"
    leaf_file, _ = pki.client(emaid)
    chain = tuple(x509.load_pem_x509_certificate(f.read_bytes()).public_bytes(
        serialization.Encoding.DER) for f in (leaf_file, pki.ca))
    req = AuthorizationRequest("1", "AB", "PnC", EVCC_ID, emaid=emaid, certificate_chain=chain)
    csms = CsmsSimulator(accepted_tokens=[emaid])
    await csms.start()
    client = client_for(csms.url, tmp_path)
    client.start()
    try:
        await asyncio.wait_for(client.accepted.wait(), 30)
        assert (await OcppAuthorizer(client).authorize(req)).granted
        (sent,) = csms.calls(STATION, "Authorize")
        assert sent["id_token"] == {"id_token": emaid, "type": "eMAID"}
        assert len(sent["iso15118_certificate_hash_data"]) == 1
        csms.revoked_tokens.add(emaid)
        denied = await OcppAuthorizer(client).authorize(req)
        assert not denied.granted and "CertificateRevoked" in denied.reason
        await csms.stop()
        async with asyncio.timeout(30):
            while client.accepted.is_set():
                await asyncio.sleep(0.02)
        assert (await OcppAuthorizer(client).authorize(req)).granted  # MO-root check stands
        assert not (await OcppAuthorizer(client, pnc_offline=False).authorize(req)).granted
    finally:
        await client.stop()
        await csms.stop()
