"""TransactionEvent payloads (evse/ocpp/transactions.py) on a fake clock: trigger reasons,
meter values with the export register for discharged energy, periodic samples, offline flag."""

from __future__ import annotations

from typing import Any

import pytest

from evse.ocpp.transactions import MeterSample, TransactionTracker


def values(payload: dict[str, Any]) -> dict[str, float]:
    (mv,) = payload["meterValue"]
    return {sv["measurand"]: sv["value"] for sv in mv["sampledValue"]}


def test_started_updated_ended_with_discharge_in_the_export_register() -> None:
    tr = TransactionTracker(sampled_interval_s=10.0, online=True)
    start = tr.started("tx1", 1, 1, "CablePluggedIn", MeterSample(1000.0, 50.0), 0.0,
                       id_token={"idToken": "ABC", "type": "ISO14443"})
    assert start["eventType"] == "Started" and start["triggerReason"] == "CablePluggedIn"
    assert start["evse"] == {"id": 1, "connectorId": 1}
    assert start["idToken"] == {"idToken": "ABC", "type": "ISO14443"}
    assert "offline" not in start and "seqNo" not in start  # the queue numbers it
    assert start["meterValue"][0]["sampledValue"][0]["context"] == "Transaction.Begin"
    # the EV discharges: negative power and current show up as Export, never negative
    tr.measured("tx1", MeterSample(1200.0, 850.0, power_w=-7400.0, current_a=-18.5,
                                   voltage_v=400.0, soc=61.5))
    (periodic,) = tr.handle_timeout(10.0)
    assert periodic["triggerReason"] == "MeterValuePeriodic"
    assert values(periodic) == {
        "Energy.Active.Import.Register": 1200.0, "Energy.Active.Export.Register": 850.0,
        "Power.Active.Import": 0.0, "Power.Active.Export": 7400.0,
        "Current.Import": 0.0, "Current.Export": 18.5, "Voltage": 400.0, "SoC": 61.5}
    end = tr.ended("tx1", "EVCommunicationLost", "EVDisconnected",
                   MeterSample(1300.0, 900.0, power_w=0.0), 15.0)
    assert end["transactionInfo"] == {"transactionId": "tx1", "stoppedReason": "EVDisconnected",
                                      "chargingState": "Idle"}
    assert values(end)["Energy.Active.Export.Register"] == 900.0
    assert tr.open_transactions == () and tr.next_deadline() is None


def test_periodic_samples_follow_the_grid_without_bursts() -> None:
    tr = TransactionTracker(sampled_interval_s=10.0, online=True)
    tr.started("tx1", 1, 1, "Authorized", MeterSample(0.0), 100.0)
    assert tr.next_deadline() == 110.0
    assert tr.handle_timeout(109.9) == []
    assert len(tr.handle_timeout(145.0)) == 1  # a stalled loop sends one sample, not four
    assert tr.next_deadline() == 150.0


def test_offline_flag_and_no_sampling_when_disabled() -> None:
    tr = TransactionTracker(sampled_interval_s=0.0, online=False)
    p = tr.started("tx1", 1, 1, "Authorized", MeterSample(0.0), 0.0)
    assert p["offline"] is True
    assert tr.next_deadline() is None and tr.handle_timeout(1e9) == []
    u = tr.updated("tx1", "ChargingStateChanged", 1.0, charging_state="Charging",
                   with_meter=True)
    assert u["transactionInfo"]["chargingState"] == "Charging" and "meterValue" in u


def test_a_transaction_cannot_start_twice() -> None:
    tr = TransactionTracker()
    tr.started("tx1", 1, 1, "Authorized", MeterSample(0.0), 0.0)
    with pytest.raises(ValueError):
        tr.started("tx1", 1, 1, "Authorized", MeterSample(0.0), 0.0)
