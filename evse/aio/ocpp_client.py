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
from typing import Any

import websockets
from ocpp.charge_point import (
    camel_to_snake_case,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)
from ocpp.exceptions import OCPPError
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v201 import ChargePoint as ChargePoint201
from websockets.asyncio.client import ClientConnection, connect

from evse.config import OcppConfig
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import Backoff, OcppStation, SendCall
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


class _StationCP2_0_1(ChargePoint201):  # type: ignore[misc]  # the ocpp package is untyped
    pass


class _StationCP2_1(ChargePoint21):  # type: ignore[misc]
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
        self.subprotocol: str | None = None
        self.connections = 0  # successful WebSocket connections so far (for tests, demo)
        self.accepted = asyncio.Event()  # set while the CSMS has accepted the station

    # -- station-facing API: returns at once -----------------------------------------------
    def connector_status(self, evse_id: int, connector_id: int, status: str) -> None:
        self._outbox.extend(self.station.connector_status(evse_id, connector_id, status,
                                                          self._clock()))
        self._wake.set()

    def transaction_started(self, tx_id: str, evse_id: int, connector_id: int, trigger: str,
                            sample: MeterSample, *, id_token: dict[str, Any] | None = None,
                            ) -> dict[str, Any]:
        return self._queue_tx(self.tracker.started(tx_id, evse_id, connector_id, trigger,
                                                   sample, self._clock(), id_token=id_token))

    def transaction_updated(self, tx_id: str, trigger: str, *,
                            charging_state: str | None = None,
                            id_token: dict[str, Any] | None = None,
                            with_meter: bool = False) -> dict[str, Any]:
        return self._queue_tx(self.tracker.updated(
            tx_id, trigger, self._clock(), charging_state=charging_state, id_token=id_token,
            with_meter=with_meter))

    def meter_sample(self, tx_id: str, sample: MeterSample) -> None:
        self.tracker.measured(tx_id, sample)

    def transaction_ended(self, tx_id: str, trigger: str, stopped_reason: str,
                          sample: MeterSample) -> dict[str, Any]:
        return self._queue_tx(self.tracker.ended(tx_id, trigger, stopped_reason, sample,
                                                 self._clock()))

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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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
            now = self._clock()
            await self._send_all(cp, st.handle_timeout(now))
            while self._outbox:
                await self._send(cp, self._outbox.pop(0))
            if st.accepted:
                self._backoff.reset()
                self.tracker.online = True
                self.accepted.set()
                for payload in self.tracker.handle_timeout(now):
                    self.queue.put("TransactionEvent", payload)
                await self._drain_queue(cp)
            self._wake.clear()
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
