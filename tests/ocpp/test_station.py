"""The sans-IO connection logic (evse/ocpp/station.py) on a fake clock: BootNotification
first, Pending/Rejected retried at the CSMS's interval, StatusNotification per connector once
accepted (again after every reconnect), heartbeat, reconnect back-off."""

from __future__ import annotations

import pytest

from evse.ocpp.station import Backoff, OcppStation, iso_time


def station() -> OcppStation:
    st = OcppStation(vendor="V", model="M", serial_number="S1", boot_retry_s=30.0)
    st.add_connector(1, 1)
    st.add_connector(2, 1, "Unavailable")
    return st


def actions(calls: list) -> list[str]:  # type: ignore[type-arg]
    return [c.action for c in calls]


def test_boot_is_the_first_and_only_message_until_accepted() -> None:
    st = station()
    assert st.next_deadline() is None  # not connected: nothing to do
    calls = st.connection_made(100.0)
    assert actions(calls) == ["BootNotification"]
    assert calls[0].payload == {"chargingStation": {"model": "M", "vendorName": "V",
                                                    "serialNumber": "S1"},
                                "reason": "PowerUp"}
    # no second boot while the first is unanswered, and no status before acceptance
    assert st.next_deadline() is None
    assert st.handle_timeout(1000.0) == []
    assert st.connector_status(1, 1, "Occupied", 101.0) == []


def test_pending_then_rejected_are_retried_at_the_csms_interval() -> None:
    st = station()
    st.connection_made(0.0)
    assert st.boot_answered("Pending", 10, 1.0) == []
    assert st.next_deadline() == 11.0
    assert st.handle_timeout(10.9) == []
    assert actions(st.handle_timeout(11.0)) == ["BootNotification"]
    assert st.boot_answered("Rejected", 0, 12.0) == []  # 0: the station's own retry time
    assert st.next_deadline() == 42.0
    assert not st.accepted
    assert actions(st.handle_timeout(42.0)) == ["BootNotification"]
    calls = st.boot_answered("Accepted", 300, 43.0)
    assert st.accepted
    assert [(c.payload["evseId"], c.payload["connectorStatus"]) for c in calls] == [
        (1, "Available"), (2, "Unavailable")]
    assert calls[0].payload["timestamp"] == iso_time(43.0) == "1970-01-01T00:00:43.000Z"


def test_heartbeat_after_the_interval_without_other_messages() -> None:
    st = station()
    st.connection_made(0.0)
    st.boot_answered("Accepted", 60, 1.0)
    assert st.next_deadline() == 61.0
    st.message_sent(30.0)  # any other CALL postpones the heartbeat
    assert st.handle_timeout(61.0) == []
    assert st.next_deadline() == 90.0
    assert actions(st.handle_timeout(90.0)) == ["Heartbeat"]
    assert st.next_deadline() == 150.0


def test_status_changes_are_sent_once_and_all_again_after_a_reconnect() -> None:
    st = station()
    st.connection_made(0.0)
    st.boot_answered("Accepted", 0, 1.0)
    assert st.heartbeat_s == st.default_heartbeat_s  # interval 0: our default
    calls = st.connector_status(1, 1, "Occupied", 2.0)
    assert [(c.payload["evseId"], c.payload["connectorStatus"]) for c in calls] == [
        (1, "Occupied")]
    assert st.connector_status(1, 1, "Occupied", 3.0) == []  # unchanged: nothing
    st.connection_lost()
    assert st.connector_status(2, 1, "Available", 4.0) == []  # offline: remembered
    assert actions(st.connection_made(5.0)) == ["BootNotification"]
    calls = st.boot_answered("Accepted", 60, 6.0)
    assert [(c.payload["evseId"], c.payload["connectorStatus"]) for c in calls] == [
        (1, "Occupied"), (2, "Available")]


def test_a_lost_boot_answer_is_retried() -> None:
    st = station()
    st.connection_made(0.0)
    st.boot_failed(5.0)
    assert st.next_deadline() == 35.0
    assert actions(st.handle_timeout(35.0)) == ["BootNotification"]


def test_bad_inputs_are_refused() -> None:
    st = station()
    with pytest.raises(ValueError):
        st.connector_status(1, 1, "Charging", 0.0)  # a 1.6 status, not 2.0.1
    st.connection_made(0.0)
    with pytest.raises(ValueError):
        st.boot_answered("Maybe", 1, 0.0)


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    b = Backoff(1.0, 10.0)
    assert [b.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert b.next_delay(jitter=0.5) == 12.5  # up to +50 %
    b.reset()
    assert b.next_delay() == 1.0
