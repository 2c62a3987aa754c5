"""OCPP 2.0.1 / 2.1 client to the CSMS: WebSocket (websockets), the `ocpp` library's
ChargePoint for framing, schema validation and routing, the sans-IO `evse.ocpp` mapping for
what to send and when, and the durable queue for TransactionEvents.

The rules it keeps (docs/ocpp.md):
- the charger only calls the `connector_status()` / `transaction_*()` methods, which return
  at once (a TransactionEvent is committed to the SQLite queue first); every network wait
  happens in the client's own task, so the charge loop never waits for the CSMS;
- security profiles 1-3: Basic auth over ws://, Basic auth over wss://, client certificate
  over wss://; the subprotocol offered is `ocpp2.1` and/or `ocpp2.0.1` and the CSMS must
  pick one;
- reconnect with exponential back-off (reconnect_min_s doubling up to reconnect_max_s, with
  jitter); BootNotification first on every connection, Pending/Rejected retried at the
  CSMS's interval; the queue is sent, oldest first, only once the CSMS accepted the station.

    client = OcppClient(cfg.ocpp, OcppStation(vendor="X", model="Y"), queue=DurableQueue(p))
    task = client.start()
    client.connector_status(1, 1, "Occupied")
    client.transaction_started("tx-1", 1, 1, "CablePluggedIn", MeterSample(0.0))
    ...
    await client.stop()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import websockets
from ocpp import exceptions as ocpp_exc
from ocpp.charge_point import (
    camel_to_snake_case,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)
from ocpp.exceptions import OCPPError
from ocpp.messages import CallError, unpack
from ocpp.routing import after as _after
from ocpp.routing import on as _on
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21.enums import Action as Action21
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.client import ClientConnection, connect

from evse.aio.cert_files import recover_pair
from evse.aio.ocpp_operations import Operations, OperationsHandlers
from evse.aio.ocpp_prices import PriceCheck
from evse.aio.ocpp_security import SecurityHandlers, StationCertificates, csms_tls_event
from evse.aio.tasks import cancel_task
from evse.config import OcppConfig
from evse.ocpp.cert_store import ROOT_TYPES_201, CertStore
from evse.ocpp.device_model import DeviceModel, Variable, non_negative_int, positive_int
from evse.ocpp.queue import DurableQueue
from evse.ocpp.smart_charging import ProfileError, ProfileRejected, ProfileStore
from evse.ocpp.station import Backoff, OcppStation, SendCall, iso_time
from evse.ocpp.transactions import MeterSample, TransactionTracker

__all__ = ["SUBPROTOCOLS", "OcppClient", "OcppConnectError", "ssl_context"]

log = logging.getLogger(__name__)

SUBPROTOCOLS = {"2.1": ("ocpp2.1", "ocpp2.0.1"), "2.0.1": ("ocpp2.0.1",)}
# A queued CALL the CSMS answers with a CallError this often is dropped (logged), so one
# message the CSMS will never take cannot block every later one.
MAX_CALL_ERRORS = 3

MessageLog = Callable[[str, str, dict[str, Any]], None]  # (direction, action, payload)


class OcppConnectError(Exception):
    """The CSMS refused the connection for a reason retrying will not fix by itself (no
    common subprotocol); the client still retries, with back-off."""


def ssl_context(config: OcppConfig) -> ssl.SSLContext | None:
    """Profile 2: the CSMS certificate checked against `ca_file` (or the system roots);
    profile 3: the same plus our client certificate. Profile 1: no TLS."""
    if config.security_profile == 1:
        return None
    ctx = ssl.create_default_context(
        cafile=str(config.ca_file) if config.ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.security_profile == 3:
        assert config.cert_file is not None and config.key_file is not None
        recover_pair(config.cert_file, config.key_file)  # a renewal a crash interrupted
        ctx.load_cert_chain(str(config.cert_file), str(config.key_file))
    return ctx


def _basic_auth(config: OcppConfig) -> dict[str, str]:
    if config.security_profile == 3:
        return {}
    password = config.password
    if config.password_file is not None:
        password = config.password_file.read_text(encoding="utf-8").strip()
    if password is None:
        return {}
    token = base64.b64encode(f"{config.station_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


_F = TypeVar("_F", bound=Callable[..., Any])
# the ocpp package is untyped: its route decorators keep the function's type
on = cast(Callable[[str], Callable[[_F], _F]], _on)
after = cast(Callable[[str], Callable[[_F], _F]], _after)


class _StationHandlers(OperationsHandlers, SecurityHandlers):
    """The CSMS-initiated CALLs the station answers (route map of the `ocpp` package)."""

    client: OcppClient
    _call_result: Any
    _ocpp_version: str

    async def route_message(self, raw_msg: str) -> None:
        """A frame that is not OCPP-J at all is answered with a CallError (RpcFrameworkError;
        messageId "-1" when none can be read) instead of the library's silent drop."""
        try:
            unpack(raw_msg)
        except OCPPError as exc:
            frame: Any = None
            with contextlib.suppress(ValueError):
                frame = json.loads(raw_msg)
            unique_id = (frame[1] if isinstance(frame, list) and len(frame) > 1
                         and isinstance(frame[1], str) else "-1")
            log.warning("malformed frame from the CSMS: %s", exc)
            await self._send(CallError(  # type: ignore[attr-defined]
                unique_id, "RpcFrameworkError", str(exc.description)[:255],
                exc.details).to_json())
            return
        await super().route_message(raw_msg)  # type: ignore[misc]

    async def _handle_call(self, msg: Any) -> Any:
        # the library answers nothing at all to an action it has no route for under 2.1
        if msg.action not in self.route_map:  # type: ignore[attr-defined]
            known = {a.value for a in (Action21 if self._ocpp_version == "2.1" else Action201)}
            if msg.action in known:
                raise ocpp_exc.NotImplementedError(
                    details={"cause": f"{msg.action} is not implemented"})
            raise ocpp_exc.NotSupportedError(
                details={"cause": f"{msg.action} is not an OCPP {self._ocpp_version} action"})
        return await super()._handle_call(msg)

    @on("RequestStopTransaction")
    def on_request_stop_transaction(self, transaction_id: str, **_: Any) -> Any:
        stop = self.client.request_stop
        accepted = stop is not None and stop(transaction_id, "RemoteStop", "Remote")
        return self._call_result.RequestStopTransaction(
            status="Accepted" if accepted else "Rejected")

    @on("RequestStartTransaction")
    def on_request_start_transaction(self, id_token: dict[str, Any], remote_start_id: int,
                                     evse_id: int | None = None, **_: Any) -> Any:
        """The CSMS authorizes the next session on an EVSE (ISO 15118: the EV that plugs in
        there next is granted with this idToken, without an Authorize)."""
        c = self.client
        busy = {e for e, in_tx in c.evse_transactions().items() if in_tx}
        free = sorted(e for e in c.evse_ids - busy if c.ops.operative(e))  # [G03] Inoperative
        target = evse_id if evse_id is not None else (free[0] if free else None)
        if target is None or target not in free:
            return self._call_result.RequestStartTransaction(status="Rejected")
        c.remote_starts[target] = (snake_to_camel_case(id_token), remote_start_id)
        return self._call_result.RequestStartTransaction(status="Accepted")

    @on("InstallCertificate")
    def on_install_certificate(self, certificate_type: str, certificate: str,
                               **_: Any) -> Any:
        c = self.client
        if c.cert_store is None:
            return self._call_result.InstallCertificate(status="Failed")
        status, reason = c.cert_store.install(certificate_type, certificate, c._clock())
        info = {"reason_code": "InvalidCertificate", "additional_info": reason} if reason \
            else None
        return self._call_result.InstallCertificate(status=status, status_info=info)

    @on("GetInstalledCertificateIds")
    def on_get_installed_certificate_ids(self, certificate_type: list[str] | None = None,
                                         **_: Any) -> Any:
        store = self.client.cert_store
        # all types asked for: a 2.0.1 answer cannot name 2.1's OEMRootCertificate
        types = tuple(certificate_type or (ROOT_TYPES_201 if self._ocpp_version == "2.0.1"
                                           else ()))
        ids = store.ids(types) if store is not None else []
        if not ids:
            return self._call_result.GetInstalledCertificateIds(status="NotFound")
        return self._call_result.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data_chain=camel_to_snake_case(ids))

    @on("DeleteCertificate")
    def on_delete_certificate(self, certificate_hash_data: dict[str, Any], **_: Any) -> Any:
        store = self.client.cert_store
        if store is None:
            return self._call_result.DeleteCertificate(status="NotFound")
        return self._call_result.DeleteCertificate(
            status=store.delete(snake_to_camel_case(certificate_hash_data)))

    @on("Reset")
    def on_reset(self, type: str, evse_id: int | None = None, **_: Any) -> Any:
        c = self.client
        if c.on_reset is None or evse_id is not None:  # no EVSE-level reset on this station
            return self._call_result.Reset(status="Rejected")
        busy = bool(c.tracker.open_transactions)
        if type == "Immediate" and busy:
            for tx_id in c.tracker.open_transactions:
                if c.request_stop is not None:
                    c.request_stop(tx_id, "ResetCommand", "ImmediateReset")
        c.schedule_reset()
        return self._call_result.Reset(
            status="Scheduled" if busy and type == "OnIdle" else "Accepted")

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in get_variable_data:
            comp, var = item["component"], item["variable"]
            status, value = self.client.device_model.get(
                comp["name"], var["name"], item.get("attribute_type", "Actual"),
                (comp.get("evse") or {}).get("id"))
            r: dict[str, Any] = {"attribute_status": status, "component": comp,
                                 "variable": var}
            if value is not None:
                r["attribute_value"] = value
            results.append(r)
        return self._call_result.GetVariables(get_variable_result=results)

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in set_variable_data:
            comp, var = item["component"], item["variable"]
            status = self.client.device_model.set(
                comp["name"], var["name"], str(item["attribute_value"]),
                item.get("attribute_type", "Actual"), (comp.get("evse") or {}).get("id"))
            results.append({"attribute_status": status, "component": comp, "variable": var})
        self.client._wake.set()  # a new interval takes effect at once
        return self._call_result.SetVariables(set_variable_result=results)

    @on("SetChargingProfile")
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any],
                                **_: Any) -> Any:
        c = self.client
        profile = snake_to_camel_case(charging_profile)
        if evse_id != 0 and evse_id not in c.evse_ids:
            return self._call_result.SetChargingProfile(
                status="Rejected", status_info={"reason_code": "UnknownEvse"})
        try:
            c.profiles.set(evse_id, profile, c._clock())
        except ProfileError as exc:  # out of range: CallError, nothing stored
            raise ocpp_exc.PropertyConstraintViolationError(description=str(exc)) from None
        except ProfileRejected as exc:
            return self._call_result.SetChargingProfile(
                status="Rejected", status_info={"reason_code": "InvalidProfile",
                                                "additional_info": str(exc)[:1024]})
        c.profiles_changed()
        return self._call_result.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, charging_profile_id: int | None = None,
                                  charging_profile_criteria: dict[str, Any] | None = None,
                                  **_: Any) -> Any:
        crit = charging_profile_criteria or {}
        cleared = self.client.profiles.clear(
            charging_profile_id, crit.get("evse_id"), crit.get("charging_profile_purpose"),
            crit.get("stack_level"))
        if cleared:
            self.client.profiles_changed()
        return self._call_result.ClearChargingProfile(
            status="Accepted" if cleared else "Unknown")

    @on("GetChargingProfiles")
    def on_get_charging_profiles(self, request_id: int, charging_profile: dict[str, Any],
                                 evse_id: int | None = None, **_: Any) -> Any:
        found = self._matching_profiles(charging_profile, evse_id)
        return self._call_result.GetChargingProfiles(
            status="Accepted" if found else "NoProfiles")

    @after("GetChargingProfiles")
    async def after_get_charging_profiles(self, request_id: int,
                                          charging_profile: dict[str, Any],
                                          evse_id: int | None = None, **_: Any) -> None:
        found = self._matching_profiles(charging_profile, evse_id)
        by_evse: dict[int, list[dict[str, Any]]] = {}
        for e, prof in found:
            by_evse.setdefault(e, []).append(prof)
        for i, (e, profs) in enumerate(sorted(by_evse.items())):
            await self.client.call_now("ReportChargingProfiles", {
                "requestId": request_id, "chargingLimitSource": "CSO", "evseId": e,
                "chargingProfile": profs, "tbc": i < len(by_evse) - 1})

    def _matching_profiles(self, criteria: dict[str, Any], evse_id: int | None
                           ) -> list[tuple[int, dict[str, Any]]]:
        return self.client.profiles.get(
            evse_id, criteria.get("charging_profile_purpose"), criteria.get("stack_level"),
            tuple(criteria.get("charging_profile_id") or ()))

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(self, duration: int, evse_id: int,
                                  charging_rate_unit: str | None = None, **_: Any) -> Any:
        c = self.client
        if (evse_id != 0 and evse_id not in c.evse_ids) or \
                (charging_rate_unit not in (None, "W")):
            return self._call_result.GetCompositeSchedule(
                status="Rejected", status_info={"reason_code": "UnsupportedRequest"})
        now = c._clock()
        periods = []
        for offset, lim in c.profiles.composite(evse_id, now, float(duration)):
            period: dict[str, Any] = {"start_period": int(offset), "limit": (
                lim.max_charge_w if lim.max_charge_w is not None else c.max_power_w)}
            if self._ocpp_version == "2.1":
                if lim.max_discharge_w is not None:
                    period["discharge_limit"] = -lim.max_discharge_w
                if lim.setpoint_w is not None:
                    period["setpoint"] = lim.setpoint_w
                if lim.operation_mode is not None:
                    period["operation_mode"] = lim.operation_mode
            periods.append(period)
        return self._call_result.GetCompositeSchedule(status="Accepted", schedule={
            "evse_id": evse_id, "duration": duration, "schedule_start": iso_time(now),
            "charging_rate_unit": "W", "charging_schedule_period": periods})


class _StationCP2_0_1(_StationHandlers, ChargePoint201):  # type: ignore[misc]
    pass


class _StationCP2_1(_StationHandlers, ChargePoint21):  # type: ignore[misc]
    pass


_CP_CLASSES: dict[str, type[Any]] = {"ocpp2.0.1": _StationCP2_0_1, "ocpp2.1": _StationCP2_1}


class OcppClient:
    def __init__(self, config: OcppConfig, station: OcppStation, *, queue: DurableQueue,
                 clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = random.random,
                 message_log: MessageLog | None = None) -> None:
        self.config = config
        self.station = station
        self.queue = queue
        self.tracker = TransactionTracker(sampled_interval_s=config.sampled_interval_s)
        self.station.default_heartbeat_s = config.heartbeat_s
        self.station.boot_retry_s = config.boot_retry_s
        self._clock = clock
        self._jitter = jitter
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._message_log = message_log
        self._call_errors: dict[int, int] = {}
        self._outbox: list[SendCall] = []  # status changes for the driver to send
        self._cp: Any = None  # the library's ChargePoint while connected
        # the CSMS's charging profiles (smart charging, V2X; 2.1 price schedules and tariffs)
        self.profiles = ProfileStore(price_check=PriceCheck(self.security_event))
        self.max_power_w = 0.0  # the station's maximum, reported where OCPP sets no limit
        self._profile_listeners: list[Callable[[], None]] = []
        self.device_model = self._device_model()
        # stop the session of a transaction (id, Ended's trigger, stoppedReason); True: it ran
        self.request_stop: Callable[[str, str, str], bool] | None = None
        # Reset: called once no transaction is open and the queue is sent (or 30 s passed);
        # None: Reset is Rejected
        self.on_reset: Callable[[], None] | None = None
        self._reset_task: asyncio.Task[None] | None = None
        # RequestStartTransaction: evse id -> (idToken, remoteStartId) for its next session;
        # moved to `remote_granted` when that session is authorized with it
        self.remote_starts: dict[int, tuple[dict[str, Any], int]] = {}
        self.remote_granted: dict[int, tuple[dict[str, Any], int]] = {}
        # roots the CSMS installs (InstallCertificate...); None: answered Failed/NotFound
        self.cert_store: CertStore | None = None
        # the station's own certificates (SignCertificate/CertificateSigned); None: not renewed
        self.certificates: StationCertificates | None = None
        self.subprotocol: str | None = None
        self.connections = 0  # successful WebSocket connections so far (for tests, demo)
        # security event type -> `connections` when it was last raised (once per outage)
        self._tls_reported: dict[str, int] = {}
        self.accepted = asyncio.Event()  # set while the CSMS has accepted the station
        # availability, local authorization list... (evse/aio/ocpp_operations.py)
        self.ops = Operations(self)

    def _device_model(self) -> DeviceModel:
        """The variables this station has, bound to the live settings they name."""
        st, tr, cfg = self.station, self.tracker, self.config
        dm = DeviceModel()

        def set_heartbeat(v: str) -> None:
            st.heartbeat_s = st.default_heartbeat_s = float(positive_int(v))

        def set_sampled(v: str) -> None:
            tr.sampled_interval_s = float(non_negative_int(v))

        dm.add("OCPPCommCtrlr", "HeartbeatInterval",
               Variable(lambda: str(int(st.heartbeat_s or st.default_heartbeat_s)),
                        set_heartbeat))
        dm.add("SampledDataCtrlr", "TxUpdatedInterval",
               Variable(lambda: str(int(tr.sampled_interval_s)), set_sampled))
        dm.add("SampledDataCtrlr", "TxUpdatedMeasurands", Variable(lambda: ",".join(
            ("Energy.Active.Import.Register", "Energy.Active.Export.Register",
             "Power.Active.Import", "Power.Active.Export", "Current.Import", "Current.Export",
             "Voltage", "SoC"))))
        dm.add("SecurityCtrlr", "SecurityProfile",
               Variable(lambda: str(cfg.security_profile)))
        dm.add("SecurityCtrlr", "Identity", Variable(lambda: cfg.station_id))
        dm.add("SmartChargingCtrlr", "Enabled", Variable(lambda: "true"))
        dm.add("AuthCacheCtrlr", "Enabled", Variable(lambda: "true"))
        return dm

    @property
    def evse_ids(self) -> set[int]:
        return {e for e, _c in self.station.connectors}

    def on_profiles_changed(self, listener: Callable[[], None]) -> None:
        """Call `listener` (no arguments, must not block) after every profile change."""
        self._profile_listeners.append(listener)

    def profiles_changed(self) -> None:
        for listener in self._profile_listeners:
            try:
                listener()
            except Exception:
                log.exception("charging-profile listener failed")

    # -- station-facing API: returns at once -----------------------------------------------
    def connector_status(self, evse_id: int, connector_id: int, status: str) -> None:
        self.ops.raw_status[(evse_id, connector_id)] = status
        status = self.ops.shown_status(evse_id, status)  # Inoperative: Unavailable [G03]
        self._outbox.extend(self.station.connector_status(evse_id, connector_id, status,
                                                          self._clock()))
        self._wake.set()

    def transaction_started(self, tx_id: str, evse_id: int, connector_id: int, trigger: str,
                            sample: MeterSample, *, id_token: dict[str, Any] | None = None,
                            ) -> dict[str, Any]:
        self.profiles.transaction_started(evse_id, tx_id, self._clock())
        return self._queue_tx(self.tracker.started(tx_id, evse_id, connector_id, trigger,
                                                   sample, self._clock(), id_token=id_token))

    def transaction_updated(self, tx_id: str, trigger: str, *,
                            charging_state: str | None = None,
                            id_token: dict[str, Any] | None = None,
                            with_meter: bool = False,
                            remote_start_id: int | None = None) -> dict[str, Any]:
        return self._queue_tx(self.tracker.updated(
            tx_id, trigger, self._clock(), charging_state=charging_state, id_token=id_token,
            with_meter=with_meter, remote_start_id=remote_start_id))

    def meter_sample(self, tx_id: str, sample: MeterSample) -> None:
        self.tracker.measured(tx_id, sample)

    def transaction_ended(self, tx_id: str, trigger: str, stopped_reason: str,
                          sample: MeterSample) -> dict[str, Any]:
        payload = self._queue_tx(self.tracker.ended(tx_id, trigger, stopped_reason, sample,
                                                    self._clock()))
        self.profiles.transaction_ended(payload["evse"]["id"])
        self.profiles_changed()
        self.ops.transaction_ended(payload["evse"]["id"])
        return payload

    async def call_now(self, action: str, payload: dict[str, Any],
                       timeout: float | None = None) -> dict[str, Any] | None:
        """A CALL that is not queued (Authorize): sent now when the CSMS has accepted the
        station, its answer as camelCase JSON; None when offline, on a timeout or a CallError
        (the caller decides offline)."""
        cp = self._cp
        if cp is None or not self.station.accepted:
            return None
        try:
            result = await asyncio.wait_for(self._call(cp, action, payload),
                                            timeout or self.config.call_timeout_s)
        except (OCPPError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            log.warning("%s: no answer from the CSMS (%s)", action, exc)
            return None
        answer: dict[str, Any] = snake_to_camel_case(remove_nones(serialize_as_dict(result)))
        return answer

    def evse_transactions(self) -> dict[int, bool]:
        """EVSE id -> whether a transaction is open on it."""
        open_evses = {self.tracker.evse_of(tx) for tx in self.tracker.open_transactions}
        return {e: e in open_evses for e in self.evse_ids}

    def schedule_reset(self) -> None:
        if self._reset_task is None:
            self._reset_task = asyncio.ensure_future(self._reset_when_idle())

    async def _reset_when_idle(self, limit_s: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        # OnIdle waits for the sessions to end; both wait (bounded) for their Ended to go out
        while self.tracker.open_transactions or (len(self.queue) and loop.time() < deadline):
            await asyncio.sleep(0.05)
        log.warning("Reset from the CSMS: resetting now")
        if self.on_reset is not None:
            self.on_reset()

    def security_event(self, event_type: str, tech_info: str | None = None) -> None:
        """SecurityEventNotification (e.g. "InvalidTLSCipherSuite", "TamperDetectionActivated"):
        kept in the durable queue like a TransactionEvent, sent in order once accepted."""
        payload: dict[str, Any] = {"type": event_type[:50], "timestamp": iso_time(self._clock())}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        self.queue.put("SecurityEventNotification", payload)
        self._wake.set()

    def _queue_tx(self, payload: dict[str, Any]) -> dict[str, Any]:
        stored = self.queue.put("TransactionEvent", payload)
        self._wake.set()
        return stored

    # -- lifecycle ---------------------------------------------------------------------------
    def recover(self) -> list[dict[str, Any]]:
        """After a restart: end every transaction the queue still has open (a crash or power
        loss cut it off; its session is gone). Their earlier events stay queued, in order."""
        ended = []
        for tx_id, evse_id, connector_id in self.queue.open_transactions():
            if tx_id in self.tracker.open_transactions:
                continue
            ended.append(self._queue_tx(self.tracker.ended_after_restart(
                tx_id, evse_id, connector_id, self._clock())))
        return ended

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="ocpp-client")
        return self._task

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None

    async def run(self) -> None:
        while True:
            try:
                await self._connection()
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.exceptions.WebSocketException, OcppConnectError,
                    TimeoutError, ssl.SSLError) as exc:
                log.warning("OCPP connection to %s: %s", self.config.url, exc)
                event = csms_tls_event(exc)
                if event is not None and self._tls_reported.get(event) != self.connections:
                    # once per run of failed connects, not per retry
                    self._tls_reported[event] = self.connections
                    self.security_event(event, f"{self.config.url}: {exc}")
            finally:
                self.station.connection_lost()
                self.tracker.online = False
                self.accepted.clear()
                self.subprotocol = None
            await asyncio.sleep(self._backoff.next_delay(self._jitter()))

    # -- one connection ----------------------------------------------------------------------
    def _url(self) -> str:
        return f"{self.config.url.rstrip('/')}/{self.config.station_id}"

    async def _connection(self) -> None:
        self._outbox.clear()  # a new connection reports every status after its boot
        offered = SUBPROTOCOLS[self.config.version]
        async with connect(
                self._url(), subprotocols=list(offered),  # type: ignore[arg-type]
                additional_headers=_basic_auth(self.config), ssl=ssl_context(self.config),
                open_timeout=self.config.call_timeout_s, ping_interval=None) as ws:
            if ws.subprotocol not in offered:
                raise OcppConnectError(f"the CSMS picked no OCPP subprotocol of {offered} "
                                       f"(got {ws.subprotocol!r})")
            self.subprotocol = ws.subprotocol
            self.connections += 1
            cp = _CP_CLASSES[ws.subprotocol](self.config.station_id, ws,
                                             response_timeout=self.config.call_timeout_s)
            cp.client = self
            self._wrap_send(cp, ws)
            self._cp = cp
            reader = asyncio.create_task(cp.start(), name="ocpp-reader")
            driver = asyncio.create_task(self._drive(cp), name="ocpp-driver")
            try:
                done, _ = await asyncio.wait({reader, driver},
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._cp = None
                for t in (reader, driver):
                    t.cancel()
                for t in (reader, driver):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
            for t in done:
                exc = t.exception()
                if exc is not None:
                    raise exc

    def _wrap_send(self, cp: Any, ws: ClientConnection) -> None:
        """Log every frame both ways (the demo's message table) around the library's own
        send and route."""
        if self._message_log is None:
            return
        log_message = self._message_log
        send, route = cp._send, cp.route_message

        async def logged_send(message: str) -> None:
            log_message("station->csms", _action_of(message), {"raw": message})
            await send(message)

        async def logged_route(message: str) -> None:
            log_message("csms->station", _action_of(message), {"raw": message})
            await route(message)

        cp._send, cp.route_message = logged_send, logged_route

    async def _drive(self, cp: Any) -> None:
        st = self.station
        await self._send_all(cp, st.connection_made(self._clock()))
        while True:
            # cleared before the work, not after: a wake-up during a send (a SetVariables
            # that restarts the aligned grid, a new event) makes the loop run again
            self._wake.clear()
            now = self._clock()
            await self._send_all(cp, st.handle_timeout(now))
            while self._outbox:
                await self._send(cp, self._outbox.pop(0))
            if st.accepted:
                self._backoff.reset()
                self.tracker.mark_online(now)
                self.accepted.set()
                for payload in self.tracker.handle_timeout(now):
                    self.queue.put("TransactionEvent", payload)
                await self._drain_queue(cp)
                # [J01] clock-aligned MeterValues of the EVSEs without a transaction: sent
                # now, never queued (not transaction-related)
                for payload in self.tracker.idle_meter_values(self.evse_ids, now):
                    await self._send(cp, SendCall("MeterValues", payload))
            deadlines = [d for d in (st.next_deadline(), self.tracker.next_deadline())
                         if d is not None]
            delay = max(0.0, min(deadlines) - self._clock()) if deadlines else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _send_all(self, cp: Any, calls: list[SendCall]) -> None:
        for call in calls:
            await self._send(cp, call)

    async def _send(self, cp: Any, call: SendCall) -> None:
        st = self.station
        st.message_sent(self._clock())
        try:
            result = await self._call(cp, call.action, call.payload)
        except OCPPError as exc:
            log.warning("CSMS answered %s with %s", call.action, exc)
            if call.action == "BootNotification":
                st.boot_failed(self._clock())
            return
        if call.action == "BootNotification":
            status = str(result.status)
            log.info("BootNotification: %s (interval %s s)", status, result.interval)
            await self._send_all(cp, st.boot_answered(status, int(result.interval),
                                                      self._clock()))

    async def _call(self, cp: Any, action: str, payload: dict[str, Any]) -> Any:
        cls = getattr(cp._call, action)
        return await cp.call(cls(**_kwargs(cls, payload)), suppress=False)

    async def _drain_queue(self, cp: Any) -> None:
        while (item := self.queue.peek()) is not None:
            try:
                await self._call(cp, item.action, item.payload)
            except OCPPError as exc:
                n = self._call_errors[item.id] = self._call_errors.get(item.id, 0) + 1
                log.warning("CSMS answered queued %s with %s (%d/%d)", item.action, exc, n,
                            MAX_CALL_ERRORS)
                if n < MAX_CALL_ERRORS:
                    return  # try again at the next wake-up
                log.error("dropping queued %s %s after %d CallErrors", item.action,
                          item.payload, n)
            self._call_errors.pop(item.id, None)
            self.queue.ack(item.id)
            self.station.message_sent(self._clock())


def _kwargs(cls: type[Any], payload: dict[str, Any]) -> dict[str, Any]:
    """camelCase JSON -> the library's dataclass fields. Matched through the library's own
    snake->camel conversion, because its field names do not always follow its camel->snake
    one (iso15118CertificateHashData is `iso_15118_certificate_hash_data`)."""
    fields = {next(iter(snake_to_camel_case({f.name: None}))): f.name
              for f in dataclasses.fields(cls)}
    nested = camel_to_snake_case(payload)
    return {fields[k]: v for k, v in zip(payload, nested.values(), strict=True)}


def _action_of(message: str) -> str:
    try:
        frame = json.loads(message)
    except ValueError:
        return "?"
    if isinstance(frame, list) and len(frame) >= 3 and frame[0] == 2:
        return str(frame[2])
    return "CallResult" if isinstance(frame, list) and frame and frame[0] == 3 else "CallError"
