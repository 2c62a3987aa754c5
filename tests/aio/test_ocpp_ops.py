"""CSMS operations over real WebSockets against the CSMS simulator (evse/aio/ocpp_operations.py):
ChangeAvailability (StatusNotification Unavailable, Scheduled while a transaction runs, kept
across a restart, and a real EV refused at an Inoperative connector of a running SECC),
UnlockConnector, TriggerMessage, GetBaseReport -> NotifyReport, SendLocalList /
GetLocalListVersion and the local list in the OCPP authorizer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from evse.aio.ocpp_auth import OcppAuthorizer
from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_operations import ALIGNED_MEASURANDS, report_data
from evse.config import OcppConfig
from evse.hooks import AuthorizationRequest
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from evse.ocpp.transactions import MeterSample
from simulators.csms import CsmsSimulator
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, fast_scenario, running

STATION = "CS1"


def make_client(url: str, db: Path, evses: int = 2) -> OcppClient:
    cfg = OcppConfig(url=url, station_id=STATION, password="p" * 16, reconnect_min_s=0.05,
                     reconnect_max_s=0.2, call_timeout_s=10.0, sampled_interval_s=0.0)
    st = OcppStation(vendor="EvseStack", model="SIL")
    for e in range(1, evses + 1):
        st.add_connector(e, 1)
    return OcppClient(cfg, st, queue=DurableQueue(db))


async def until(cond: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def statuses(csms: CsmsSimulator, evse_id: int) -> list[str]:
    return [p["connector_status"] for p in csms.calls(STATION, "StatusNotification")
            if p["evse_id"] == evse_id]


async def test_change_availability_scheduled_and_persisted(tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    db = tmp_path / "q.db"
    client = make_client(csms.url, db)
    seen: list[tuple[int, bool]] = []
    client.ops.on_availability = lambda e, op: seen.append((e, op))
    client.start()
    try:
        await asyncio.wait_for(client.accepted.wait(), 30)
        await until(lambda: statuses(csms, 1) == ["Available"] and statuses(csms, 2))
        # bad input: Rejected, nothing changes
        for evse in ({"id": 7}, {"id": 1, "connector_id": 3}):
            res = await csms.call(STATION, "ChangeAvailability",
                                  {"operational_status": "Inoperative", "evse": evse})
            assert res.status == "Rejected"
        assert client.ops.operative(1) and client.ops.operative(2)
        assert seen == [(1, True), (2, True)]  # the first push: both in service
        # EVSE 1 idle: Accepted, Unavailable now, the SECC told
        res = await csms.call(STATION, "ChangeAvailability",
                              {"operational_status": "Inoperative", "evse": {"id": 1}})
        assert res.status == "Accepted"
        await until(lambda: statuses(csms, 1)[-1] == "Unavailable")
        assert (1, False) in seen
        # the car plugs in at the Inoperative EVSE: still Unavailable
        client.connector_status(1, 1, "Occupied")
        # EVSE 2 charging: Scheduled; Unavailable only once the transaction ends
        client.connector_status(2, 1, "Occupied")
        client.transaction_started("tx-2", 2, 1, "EVDetected", MeterSample(0.0))
        await until(lambda: statuses(csms, 2)[-1] == "Occupied")
        res = await csms.call(STATION, "ChangeAvailability",
                              {"operational_status": "Inoperative", "evse": {"id": 2}})
        assert res.status == "Scheduled"
        await asyncio.sleep(0.2)
        assert statuses(csms, 2)[-1] == "Occupied" and (2, False) not in seen
        client.transaction_ended("tx-2", "EVCommunicationLost", "EVDisconnected",
                                 MeterSample(10.0))
        await until(lambda: statuses(csms, 2)[-1] == "Unavailable")
        assert (2, False) in seen
        assert "Occupied" not in statuses(csms, 1)
        got = await csms.call(STATION, "GetVariables", {"get_variable_data": [
            {"component": {"name": "EVSE", "evse": {"id": 2}},
             "variable": {"name": "AvailabilityState"}}]})
        assert got.get_variable_result[0]["attribute_value"] == "Unavailable"
    finally:
        await client.stop()
        client.ops.close()
        client.queue.close()
    # a restart: both still Inoperative, reported so right after the boot
    n1 = len(statuses(csms, 1))
    client = make_client(csms.url, db)
    client.start()
    try:
        await asyncio.wait_for(client.accepted.wait(), 30)
        await until(lambda: len(statuses(csms, 1)) > n1)
        assert statuses(csms, 1)[-1] == "Unavailable"
        assert not client.ops.operative(1) and not client.ops.operative(2)
        # the station back to Operative clears the station level only; EVSE 1 back too
        res = await csms.call(STATION, "ChangeAvailability",
                              {"operational_status": "Operative", "evse": {"id": 1}})
        assert res.status == "Accepted"
        await until(lambda: statuses(csms, 1)[-1] == "Available")
        assert not client.ops.operative(2)
        # RequestStartTransaction: never on an Inoperative EVSE
        start = {"id_token": {"id_token": "T1", "type": "Central"}, "remote_start_id": 5}
        res = await csms.call(STATION, "RequestStartTransaction", {**start, "evse_id": 2})
        assert res.status == "Rejected" and not client.remote_starts
        res = await csms.call(STATION, "RequestStartTransaction", start)
        assert res.status == "Accepted" and list(client.remote_starts) == [1]
    finally:
        await client.stop()
        await csms.stop()


async def test_inoperative_connector_refuses_a_real_ev(tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    client = make_client(csms.url, tmp_path / "q.db", evses=1)
    try:
        async with running() as rig:
            client.ops.on_availability = (
                lambda e, op: rig.server.set_in_service(str(e), op))
            client.start()
            await asyncio.wait_for(client.accepted.wait(), 30)
            res = await csms.call(STATION, "ChangeAvailability",
                                  {"operational_status": "Inoperative"})  # the station
            assert res.status == "Accepted"
            await until(lambda: "1" in rig.server.out_of_service)
            refused = await asyncio.wait_for(run_session(
                fast_scenario("dc"), host=HOST, port=rig.port), 20)
            assert not refused.success and rig.server.refused == 1
            assert not rig.server.sessions
            res = await csms.call(STATION, "ChangeAvailability",
                                  {"operational_status": "Operative"})
            assert res.status == "Accepted"
            await until(lambda: not rig.server.out_of_service)
            report = await asyncio.wait_for(run_session(
                fast_scenario("dc", max_loops=5), host=HOST, port=rig.port,
                battery=rig.link(0, dc=True)), 30)
            assert report.success, report.summary()
    finally:
        await client.stop()
        await csms.stop()


async def test_unlock_trigger_and_base_report(tmp_path: Path) -> None:
    csms = CsmsSimulator(boot_statuses=["Pending", "Accepted"], boot_retry_interval=3600)
    await csms.start()
    client = make_client(csms.url, tmp_path / "q.db", evses=3)
    client.start()
    try:
        await until(lambda: client.station.boot_status == "Pending")
        # [F06] Pending: a triggered BootNotification goes out now (reason Triggered)
        res = await csms.call(STATION, "TriggerMessage",
                              {"requested_message": "BootNotification"})
        assert res.status == "Accepted"
        await asyncio.wait_for(client.accepted.wait(), 10)
        boots = csms.calls(STATION, "BootNotification")
        assert [b["reason"] for b in boots] == ["PowerUp", "Triggered"]
        # after Accepted it is Rejected
        res = await csms.call(STATION, "TriggerMessage",
                              {"requested_message": "BootNotification"})
        assert res.status == "Rejected"
        # UnlockConnector: unknown, ongoing transaction, no lock actuator
        res = await csms.call(STATION, "UnlockConnector", {"evse_id": 4, "connector_id": 1})
        assert res.status == "UnknownConnector"
        res = await csms.call(STATION, "UnlockConnector", {"evse_id": 1, "connector_id": 2})
        assert res.status == "UnknownConnector"
        client.transaction_started("tx-1", 1, 1, "EVDetected", MeterSample(0.0))
        res = await csms.call(STATION, "UnlockConnector", {"evse_id": 1, "connector_id": 1})
        assert res.status == "OngoingAuthorizedTransaction"
        res = await csms.call(STATION, "UnlockConnector", {"evse_id": 2, "connector_id": 1})
        assert res.status == "UnlockFailed"
        assert res.status_info["reason_code"] == "NoConnectorLock"
        # TriggerMessage: MeterValues, TransactionEvent (Trigger), Log/Firmware status Idle
        client.meter_sample("tx-1", MeterSample(500.0, 0.0, power_w=7000.0))
        assert (await csms.call(STATION, "TriggerMessage", {
            "requested_message": "MeterValues", "evse": {"id": 1}})).status == "Accepted"
        await until(lambda: csms.calls(STATION, "MeterValues"))
        mv = csms.calls(STATION, "MeterValues")[0]
        assert mv["evse_id"] == 1
        sv = {v["measurand"]: v["value"] for v in mv["meter_value"][0]["sampled_value"]}
        assert sv["Energy.Active.Import.Register"] == 500.0
        assert sv["Power.Active.Import"] == 7000.0
        assert (await csms.call(STATION, "TriggerMessage", {
            "requested_message": "TransactionEvent", "evse": {"id": 2}})).status == "Rejected"
        assert (await csms.call(STATION, "TriggerMessage", {
            "requested_message": "TransactionEvent", "evse": {"id": 1}})).status == "Accepted"
        await until(lambda: any(t["trigger_reason"] == "Trigger"
                                for t in csms.calls(STATION, "TransactionEvent")))
        for msg in ("LogStatusNotification", "FirmwareStatusNotification"):
            assert (await csms.call(STATION, "TriggerMessage",
                                    {"requested_message": msg})).status == "Accepted"
            await until(lambda m=msg: csms.calls(STATION, m))
            assert csms.calls(STATION, msg)[0]["status"] == "Idle"
        # this station renews no V2G certificate (evse/aio/ocpp_security.py): Rejected
        assert (await csms.call(STATION, "TriggerMessage", {
            "requested_message": "SignV2GCertificate"})).status == "Rejected"
        assert (await csms.call(STATION, "TriggerMessage", {
            "requested_message": "PublishFirmwareStatusNotification"})).status == "NotImplemented"
        assert (await csms.call(STATION, "TriggerMessage", {
            "requested_message": "Heartbeat", "evse": {"id": 9}})).status == "Rejected"
        # GetBaseReport: every variable, in parts of at most 16 (tbc, seqNo)
        res = await csms.call(STATION, "GetBaseReport",
                              {"request_id": 42, "report_base": "FullInventory"})
        assert res.status == "Accepted"
        n = len(client.device_model.entries())
        await until(lambda: csms.calls(STATION, "NotifyReport")
                    and not csms.calls(STATION, "NotifyReport")[-1]["tbc"])
        parts = csms.calls(STATION, "NotifyReport")
        assert n > 16 and len(parts) == -(-n // 16)
        assert [p["seq_no"] for p in parts] == list(range(len(parts)))
        assert [p["tbc"] for p in parts] == [True] * (len(parts) - 1) + [False]
        assert all(p["request_id"] == 42 for p in parts)
        data = [d for p in parts for d in p["report_data"]]
        by_name = {(d["component"]["name"], d["component"].get("evse", {}).get("id"),
                    d["variable"]["name"]): d for d in data}
        assert len(by_name) == n
        hb = by_name[("OCPPCommCtrlr", None, "HeartbeatInterval")]
        assert hb["variable_attribute"][0]["value"] == "60"
        assert hb["variable_attribute"][0]["mutability"] == "ReadWrite"
        assert hb["variable_characteristics"]["data_type"] == "integer"
        assert by_name[("EVSE", 2, "AvailabilityState")]["variable_attribute"][0][
            "value"] == "Available"
        # ConfigurationInventory: only what SetVariables can change
        await csms.call(STATION, "GetBaseReport",
                        {"request_id": 43, "report_base": "ConfigurationInventory"})
        await until(lambda: any(p["request_id"] == 43 and not p["tbc"]
                                for p in csms.calls(STATION, "NotifyReport")))
        conf = [d for p in csms.calls(STATION, "NotifyReport") if p["request_id"] == 43
                for d in p["report_data"]]
        assert conf and all(d["variable_attribute"][0]["mutability"] == "ReadWrite"
                            for d in conf)
        assert report_data(client.device_model.entries(), "SomethingElse") is None
        # aligned data through SetVariables
        res = await csms.call(STATION, "SetVariables", {"set_variable_data": [
            {"component": {"name": "AlignedDataCtrlr"}, "variable": {"name": "Interval"},
             "attribute_value": "-5"},
            {"component": {"name": "AlignedDataCtrlr"}, "variable": {"name": "Interval"},
             "attribute_value": "900"}]})
        assert [r["attribute_status"] for r in res.set_variable_result] == \
            ["Rejected", "Accepted"]
        assert client.tracker.aligned_interval_s == 900.0
    finally:
        await client.stop()
        await csms.stop()


async def test_clock_aligned_meter_values_outside_a_transaction(tmp_path: Path) -> None:
    """[J01] AlignedDataCtrlr.Interval set over the wire: MeterValues for every EVSE without
    a transaction on the clock grid; the EVSE with one gets TransactionEvents instead."""
    csms = CsmsSimulator()
    await csms.start()
    client = make_client(csms.url, tmp_path / "q.db", evses=2)
    client.start()
    try:
        await asyncio.wait_for(client.accepted.wait(), 10)
        client.transaction_started("tx1", 1, 1, "EVDetected", MeterSample(0.0))
        res = await csms.call(STATION, "SetVariables", {"set_variable_data": [
            {"component": {"name": "AlignedDataCtrlr"}, "variable": {"name": "Interval"},
             "attribute_value": "1"}]})
        assert res.set_variable_result[0]["attribute_status"] == "Accepted"
        await until(lambda: len(csms.calls(STATION, "MeterValues")) >= 2, timeout=10)
        mvs = csms.calls(STATION, "MeterValues")
        assert {p["evse_id"] for p in mvs} == {2}  # EVSE 1 has its transaction
        for p in mvs:
            (mv,) = p["meter_value"]
            assert mv["timestamp"].endswith(".000Z")  # on the 1 s grid
            assert {v["context"] for v in mv["sampled_value"]} == {"Sample.Clock"}
            assert {v["measurand"] for v in mv["sampled_value"]} <= set(ALIGNED_MEASURANDS)
        await until(lambda: any(p["trigger_reason"] == "MeterValueClock"
                                for p in csms.calls(STATION, "TransactionEvent")))
        client.transaction_ended("tx1", "EVDeparted", "EVDisconnected", MeterSample(1.0))
        await until(lambda: any(p["evse_id"] == 1 for p in csms.calls(STATION, "MeterValues")),
                    timeout=10)
    finally:
        await client.stop()
        await csms.stop()


async def test_no_meter_values_for_grid_instants_while_offline(tmp_path: Path) -> None:
    """MeterValues are not transaction-related: none is built or queued for the grid
    instants of a CSMS outage; after the reconnect the grid goes on."""
    import datetime as dt

    csms = CsmsSimulator()
    await csms.start()
    client = make_client(csms.url, tmp_path / "q.db", evses=1)
    client.start()
    try:
        await asyncio.wait_for(client.accepted.wait(), 10)
        await csms.call(STATION, "SetVariables", {"set_variable_data": [
            {"component": {"name": "AlignedDataCtrlr"}, "variable": {"name": "Interval"},
             "attribute_value": "1"}]})
        await until(lambda: len(csms.calls(STATION, "MeterValues")) >= 1, timeout=10)
        await csms.stop()
        await until(lambda: not client.accepted.is_set())
        down = time.time()
        await asyncio.sleep(2.5)  # at least two grid instants offline
        up = time.time()
        await csms.start()
        await asyncio.wait_for(client.accepted.wait(), 10)
        n = len(csms.calls(STATION, "MeterValues"))
        await until(lambda: len(csms.calls(STATION, "MeterValues")) >= n + 2, timeout=10)
        stamps = [dt.datetime.fromisoformat(p["meter_value"][0]["timestamp"]).timestamp()
                  for p in csms.calls(STATION, "MeterValues")]
        assert not [t for t in stamps if down + 0.05 < t < up], (down, up, stamps)
        assert len(client.queue) == 0  # nothing was queued for them
    finally:
        await client.stop()
        await csms.stop()


async def test_set_variables_survive_a_restart(tmp_path: Path) -> None:
    """SetVariables values are kept in the queue's SQLite file and applied at the next
    start, before the first BootNotification; a Rejected value is not kept."""
    csms = CsmsSimulator()
    await csms.start()
    db = tmp_path / "q.db"
    client = make_client(csms.url, db)
    client.start()
    try:
        await asyncio.wait_for(client.accepted.wait(), 10)
        res = await csms.call(STATION, "SetVariables", {"set_variable_data": [
            {"component": {"name": name}, "variable": {"name": var}, "attribute_value": value}
            for name, var, value in (("AlignedDataCtrlr", "Interval", "900"),
                                     ("SampledDataCtrlr", "TxUpdatedInterval", "30"),
                                     ("SampledDataCtrlr", "TxUpdatedInterval", "x"),
                                     ("LocalAuthListCtrlr", "Enabled", "false"),
                                     ("OCPPCommCtrlr", "HeartbeatInterval", "120"))]})
        assert [r["attribute_status"] for r in res.set_variable_result] == \
            ["Accepted", "Accepted", "Rejected", "Accepted", "Accepted"]
    finally:
        await client.stop()
        client.ops.close()
        client.queue.close()
    # the restart: applied in the constructor, before start() and its BootNotification
    client = make_client(csms.url, db)
    assert client.tracker.aligned_interval_s == 900.0
    assert client.tracker.sampled_interval_s == 30.0
    assert client.ops.local_list_enabled is False
    assert client.station.default_heartbeat_s == 120.0
    boots = len(csms.calls(STATION, "BootNotification"))
    client.start()
    try:
        await asyncio.wait_for(client.accepted.wait(), 10)
        assert len(csms.calls(STATION, "BootNotification")) == boots + 1
        res = await csms.call(STATION, "GetVariables", {"get_variable_data": [
            {"component": {"name": "AlignedDataCtrlr"}, "variable": {"name": "Interval"}},
            {"component": {"name": "LocalAuthListCtrlr"}, "variable": {"name": "Enabled"}}]})
        assert [r["attribute_value"] for r in res.get_variable_result] == ["900", "false"]
    finally:
        await client.stop()
        await csms.stop()


def _eim(token: str) -> AuthorizationRequest:
    return AuthorizationRequest("1", None, "EIM", token)


async def test_local_list_over_the_wire_and_in_the_authorizer(tmp_path: Path) -> None:
    csms = CsmsSimulator(accepted_tokens=["AUTHORIZED"])
    await csms.start()
    client = make_client(csms.url, tmp_path / "q.db")
    auth = OcppAuthorizer(client, timeout_s=2.0)
    client.start()
    try:
        await asyncio.wait_for(client.accepted.wait(), 30)
        assert (await csms.call(STATION, "GetLocalListVersion", {})).version_number == 0
        entries = [
            {"id_token": {"id_token": "LISTED", "type": "MacAddress"},
             "id_token_info": {"status": "Accepted"}},
            {"id_token": {"id_token": "BLOCKED", "type": "MacAddress"},
             "id_token_info": {"status": "Blocked"}}]
        res = await csms.call(STATION, "SendLocalList", {
            "version_number": 3, "update_type": "Full", "local_authorization_list": entries})
        assert res.status == "Accepted"
        res = await csms.call(STATION, "SendLocalList", {
            "version_number": 2, "update_type": "Differential",
            "local_authorization_list": [entries[0]]})
        assert res.status == "VersionMismatch"
        assert (await csms.call(STATION, "GetLocalListVersion", {})).version_number == 3
        # online, LocalPreAuthorize false (default): the CSMS decides (it does not know it)
        assert not (await auth.authorize(_eim("LISTED"))).granted
        assert len(csms.calls(STATION, "Authorize")) == 1
        # LocalPreAuthorize true: granted from the list, no Authorize
        res = await csms.call(STATION, "SetVariables", {"set_variable_data": [
            {"component": {"name": "AuthCtrlr"}, "variable": {"name": "LocalPreAuthorize"},
             "attribute_value": "true"}]})
        assert res.set_variable_result[0]["attribute_status"] == "Accepted"
        assert (await auth.authorize(_eim("listed"))).granted
        assert len(csms.calls(STATION, "Authorize")) == 1
        # the CSMS goes away: the list decides (Blocked denied even if cached Accepted)
        auth.cache.store("BLOCKED", {"status": "Accepted"}, auth._clock())
        await csms.stop()
        await until(lambda: not client.station.accepted)
        assert (await auth.authorize(_eim("LISTED"))).granted
        blocked = await auth.authorize(_eim("BLOCKED"))
        assert not blocked.granted and "Blocked" in blocked.reason
        assert not (await auth.authorize(_eim("UNKNOWN"))).granted
        # LocalAuthorizeOffline false: the list is not used offline
        client.device_model.set("AuthCtrlr", "LocalAuthorizeOffline", "false")
        assert not (await auth.authorize(_eim("LISTED"))).granted
    finally:
        await client.stop()
        await csms.stop()


def test_runtime_applies_the_persisted_availability_to_the_secc(tmp_path: Path) -> None:
    """`evse secc` after a restart: the connectors the CSMS left Inoperative are out of
    service before any EV can arrive (OcppRuntime.attach)."""
    from evse import events as se
    from evse.aio.ocpp_events import OcppRuntime
    from evse.ocpp.availability import Availability

    db = tmp_path / "q.db"
    av = Availability(db, {1, 2})
    assert av.change(2, None, False, set(), {(1, 1), (2, 1)}) == "Accepted"
    av.close()
    cfg = OcppConfig(url="ws://127.0.0.1:9", station_id=STATION, password="p" * 16,
                     queue_file=db)
    rt = OcppRuntime(cfg, lambda: se.EventBus().subscribe(), ["A", "B"])
    calls: list[tuple[str, bool]] = []
    rt.attach(lambda cid, w: None, None, lambda cid, ok: calls.append((cid, ok)))
    assert calls == [("A", True), ("B", False)]
    assert rt.client.station.connectors[(2, 1)].status == "Unavailable"
    rt.client.ops.close()
    rt.queue.close()
