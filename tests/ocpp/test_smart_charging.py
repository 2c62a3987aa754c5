"""Charging profiles -> limits (evse/ocpp/smart_charging.py) on explicit times: stack levels,
purposes, TxProfile over TxDefaultProfile, the station maximum over all, 2.1 operation modes
with discharge limits and setpoints, the dead-man expiry of Dynamic profiles, validation."""

from __future__ import annotations

from typing import Any

import pytest

from evse.ocpp.smart_charging import ChargingLimits, ProfileError, ProfileRejected, ProfileStore
from evse.ocpp.station import iso_time

T0 = 1_800_000_000.0


def profile(pid: int, purpose: str, level: int, periods: list[dict[str, Any]], *,
            kind: str = "Absolute", start: float | None = T0, unit: str = "W",
            **extra: Any) -> dict[str, Any]:
    sched: dict[str, Any] = {"id": pid, "chargingRateUnit": unit,
                             "chargingSchedulePeriod": periods}
    if start is not None and kind in ("Absolute", "Recurring"):
        sched["startSchedule"] = iso_time(start)
    return {"id": pid, "stackLevel": level, "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind, "chargingSchedule": [sched], **extra}


def test_stack_levels_purposes_and_the_station_maximum() -> None:
    s = ProfileStore()
    assert s.limits_at(1, T0) == ChargingLimits()  # nothing from OCPP: unlimited
    s.set(0, profile(1, "TxDefaultProfile", 0, [{"startPeriod": 0, "limit": 11000.0}]), T0)
    s.set(1, profile(2, "TxDefaultProfile", 1, [{"startPeriod": 0, "limit": 7000.0},
                                                {"startPeriod": 600, "limit": 3000.0}]), T0)
    assert s.limits_at(1, T0 + 10).max_charge_w == 7000.0  # EVSE 1's own, higher level
    assert s.limits_at(1, T0 + 600).max_charge_w == 3000.0
    assert s.limits_at(2, T0 + 10).max_charge_w == 11000.0  # EVSE 0's default for the rest
    s.transaction_started(1, "tx-1", T0)
    with pytest.raises(ProfileRejected):  # not this EVSE's transaction
        s.set(1, profile(3, "TxProfile", 0, [{"startPeriod": 0, "limit": 1.0}],
                         transactionId="tx-9"), T0)
    s.set(1, profile(3, "TxProfile", 0, [{"startPeriod": 0, "limit": 9000.0}],
                     transactionId="tx-1"), T0)
    assert s.limits_at(1, T0 + 700).max_charge_w == 9000.0  # TxProfile replaces the default
    s.set(0, profile(4, "ChargingStationMaxProfile", 0, [{"startPeriod": 0, "limit": 8000.0}]),
          T0)
    assert s.limits_at(1, T0 + 700).max_charge_w == 8000.0  # the station maximum bounds it
    s.transaction_ended(1)  # a TxProfile ends with its transaction
    assert [p["id"] for _e, p in s.get()] == [1, 2, 4]
    assert s.limits_at(1, T0 + 700).max_charge_w == 3000.0
    assert s.clear(purpose="TxDefaultProfile", evse_id=1) and not s.clear(profile_id=99)
    assert s.limits_at(1, T0 + 700).max_charge_w == 8000.0


def test_operation_modes_discharge_and_setpoints() -> None:
    s = ProfileStore()
    s.set(1, profile(1, "TxDefaultProfile", 0, [
        {"startPeriod": 0, "limit": 10000.0},  # ChargingOnly by default
        {"startPeriod": 100, "limit": 10000.0, "dischargeLimit": -7000.0,
         "operationMode": "CentralSetpoint", "setpoint": -9000.0},
        {"startPeriod": 200, "operationMode": "ExternalLimits", "limit": 5000.0},
        {"startPeriod": 300, "operationMode": "Idle"},
    ]), T0)
    assert s.limits_at(1, T0) == ChargingLimits(10000.0, 0.0, None, "ChargingOnly")
    # the setpoint asks for more discharge than the limit allows: the limit wins
    assert s.limits_at(1, T0 + 150) == ChargingLimits(10000.0, 7000.0, -7000.0,
                                                      "CentralSetpoint")
    assert s.limits_at(1, T0 + 250) == ChargingLimits(5000.0, None, None, "ExternalLimits")
    assert s.limits_at(1, T0 + 350) == ChargingLimits(0.0, 0.0, None, "Idle")
    comp = s.composite(1, T0, 400)
    assert [(off, lim.operation_mode) for off, lim in comp] == [
        (0.0, "ChargingOnly"), (100.0, "CentralSetpoint"), (200.0, "ExternalLimits"),
        (300.0, "Idle")]


def test_dynamic_profile_dead_man_falls_back() -> None:
    s = ProfileStore()
    s.set(1, profile(1, "TxDefaultProfile", 0, [{"startPeriod": 0, "limit": 4000.0}]), T0)
    dyn = profile(2, "TxDefaultProfile", 5, [{"startPeriod": 0, "limit": 10000.0,
                                              "dischargeLimit": -10000.0,
                                              "operationMode": "ExternalSetpoint"}],
                  kind="Dynamic", dynUpdateInterval=60)
    s.set(1, dyn, T0)
    assert s.limits_at(1, T0 + 59).max_discharge_w == 10000.0
    assert s.limits_at(1, T0 + 60) == ChargingLimits(4000.0, 0.0, None, "ChargingOnly")
    s.set(1, dyn, T0 + 100)  # the CSMS updates it again
    assert s.limits_at(1, T0 + 120).max_charge_w == 10000.0


def test_amps_and_recurring_and_validity() -> None:
    s = ProfileStore()
    s.set(1, profile(1, "TxDefaultProfile", 0, [{"startPeriod": 0, "limit": 16.0,
                                                 "numberPhases": 1}], unit="A",
                     kind="Recurring", recurrencyKind="Daily", validTo=iso_time(T0 + 5 * 86400)),
          T0)
    assert s.limits_at(1, T0 + 3 * 86400 + 5).max_charge_w == 16.0 * 230.0
    assert s.limits_at(1, T0 + 6 * 86400).max_charge_w is None


@pytest.mark.parametrize(("change", "error"), [
    ({"stackLevel": -1}, ProfileError),
    ({"chargingSchedule": []}, ProfileError),
    ({"chargingProfilePurpose": "LocalGeneration"}, ProfileRejected),
    ({"chargingProfilePurpose": "ChargingStationMaxProfile"}, ProfileRejected),  # on EVSE 1
    ({"validFrom": "yesterday"}, ProfileError),
])
def test_bad_profiles_change_nothing(change: dict[str, Any], error: type[Exception]) -> None:
    s = ProfileStore()
    with pytest.raises(error):
        s.set(1, {**profile(1, "TxDefaultProfile", 0, [{"startPeriod": 0, "limit": 1.0}]),
                  **change}, T0)
    assert s.get() == []


@pytest.mark.parametrize("periods", [
    [{"startPeriod": 5, "limit": 1.0}],
    [{"startPeriod": 0, "limit": -1.0}],
    [{"startPeriod": 0, "limit": 1.0, "dischargeLimit": 5.0}],
    [{"startPeriod": 0, "limit": 1.0}, {"startPeriod": 0, "limit": 2.0}],
    [{"startPeriod": 0, "limit": 1.0, "numberPhases": 4}],
])
def test_out_of_range_periods_are_property_violations(periods: list[dict[str, Any]]) -> None:
    s = ProfileStore()
    with pytest.raises(ProfileError) as info:
        s.set(1, profile(1, "TxDefaultProfile", 0, periods), T0)
    assert info.value.code == "PropertyConstraintViolation"
    assert s.get() == []
