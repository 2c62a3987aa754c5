"""CSMS-initiated CALLs over a real WebSocket: SetChargingProfile, GetCompositeSchedule,
GetChargingProfiles (with ReportChargingProfiles), ClearChargingProfile, Get/SetVariables,
Install/Delete/GetInstalledCertificateIds; and bad CSMS input
(out-of-range profiles, wrong types, unknown actions, malformed frames) answered with the
right CallError and no change to the station's profiles."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from ocpp.exceptions import OCPPError

from evse.aio.ocpp_client import OcppClient
from evse.config import OcppConfig
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from evse.ocpp.transactions import MeterSample
from simulators.csms import CsmsSimulator

STATION = "CS1"


def profile(pid: int, purpose: str, level: int, periods: list[dict[str, Any]],
            **extra: Any) -> dict[str, Any]:
    return {"id": pid, "stack_level": level, "charging_profile_purpose": purpose,
            "charging_profile_kind": "Relative" if purpose == "TxProfile" else "Absolute",
            "charging_schedule": [{"id": pid, "charging_rate_unit": "W",
                                   "start_schedule": "2020-01-01T00:00:00Z",
                                   "charging_schedule_period": periods}], **extra}


async def connected(tmp_path: Path, version: str = "2.1") -> tuple[CsmsSimulator, OcppClient]:
    csms = CsmsSimulator()
    await csms.start()
    cfg = OcppConfig(url=csms.url, station_id=STATION, password="p" * 16, version=version,
                     reconnect_min_s=0.05, reconnect_max_s=0.2, sampled_interval_s=0.0)
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    client = OcppClient(cfg, st, queue=DurableQueue(tmp_path / "q.db"))
    client.max_power_w = 50000.0
    client.start()
    await asyncio.wait_for(client.accepted.wait(), 30)
    async with asyncio.timeout(30):
        while STATION not in csms.stations:
            await asyncio.sleep(0.02)
    return csms, client


async def test_profiles_set_reported_composed_and_cleared(tmp_path: Path) -> None:
    csms, client = await connected(tmp_path)
    changes: list[int] = []
    client.on_profiles_changed(lambda: changes.append(1))
    try:
        res = await csms.call(STATION, "SetChargingProfile", {
            "evse_id": 1, "charging_profile": profile(7, "TxDefaultProfile", 2, [
                {"start_period": 0, "limit": 11000.0, "discharge_limit": -5000.0,
                 "operation_mode": "ExternalLimits"}])})
        assert res.status == "Accepted" and changes == [1]
        res = await csms.call(STATION, "SetChargingProfile", {
            "evse_id": 0, "charging_profile": profile(8, "ChargingStationMaxProfile", 0, [
                {"start_period": 0, "limit": 9000.0}])})
        assert res.status == "Accepted"
        lim = client.profiles.limits_at(1, client._clock())
        assert (lim.max_charge_w, lim.max_discharge_w) == (9000.0, 5000.0)
        comp = await csms.call(STATION, "GetCompositeSchedule", {"duration": 3600,
                                                                  "evse_id": 1})
        assert comp.status == "Accepted"
        (period,) = comp.schedule["charging_schedule_period"]
        assert period == {"start_period": 0, "limit": 9000.0, "discharge_limit": -5000.0,
                          "operation_mode": "ExternalLimits"}
        # a TxProfile is refused without a running transaction, taken with one
        tx = profile(9, "TxProfile", 0, [{"start_period": 0, "limit": 3000.0}],
                     transaction_id="tx-1")
        res = await csms.call(STATION, "SetChargingProfile", {"evse_id": 1,
                                                              "charging_profile": tx})
        assert res.status == "Rejected"
        client.transaction_started("tx-1", 1, 1, "EVDetected", MeterSample(0.0))
        res = await csms.call(STATION, "SetChargingProfile", {"evse_id": 1,
                                                              "charging_profile": tx})
        assert res.status == "Accepted"
        assert client.profiles.limits_at(1, client._clock()).max_charge_w == 3000.0
        res = await csms.call(STATION, "GetChargingProfiles", {
            "request_id": 42, "charging_profile": {"charging_profile_purpose": "TxProfile"}})
        assert res.status == "Accepted"
        async with asyncio.timeout(30):
            while not csms.calls(STATION, "ReportChargingProfiles"):
                await asyncio.sleep(0.02)
        (report,) = csms.calls(STATION, "ReportChargingProfiles")
        assert report["request_id"] == 42 and report["evse_id"] == 1
        assert [p["id"] for p in report["charging_profile"]] == [9]
        res = await csms.call(STATION, "ClearChargingProfile", {"charging_profile_id": 8})
        assert res.status == "Accepted"
        res = await csms.call(STATION, "ClearChargingProfile", {"charging_profile_id": 8})
        assert res.status == "Unknown"
        assert [p["id"] for _e, p in client.profiles.get()] == [7, 9]
    finally:
        await client.stop()
        await csms.stop()


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_bad_csms_input_gets_the_right_call_error_and_changes_nothing(
        tmp_path: Path, version: str) -> None:
    csms, client = await connected(tmp_path, version)
    try:
        good = profile(1, "TxDefaultProfile", 0, [{"start_period": 0, "limit": 7000.0}])
        assert (await csms.call(STATION, "SetChargingProfile",
                                {"evse_id": 1, "charging_profile": good})).status == "Accepted"
        before = client.profiles.get()
        cases: list[tuple[dict[str, Any], str]] = [
            # out of range: a negative charging limit (discharge is dischargeLimit)
            (profile(2, "TxDefaultProfile", 0, [{"start_period": 0, "limit": -1.0}]),
             "PropertyConstraintViolation"),
            # the first period must start at 0
            (profile(3, "TxDefaultProfile", 0, [{"start_period": 60, "limit": 1.0}]),
             "PropertyConstraintViolation"),
        ]
        for bad, code in cases:
            with pytest.raises(OCPPError) as info:
                await csms.call(STATION, "SetChargingProfile",
                                {"evse_id": 1, "charging_profile": bad})
            assert info.value.code == code
        assert client.profiles.get() == before
        n = len(csms.frames[STATION])

        async def raw_reply(frame: str) -> list[Any]:
            await csms.send_raw(STATION, frame)
            async with asyncio.timeout(30):
                while len(csms.frames[STATION]) == n + len(replies):
                    await asyncio.sleep(0.02)
            reply = json.loads(csms.frames[STATION][-1])
            replies.append(reply)
            return reply  # type: ignore[no-any-return]

        replies: list[Any] = []
        wrong_type = json.dumps([2, "m1", "SetChargingProfile", {
            "evseId": 1, "chargingProfile": {**good, "stackLevel": "high"}}])
        reply = await raw_reply(wrong_type)
        assert reply[:3] == [4, "m1", "TypeConstraintViolation"] or \
            reply[:3] == [4, "m1", "FormatViolation"], reply
        reply = await raw_reply(json.dumps([2, "m2", "FlyToTheMoon", {}]))
        assert reply[:3] == [4, "m2", "NotSupported"], reply
        reply = await raw_reply(json.dumps([2, "m3", "CancelReservation",
                                            {"reservationId": 1}]))
        assert reply[:3] == [4, "m3", "NotImplemented"], reply
        reply = await raw_reply('[2, "m4", "Heartbeat", {')  # not JSON
        assert reply[:3] == [4, "-1", "RpcFrameworkError"], reply
        reply = await raw_reply(json.dumps({"not": "a list"}))
        assert reply[:3] == [4, "-1", "RpcFrameworkError"], reply
        assert client.profiles.get() == before
        # the connection is still in service
        comp = await csms.call(STATION, "GetCompositeSchedule", {"duration": 60, "evse_id": 1})
        assert comp.status == "Accepted" and client.connections == 1
    finally:
        await client.stop()
        await csms.stop()


async def test_get_and_set_variables_act_on_the_live_settings(tmp_path: Path) -> None:
    csms, client = await connected(tmp_path)
    try:
        def item(comp: str, var: str, value: str | None = None) -> dict[str, Any]:
            d: dict[str, Any] = {"component": {"name": comp}, "variable": {"name": var}}
            if value is not None:
                d["attribute_value"] = value
            return d

        res = await csms.call(STATION, "GetVariables", {"get_variable_data": [
            item("SecurityCtrlr", "Identity"), item("OCPPCommCtrlr", "HeartbeatInterval"),
            item("OCPPCommCtrlr", "NoSuchVariable"), item("NoSuchCtrlr", "Enabled")]})
        got = [(r["attribute_status"], r.get("attribute_value"))
               for r in res.get_variable_result]
        assert got == [("Accepted", STATION), ("Accepted", "60"), ("UnknownVariable", None),
                       ("UnknownComponent", None)]
        n = len(csms.calls(STATION, "Heartbeat"))
        res = await csms.call(STATION, "SetVariables", {"set_variable_data": [
            item("OCPPCommCtrlr", "HeartbeatInterval", "1"),
            item("SampledDataCtrlr", "TxUpdatedInterval", "-5"),  # out of range
            item("SecurityCtrlr", "SecurityProfile", "3"),  # read-only
        ]})
        assert [r["attribute_status"] for r in res.set_variable_result] == [
            "Accepted", "Rejected", "Rejected"]
        assert client.tracker.sampled_interval_s == 0.0 and \
            client.config.security_profile == 1  # the refused ones changed nothing
        async with asyncio.timeout(30):  # the new heartbeat interval is in force
            while len(csms.calls(STATION, "Heartbeat")) < n + 2:
                await asyncio.sleep(0.05)
    finally:
        await client.stop()
        await csms.stop()


async def test_root_certificates_installed_listed_and_deleted(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

    from evse.ocpp.cert_store import CertStore
    from tests.ocpp.pki import make_pki

    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    csms, client = await connected(tmp_path)
    try:
        res = await csms.call(STATION, "InstallCertificate", {
            "certificate_type": "MORootCertificate", "certificate": pki.ca.read_text()})
        assert res.status == "Failed"  # no store configured: nothing to install into
        client.cert_store = CertStore(tmp_path / "roots")
        res = await csms.call(STATION, "InstallCertificate", {
            "certificate_type": "MORootCertificate", "certificate": pki.ca.read_text()})
        assert res.status == "Accepted"
        leaf, _ = pki.client("CS1")
        for bad in (leaf.read_text(), "-----BEGIN CERTIFICATE-----\nnope\n"):
            res = await csms.call(STATION, "InstallCertificate", {
                "certificate_type": "MORootCertificate", "certificate": bad})
            assert res.status == "Rejected"
        assert len(list((tmp_path / "roots" / "MORootCertificate").glob("*.pem"))) == 1
        res = await csms.call(STATION, "GetInstalledCertificateIds",
                              {"certificate_type": ["MORootCertificate"]})
        assert res.status == "Accepted"
        (chain,) = res.certificate_hash_data_chain
        root = x509.load_pem_x509_certificate(pki.ca.read_bytes())
        req = ocsp.OCSPRequestBuilder().add_certificate(root, root, hashes.SHA256()).build()
        assert chain["certificate_type"] == "MORootCertificate"
        assert chain["certificate_hash_data"] == {
            "hash_algorithm": "SHA256", "issuer_name_hash": req.issuer_name_hash.hex(),
            "issuer_key_hash": req.issuer_key_hash.hex(),
            "serial_number": f"{req.serial_number:x}"}
        assert (await csms.call(STATION, "GetInstalledCertificateIds", {
            "certificate_type": ["V2GRootCertificate"]})).status == "NotFound"
        hd = chain["certificate_hash_data"]
        assert (await csms.call(STATION, "DeleteCertificate", {
            "certificate_hash_data": hd})).status == "Accepted"
        assert (await csms.call(STATION, "DeleteCertificate", {
            "certificate_hash_data": hd})).status == "NotFound"
        assert (await csms.call(STATION, "GetInstalledCertificateIds", {})).status == "NotFound"
    finally:
        await client.stop()
        await csms.stop()
