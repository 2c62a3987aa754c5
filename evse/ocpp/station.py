"""The station's connection-level OCPP state: BootNotification, Heartbeat, StatusNotification.

Rules kept (OCPP 2.0.1/2.1 part 2, B01-B03, G01):
- after (re)connecting, the first message is BootNotification; nothing else is sent until the
  CSMS answers Accepted (Pending and Rejected: send BootNotification again after the interval
  the CSMS gave, or `boot_retry_s` when it gave 0);
- once Accepted, every connector's status is reported (a connection may have been down while
  it changed), and again whenever it changes;
- Heartbeat when nothing else was sent for the heartbeat interval the CSMS gave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["BOOT_STATUSES", "CONNECTOR_STATUSES", "Backoff", "OcppStation", "SendCall",
           "iso_time"]

BOOT_STATUSES = ("Accepted", "Pending", "Rejected")
CONNECTOR_STATUSES = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")


def iso_time(now: float) -> str:
    """OCPP dateTime: RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


@dataclass(frozen=True, slots=True)
class SendCall:
    """Send this CALL to the CSMS (payload in OCPP's camelCase JSON)."""

    action: str
    payload: dict[str, Any]


@dataclass(slots=True)
class Backoff:
    """Reconnect delay: `min_s` doubling up to `max_s`; `jitter` in [0, 1) spreads a fleet
    that lost the same CSMS (up to +50 %)."""

    min_s: float = 1.0
    max_s: float = 60.0
    _attempt: int = 0

    def next_delay(self, jitter: float = 0.0) -> float:
        base = min(self.max_s, self.min_s * 2.0 ** min(self._attempt, 30))
        self._attempt += 1
        return base * (1.0 + 0.5 * jitter)

    def reset(self) -> None:
        self._attempt = 0


@dataclass(slots=True)
class _Connector:
    evse_id: int
    connector_id: int
    status: str = "Available"
    reported: str | None = None  # what the CSMS was last told on this connection


@dataclass(slots=True)
class OcppStation:
    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None
    boot_reason: str = "PowerUp"
    boot_retry_s: float = 30.0  # Pending/Rejected with interval 0, or a lost answer
    default_heartbeat_s: float = 60.0
    connectors: dict[tuple[int, int], _Connector] = field(default_factory=dict)
    connected: bool = False
    boot_status: str | None = None  # last answer on this connection
    heartbeat_s: float = 0.0
    _boot_due: float | None = None
    _last_sent: float = 0.0
    _boot_in_flight: bool = False

    def add_connector(self, evse_id: int, connector_id: int = 1,
                      status: str = "Available") -> None:
        self._check_status(status)
        self.connectors[(evse_id, connector_id)] = _Connector(evse_id, connector_id, status)

    @property
    def accepted(self) -> bool:
        return self.connected and self.boot_status == "Accepted"

    # -- inputs ------------------------------------------------------------------------------
    def connection_made(self, now: float) -> list[SendCall]:
        self.connected = True
        self.boot_status = None
        for c in self.connectors.values():
            c.reported = None
        self._boot_due = now
        return self.handle_timeout(now)

    def connection_lost(self) -> None:
        self.connected = False
        self.boot_status = None
        self._boot_due = None
        self._boot_in_flight = False

    def boot_answered(self, status: str, interval: int, now: float) -> list[SendCall]:
        """The CSMS's BootNotificationResponse (status, interval in s)."""
        if status not in BOOT_STATUSES:
            raise ValueError(f"BootNotification status {status!r}")
        self._boot_in_flight = False
        self.boot_status = status
        if status == "Accepted":
            self.heartbeat_s = float(interval) if interval > 0 else self.default_heartbeat_s
            self._boot_due = None
            self.boot_reason = "PowerUp"
            return self._status_calls(now)
        # [B02]/[B03]: retry after the CSMS's interval; nothing else meanwhile
        self._boot_due = now + (interval if interval > 0 else self.boot_retry_s)
        return []

    def boot_failed(self, now: float) -> None:
        """No usable answer to BootNotification (timeout, CallError): retry later."""
        self._boot_in_flight = False
        self._boot_due = now + self.boot_retry_s

    def connector_status(self, evse_id: int, connector_id: int, status: str,
                         now: float) -> list[SendCall]:
        self._check_status(status)
        c = self.connectors.get((evse_id, connector_id))
        if c is None:
            c = self.connectors[(evse_id, connector_id)] = _Connector(evse_id, connector_id)
        c.status = status
        return self._status_calls(now) if self.accepted else []

    def trigger_boot(self, now: float) -> bool:
        """TriggerMessage(BootNotification) [F06]: only while not yet Accepted (after that it
        is Rejected); sent at once with reason Triggered. False: not possible now."""
        if not self.connected or self.boot_status == "Accepted" or self._boot_in_flight:
            return False
        self.boot_reason = "Triggered"
        self._boot_due = now
        return True

    def message_sent(self, now: float) -> None:
        """Any CALL went out: the heartbeat interval counts from here."""
        self._last_sent = now

    # -- timers ------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        if not self.connected:
            return None
        if self.boot_status != "Accepted":
            return None if self._boot_in_flight else self._boot_due
        return self._last_sent + self.heartbeat_s

    def handle_timeout(self, now: float) -> list[SendCall]:
        if not self.connected:
            return []
        if self.boot_status != "Accepted":
            if self._boot_due is not None and now >= self._boot_due and not self._boot_in_flight:
                self._boot_in_flight = True
                self._last_sent = now
                return [SendCall("BootNotification", self._boot_payload())]
            return []
        if now >= self._last_sent + self.heartbeat_s:
            self._last_sent = now
            return [SendCall("Heartbeat", {})]
        return []

    # -- payloads ----------------------------------------------------------------------------
    def _boot_payload(self) -> dict[str, Any]:
        station: dict[str, Any] = {"model": self.model, "vendorName": self.vendor}
        if self.serial_number:
            station["serialNumber"] = self.serial_number
        if self.firmware_version:
            station["firmwareVersion"] = self.firmware_version
        return {"chargingStation": station, "reason": self.boot_reason}

    def _status_calls(self, now: float) -> list[SendCall]:
        out = []
        for c in sorted(self.connectors.values(), key=lambda c: (c.evse_id, c.connector_id)):
            if c.reported != c.status:
                c.reported = c.status
                out.append(SendCall("StatusNotification", {
                    "timestamp": iso_time(now), "connectorStatus": c.status,
                    "evseId": c.evse_id, "connectorId": c.connector_id}))
        if out:
            self._last_sent = now
        return out

    @staticmethod
    def _check_status(status: str) -> None:
        if status not in CONNECTOR_STATUSES:
            raise ValueError(f"connector status {status!r}")
