"""Sans-IO: ChangeAvailability decisions and their persistence (evse/ocpp/availability.py), the
local authorization list (evse/ocpp/local_list.py), clock-aligned meter values
(evse/ocpp/transactions.py) and the EVSE-level device model, with a fake clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from evse.ocpp.availability import STATION, Availability
from evse.ocpp.device_model import DeviceModel, Variable, data_type_of
from evse.ocpp.local_list import LocalAuthList
from evse.ocpp.transactions import MeterSample, TransactionTracker

CONNECTORS = {(1, 1), (2, 1)}


def test_availability_changes_scheduled_rejected_and_persisted(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    av = Availability(db, {1, 2})
    assert av.operative(1) and av.operative(2)
    # unknown EVSE / connector, or a connector without EVSE: Rejected, nothing changes
    assert av.change(3, None, False, set(), CONNECTORS) == "Rejected"
    assert av.change(1, 2, False, set(), CONNECTORS) == "Rejected"
    assert av.change(None, 1, False, set(), CONNECTORS) == "Rejected"
    assert av.operative(1) and av.operative(2)
    # EVSE 1 Inoperative while idle: at once
    assert av.change(1, 1, False, set(), CONNECTORS) == "Accepted"
    assert not av.operative(1) and av.operative(2)
    # EVSE 2 Inoperative while it charges: Scheduled, effective when the transaction ends
    assert av.change(2, None, False, {2}, CONNECTORS) == "Scheduled"
    assert av.operative(2, in_transaction=True) and not av.operative(2)
    assert Availability.connector_status("Occupied", False) == "Unavailable"
    assert Availability.connector_status("Faulted", False) == "Faulted"
    assert Availability.connector_status("Occupied", True) == "Occupied"
    av.close()
    # a restart keeps it
    av = Availability(db, {1, 2})
    assert not av.operative(1) and not av.operative(2)
    assert av.change(1, None, True, set(), CONNECTORS) == "Accepted"
    assert av.change(2, None, True, set(), CONNECTORS) == "Accepted"
    # the station level covers every EVSE, an EVSE's own wish stays underneath
    assert av.change(0, None, False, {1}, CONNECTORS) == "Scheduled"
    assert not av.operative(2) and av.operative(1, in_transaction=True)
    assert av.change(STATION, None, True, set(), CONNECTORS) == "Accepted"
    assert av.operative(1) and av.operative(2)
    av.close()


def _entry(token: str, status: str | None, **info: str) -> dict[str, object]:
    e: dict[str, object] = {"idToken": {"idToken": token, "type": "ISO14443"}}
    if status is not None:
        e["idTokenInfo"] = {"status": status, **info}
    return e


def _tok(token: str) -> dict[str, str]:
    return {"idToken": token, "type": "ISO14443"}


def test_local_list_full_differential_and_failures(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    ll = LocalAuthList(db, max_entries=3)
    assert ll.version == 0 and len(ll) == 0
    assert ll.update(1, "Full", [_entry("AA11", "Accepted"), _entry("BB22", "Blocked")]) == \
        ("Accepted", None)
    assert ll.version == 1 and len(ll) == 2
    assert ll.lookup(_tok("aa11"), 0.0) == "Accepted"  # case-insensitive
    assert ll.lookup({"idToken": "AA11", "type": "eMAID"}, 0.0) is None  # type matters
    assert ll.lookup(_tok("BB22"), 0.0) == "Blocked"
    # Differential: not above the version -> VersionMismatch, nothing changes
    assert ll.update(1, "Differential", [_entry("CC33", "Accepted")])[0] == "VersionMismatch"
    assert ll.lookup(_tok("CC33"), 0.0) is None
    # add one, remove one (no idTokenInfo), update one
    assert ll.update(2, "Differential", [_entry("CC33", "Accepted"), _entry("AA11", None),
                                         _entry("BB22", "Accepted")])[0] == "Accepted"
    assert ll.lookup(_tok("AA11"), 0.0) is None
    assert ll.lookup(_tok("BB22"), 0.0) == "Accepted" and ll.version == 2
    assert ll.update(3, "Differential", []) == ("Accepted", None)  # [D01.FR.05]
    assert ll.version == 3 and len(ll) == 2
    # whole request or nothing: too many entries, duplicates, Full without info, version 0
    before = (ll.version, len(ll))
    assert ll.update(4, "Differential", [_entry("D1", "Accepted"),
                                         _entry("D2", "Accepted")])[0] == "Failed"
    assert ll.update(4, "Full", [_entry("E1", "Accepted"), _entry("e1", "Blocked")])[0] == \
        "Failed"
    assert ll.update(4, "Full", [_entry("E1", None)])[0] == "Failed"
    assert ll.update(0, "Full", [])[0] == "Failed"
    assert (ll.version, len(ll)) == before and ll.lookup(_tok("D1"), 0.0) is None
    # expiry: Accepted until cacheExpiryDateTime, Expired after; unreadable: Expired
    t = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()
    assert ll.update(5, "Full", [_entry("F1", "Accepted", cacheExpiryDateTime=
                                        "2030-01-01T00:00:00Z"),
                                 _entry("F2", "Accepted", cacheExpiryDateTime="soon")]) == \
        ("Accepted", None)
    assert ll.lookup(_tok("F1"), t - 1) == "Accepted"
    assert ll.lookup(_tok("F1"), t) == "Expired"
    assert ll.lookup(_tok("F2"), 0.0) == "Expired"
    assert ll.lookup(_tok("BB22"), 0.0) is None  # Full replaced the list
    ll.close()
    ll = LocalAuthList(db)  # persisted
    assert ll.version == 5 and len(ll) == 2
    assert ll.update(6, "Full", []) == ("Accepted", None)  # an empty Full clears it
    assert len(ll) == 0 and ll.version == 6
    ll.close()


def test_clock_aligned_meter_values_on_the_midnight_grid() -> None:
    midnight = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()
    tr = TransactionTracker(sampled_interval_s=0.0, online=True)
    tr.aligned_interval_s = 900.0
    with pytest.raises(ValueError):
        tr.aligned_interval_s = -1
    assert tr.next_deadline() is None  # nothing open: no wake-ups
    tr.started("t1", 1, 1, "EVDetected", MeterSample(0.0), midnight + 100.0)
    assert tr.next_deadline() == midnight + 900.0
    assert tr.handle_timeout(midnight + 899.0) == []
    tr.measured("t1", MeterSample(1234.0, 5.0, power_w=-3000.0))
    out = tr.handle_timeout(midnight + 900.2)
    assert len(out) == 1 and out[0]["triggerReason"] == "MeterValueClock"
    values = {v["measurand"]: v for v in out[0]["meterValue"][0]["sampledValue"]}
    assert values["Energy.Active.Import.Register"]["value"] == 1234.0
    assert values["Power.Active.Export"]["value"] == 3000.0
    assert all(v["context"] == "Sample.Clock" for v in values.values())
    # a long stall: one event, then back on the grid (no burst)
    out = tr.handle_timeout(midnight + 4000.0)
    assert len(out) == 1 and tr.next_deadline() == midnight + 4500.0
    # an interval that does not divide a day restarts at midnight
    tr.aligned_interval_s = 7000.0
    tr.handle_timeout(midnight + 85000.0)  # picks the grid up again
    assert tr.next_deadline() == midnight + 86400.0
    tr.aligned_interval_s = 0.0
    assert tr.next_deadline() is None and tr.handle_timeout(midnight + 1e6) == []


def test_clock_aligned_meter_values_of_idle_evses_online_only() -> None:
    """[J01] MeterValues for each EVSE without a transaction at every grid instant; none
    while offline (not transaction-related: not queued) nor for an instant missed offline."""
    midnight = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()
    tr = TransactionTracker(sampled_interval_s=0.0)
    tr.aligned_interval_s = 900.0
    tr.mark_online(midnight + 50.0)
    assert tr.handle_timeout(midnight + 100.0) == []  # picks the grid up
    assert tr.next_deadline() == midnight + 900.0  # a wake-up with nothing open
    assert tr.idle_meter_values({1, 2}, midnight + 100.0) == []  # no grid instant yet
    assert tr.handle_timeout(midnight + 900.1) == []  # no transaction: no TransactionEvent
    out = tr.idle_meter_values({2, 1}, midnight + 900.1)
    assert [p["evseId"] for p in out] == [1, 2]
    (mv,) = out[0]["meterValue"]
    assert mv["timestamp"] == "2030-01-01T00:15:00.000Z"  # the grid instant
    values = {v["measurand"]: v for v in mv["sampledValue"]}
    assert values["Power.Active.Import"]["value"] == 0.0
    assert all(v["context"] == "Sample.Clock" for v in values.values())
    assert tr.idle_meter_values({1, 2}, midnight + 900.2) == []  # once per instant
    # an EVSE with a transaction gets the TransactionEvent instead
    tr.started("t1", 1, 1, "EVDetected", MeterSample(0.0), midnight + 1000.0)
    assert len(tr.handle_timeout(midnight + 1800.0)) == 1
    out = tr.idle_meter_values({1, 2}, midnight + 1800.0, measurands={"Voltage", "SoC"})
    assert out == []  # measurands this idle EVSE has none of: nothing to send
    tr.handle_timeout(midnight + 2700.0)
    out = tr.idle_meter_values({1, 2}, midnight + 2700.0,
                               measurands={"Energy.Active.Import.Register"})
    assert [p["evseId"] for p in out] == [2]
    assert [v["measurand"] for v in out[0]["meterValue"][0]["sampledValue"]] == [
        "Energy.Active.Import.Register"]
    # offline at the grid instant: nothing (TransactionEvents are queued, these are not)
    tr.online = False
    tr.handle_timeout(midnight + 3600.0)
    assert tr.idle_meter_values({1, 2}, midnight + 3600.0) == []
    # an instant reached only at reconnect (well after it): not sent late
    tr.mark_online(midnight + 4501.0)  # reconnected 1 s after the next instant
    tr.handle_timeout(midnight + 4501.0)  # (the driver did not run offline)
    assert tr.idle_meter_values({1, 2}, midnight + 4501.0) == []
    tr.handle_timeout(midnight + 5400.0)
    assert len(tr.idle_meter_values({1, 2}, midnight + 5400.0)) == 1  # on the grid again


def test_device_model_evse_components_and_data_types() -> None:
    dm = DeviceModel()
    state = {"v": "5"}
    dm.add("EVSE", "AvailabilityState", Variable(lambda: "Available"), evse=1)
    dm.add("AlignedDataCtrlr", "Interval",
           Variable(lambda: state["v"], lambda v: state.update(v=str(int(v)))))
    assert dm.get("EVSE", "AvailabilityState", evse=1) == ("Accepted", "Available")
    assert dm.get("EVSE", "AvailabilityState", evse=2) == ("UnknownComponent", None)
    assert dm.get("EVSE", "AvailabilityState") == ("UnknownComponent", None)
    assert dm.set("EVSE", "AvailabilityState", "x", evse=1) == "Rejected"  # read-only
    assert dm.set("AlignedDataCtrlr", "Interval", "x") == "Rejected" and state["v"] == "5"
    assert dm.set("AlignedDataCtrlr", "Interval", "60") == "Accepted" and state["v"] == "60"
    assert [(c, e, v) for c, e, v, _ in dm.entries()] == [
        ("AlignedDataCtrlr", None, "Interval"), ("EVSE", 1, "AvailabilityState")]
    assert data_type_of(Variable(lambda: ""), "true") == "boolean"
    assert data_type_of(Variable(lambda: ""), "60") == "integer"
    assert data_type_of(Variable(lambda: ""), "a,b") == "MemberList"
    assert data_type_of(Variable(lambda: "", None, "OptionList"), "x") == "OptionList"
