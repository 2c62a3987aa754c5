"""MQTT bridge: publishes the charger's state and takes commands (aiomqtt).

The rules it keeps (docs/mqtt_api.md):
- it never blocks the charger: the charger only calls `notify_state()` and `post_event()`,
  which return at once; every network wait happens in the bridge's own task;
- without a broker nothing breaks: commands simply do not arrive, events wait in a bounded
  queue (oldest dropped first), and the bridge retries with exponential backoff
  (reconnect_min_s doubling up to reconnect_max_s, with jitter);
- after every (re)connect it publishes "online" and every connector's state again (retained),
  so a broker that lost its retained messages, or changes made while offline, never leave a
  stale picture behind;
- the broker publishes "offline" (retained last will) when the connection dies; a clean
  `stop()` publishes it itself before disconnecting.

    bridge = MqttBridge(port, cfg.mqtt, cfg.station_id)
    task = bridge.start()          # or: await bridge.run()
    ...
    bridge.post_event("1", "session_started", {"session_id": "ab12"})
    bridge.notify_state()          # publish a state change now, not at the next poll
    ...
    await bridge.stop()
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiomqtt

from evse._mqtt_api import (
    ConnectorState,
    StationPort,
    Topics,
    event_payload,
    handle_command,
    state_payload,
    telemetry_payload,
)
from evse.config import MqttConfig

__all__ = ["MqttBridge"]

log = logging.getLogger(__name__)

MAX_QUEUED_EVENTS = 256


class MqttBridge:
    def __init__(self, port: StationPort, config: MqttConfig, station_id: str, *,
                 client_id: str | None = None, clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = random.random) -> None:
        self.port = port
        self.config = config
        self.topics = Topics(station_id, config.topic_prefix)
        self.client_id = client_id or config.client_id or f"evse-{station_id}"
        self._clock = clock
        self._jitter = jitter
        self._events: collections.deque[tuple[str, bytes]] = collections.deque(
            maxlen=MAX_QUEUED_EVENTS)
        self._published: dict[str, ConnectorState] = {}
        self._wake = asyncio.Event()
        self._retry = asyncio.Event()
        self._stopping = False
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()  # set while connected (tests and health checks)
        self.connect_count = 0
        self.dropped_events = 0
        self.last_error: str | None = None

    # -- what the charger calls (never blocks) --------------------------------------------------

    def notify_state(self) -> None:
        """A state changed: publish soon instead of at the next poll."""
        self._wake.set()

    def post_event(self, connector: str, kind: str, data: Mapping[str, Any] | None = None
                   ) -> None:
        """Queue an event for `.../<connector>/events` (sent as soon as connected)."""
        try:
            item = (self.topics.events(connector), event_payload(kind, self._clock(), data))
        except Exception:  # never raise into the charger
            log.exception("MQTT: cannot encode event %r", kind)
            return
        if len(self._events) == self._events.maxlen:
            self.dropped_events += 1
        self._events.append(item)
        self._wake.set()

    @property
    def pending_events(self) -> int:
        """Events queued and not yet published."""
        return len(self._events)

    async def flush(self, timeout: float = 1.0) -> bool:
        """Wait (at most `timeout` s) until the queued events are published; True if so."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._events and self.connected.is_set():
                    self._wake.set()
                    await asyncio.sleep(0.01)
        return not self._events

    def reconnect_now(self) -> None:
        """Skip the current backoff wait (e.g. the network is known to be back)."""
        self._retry.set()

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self.run(), name="mqtt-bridge")
        return self._task

    async def stop(self, timeout: float = 2.0) -> None:
        """Publish "offline", disconnect cleanly and end `run()`."""
        client = self._client
        if client is not None and self.connected.is_set():
            try:  # first, while the connection still runs as usual
                await client.publish(self.topics.availability, b"offline", qos=1, retain=True,
                                     timeout=timeout)
            except aiomqtt.MqttError as exc:
                log.debug("MQTT: could not publish offline: %s", exc)
        self._stopping = True
        self._wake.set()  # the loops also end on the flag: Python 3.11's wait_for can
        self._retry.set()  # swallow a cancellation that races with a completing wait
        task, self._task = self._task, None
        for _ in range(10):
            if task is None or task.done():
                break
            task.cancel()
            await asyncio.wait({task}, timeout=timeout + 1.0)
        else:
            log.error("MQTT bridge task did not end")
        if task is not None and task.done() and not task.cancelled() and task.exception():
            log.error("MQTT bridge task failed", exc_info=task.exception())

    def backoff(self, attempt: int) -> float:
        """Delay before reconnect attempt `attempt` (0-based): doubling, capped, jittered
        down by at most a half so a fleet of chargers does not reconnect in step."""
        c = self.config
        base = min(c.reconnect_max_s, c.reconnect_min_s * 2.0 ** min(attempt, 30))
        return base * (0.5 + 0.5 * self._jitter())

    async def run(self) -> None:
        """Connect, serve, reconnect; returns only when cancelled or stopped."""
        attempt = 0
        while not self._stopping:
            connects = self.connect_count
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except aiomqtt.MqttError as exc:
                self._failed(str(exc))
            except Exception:  # a bug must not end the bridge: log it and reconnect
                log.exception("MQTT bridge failed")
                self._failed("internal error")
            finally:
                self.connected.clear()
                self._client = None
            if self._stopping:
                break
            if self.connect_count != connects:
                attempt = 0  # we were connected: start the backoff from the bottom again
            delay = self.backoff(attempt)
            attempt += 1
            log.info("MQTT: reconnecting in %.2f s", delay)
            self._retry.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._retry.wait()

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        log.warning("MQTT %s:%d: %s", self.config.host, self.config.port, reason)

    # -- one connection -------------------------------------------------------------------------

    def _make_client(self) -> aiomqtt.Client:
        c = self.config
        password = c.password
        if c.password_file is not None:
            password = c.password_file.read_text().strip()
        tls_context = None
        if c.tls:
            tls_context = ssl.create_default_context(
                cafile=str(c.ca_file) if c.ca_file else None)
            if c.cert_file is not None and c.key_file is not None:
                tls_context.load_cert_chain(c.cert_file, c.key_file)
        will = aiomqtt.Will(self.topics.availability, b"offline", qos=1, retain=True)
        # TCP_NODELAY: a reply right after a PUBACK must not wait for the peer's delayed ACK
        # (Nagle), which costs ~40 ms per hop on Linux.
        nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        return aiomqtt.Client(c.host, c.port, username=c.username, password=password,
                              identifier=self.client_id, will=will, keepalive=c.keepalive,
                              tls_context=tls_context, timeout=max(2.0, c.keepalive / 2),
                              socket_options=nodelay)

    async def _session(self) -> None:
        client = self._make_client()
        async with client:
            self._client = client
            self.connect_count += 1
            self.last_error = None
            log.info("MQTT: connected to %s:%d", self.config.host, self.config.port)
            await client.subscribe(self.topics.command_filter, qos=1)
            await client.publish(self.topics.availability, b"online", qos=1, retain=True)
            self._published.clear()  # re-publish every retained state on this connection
            self.connected.set()
            tasks = [asyncio.create_task(self._serve_commands(client), name="mqtt-commands"),
                     asyncio.create_task(self._publish_loop(client), name="mqtt-publish")]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await _finish(tasks)
            for task in tasks:  # the first failure ends the connection (-> reconnect)
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    async def _serve_commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, str):
                data = payload.encode()
            elif isinstance(payload, bytes | bytearray):
                data = bytes(payload)
            else:
                data = b"" if payload is None else str(payload).encode()
            reply = handle_command(self.topics, self.port, message.topic.value, data,
                                   now=self._clock())
            if reply is None:
                continue
            await client.publish(reply.topic, reply.payload(), qos=1)
            if reply.ok:
                self._wake.set()  # the command probably changed the state

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        c = self.config
        next_telemetry = 0.0
        while not self._stopping:
            self._wake.clear()
            now = self._clock()
            telemetry_due = now >= next_telemetry
            if telemetry_due:
                next_telemetry = now + c.telemetry_interval_s
            for connector in self._connectors():
                try:
                    state = self.port.state(connector)
                    changed = self._published.get(connector) != state
                    state_msg = state_payload(state, now) if changed else None
                    telemetry_msg = telemetry_payload(state, now) if telemetry_due else None
                except Exception:  # the charger's bug must not cost the connection
                    log.exception("MQTT: no state for connector %r", connector)
                    continue
                if state_msg is not None:
                    await client.publish(self.topics.state(connector), state_msg, qos=1,
                                         retain=True)
                    self._published[connector] = state
                if telemetry_msg is not None:
                    await client.publish(self.topics.telemetry(connector), telemetry_msg,
                                         qos=0)
            while self._events:
                topic, payload = self._events[0]
                await client.publish(topic, payload, qos=1)
                self._events.popleft()  # only once sent: a broken connection keeps it
            wait = min(c.state_interval_s, max(0.0, next_telemetry - self._clock()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _connectors(self) -> list[str]:
        try:
            return list(self.port.connectors())
        except Exception:
            log.exception("StationPort.connectors() failed")
            return []


async def _finish(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait until they have ended. Cancelling again when one is still
    running: Python 3.11's wait_for (used inside aiomqtt) can swallow a cancellation that
    races with a completing wait."""
    for _ in range(20):
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        for t in pending:
            t.cancel()
        await asyncio.wait(pending, timeout=0.5)
    log.error("MQTT bridge: tasks did not end: %s", [t.get_name() for t in tasks
                                                     if not t.done()])
