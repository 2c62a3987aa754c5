"""CSMS operations on the station (OCPP 2.0.1/2.1): ChangeAvailability [G03/G04],
UnlockConnector [F05], TriggerMessage [F06], GetBaseReport -> NotifyReport [B07], the local
authorization list SendLocalList / GetLocalListVersion [D01/D02], and the device-model
variables these bring (AvailabilityState, LocalAuthListCtrlr.*, AuthCtrlr.Local*,
AlignedDataCtrlr.*).

`Operations` is the state (one per `OcppClient`, its SQLite tables beside the durable queue);
`OperationsHandlers` the `@on` routes, mixed into the client's ChargePoint classes. The
decisions themselves are sans-IO: `evse.ocpp.availability`, `evse.ocpp.local_list`,
`evse.ocpp.device_model`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ocpp.charge_point import snake_to_camel_case
from ocpp.routing import after as _after
from ocpp.routing import on as _on

from evse.ocpp.availability import STATION, Availability
from evse.ocpp.device_model import Variable, boolean, data_type_of, non_negative_int
from evse.ocpp.local_list import LocalAuthList
from evse.ocpp.station import iso_time
from evse.ocpp.transactions import MeterSample, meter_value
from evse.ocpp.variable_store import VariableStore

if TYPE_CHECKING:
    from evse.aio.ocpp_client import OcppClient

__all__ = ["Operations", "OperationsHandlers", "report_data"]

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])
on = cast(Callable[[str], Callable[[_F], _F]], _on)  # the ocpp package is untyped
after = cast(Callable[[str], Callable[[_F], _F]], _after)

REPORT_ITEMS_PER_MESSAGE = 16  # NotifyReport parts: at most this many reportData each
# what TriggerMessage can make the station send now (the Sign*Certificate ones are taken
# ahead of this handler by evse/aio/ocpp_security.py SecurityHandlers)
TRIGGERABLE = ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
               "TransactionEvent", "LogStatusNotification", "FirmwareStatusNotification")
ALIGNED_MEASURANDS = ("Energy.Active.Import.Register", "Energy.Active.Export.Register",
                      "Power.Active.Import", "Power.Active.Export", "Current.Import",
                      "Current.Export", "Voltage", "SoC")


def _bool(value: bool) -> str:
    return "true" if value else "false"


class Operations:
    """The station state the CSMS operations change; created by `OcppClient`."""

    def __init__(self, client: OcppClient) -> None:
        self.client = client
        db = client.queue.path  # the queue's SQLite file: one file holds the OCPP state
        self.availability = Availability(db, client.evse_ids)
        self.local_list = LocalAuthList(db)
        self.local_list_enabled = True  # LocalAuthListCtrlr.Enabled
        self.local_pre_authorize = False  # AuthCtrlr.LocalPreAuthorize: list first, online
        self.local_authorize_offline = True  # AuthCtrlr.LocalAuthorizeOffline
        # the connector's own status (Available / Occupied / Faulted) before availability
        self.raw_status: dict[tuple[int, int], str] = {}
        # (evse id, operative): take a connector out of service / back (the SECC's side)
        self.on_availability: Callable[[int, bool], None] | None = None
        self._pushed: dict[int, bool] = {}  # what `on_availability` was last told
        for (evse_id, connector_id), conn in client.station.connectors.items():
            self.raw_status[(evse_id, connector_id)] = conn.status
            conn.status = self.shown_status(evse_id, conn.status)
        self._add_variables()
        # SetVariables values of an earlier run, applied before the first boot; every
        # Accepted one is kept from now on (every variable is registered by now)
        self.variables = VariableStore(db)
        for component, evse, variable, value in self.variables.attach(client.device_model):
            log.warning("stored variable %s%s.%s=%r no longer accepted: dropped", component,
                        f"[{evse}]" if evse else "", variable, value)

    def close(self) -> None:
        self.availability.close()
        self.local_list.close()
        self.variables.close()

    # -- availability ------------------------------------------------------------------------
    def _busy(self) -> set[int]:
        return {e for e, in_tx in self.client.evse_transactions().items() if in_tx}

    def operative(self, evse_id: int) -> bool:
        return self.availability.operative(evse_id, evse_id in self._busy())

    def shown_status(self, evse_id: int, status: str) -> str:
        return Availability.connector_status(status, self.operative(evse_id))

    def refresh(self, evse_ids: set[int] | None = None) -> None:
        """Report each connector's status again (after a change of availability) and tell
        the SECC which EVSEs take sessions."""
        ids = self.client.evse_ids if evse_ids is None else evse_ids
        for (evse_id, connector_id), raw in sorted(self.raw_status.items()):
            if evse_id in ids:
                self.client.connector_status(evse_id, connector_id, raw)
        self.apply(ids)

    def apply(self, evse_ids: set[int] | None = None) -> None:
        """Push the effective availability to the SECC (`on_availability`), where it
        changed since the last push."""
        if self.on_availability is None:
            return
        for evse_id in sorted(self.client.evse_ids if evse_ids is None else evse_ids):
            operative = self.operative(evse_id)
            if self._pushed.get(evse_id) == operative:
                continue
            self._pushed[evse_id] = operative
            try:
                self.on_availability(evse_id, operative)
            except Exception:
                log.exception("availability listener failed for EVSE %d", evse_id)

    def transaction_ended(self, evse_id: int) -> None:
        """A Scheduled Inoperative applies now [G03]."""
        if not self.operative(evse_id):
            self.refresh({evse_id})

    # -- authorization -----------------------------------------------------------------------
    def local_status(self, id_token: dict[str, Any], now: float) -> str | None:
        """The local list's status for a token (None: list disabled or token not on it)."""
        if not self.local_list_enabled:
            return None
        return self.local_list.lookup(id_token, now)

    # -- device model ------------------------------------------------------------------------
    def _add_variables(self) -> None:
        c = self.client
        dm, tr = c.device_model, c.tracker

        def flag(name: str) -> Variable:
            def put(v: str) -> None:
                setattr(self, name, boolean(v))
            return Variable(lambda: _bool(getattr(self, name)), put, "boolean")

        def set_aligned(v: str) -> None:
            tr.aligned_interval_s = float(non_negative_int(v))
            c._wake.set()  # the driver picks the new grid up (idle MeterValues too)

        dm.add("ChargingStation", "AvailabilityState", Variable(
            lambda: "Available" if self.availability.wanted(STATION) else "Unavailable",
            None, "OptionList"))
        for evse_id in sorted(c.evse_ids):
            dm.add("EVSE", "AvailabilityState", Variable(
                functools.partial(self._evse_state, evse_id), None, "OptionList"),
                evse=evse_id)
        dm.add("LocalAuthListCtrlr", "Enabled", flag("local_list_enabled"))
        dm.add("LocalAuthListCtrlr", "Entries",
               Variable(lambda: str(len(self.local_list)), None, "integer"))
        dm.add("AuthCtrlr", "LocalPreAuthorize", flag("local_pre_authorize"))
        dm.add("AuthCtrlr", "LocalAuthorizeOffline", flag("local_authorize_offline"))
        dm.add("AlignedDataCtrlr", "Interval",
               Variable(lambda: str(int(tr.aligned_interval_s)), set_aligned, "integer"))
        dm.add("AlignedDataCtrlr", "Measurands",
               Variable(lambda: ",".join(ALIGNED_MEASURANDS), None, "MemberList"))

    def _evse_state(self, evse_id: int) -> str:
        statuses = [s for (e, _c), s in self.raw_status.items() if e == evse_id]
        return self.shown_status(evse_id, statuses[0] if statuses else "Available")


def report_data(entries: list[tuple[str, int | None, str, Variable]], base: str
                ) -> list[dict[str, Any]] | None:
    """GetBaseReport's reportData (snake_case, for the library) for `base`; None: that
    reportBase is not supported [B07]."""
    if base == "ConfigurationInventory":
        chosen = [e for e in entries if e[3].set is not None]  # what SetVariables can change
    elif base == "FullInventory":
        chosen = entries
    elif base == "SummaryInventory":
        chosen = [e for e in entries if e[2] == "AvailabilityState"]
    else:
        return None
    out = []
    for component, evse, name, var in chosen:
        value = var.get()
        comp: dict[str, Any] = {"name": component}
        if evse is not None:
            comp["evse"] = {"id": evse}
        out.append({
            "component": comp, "variable": {"name": name},
            "variable_attribute": [{
                "type": "Actual", "value": value[:2500],
                "mutability": "ReadOnly" if var.set is None else "ReadWrite"}],
            "variable_characteristics": {"data_type": data_type_of(var, value),
                                         "supports_monitoring": False}})
    return out


class OperationsHandlers:
    """The `@on` routes of the operations (mixed into `_StationHandlers`)."""

    client: OcppClient
    _call_result: Any
    _ocpp_version: str

    # -- ChangeAvailability [G03/G04] ----------------------------------------------------------
    @on("ChangeAvailability")
    def on_change_availability(self, operational_status: str,
                               evse: dict[str, Any] | None = None, **_: Any) -> Any:
        c = self.client
        ops = c.ops
        status = ops.availability.change(
            evse.get("id") if evse else None, evse.get("connector_id") if evse else None,
            operational_status == "Operative", ops._busy(), set(c.station.connectors))
        return self._call_result.ChangeAvailability(status=status)

    @after("ChangeAvailability")
    async def after_change_availability(self, **_: Any) -> None:
        self.client.ops.refresh()  # StatusNotification for what changed, after the answer

    # -- UnlockConnector [F05] -----------------------------------------------------------------
    @on("UnlockConnector")
    def on_unlock_connector(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        c = self.client
        if (evse_id, connector_id) not in c.station.connectors:
            return self._call_result.UnlockConnector(status="UnknownConnector")
        if c.evse_transactions().get(evse_id):
            return self._call_result.UnlockConnector(status="OngoingAuthorizedTransaction")
        # no connector-lock actuator in the HAL: nothing this station can unlock
        return self._call_result.UnlockConnector(
            status="UnlockFailed", status_info={
                "reason_code": "NoConnectorLock",
                "additional_info": "this station has no connector lock actuator"})

    # -- TriggerMessage [F06] ------------------------------------------------------------------
    def _trigger_status(self, requested_message: str, evse: dict[str, Any] | None) -> str:
        c = self.client
        evse_id = evse.get("id") if evse else None
        if requested_message not in TRIGGERABLE:
            return "NotImplemented"
        if evse_id not in (None, 0) and evse_id not in c.evse_ids:
            return "Rejected"
        if requested_message == "BootNotification":  # [F06.FR.17]
            return "Rejected" if c.station.boot_status == "Accepted" else "Accepted"
        if requested_message == "TransactionEvent":
            return "Accepted" if c.tracker.on_evse(evse_id or None) else "Rejected"
        return "Accepted"

    @on("TriggerMessage")
    def on_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None,
                           **_: Any) -> Any:
        return self._call_result.TriggerMessage(
            status=self._trigger_status(requested_message, evse))

    @after("TriggerMessage")
    async def after_trigger_message(self, requested_message: str,
                                    evse: dict[str, Any] | None = None, **_: Any) -> None:
        c = self.client
        if self._trigger_status(requested_message, evse) != "Accepted":
            return
        evse_id = (evse.get("id") or None) if evse else None
        now = c._clock()
        if requested_message == "BootNotification":
            if c.station.trigger_boot(now):
                c._wake.set()
        elif requested_message == "Heartbeat":
            await c.call_now("Heartbeat", {})
        elif requested_message == "StatusNotification":
            await self._trigger_status_notification(evse, now)
        elif requested_message == "MeterValues":
            await self._trigger_meter_values(evse_id, now)
        elif requested_message == "TransactionEvent":
            for tx_id, _sample in c.tracker.on_evse(evse_id):
                c.transaction_updated(tx_id, "Trigger", with_meter=True)  # queued, in order
        elif requested_message in ("LogStatusNotification", "FirmwareStatusNotification"):
            # no upload or firmware update is running: Idle [F06]
            await c.call_now(requested_message, {"status": "Idle"})

    async def _trigger_status_notification(self, evse: dict[str, Any] | None,
                                           now: float) -> None:
        c = self.client
        for (e, connector_id), conn in sorted(c.station.connectors.items()):
            if evse and (evse.get("id") != e or
                         evse.get("connector_id", connector_id) != connector_id):
                continue
            await c.call_now("StatusNotification", {
                "timestamp": iso_time(now), "connectorStatus": conn.status,
                "evseId": e, "connectorId": connector_id})

    async def _trigger_meter_values(self, evse_id: int | None, now: float) -> None:
        c = self.client
        for e in sorted(c.evse_ids if evse_id is None else {evse_id}):
            txs = c.tracker.on_evse(e)
            # outside a transaction: no power; the registers count per session (from 0)
            sample = txs[0][1] if txs else MeterSample(0.0, 0.0, power_w=0.0)
            await c.call_now("MeterValues", {
                "evseId": e, "meterValue": [meter_value(sample, "Trigger", now)]})

    # -- GetBaseReport [B07] -------------------------------------------------------------------
    @on("GetBaseReport")
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        data = report_data(self.client.device_model.entries(), report_base)
        if data is None:
            return self._call_result.GetBaseReport(status="NotSupported")
        return self._call_result.GetBaseReport(
            status="Accepted" if data else "EmptyResultSet")

    @after("GetBaseReport")
    async def after_get_base_report(self, request_id: int, report_base: str,
                                    **_: Any) -> None:
        c = self.client
        data = report_data(c.device_model.entries(), report_base)
        if not data:
            return
        now = iso_time(c._clock())
        parts = [data[i:i + REPORT_ITEMS_PER_MESSAGE]
                 for i in range(0, len(data), REPORT_ITEMS_PER_MESSAGE)]
        for seq_no, part in enumerate(parts):
            await c.call_now("NotifyReport", {
                "requestId": request_id, "generatedAt": now, "seqNo": seq_no,
                "tbc": seq_no < len(parts) - 1,
                "reportData": snake_to_camel_case(part)})

    # -- local authorization list [D01/D02] ----------------------------------------------------
    @on("SendLocalList")
    def on_send_local_list(self, version_number: int, update_type: str,
                           local_authorization_list: list[dict[str, Any]] | None = None,
                           **_: Any) -> Any:
        ops = self.client.ops
        if not ops.local_list_enabled:
            return self._call_result.SendLocalList(
                status="Failed", status_info={"reason_code": "Disabled",
                                              "additional_info": "LocalAuthListCtrlr.Enabled"
                                                                 " is false"})
        entries = [snake_to_camel_case(e) for e in local_authorization_list or []]
        status, why = ops.local_list.update(version_number, update_type, entries)
        info = {"reason_code": "InvalidValue" if status == "Failed" else "VersionMismatch",
                "additional_info": why[:1024]} if why else None
        if status != "Accepted":
            log.warning("SendLocalList v%s %s: %s (%s)", version_number, update_type,
                        status, why)
        return self._call_result.SendLocalList(status=status, status_info=info)

    @on("GetLocalListVersion")
    def on_get_local_list_version(self, **_: Any) -> Any:
        return self._call_result.GetLocalListVersion(
            version_number=self.client.ops.local_list.version)
