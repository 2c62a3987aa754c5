"""TransactionEvent payloads (OCPP 2.0.1/2.1 E01-E15): Started, Updated, Ended, with trigger
reasons and meter values; sampled meter values every `sampled_interval_s`, and clock-aligned
ones every `aligned_interval_s` [J01]: on a grid that starts at midnight UTC, an Updated with
trigger MeterValueClock (context Sample.Clock) for every open transaction, and a MeterValues
(`idle_meter_values`) for every EVSE without one.

seqNo is not given here: the durable queue (`evse.ocpp.queue`) gives it when it stores the
event, in the same SQLite transaction, so a seqNo is never reused, even after a power loss.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from evse.ocpp.station import iso_time

__all__ = ["MeterSample", "TransactionTracker", "meter_value"]


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One reading at the connector. `power_w` and `current_a` are signed: negative while the
    EV discharges (DESIGN.md sign convention); the meter's registers only ever grow."""

    energy_import_wh: float
    energy_export_wh: float = 0.0
    power_w: float | None = None
    current_a: float | None = None
    voltage_v: float | None = None
    soc: float | None = None


def _value(value: float, measurand: str, context: str, unit: str | None = None,
           ) -> dict[str, Any]:
    sv: dict[str, Any] = {"value": round(value, 3), "measurand": measurand, "context": context}
    if unit is not None:
        sv["unitOfMeasure"] = {"unit": unit}
    return sv


def meter_value(sample: MeterSample, context: str, now: float) -> dict[str, Any]:
    """A MeterValueType: Energy.Active.Import/Export.Register (Wh), Power.Active.Import/Export
    (W, both >= 0: the sign picks the measurand), SoC (%), Voltage (V), Current.Import/Export."""
    values = [
        _value(sample.energy_import_wh, "Energy.Active.Import.Register", context, "Wh"),
        _value(sample.energy_export_wh, "Energy.Active.Export.Register", context, "Wh"),
    ]
    if sample.power_w is not None:
        values.append(_value(max(sample.power_w, 0.0), "Power.Active.Import", context, "W"))
        values.append(_value(max(-sample.power_w, 0.0), "Power.Active.Export", context, "W"))
    if sample.current_a is not None:
        values.append(_value(max(sample.current_a, 0.0), "Current.Import", context, "A"))
        values.append(_value(max(-sample.current_a, 0.0), "Current.Export", context, "A"))
    if sample.voltage_v is not None:
        values.append(_value(sample.voltage_v, "Voltage", context, "V"))
    if sample.soc is not None:
        values.append(_value(sample.soc, "SoC", context, "Percent"))
    return {"timestamp": iso_time(now), "sampledValue": values}


@dataclass(slots=True)
class _Tx:
    tx_id: str
    evse_id: int
    connector_id: int
    sample: MeterSample
    next_sample: float


@dataclass(slots=True)
class TransactionTracker:
    """Open transactions per EVSE; every method returns TransactionEvent payloads (without
    seqNo) for the caller to queue. `online` sets the offline flag of what is built."""

    sampled_interval_s: float = 60.0  # 0: no periodic samples
    online: bool = False
    _open: dict[str, _Tx] = field(default_factory=dict)
    _aligned_s: float = 0.0  # AlignedDataCtrlr.Interval; 0: off
    _next_aligned: float | None = None
    _clock_tick: float | None = None  # the grid instant last reached, for idle_meter_values
    _online_since: float | None = None  # when `online` last became True (mark_online)

    def mark_online(self, now: float) -> None:
        """The CSMS has accepted the station (again): what is built from now on is online."""
        if not self.online or self._online_since is None:
            self._online_since = now
        self.online = True

    @property
    def aligned_interval_s(self) -> float:
        return self._aligned_s

    @aligned_interval_s.setter
    def aligned_interval_s(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"aligned interval {value!r}")
        self._aligned_s = float(value)
        self._next_aligned = None  # the grid restarts from the next call

    def _aligned_after(self, now: float) -> float:
        """The first clock-aligned instant after `now`: midnight UTC + k * interval (the
        grid starts again at each midnight when the interval does not divide a day)."""
        midnight = now - now % 86400.0
        k = int((now - midnight) // self._aligned_s) + 1
        return min(midnight + k * self._aligned_s, midnight + 86400.0)

    def _payload(self, tx: _Tx, event_type: str, trigger: str, now: float,
                 meter: list[dict[str, Any]] | None = None, **info: Any) -> dict[str, Any]:
        p: dict[str, Any] = {
            "eventType": event_type, "timestamp": iso_time(now), "triggerReason": trigger,
            "transactionInfo": {"transactionId": tx.tx_id, **info},
            "evse": {"id": tx.evse_id, "connectorId": tx.connector_id},
        }
        if meter:
            p["meterValue"] = meter
        if not self.online:
            p["offline"] = True
        return p

    def started(self, tx_id: str, evse_id: int, connector_id: int, trigger: str,
                sample: MeterSample, now: float, *, id_token: dict[str, Any] | None = None,
                charging_state: str = "EVConnected") -> dict[str, Any]:
        if tx_id in self._open:
            raise ValueError(f"transaction {tx_id!r} is already open")
        tx = self._open[tx_id] = _Tx(tx_id, evse_id, connector_id, sample,
                                     now + self.sampled_interval_s)
        if self._aligned_s > 0 and (self._next_aligned is None or self._next_aligned <= now):
            self._next_aligned = self._aligned_after(now)
        p = self._payload(tx, "Started", trigger, now,
                          [meter_value(sample, "Transaction.Begin", now)],
                          chargingState=charging_state)
        if id_token is not None:
            p["idToken"] = id_token
        return p

    def measured(self, tx_id: str, sample: MeterSample) -> None:
        """The latest reading; sent at the next periodic sample (or the end)."""
        self._open[tx_id].sample = sample

    def updated(self, tx_id: str, trigger: str, now: float, *,
                charging_state: str | None = None, id_token: dict[str, Any] | None = None,
                with_meter: bool = False, remote_start_id: int | None = None
                ) -> dict[str, Any]:
        tx = self._open[tx_id]
        info: dict[str, Any] = {"chargingState": charging_state} if charging_state else {}
        if remote_start_id is not None:
            info["remoteStartId"] = remote_start_id
        meter = [meter_value(tx.sample, "Trigger", now)] if with_meter else None
        p = self._payload(tx, "Updated", trigger, now, meter, **info)
        if id_token is not None:
            p["idToken"] = id_token
        return p

    def ended(self, tx_id: str, trigger: str, stopped_reason: str, sample: MeterSample,
              now: float) -> dict[str, Any]:
        tx = self._open.pop(tx_id)
        tx.sample = sample
        return self._payload(tx, "Ended", trigger, now,
                             [meter_value(sample, "Transaction.End", now)],
                             stoppedReason=stopped_reason, chargingState="Idle")

    def ended_after_restart(self, tx_id: str, evse_id: int | None, connector_id: int | None,
                            now: float) -> dict[str, Any]:
        """Ended for a transaction a restart cut off (stoppedReason PowerLoss, no meter
        value: the last reading died with the process)."""
        p: dict[str, Any] = {
            "eventType": "Ended", "timestamp": iso_time(now),
            "triggerReason": "AbnormalCondition",
            "transactionInfo": {"transactionId": tx_id, "stoppedReason": "PowerLoss",
                                "chargingState": "Idle"}}
        if evse_id is not None:
            p["evse"] = {"id": evse_id, "connectorId": connector_id or 1}
        if not self.online:
            p["offline"] = True
        return p

    def on_evse(self, evse_id: int | None = None) -> list[tuple[str, MeterSample]]:
        """(transaction id, latest sample) of the open transactions (of one EVSE)."""
        return [(tx.tx_id, tx.sample) for tx in self._open.values()
                if evse_id is None or tx.evse_id == evse_id]

    def evse_of(self, tx_id: str) -> int:
        return self._open[tx_id].evse_id

    @property
    def open_transactions(self) -> tuple[str, ...]:
        return tuple(self._open)

    def next_deadline(self) -> float | None:
        """The next sample or clock-aligned instant (the aligned grid runs with or without
        transactions: idle EVSEs get MeterValues on it)."""
        deadlines = []
        if self.sampled_interval_s > 0 and self._open:
            deadlines.append(min(tx.next_sample for tx in self._open.values()))
        if self._aligned_s > 0 and self._next_aligned is not None:
            deadlines.append(self._next_aligned)
        return min(deadlines) if deadlines else None

    def handle_timeout(self, now: float) -> list[dict[str, Any]]:
        """Periodic Updated events (MeterValuePeriodic) for every transaction that is due, and
        the clock-aligned ones (MeterValueClock) when the grid is reached."""
        out: list[dict[str, Any]] = self._aligned(now)
        if self.sampled_interval_s <= 0:
            return out
        for tx in self._open.values():
            if now >= tx.next_sample:
                # next slot on the interval grid, never a burst after a long stall
                while tx.next_sample <= now:
                    tx.next_sample += self.sampled_interval_s
                out.append(self._payload(tx, "Updated", "MeterValuePeriodic", now,
                                         [meter_value(tx.sample, "Sample.Periodic", now)]))
        return out

    def _aligned(self, now: float) -> list[dict[str, Any]]:
        """[J01] Clock-aligned Updated (MeterValueClock) for every open transaction."""
        if self._aligned_s <= 0:
            return []
        if self._next_aligned is None:
            self._next_aligned = self._aligned_after(now)
            return []
        if now < self._next_aligned:
            return []
        self._clock_tick = self._next_aligned
        self._next_aligned = self._aligned_after(now)
        return [self._payload(tx, "Updated", "MeterValueClock", now,
                              [meter_value(tx.sample, "Sample.Clock", now)])
                for tx in self._open.values()]

    def idle_meter_values(self, evse_ids: Iterable[int], now: float,
                          measurands: Collection[str] | None = None) -> list[dict[str, Any]]:
        """[J01] MeterValues payloads (evseId, meterValue with context Sample.Clock) for each
        EVSE of `evse_ids` without an open transaction, once per grid instant that
        `handle_timeout` reached, filtered to `measurands` (AlignedDataCtrlr.Measurands).

        Only for grid instants while online (since `mark_online`): MeterValues are not
        transaction-related messages, so they are not queued while offline (only
        TransactionEvents are); a grid instant passed offline is not sent at reconnect.
        Outside a transaction no energy flows: power and current 0, the registers count per
        session (from 0 at Started), so they read 0 here."""
        tick, self._clock_tick = self._clock_tick, None
        since = self._online_since
        if tick is None or not self.online or since is None or tick < since:
            return []
        busy = {tx.evse_id for tx in self._open.values()}
        out = []
        for evse_id in sorted(set(evse_ids) - busy):
            mv = meter_value(MeterSample(0.0, 0.0, power_w=0.0, current_a=0.0),
                             "Sample.Clock", tick)
            if measurands is not None:
                mv["sampledValue"] = [v for v in mv["sampledValue"]
                                      if v["measurand"] in measurands]
            if mv["sampledValue"]:
                out.append({"evseId": evse_id, "meterValue": [mv]})
        return out
