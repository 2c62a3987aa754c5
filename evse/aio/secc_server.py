"""`SeccServer`: the asyncio adapter around the sans-IO SECC and the charger controllers.

    station = Station.sim(2)                                   # 2 connectors, sim HAL
    server = SeccServer(config, station, address="::1", port=0, tls=ctx, tls_port=0)
    await server.start()          # TCP and/or TLS 1.3 listeners (+ SDP when asked)
    ...
    await server.close()          # safe state on every connector, connections closed

A charger has one power stage per connector: the `Station` holds N `Connector`s (HAL
backend + `ChargerController`). A connection takes a connector only when the EV sends its
first bytes (after the TLS handshake), so idle connections hold none and are closed by the
communication setup timeout counted from the accept. When no connector is free, one held by
a connection without a session (no SessionSetup yet) is taken back (evicted): the oldest
that has not even negotiated supportedAppProtocol (idle after a byte, or sending junk),
else the oldest that has had `AdmissionConfig.evict_grace` s to send SessionSetup. A
connection with a session is never evicted; without a victim the newcomer is refused.
With connectors bound to interfaces (one link each), a connection may take only the
connector of the interface it arrived on, once SLAC matched there (evse/aio/listeners.py).

Admission (`evse/aio/admission.py`): the server accepts plain TCP itself, paced by a token
bucket, and runs TLS itself (`evse/aio/tls_server.py`: a short handshake timeout, a small
input bound before the handshake is done, OpenSSL's fatal alert written on a refusal);
handshakes and connections without a session are capped per listener and in total, the
oldest over a cap closed. Every connection logs once, at INFO with the peer address, why it
closed. Per connection the adapter:

- feeds received bytes to `SeccConnection.receive_data` within the connection's read budget
  (`evse.aio.read_budget`: 1 KiB slices per loop turn, bytes per time window, closed after
  too many bytes without a valid message, so junk on one connection cannot starve another)
  and writes `SendData` at once (the time from the request's last byte to the response's
  first write is the turnaround, measured with `perf_counter_ns`, kept in `TurnaroundStats`);
- drives the SECC's timers with one `loop.call_at` on `next_deadline()`;
- hands hardware effects to the connector's controller, and the controller's inputs
  (measurements every poll, cable check results, emergency stops) back to the SECC;
- honours `CloseConnection(after_s)` and reports EOF/reset as `ConnectionLost`;
- isolates failures: an exception in one connection puts that connector in the safe state,
  closes that connection and never reaches the event loop or the other connections.

Every session is observable as it happens: the server publishes the session events
(`evse.events`: started, authorization, service, measurements, paused, fault, safe state,
warning, ended with its `SessionSummary`) on the station's bus, O(1) and never blocking;
consume them with `Station.events()` / `SeccServer.events()`. Integration hooks
(`evse.hooks`, `SeccServer(hooks=Hooks(...))`) are awaited by `evse.aio.hook_runner`, never
inside the SECC. The station and its connectors live in `evse.aio.station`, the session
records in `evse.aio.session_records` (both importable from here too).

One task polls every connector's HAL at a fixed rate (`poll_interval`). The HAL runs on
`Station.hal_time(loop.time())`, which a demo may speed up (`Station(speedup=...)`); the SECC
always runs on the real loop clock, so ISO timing is never scaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import logging
import math
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from evse import events as se
from evse.aio.admission import HANDSHAKE, Admission, AdmissionConfig, Ticket
from evse.aio.hook_runner import (
    AsyncCertificates,
    AsyncSchedules,
    MeterPoller,
    ReportingSchedules,
    decide,
    provision_iso2,
    provision_local,
)
from evse.aio.listeners import (
    connector_for_listener,
    holders_on,
    link_hosts,
    link_interfaces,
    listener_kind,
    start_link_listeners,
    ticket_listener,
)
from evse.aio.netif import link_local_address, scope_id
from evse.aio.read_budget import ReadBudget, ReadMeter
from evse.aio.session_records import MAX_SAMPLES, SessionSummary, TurnaroundStats
from evse.aio.station import Connector, Station
from evse.aio.tasks import cancel_task
from evse.aio.tls_iso2 import context_for
from evse.aio.tls_server import TlsLayer
from evse.events import (
    DEFAULT_LIFECYCLE_MAX,
    DEFAULT_MEASUREMENTS_MAX,
    Callback,
    EventHandle,
    Subscription,
)
from evse.hooks import AuthorizationRequest, Hooks, Iso2CertificateSource
from evse.protocol import events as ev
from evse.protocol.config import SeccConfig
from evse.protocol.din.states import State as DinState
from evse.protocol.iso20.states import State
from evse.protocol.schedules import Schedules
from evse.protocol.secc import SeccConnection
from evse.protocol.session import SessionStore

log = logging.getLogger(__name__)

DEFAULT_TLS_PORT = 64109
DEFAULT_TCP_PORT = 64110
# the charge-loop states of every standard (turnaround statistics, MQTT "charging")
LOOP_STATES: frozenset[str] = frozenset({
    State.DC_CHARGE_LOOP, State.AC_CHARGE_LOOP, DinState.CURRENT_DEMAND,
})

Authorizer = Callable[[ev.RequestAuthorization, str], "bool | Awaitable[bool]"]


# Station, Connector (evse.aio.station), SessionSummary, TurnaroundStats
# (evse.aio.session_records) stay importable from here.
__all__ = [
    "DEFAULT_TCP_PORT", "DEFAULT_TLS_PORT", "LOOP_STATES", "MAX_SAMPLES", "Connector",
    "SeccServer", "SessionSummary", "Station", "TurnaroundStats",
]


# -- one connection --------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    def __init__(self, server: SeccServer, tls: bool, ticket: Ticket) -> None:
        self.server = server
        self.tls = tls
        self.ticket = ticket
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn: SeccConnection | None = None
        self.connector: Connector | None = None
        self.peer = "?"
        # TLS facts of this connection (None over plain TCP)
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        self.peer_certificate: bytes | None = None  # the vehicle certificate (DER)
        self.vehicle_subject: str | None = None
        self.summary: SessionSummary | None = None
        self.dead = False  # crashed or refused: never call into the SECC again
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._close_handle: asyncio.TimerHandle | None = None
        self._close_reason = ""  # of a CloseConnection scheduled for later
        self._first_write_ns: int | None = None
        self._last_sample = -math.inf
        self._tasks: set[asyncio.Task[Any]] = set()
        # read budget (evse.aio.read_budget): bytes received but not yet fed to the SECC
        self._meter = ReadMeter(server.read_budget)
        self._backlog = bytearray()
        self._backlog_at = 0
        self._pump_handle: asyncio.Handle | None = None
        self._reading_paused = False

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = self.ticket.peer
        server = self.server
        if self.tls:
            server.admission.handshake_done(self.ticket)
        else:
            server.admission.admit(self.ticket, transport.abort)
            if transport.is_closing():  # over a cap at once (cannot happen with caps >= 1)
                self.dead = True
                return
        if server.closing:
            self._refuse("refused: shutting down")
            return
        server.active.add(self)
        try:
            if self.tls:
                self._read_tls(transport)
        except Exception as exc:
            self._crash(exc)
            return
        # No connector until the EV sends its first bytes (`_bind`): a connection that
        # never speaks holds none, and is closed after the communication setup timeout.
        silent_for = server.config.timeouts.communication_setup
        self._timer = self.loop.call_at(self.ticket.accepted_at + silent_for,
                                        self._silent_timeout)

    def _refuse(self, reason: str) -> None:
        self.ticket.set_reason(reason)
        self.dead = True
        self.server.refused += 1
        self.server.active.discard(self)
        if self.transport is not None:
            self.transport.abort()

    def _silent_timeout(self) -> None:
        self._timer = None
        if self.conn is None and not self.dead:
            self.ticket.set_reason("communication setup timeout: the EV sent nothing")
            self.dead = True
            if self.transport is not None:
                self.transport.abort()

    def _bind(self) -> bool:
        """The EV spoke: take a connector (evicting a connection without a session when
        none is free) and start the SECC; False when refused."""
        server = self.server
        connector = None if server.closing else server.take_connector(self.ticket.listener)
        if connector is None:
            self._refuse("refused: shutting down" if server.closing else
                         "refused: every connector is held by a session or out of service")
            return False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        start = self.ticket.accepted_at  # the SECC's setup timeout counts from the accept
        self.connector = connector
        self.ticket.connector = connector.id
        connector.handler = self
        try:
            connector.controller.begin_session(server.station.hal_time(self.loop.time()))
            self.conn = SeccConnection(
                server.config_with_hooks(connector.id, time.time() - start), tls=self.tls,
                now=start,
                session_store=server.store, epoch_offset=time.time() - start,
                peer_certificate=self.peer_certificate, tls_version=self.tls_version,
            )
            server._bound_new_connection(connector.id, self.conn)
            log.info("connector %s: %s connection from %s%s", connector.id,
                     f"{self.tls_version} {self.tls_cipher}" if self.tls else "TCP", self.peer,
                     f", vehicle certificate {self.vehicle_subject}"
                     if self.peer_certificate else "")
        except Exception as exc:
            self._crash(exc)
            return False
        return True

    def _read_tls(self, transport: asyncio.BaseTransport) -> None:
        """Version, suite and the vehicle certificate (mutual TLS) of the finished handshake.

        With `ssl.CERT_OPTIONAL` OpenSSL has verified a certificate the vehicle sent (else
        the handshake failed); with `CERT_NONE` no certificate is requested at all."""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        self.tls_version = ssl_object.version()
        cipher = ssl_object.cipher()
        self.tls_cipher = cipher[0] if cipher else None
        self.peer_certificate = ssl_object.getpeercert(binary_form=True) or None
        if self.peer_certificate:
            subject = dict(rdn[0] for rdn in (ssl_object.getpeercert() or {}).get("subject", ()))
            self.vehicle_subject = str(subject.get("commonName", "(no CN)"))

    def data_received(self, data: bytes) -> None:
        if self.dead:
            return
        if self.conn is None and not self._bind():  # the EV spoke: take a connector
            return
        if self._backlog:
            self._backlog += data
        else:
            self._backlog = bytearray(data)
            self._backlog_at = 0
        if self._pump_handle is None:
            self._pump()

    def _pump(self) -> None:
        """Feed the backlog to the SECC within the connection's read budget (read_budget)."""
        self._pump_handle = None
        transport = self.transport
        if self.conn is None or self.dead or transport is None:
            return
        now = self.loop.time()
        n = min(self._meter.allowance(now), len(self._backlog) - self._backlog_at)
        if n > 0:
            at = self._backlog_at
            self._backlog_at += n
            self._feed(bytes(self._backlog[at:at + n]))
            if self.dead:
                return
            if self._meter.fed(n, answered=self._first_write_ns is not None):
                self._close_junk()
                return
        if self._backlog_at < len(self._backlog):
            if not self._reading_paused:  # at most one read buffered per connection
                self._reading_paused = True
                transport.pause_reading()
            if n > 0:  # next chunk in the next loop iteration, after the other connections
                self._pump_handle = self.loop.call_soon(self._pump)
            else:  # over its bytes for this window: wait for the next one
                self._pump_handle = self.loop.call_at(self._meter.window_end(), self._pump)
            return
        self._backlog, self._backlog_at = bytearray(), 0
        if self._reading_paused and not transport.is_closing():
            self._reading_paused = False
            transport.resume_reading()

    def _close_junk(self) -> None:
        """Over the limit of bytes without a valid message: end the session, close."""
        connector = self.connector.id if self.connector is not None else "?"
        limit = self.server.read_budget.max_bytes_without_message
        log.info("connector %s: closing the connection from %s: more than %d bytes without "
                 "a valid message", connector, self.peer, limit)
        self.server.closed_for_junk += 1
        self._backlog, self._backlog_at = bytearray(), 0
        self.shutdown(f"more than {limit} bytes without a valid message")

    def _feed(self, data: bytes) -> None:
        t0 = time.perf_counter_ns()
        if self.conn is None and not self.dead and not self._bind():
            return
        conn = self.conn
        if conn is None or self.dead:
            return
        try:
            before = conn.state
            summary = self.summary if self.summary and self.summary.ended_at is None else None
            self._first_write_ns = None
            effects = conn.receive_data(data, self.loop.time())
            self._dispatch(effects)
            first = self._first_write_ns
            if first is not None:
                ns = first - t0
                self.server.turnaround.add(ns, charge_loop=before in LOOP_STATES)
                # the session open before this request (its SessionStop ends it), or the one
                # this request started (SessionSetup)
                if summary is None and self.summary and self.summary.ended_at is None:
                    summary = self.summary
                if summary is not None:
                    summary.requests += 1
                    summary.turnaround_hist.add(ns)
            self._rearm()
        except Exception as exc:
            self._crash(exc)

    def eof_received(self) -> bool | None:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._backlog, self._backlog_at = bytearray(), 0
        for handle in (self._timer, self._close_handle, self._pump_handle):
            if handle is not None:
                handle.cancel()
        self._timer = self._close_handle = self._pump_handle = None
        for task in self._tasks:
            task.cancel()
        if exc is not None:
            self.ticket.set_reason(f"connection lost: {exc!r}")
        elif self._close_reason:
            self.ticket.set_reason(f"closed by the EV ({self._close_reason})")
        self.server.admission.release(self.ticket, "closed by the EV")
        connector, conn = self.connector, self.conn
        if connector is None:  # never bound, refused or evicted: no connector of ours
            self.server.active.discard(self)
            return
        now = self.loop.time()
        hal_now = self.server.station.hal_time(now)
        if not self.dead and conn is not None and not conn.closed:
            reason = f"connection lost: {exc!r}" if exc else "connection closed by the EV"
            try:
                self._dispatch(conn.handle_event(ev.ConnectionLost(reason), now))
            except Exception as err:
                self._crash(err)
        try:  # whatever the SECC did: no power on a connector without a connection
            self._safe_state(connector, "connection closed", hal_now)
        except Exception:
            log.exception("connector %s: safe state after the connection failed", connector.id)
        if self.summary is not None and self.summary.ended_at is None:
            self._finish_summary("connection closed", failed=True, paused=False)
        if connector.handler is self:
            connector.handler = None
        self.server.active.discard(self)

    def evict(self, reason: str) -> None:
        """Give the connector up now (a new connection needs it); only without a session."""
        connector = self.connector
        assert connector is not None and self.summary is None
        self.ticket.set_reason(reason)
        self.server.evicted += 1
        conn, now = self.conn, self.loop.time()
        if conn is not None and not self.dead and not conn.closed:
            with contextlib.suppress(Exception):  # no session: nothing but closing to do
                conn.handle_event(ev.ConnectionLost(reason), now)
        self.dead = True
        try:
            self._safe_state(connector, reason, self.server.station.hal_time(now))
        except Exception:
            log.exception("connector %s: safe state failed", connector.id)
        connector.handler = None
        self.connector = None
        self.server.active.discard(self)
        if self.transport is not None:
            self.transport.abort()

    # -- session events (evse.events) ----------------------------------------------------

    @property
    def session_id(self) -> str | None:
        summary = self.summary
        return summary.session_id if summary is not None and summary.ended_at is None else None

    def _publish(self, event: se.SessionEvent) -> None:
        """Hand a session event to the station's bus: O(1), never blocks (evse.events)."""
        self.server.station.bus.publish(event)

    def _publish_effect(self, effect: ev.Effect) -> None:
        """The session event an SECC effect stands for, if any."""
        assert self.connector is not None
        cid, at, sid = self.connector.id, time.time(), self.session_id
        if isinstance(effect, ev.SessionStarted):
            assert self.summary is not None
            self._publish(se.SessionStarted(
                cid, at, self.summary.session_id, effect.protocol, effect.evcc_id,
                resumed=effect.resumed, tls=self.tls, peer=self.peer))
            if effect.resumed:
                self._publish(se.SessionResumed(cid, at, self.summary.session_id))
        elif isinstance(effect, ev.RequestAuthorization):
            self._publish(se.AuthorizationRequested(cid, at, sid, effect.method,
                                                    effect.evcc_id, effect.emaid))
        elif isinstance(effect, ev.EnergyServiceSelected):
            self._publish(se.ServiceSelected(cid, at, sid, effect.service_id,
                                             effect.control_mode, effect.bidirectional))
        elif isinstance(effect, ev.ReportWarning):
            self._publish(se.SessionWarning(cid, at, sid, effect.code, effect.message))

    def _publish_decision(self, event: ev.Event) -> None:
        if self.connector is None:
            return
        granted = isinstance(event, ev.AuthorizationGranted)
        reason = event.reason if isinstance(event, ev.AuthorizationDenied) else ""
        self._publish(se.AuthorizationDecided(self.connector.id, time.time(), self.session_id,
                                              granted, reason))

    def _safe_state(self, connector: Connector, reason: str, hal_now: float) -> None:
        """Put `connector` in the safe state and say so on the event stream."""
        sid = self.session_id
        connector.controller.safe_state(reason, hal_now)
        self._publish(se.SafeState(connector.id, time.time(), sid, reason))

    # -- effects -------------------------------------------------------------------------

    def _dispatch(self, effects: list[ev.Effect]) -> None:
        connector = self.connector
        assert connector is not None
        pending: list[ev.Event] = []
        hal_now = self.server.station.hal_time(self.loop.time())
        for effect in effects:
            pending += self._carry_out(effect, connector, hal_now)
        for event in pending:  # after all effects of this step, in their order
            self.deliver(event)

    def _carry_out(self, effect: ev.Effect, connector: Connector, hal_now: float
                   ) -> list[ev.Event]:
        """Carry out one effect: the connection's own here, the rest by the connector's
        controller. Returns the events it answers, to deliver after the whole step."""
        if isinstance(effect, ev.SendData):
            self._send(effect, connector)
        elif isinstance(effect, ev.CloseConnection):
            self._schedule_close(effect.after_s, effect.reason)
        elif isinstance(effect, ev.RequestAuthorization):
            self._publish_effect(effect)
            return self._authorize(effect)
        elif isinstance(effect, ev.RequestIso2Certificate):
            return self._iso2_certificate(effect)
        elif isinstance(effect, ev.MeteringConfirmed):
            self._metering_confirmed(effect)
        elif isinstance(effect, ev.ReportWarning):
            log.warning("connector %s: %s: %s", connector.id, effect.code, effect.message)
            self._publish_effect(effect)
        else:
            return self._control(effect, connector, hal_now)
        return []

    def _send(self, effect: ev.SendData, connector: Connector) -> None:
        """Write a response; count (and log) one sent after its performance time."""
        self._write(effect.data)
        if effect.deadline is not None and self.loop.time() > effect.deadline:
            self.server.late_responses += 1
            log.warning("connector %s: response sent %.0f ms after its performance "
                        "time", connector.id,
                        (self.loop.time() - effect.deadline) * 1e3)

    def _control(self, effect: ev.Effect, connector: Connector, hal_now: float
                 ) -> list[ev.Event]:
        """An effect for the power stage: note it (summary, event stream) first, hand it to
        the controller, and close the summary once a SessionEnded was carried out."""
        self._note(effect, connector)
        pending = connector.controller.handle_effect(effect, hal_now)
        if isinstance(effect, ev.SessionEnded):
            self._finish_summary(effect.reason, effect.failed, effect.paused)
        return pending

    def _note(self, effect: ev.Effect, connector: Connector) -> None:
        """What the session keeps of a controller effect, before the controller sees it."""
        if isinstance(effect, ev.SessionStarted):
            self._start_summary(effect)
            self.server.admission.session_started(self.ticket)
            self._publish_effect(effect)
        elif isinstance(effect, ev.EnergyServiceSelected) and self.summary is not None:
            self.summary.service_id = effect.service_id
            self.summary.control_mode = effect.control_mode
            self.summary.bidirectional = effect.bidirectional
            self._publish_effect(effect)
        elif isinstance(effect, ev.SessionEnded):
            self._close_reason = self._close_reason or effect.reason
            log.log(logging.WARNING if effect.failed else logging.INFO,
                    "connector %s: session ended: %s", connector.id, effect.reason)

    def _metering_confirmed(self, effect: ev.MeteringConfirmed) -> None:
        """A verified PnC MeteringConfirmation: keep the signed record, hand it to the hook."""
        summary = self.summary if self.summary and self.summary.ended_at is None else None
        if summary is not None:
            summary.metering_confirmations.append(effect)
        log.info("metering confirmed by the EV (eMAID %s): %s Wh", effect.emaid,
                 effect.signed_metering_data.meter_info.charged_energy_reading_wh)
        hook = self.server.on_metering_confirmation
        if hook is not None:
            try:
                hook(summary, effect)
            except Exception:  # a billing hook must not break the session
                log.exception("on_metering_confirmation hook failed")

    def deliver(self, event: ev.Event) -> None:
        """Hand a charger input to the SECC and carry out what it answers."""
        conn = self.conn
        if conn is None or self.dead:
            return
        now = self.loop.time()
        if isinstance(event, ev.MeasurementsUpdated):
            self._sample(event)
        elif isinstance(event, (ev.AuthorizationGranted, ev.AuthorizationDenied)):
            self._publish_decision(event)
        self._dispatch(conn.handle_event(event, now))
        self._rearm()

    def deliver_events(self, events: Iterable[ev.Event]) -> None:
        try:
            for event in events:
                self.deliver(event)
        except Exception as exc:
            self._crash(exc)

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._first_write_ns is None:
            self._first_write_ns = time.perf_counter_ns()
        transport.write(data)
        if transport.get_write_buffer_size() > self.server.write_buffer_limit:
            raise ConnectionError("the EV does not read its responses (write buffer full)")

    def _schedule_close(self, after_s: float, reason: str = "") -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._close_reason = reason or self._close_reason or "closed by the charger"
        if after_s <= 0:
            self.ticket.set_reason(self._close_reason)
            transport.close()  # pending writes are flushed first
            return
        if self._close_handle is None:
            self._close_handle = self.loop.call_later(after_s, self._close_now)

    def _close_now(self) -> None:
        self._close_handle = None
        self.ticket.set_reason(self._close_reason)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _authorize(self, request: ev.RequestAuthorization) -> list[ev.Event]:
        assert self.connector is not None
        authorizer = self.server.hooks.authorizer
        if authorizer is not None:  # evse.hooks.Authorizer: awaited here, never in the SECC
            self._await_event(decide(authorizer, AuthorizationRequest(
                self.connector.id, self.session_id, request.method, request.evcc_id,
                request.emaid, request.certificate_chain)))
            return []
        hook = self.server.authorize
        if hook is None:
            log.info("connector %s: authorized %s (%s%s) without a backend", self.connector.id,
                     request.evcc_id, request.method,
                     f", eMAID {request.emaid}" if request.emaid else "")
            return [ev.AuthorizationGranted("")]
        answer = hook(request, self.connector.id)
        if isinstance(answer, bool):
            return [ev.AuthorizationGranted("") if answer else ev.AuthorizationDenied("denied")]

        async def wait(pending: Awaitable[bool]) -> ev.Event:
            granted = await pending
            return ev.AuthorizationGranted("") if granted else ev.AuthorizationDenied("denied")

        self._await_event(wait(answer))
        return []

    def _iso2_certificate(self, request: ev.RequestIso2Certificate) -> list[ev.Event]:
        """A held -2 CertificateInstallation/Update: the certificate hook when it answers -2
        (awaited in a task; the SECC's own timer answers FAILED if it is too slow), else the
        configured provisioning service at once."""
        assert self.connector is not None and self.conn is not None
        source = self.server.hooks.certificates
        if isinstance(source, Iso2CertificateSource):
            self._await_event(provision_iso2(source, self.connector.id, request))
            return []
        return [provision_local(self.conn.config.iso2_pnc, request)]

    def _await_event(self, answer: Awaitable[ev.Event]) -> None:
        """Await a hook's answer in a task of this connection; deliver it as an event."""

        async def wait() -> None:
            event = await answer
            if not self.dead and self.transport is not None and not self.transport.is_closing():
                self.deliver_events([event])

        task = asyncio.ensure_future(wait())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- timers --------------------------------------------------------------------------

    def _rearm(self) -> None:
        conn = self.conn
        deadline = None if conn is None or conn.closed or self.dead else conn.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        at, self._timer_at = self._timer_at, None
        conn = self.conn
        if conn is None or self.dead:
            return
        try:
            now = max(self.loop.time(), at or 0.0)  # call_at may fire a hair early
            self._dispatch(conn.handle_timeout(now))
            self._rearm()
        except Exception as exc:
            self._crash(exc)

    # -- failures, records ---------------------------------------------------------------

    def _crash(self, exc: BaseException) -> None:
        if self.dead:
            return
        self.dead = True
        self.server.errors += 1
        self.ticket.set_reason(f"internal error: {exc!r}")
        connector = self.connector
        name = connector.id if connector is not None else "?"
        log.error("connector %s: internal error, connection closed: %r", name, exc,
                  exc_info=exc)
        if connector is not None:
            self._publish(se.Fault(connector.id, time.time(), self.session_id,
                                   f"internal error: {exc!r}"))
            try:
                hal_now = self.server.station.hal_time(self.loop.time())
                self._safe_state(connector, f"internal error: {exc!r}", hal_now)
            except Exception:
                log.exception("connector %s: safe state failed", name)
        if self.summary is not None and self.summary.ended_at is None:
            self._finish_summary(f"internal error: {exc!r}", failed=True, paused=False)
        if self.transport is not None:
            self.transport.abort()

    def shutdown(self, reason: str) -> None:
        """Server shutdown: end the session (safe state first), then close."""
        self.ticket.set_reason(reason)
        conn = self.conn
        if conn is not None and not self.dead and not conn.closed:
            try:
                self._dispatch(conn.handle_event(ev.ConnectionLost(reason), self.loop.time()))
            except Exception as exc:
                self._crash(exc)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _start_summary(self, started: ev.SessionStarted) -> None:
        assert self.connector is not None
        ctl = self.connector.controller
        self.summary = SessionSummary(
            connector=self.connector.id,
            session_id=started.session_id.hex().upper(),
            evcc_id=started.evcc_id,
            protocol=started.protocol,
            resumed=started.resumed,
            tls=self.tls,
            peer=self.peer,
            started_at=time.time(),
            tls_version=self.tls_version,
            tls_cipher=self.tls_cipher,
            vehicle_certificate=self.vehicle_subject,
            sample_interval=self.server.sample_interval,
            energy_start=(ctl.energy_in_wh, ctl.energy_out_wh),
        )
        if self.connector.link is not None:  # one story: plug-in, SLAC, session, unplug
            times = self.connector.link.times
            self.summary.plugged_at = times.plugged_at
            self.summary.slac_matched_at = times.slac_matched_at

    def _finish_summary(self, reason: str, failed: bool, paused: bool) -> None:
        summary = self.summary
        if summary is None or summary.ended_at is not None:
            return
        assert self.connector is not None
        ctl = self.connector.controller
        summary.ended_at = time.time()
        summary.reason, summary.failed, summary.paused = reason, failed, paused
        summary.energy_in_wh = ctl.energy_in_wh - summary.energy_start[0]
        summary.energy_out_wh = ctl.energy_out_wh - summary.energy_start[1]
        trips = getattr(ctl, "session_trips", None)  # a SupervisedController's (shared list)
        if trips is not None:
            summary.safety_trips = trips
        session = self.conn.session if self.conn is not None else None
        if session is not None and session.authorized:
            summary.authorization = session.authorization_method
            summary.emaid = session.emaid
        cid, at, sid = summary.connector, summary.ended_at, summary.session_id
        if paused:
            self._publish(se.SessionPaused(cid, at, sid, reason))
        elif failed:
            self._publish(se.Fault(cid, at, sid, reason))
        self.server.record_session(summary)
        self._publish(se.SessionEnded(cid, at, sid, reason, failed, paused, summary))

    def _sample(self, m: ev.MeasurementsUpdated) -> None:
        summary = self.summary
        if summary is None or summary.ended_at is not None:
            return
        bus = self.server.station.bus
        if bus.wants_measurement(summary.connector, at := time.time()):  # else: costs nothing
            ctl = self.connector.controller if self.connector is not None else None
            power = m.present_power if m.present_power is not None else (
                m.present_voltage * m.present_current)
            bus.publish(se.Measurement(
                summary.connector, at, summary.session_id, m.present_voltage,
                m.present_current, power,
                None if ctl is None else ctl.energy_in_wh - summary.energy_start[0],
                None if ctl is None else ctl.energy_out_wh - summary.energy_start[1]))
        now = self.loop.time()
        if now - self._last_sample < summary.sample_interval:
            return
        self._last_sample = now
        power = m.present_power if m.present_power is not None else (
            m.present_voltage * m.present_current)
        summary.add_sample((time.time(), m.present_voltage, m.present_current, power))


# -- the server ------------------------------------------------------------------------------


def _listen_socket(host: str, port: int, scope: int = 0) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE | socket.AI_NUMERICHOST)
    family, kind, proto, _, sockaddr = infos[0]
    address: Any = sockaddr
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and scope and not address[3]:
            address = (address[0], address[1], 0, scope)
        sock.bind(address)
        sock.listen(64)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class SeccServer:
    """TCP and/or TLS servers for ISO 15118-20 sessions on a `Station` (see module doc).

    `address`: where to listen ("::1", "127.0.0.1", "fe80::1%eth0", ...); default: the
    `interface`'s IPv6 link-local address with its scope id. `port`: the plain TCP port
    (None: no plain server; plain -20 also needs `SeccConfig.allow_plain_tcp_iso20`), 0 = any
    free port. `tls`/`tls_port`: the TLS 1.3 server (-20); `tls_iso2`: the -2 TLS 1.2 context
    on the same port, chosen per connection from the ClientHello (tls_iso2.py). `sdp_port`:
    answer SDP there (None: no SDP; needs an IPv6 address to announce), IPv6 only, on ff02::1
    of the interface or, without one, on the listening address (`sdp_bind` overrides; see
    `evse.aio.sdp_server`).
    """

    def __init__(
        self,
        config: SeccConfig,
        station: Station,
        *,
        address: str | None = None,
        interface: str | None = None,
        port: int | None = 0,
        tls: ssl.SSLContext | None = None,
        tls_iso2: ssl.SSLContext | None = None,
        tls_port: int = 0,
        sdp_port: int | None = None,
        sdp_bind: str | None = None,
        poll_interval: float = 0.025,
        session_store: SessionStore | None = None,
        authorize: Authorizer | None = None,
        on_session_end: Callable[[SessionSummary], None] | None = None,
        admission: AdmissionConfig | None = None,
        write_buffer_limit: int = 1 << 20,
        sample_interval: float = 1.0,
        max_sessions_kept: int = 100,
        detailed_sessions_kept: int = 4,
        read_budget: ReadBudget | None = None,
        paused_session_max_age: float = 24 * 3600.0,
        connection_config: Callable[[str], SeccConfig] | None = None,
        on_metering_confirmation: Callable[[SessionSummary | None, ev.MeteringConfirmed],
                                           None] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        if port is None and tls is None and tls_iso2 is None:
            raise ValueError("nothing to serve: give a plain TCP port or a TLS context")
        if address is None and interface is None and not link_interfaces(station):
            raise ValueError("give an address or an interface (or connectors with one)")
        self.config = config
        self.station = station
        self.address = address
        self.interface = interface
        self._port = port
        self._tls = tls
        # -2 (TLS 1.2) beside -20 (TLS 1.3) on the same TLS port: the context is chosen per
        # connection from the ClientHello (tls_iso2.context_for)
        self._tls_iso2 = tls_iso2
        self._tls_port = tls_port
        self._sdp_port = sdp_port
        self._sdp_bind = sdp_bind
        self.poll_interval = poll_interval
        self.store = session_store if session_store is not None else SessionStore()
        if self.store.max_age is None:  # paused sessions: resumable for a day, not forever
            self.store.max_age = paused_session_max_age
        self._next_expiry = -math.inf
        self.authorize = authorize
        # integration hooks (evse.hooks); `hooks.authorizer` takes precedence over `authorize`
        self.hooks = hooks if hooks is not None else Hooks()
        self._meter = (None if self.hooks.meter is None else MeterPoller(
            self.hooks.meter, [c.id for c in station.connectors], poll_interval))
        self.on_session_end = on_session_end
        # per connection: the SeccConfig for a new connection on a connector (an energy
        # manager's limits, schedule provider, authorization mode); None: `config`
        self.connection_config = connection_config
        # PnC: called with (summary, MeteringConfirmed) for each verified confirmation
        self.on_metering_confirmation = on_metering_confirmation
        # bounds for connections without a session (evse/aio/admission.py)
        self.admission_config = admission or AdmissionConfig()
        self.admission = Admission(self.admission_config, time.monotonic())
        self.write_buffer_limit = write_buffer_limit
        self.sample_interval = sample_interval
        self.read_budget = read_budget if read_budget is not None else ReadBudget()
        self.closed_for_junk = 0  # connections closed over the bytes-without-a-message limit
        self.turnaround = TurnaroundStats()
        # the latest summaries (bounded: reports on disk keep the rest); the newest
        # `detailed_sessions_kept` with their samples, older ones compacted
        self.sessions: deque[SessionSummary] = deque(maxlen=max_sessions_kept)
        self.detailed_sessions_kept = detailed_sessions_kept
        self.sessions_total = 0  # every session ever recorded
        self.active: set[_Connection] = set()
        self.errors = 0  # connections closed by an internal error
        self.late_responses = 0  # responses sent after the SECC's performance time
        self.refused = 0  # connections refused (every connector carries a session)
        self.evicted = 0  # connections without a session that gave their connector up
        self.poll_errors = 0
        self.closing = False
        self.out_of_service: set[str] = set()  # connector ids (set_in_service)
        self.bound_address: str | None = None
        self._servers: list[tuple[str, socket.socket]] = []  # (kind, listening socket)
        self._accept_tasks: list[asyncio.Task[None]] = []
        self._connecting: set[asyncio.Task[None]] = set()
        self._sdp: Any = None
        self.link_sdp: list[Any] = []  # SDP per connector link (evse/aio/listeners.py)
        self._poll_task: asyncio.Task[None] | None = None
        self._bounds: dict[str, ev.PowerBoundUpdated] = {}  # the CSMS's, by connector
        # called with (peer, reason) for every TLS handshake that did not finish (security
        # events, evse/aio/ocpp_security.py); must not block
        self.on_tls_failure: Callable[[str, str], None] | None = None

    def set_tls_contexts(self, tls: ssl.SSLContext | None = None,
                         tls_iso2: ssl.SSLContext | None = None) -> None:
        """New TLS connections use these contexts from now on (a renewed SECC certificate, new
        trust roots); connections already up keep theirs. None keeps a context as it is."""
        if tls is not None:
            self._tls = tls
        if tls_iso2 is not None:
            self._tls_iso2 = tls_iso2

    def events(self, connector_id: str | None = None, *,
               measurements_max: int = DEFAULT_MEASUREMENTS_MAX,
               lifecycle_max: int = DEFAULT_LIFECYCLE_MAX) -> Subscription:
        """The station's session event stream (`Station.events`)."""
        return self.station.events(connector_id, measurements_max=measurements_max,
                                   lifecycle_max=lifecycle_max)

    def on_event(self, callback: Callback, connector_id: str | None = None) -> EventHandle:
        return self.station.on_event(callback, connector_id)

    def config_for(self, connector_id: str) -> SeccConfig:
        """The SECC configuration for a new connection on `connector_id`."""
        hook = self.connection_config
        return self.config if hook is None else hook(connector_id)

    def config_with_hooks(self, connector_id: str, epoch_offset: float) -> SeccConfig:
        """`config_for`, with the schedule and certificate hooks (evse.hooks) in front of
        the configured providers (a hook's own adapter per connection)."""
        config = self.config_for(connector_id)
        hooks, changes = self.hooks, dict[str, Any]()
        provider: Any = config.schedule_provider
        if hooks.schedules is not None:
            provider = AsyncSchedules(hooks.schedules, connector_id, provider, epoch_offset)
        bus = self.station.bus

        def sent(schedules: Schedules) -> None:  # the ScheduleSent session event
            handler = self.station.connector(connector_id).handler
            bus.publish(se.ScheduleSent(connector_id, time.time(),
                                        None if handler is None else handler.session_id,
                                        schedules))

        changes["schedule_provider"] = ReportingSchedules(provider, sent, epoch_offset)
        if hooks.certificates is not None:
            changes["certificate_installation"] = AsyncCertificates(hooks.certificates,
                                                                    connector_id)
            if isinstance(hooks.certificates, Iso2CertificateSource) \
                    and config.iso2_pnc is not None:  # -2 held until the hook answers
                changes["iso2_certificates_async"] = True
        return dataclasses.replace(config, **changes)

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        linked = bool(link_interfaces(self.station))  # one listener set per connector link
        host, scope = (link_hosts(self.station), 0) if linked else self._resolve_address()
        self.bound_address = host
        self.admission = Admission(self.admission_config, asyncio.get_running_loop().time())
        try:
            if linked:
                servers, self.link_sdp = await start_link_listeners(
                    self.station, _listen_socket, port=self._port,
                    tls=self._tls is not None or self._tls_iso2 is not None,
                    tls_port=self._tls_port, sdp_port=self._sdp_port)
                self._servers += servers
            elif self._port is not None:
                self._servers.append(("tcp", _listen_socket(host, self._port, scope)))
            if (self._tls is not None or self._tls_iso2 is not None) and not linked:
                self._servers.append(("tls", _listen_socket(host, self._tls_port, scope)))
            if self._sdp_port is not None and not linked:
                await self._start_sdp(host)
        except BaseException:
            for _, sock in self._servers:
                sock.close()
            self._servers.clear()
            raise
        for kind, sock in self._servers:
            self._accept_tasks.append(asyncio.create_task(
                self._accept_loop(kind, sock), name=f"secc-accept-{kind}"))
        self._poll_task = asyncio.create_task(self._poll_loop(), name="hal-poll")
        if self._meter is not None:
            self._meter.start()
        log.info("SECC listening on %s: %s (%d connector(s))", host,
                 ", ".join(f"{kind} port {self._bound_port(sock)}" for kind, sock in self._servers),
                 len(self.station.connectors))

    def _resolve_address(self) -> tuple[str, int]:
        if self.address is not None:
            host = self.address
            scope = 0
            if "%" in host:
                name = host.split("%", 1)[1]
                scope = int(name) if name.isdigit() else scope_id(name)
            elif self.interface and host.lower().startswith("fe80"):
                scope = scope_id(self.interface)
            return host, scope
        assert self.interface is not None
        address = link_local_address(self.interface)
        return f"{address}%{self.interface}", scope_id(self.interface)

    # -- accepting -----------------------------------------------------------------------

    async def _accept_loop(self, kind: str, sock: socket.socket) -> None:
        """Accept paced by the admission's token bucket: beyond its rate new connections
        wait in the kernel's listen backlog, so a flood cannot monopolise the loop."""
        loop = asyncio.get_running_loop()
        while not self.closing:
            wait = self.admission.bucket.take(loop.time())
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                try:  # what is already in the backlog without a trip through the loop
                    conn, addr = sock.accept()
                except BlockingIOError:
                    conn, addr = await loop.sock_accept(sock)
            except OSError as exc:  # EMFILE, ENOBUFS, ...: back off, keep serving
                log.warning("accept on the %s listener failed: %s", kind, exc)
                await asyncio.sleep(0.1)
                continue
            if self.closing:
                conn.close()
                break
            conn.setblocking(False)
            ticket = Ticket(ticket_listener(kind), f"[{addr[0]}]:{addr[1]}", loop.time(),
                            tls=listener_kind(kind) == "tls")
            task = loop.create_task(self._connect(kind, ticket, conn))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self, kind: str, ticket: Ticket, conn: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                functools.partial(self._protocol_for, kind, ticket), sock=conn)
        except OSError as exc:  # reset before we got to it
            conn.close()
            self.admission.release(ticket, f"connection lost: {exc!r}")

    def _protocol_for(self, kind: str, ticket: Ticket) -> asyncio.Protocol:
        if listener_kind(kind) == "tcp":
            return _Connection(self, tls=False, ticket=ticket)
        default = self._tls or self._tls_iso2
        assert default is not None
        select = (context_for(self._tls, self._tls_iso2) if self._tls_iso2 is not None
                  else None)
        admission, cfg = self.admission, self.admission_config

        def failed(reason: str) -> None:
            ticket.set_reason(reason)
            if "timeout" in reason:
                admission.handshake_timeouts += 1
            else:
                admission.handshake_failures += 1
            if self.on_tls_failure is not None:
                try:
                    self.on_tls_failure(ticket.peer, reason)
                except Exception:  # a reporting hook must not break the listener
                    log.exception("on_tls_failure hook failed")

        return TlsLayer(
            default, _Connection(self, tls=True, ticket=ticket), select_context=select,
            timeout=cfg.handshake_timeout, max_handshake_bytes=cfg.handshake_max_bytes,
            on_made=lambda raw: admission.admit(ticket, raw.abort),
            on_failure=failed,
            on_bytes=lambda n: setattr(ticket, "bytes_in", n),
            on_lost=lambda: admission.release(ticket, "closed by the EV during the TLS "
                                                      "handshake"),
        )

    def take_connector(self, listener: str | None = None) -> Connector | None:
        """A free connector for a new connection; when none is free, the one held by a
        connection without a session (evicted, see `_eviction_victim`). None: no connector
        can be had (a connection with a session is never evicted). Only the connectors of
        the listener's link (evse/aio/listeners.py)."""
        candidates = [c for c in connector_for_listener(self.station, listener)
                      if c.id not in self.out_of_service]
        connector = next((c for c in candidates if not c.busy), None)
        if connector is not None:
            return connector
        victim = self._eviction_victim(asyncio.get_running_loop().time(), candidates)
        if victim is None:
            return None
        victim.evict("evicted: a new connection needs the connector and this one has no "
                     "session")
        return next((c for c in candidates if not c.busy), None)

    def set_in_service(self, connector_id: str, in_service: bool) -> None:
        """Take a connector out of service (OCPP ChangeAvailability Inoperative) or put it
        back: a connector out of service is never given to a new connection, so an EV
        reaching it is refused before any session (every protocol: the refusal happens at
        the first message), and a pilot-driven connector starts neither PWM nor SLAC for a
        car plugging in; a session already running there is left alone."""
        connector = self.station.connector(connector_id)  # KeyError for an unknown one
        if in_service:
            self.out_of_service.discard(connector_id)
        else:
            self.out_of_service.add(connector_id)
        # a pilot-driven connector: no PWM and no SLAC for a car plugging in meanwhile
        set_link = getattr(connector.link, "set_in_service", None)
        if set_link is not None:
            set_link(in_service)

    def _eviction_victim(self, now: float,
                         candidates: Sequence[Connector] | None = None) -> _Connection | None:
        """The oldest connection that has not even negotiated supportedAppProtocol (idle or
        sending junk); else the oldest one without a session (no SessionSetup) that has
        had `evict_grace` s to send it. A car sends supportedAppProtocol and SessionSetup
        right after connecting, so a stream of idle newcomers cannot push it out."""
        ids = holders_on(candidates if candidates is not None else self.station.connectors)
        holders = sorted((h for h in self.active if h.summary is None and not h.dead
                          and h.connector is not None and h.connector.id in ids),
                         key=lambda h: h.ticket.accepted_at)
        for h in holders:
            if h.conn is None or h.conn.session is None:
                return h
        grace = self.admission_config.evict_grace
        return next((h for h in holders if now - h.ticket.accepted_at >= grace), None)

    async def _start_sdp(self, host: str) -> None:
        from evse.aio.sdp_server import start_sdp_server
        from evse.protocol.sdp import SdpServerConfig

        try:
            announce = ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            log.warning("SDP not started: %s is not an IPv6 address to announce", host)
            return
        if announce.is_unspecified:
            log.warning("SDP not started: listening on %s, no address to announce", host)
            return
        tls_port, plain_port = self.tls_port, self.port
        primary = tls_port if tls_port is not None else plain_port
        assert primary is not None
        sdp_config = SdpServerConfig(
            announce, primary, tls_available=tls_port is not None,
            plain_allowed=plain_port is not None, plain_port=plain_port,
        )
        # Only on the charging link: ff02::1 on the interface, else the listening address.
        interface = self.interface
        if interface is None and "%" in host and not host.split("%", 1)[1].isdigit():
            interface = host.split("%", 1)[1]
        bind = self._sdp_bind
        if bind is None and interface is None:
            bind = host
        self._sdp, _ = await start_sdp_server(
            sdp_config, interface=interface, port=self._sdp_port or 0, bind=bind
        )

    async def close(self, reason: str = "server shutdown", timeout: float = 2.0) -> None:
        """Stop accepting, end every session (safe state first), wait for the power stages
        to reach the safe state (at most `timeout` s), then close the HAL backends."""
        if self.closing:
            return
        self.closing = True
        await self._stop_accepting()
        self._end_sessions(reason)
        self._safe_state_all(reason)
        await self._await_safe_state(timeout)
        await self._stop_polling()
        self._close_backends()
        for handler in list(self.active):
            if handler.transport is not None:
                handler.transport.abort()
        await asyncio.sleep(0)  # let connection_lost run

    async def _stop_accepting(self) -> None:
        """No new connections: the accept loops, listening sockets and SDP servers end."""
        for task in self._accept_tasks:
            task.cancel()
        for task in self._accept_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._accept_tasks.clear()
        for _, sock in self._servers:
            sock.close()
        if self._sdp is not None:
            self._sdp.close()
        for sdp in self.link_sdp:
            sdp.close()

    def _end_sessions(self, reason: str) -> None:
        """End every session and every connection still in its TLS handshake."""
        for handler in list(self.active):
            handler.shutdown(reason)
        for ticket in self.admission.pending(phase=HANDSHAKE):
            ticket.close(reason)

    def _safe_state_all(self, reason: str) -> None:
        """Every connector to the safe state (one failing does not keep the others out)."""
        hal_now = self.station.hal_time(asyncio.get_running_loop().time())
        for c in self.station.connectors:
            try:
                c.controller.safe_state(reason, hal_now)
                self.station.bus.publish(se.SafeState(c.id, time.time(), None, reason))
            except Exception:
                log.exception("connector %s: safe state failed", c.id)

    async def _await_safe_state(self, timeout: float) -> None:
        """Keep polling until every power stage reports the safe state, `timeout` s at most."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and not all(
            c.controller.safe_state_reached for c in self.station.connectors
        ):
            await asyncio.sleep(self.poll_interval)

    async def _stop_polling(self) -> None:
        """The HAL poll loop and the meter reader end."""
        await cancel_task(self._poll_task)
        if self._meter is not None:
            await self._meter.close()

    def _close_backends(self) -> None:
        for c in self.station.connectors:
            try:
                c.backend.close()
            except Exception:
                log.exception("connector %s: closing the HAL backend failed", c.id)

    async def __aenter__(self) -> SeccServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the HAL poll loop ---------------------------------------------------------------

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            self.poll_once()
            next_at += self.poll_interval
            delay = next_at - loop.time()
            if delay < -self.poll_interval:  # fell behind (a blocked loop): do not catch up
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))

    def poll_once(self) -> None:
        """Poll every connector once (the poll task does this every `poll_interval`)."""
        now = asyncio.get_running_loop().time()
        if now >= self._next_expiry:
            self._next_expiry = now + 1.0
            for sid in self.store.expire(now):
                log.info("paused session %s expired", sid.hex().upper())
        hal_now = self.station.hal_time(now)
        for c in self.station.connectors:
            try:
                events = c.controller.poll(hal_now)
            except Exception:
                self.poll_errors += 1
                log.exception("connector %s: controller poll failed", c.id)
                continue
            if self._meter is not None:
                events = [self._meter.apply(c.id, e) for e in events]
            handler = c.handler
            for e in events:
                if isinstance(e, ev.EmergencyStop):
                    self.station.bus.publish(se.Fault(
                        c.id, time.time(), None if handler is None else handler.session_id,
                        e.reason))
            if handler is not None:
                handler.deliver_events(events)

    # -- control from outside (backend, energy manager, tests) ---------------------------

    def _handler(self, connector_id: str) -> _Connection | None:
        return self.station.connector(connector_id).handler

    def send_event(self, connector_id: str, event: ev.Event) -> bool:
        """Hand a charger input (StopRequested, SetpointUpdated, LimitsUpdated, ...) to the
        session on `connector_id`; False when no EV is connected there."""
        handler = self._handler(connector_id)
        if handler is None:
            return False
        handler.deliver_events([event])
        return True

    def stop_session(self, connector_id: str, reason: str = "stop requested") -> bool:
        return self.send_event(connector_id, ev.StopRequested(reason))

    def set_setpoint(self, connector_id: str, power_w: float | None) -> bool:
        return self.send_event(connector_id, ev.SetpointUpdated(power_w))

    def set_power_bound(self, connector_id: str, bound: ev.PowerBoundUpdated) -> bool:
        """The CSMS's bound on `connector_id` (docs/ocpp.md, "Arbitration"): caps the limits
        and every setpoint of the running session at once, and of every later one (kept
        until replaced). False when no EV is connected there now."""
        self._bounds[connector_id] = dataclasses.replace(bound, renegotiate=False)
        return self.send_event(connector_id, bound)

    def power_bound(self, connector_id: str) -> ev.PowerBoundUpdated | None:
        return self._bounds.get(connector_id)

    def _bound_new_connection(self, connector_id: str, conn: SeccConnection) -> None:
        bound = self._bounds.get(connector_id)
        if bound is not None:  # before the EV's first request: its session starts bounded
            conn.charger.update(bound)

    def connection(self, connector_id: str) -> SeccConnection | None:
        """The sans-IO connection on `connector_id` (None: no EV connected there)."""
        handler = self._handler(connector_id)
        return None if handler is None else handler.conn

    def live_summary(self, connector_id: str) -> SessionSummary | None:
        """The record of the session running on `connector_id` (None: no session runs)."""
        handler = self._handler(connector_id)
        summary = handler.summary if handler is not None else None
        return summary if summary is not None and summary.ended_at is None else None

    def record_session(self, summary: SessionSummary) -> None:
        self.sessions.append(summary)
        self.sessions_total += 1
        if self.on_session_end is not None:
            try:
                self.on_session_end(summary)
            except Exception:
                log.exception("on_session_end hook failed")
        keep = self.detailed_sessions_kept
        if len(self.sessions) > keep:
            older = self.sessions[-keep - 1] if keep > 0 else summary
            if not older.compacted:
                older.compact()

    # -- addresses -----------------------------------------------------------------------

    @staticmethod
    def _bound_port(sock: socket.socket) -> int:
        return int(sock.getsockname()[1])

    def _port_of(self, kind: str) -> int | None:
        for k, sock in self._servers:
            if listener_kind(k) == kind and sock.fileno() >= 0:
                return self._bound_port(sock)
        return None

    @property
    def port(self) -> int | None:
        """The plain TCP server's port (None: none running)."""
        return self._port_of("tcp")

    @property
    def tls_port(self) -> int | None:
        return self._port_of("tls")

    @property
    def sdp_port(self) -> int | None:
        if self._sdp is None:
            return None
        return int(self._sdp.get_extra_info("sockname")[1])
