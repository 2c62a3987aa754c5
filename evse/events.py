"""Session events: what happens on each connector, as typed events, for integrators.

    async with station.events() as stream:          # or: server.events()
        async for event in stream:
            match event:
                case SessionStarted(): ...
                case Measurement(power_w=p): ...
                case EventsDropped(count=n): ...   # this consumer was too slow: n lost
                case SessionEnded(summary=s): ...

    handle = station.on_event(callback)             # callbacks (plain or async functions)
    handle.close()

Every event is a frozen dataclass with `connector_id`, `at` (Unix seconds) and, where one
exists, `session_id` (hex, upper case). The producer is the server (it sees every effect of
the SECC); the public API is these types, `EventBus.subscribe` (`Station.events`) and
`EventBus.on_event` (`Station.on_event`).

Back-pressure can never slow the charge loop: `EventBus.publish` is O(1) per consumer and
never blocks (an append to that consumer's bounded queues and a wake-up). A consumer has two
queues:

- measurements (`Measurement`, rate-limited by the bus to one per `measurement_interval` per
  connector): when full, the oldest is dropped and the consumer later receives
  `EventsDropped(count)` in its stream, before the next event;
- lifecycle events (everything else): a larger bounded queue, never dropped silently; if even
  that overflows the consumer is disconnected: it receives what was queued, then
  `ConsumerOverflow(lost)`, and the iteration ends (a callback consumer's handle closes).

Events keep their publication order across the two queues.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

    from evse.aio.session_records import SessionSummary

log = logging.getLogger(__name__)

__all__ = [
    "AuthorizationDecided",
    "AuthorizationRequested",
    "ConsumerOverflow",
    "EventBus",
    "EventHandle",
    "EventsDropped",
    "Fault",
    "Measurement",
    "Plugged",
    "ScheduleSent",
    "SafeState",
    "ServiceSelected",
    "SessionEnded",
    "SessionEvent",
    "SessionPaused",
    "SessionResumed",
    "SessionStarted",
    "SessionWarning",
    "Subscription",
    "Unplugged",
]

# -- the events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plugged:
    """A vehicle was plugged in (pilot state A -> B), on connectors with a pilot/SLAC link
    (evse/aio/connector_link.py)."""

    connector_id: str
    at: float


@dataclass(frozen=True, slots=True)
class Unplugged:
    """The vehicle was unplugged (pilot state back to A)."""

    connector_id: str
    at: float


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """SessionSetup answered: a new session, or a paused one resumed (`resumed`)."""

    connector_id: str
    at: float
    session_id: str
    protocol: str  # the negotiated namespace (urn:iso:std:iso:15118:-20:..., DIN, -2)
    evcc_id: str
    resumed: bool = False
    tls: bool = False
    peer: str = ""


@dataclass(frozen=True, slots=True)
class AuthorizationRequested:
    """The SECC asks for authorization (EIM or PnC); `AuthorizationDecided` follows."""

    connector_id: str
    at: float
    session_id: str | None
    method: str  # "EIM" or "PnC"
    evcc_id: str
    emaid: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationDecided:
    """The authorization hook's answer, as delivered to the SECC."""

    connector_id: str
    at: float
    session_id: str | None
    granted: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ServiceSelected:
    """The EV chose an energy service (1 AC, 2 DC, 5 AC_BPT, 6 DC_BPT) and a control mode
    (1 Scheduled, 2 Dynamic)."""

    connector_id: str
    at: float
    session_id: str | None
    service_id: int
    control_mode: int
    bidirectional: bool


@dataclass(frozen=True, slots=True)
class ScheduleSent:
    """A charging schedule went to the EV (ScheduleExchange); `schedule` is the protocol
    object as sent (standard-specific)."""

    connector_id: str
    at: float
    session_id: str | None
    schedule: Any = None


@dataclass(frozen=True, slots=True)
class Measurement:
    """The connector's readings during a session (rate-limited by the bus: at most one per
    `EventBus.measurement_interval` per connector). Power < 0: the EV discharges."""

    connector_id: str
    at: float
    session_id: str | None
    voltage_v: float
    current_a: float
    power_w: float
    energy_in_wh: float | None = None  # to the EV since the session started
    energy_out_wh: float | None = None  # from the EV since the session started


@dataclass(frozen=True, slots=True)
class SessionPaused:
    """The session was paused (SessionStop with Pause); it may resume later."""

    connector_id: str
    at: float
    session_id: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SessionResumed:
    """A paused session was joined again (SessionSetup with its old SessionID)."""

    connector_id: str
    at: float
    session_id: str


@dataclass(frozen=True, slots=True)
class Fault:
    """Something failed on the connector (a failed session, an internal error, a safety
    trip); `SafeState` follows when the power stage was brought down."""

    connector_id: str
    at: float
    session_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class SafeState:
    """The connector was put in the safe state (power off, contactors open)."""

    connector_id: str
    at: float
    session_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class SessionWarning:
    """A problem the session survived (e.g. `energy_policy`: the schedule provider failed and
    the EV got the default schedule)."""

    connector_id: str
    at: float
    session_id: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session is over; `summary` is its `SessionSummary` (energy, reason, turnaround)."""

    connector_id: str
    at: float
    session_id: str
    reason: str
    failed: bool
    paused: bool
    summary: SessionSummary


@dataclass(frozen=True, slots=True)
class EventsDropped:
    """This consumer did not keep up: `count` measurements of `connector_id` were dropped
    since its last event. Only measurements are ever dropped."""

    connector_id: str
    at: float
    count: int


@dataclass(frozen=True, slots=True)
class ConsumerOverflow:
    """This consumer's lifecycle queue overflowed: it is disconnected (the last event of its
    stream). `lost` lifecycle events were not delivered to it."""

    connector_id: str  # "" when the subscription spans every connector
    at: float
    lost: int


SessionEvent = (
    Plugged
    | Unplugged
    | SessionStarted
    | AuthorizationRequested
    | AuthorizationDecided
    | ServiceSelected
    | ScheduleSent
    | Measurement
    | SessionPaused
    | SessionResumed
    | Fault
    | SafeState
    | SessionWarning
    | SessionEnded
    | EventsDropped
    | ConsumerOverflow
)

# -- the bus ---------------------------------------------------------------------------------

DEFAULT_MEASUREMENTS_MAX = 16
DEFAULT_LIFECYCLE_MAX = 1024


class Subscription:
    """One consumer's view of the stream: an async iterator (and async context manager).

    Created by `EventBus.subscribe`; `close()` (or leaving `async with`) unsubscribes."""

    def __init__(self, bus: EventBus, connector_id: str | None, measurements_max: int,
                 lifecycle_max: int) -> None:
        if measurements_max < 1 or lifecycle_max < 1:
            raise ValueError("queue sizes must be >= 1")
        self._bus = bus
        self.connector_id = connector_id
        self._measurements: deque[tuple[int, SessionEvent]] = deque()
        self._lifecycle: deque[tuple[int, SessionEvent]] = deque()
        self._measurements_max = measurements_max
        self._lifecycle_max = lifecycle_max
        self._dropped: dict[str, int] = {}  # per connector, not yet reported
        self.dropped_total = 0  # measurements dropped over the subscription's life
        self._lost = 0  # lifecycle events lost after an overflow
        self._overflowed = False
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    # -- producer side (O(1), never blocks) ----------------------------------------------

    def _offer(self, seq: int, event: SessionEvent) -> None:
        if self.closed:
            return
        if self.connector_id is not None and event.connector_id != self.connector_id:
            return
        if self._overflowed:
            if not isinstance(event, Measurement):
                self._lost += 1
            return
        if isinstance(event, Measurement):
            if len(self._measurements) >= self._measurements_max:
                _, old = self._measurements.popleft()  # keep the freshest readings
                self._dropped[old.connector_id] = self._dropped.get(old.connector_id, 0) + 1
                self.dropped_total += 1
            self._measurements.append((seq, event))
        elif len(self._lifecycle) >= self._lifecycle_max:
            # disconnect: never block, never lose silently; until the consumer reads the
            # notice, the lifecycle events it misses are only counted
            self._overflowed = True
            self._lost = 1
        else:
            self._lifecycle.append((seq, event))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- consumer side -------------------------------------------------------------------

    def get_nowait(self) -> SessionEvent | None:
        """The next event, or None when nothing is queued (or the stream is over)."""
        if self._dropped:
            connector, count = next(iter(self._dropped.items()))
            del self._dropped[connector]
            return EventsDropped(connector, self._bus.clock(), count)
        m, lc = self._measurements, self._lifecycle
        if m and (not lc or m[0][0] < lc[0][0]):
            return m.popleft()[1]
        if lc:
            return lc.popleft()[1]
        if self._overflowed and not self.closed:
            self.closed = True
            self._bus._unsubscribe(self)
            return ConsumerOverflow(self.connector_id or "", self._bus.clock(), self._lost)
        return None

    async def get(self) -> SessionEvent:
        """The next event; raises `StopAsyncIteration` once the subscription is closed."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def qsize(self) -> int:
        return len(self._measurements) + len(self._lifecycle)

    def close(self) -> None:
        """Unsubscribe; a pending `get` ends with StopAsyncIteration."""
        if self.closed:
            return
        self.closed = True
        self._bus._unsubscribe(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[SessionEvent]:
        return self

    async def __anext__(self) -> SessionEvent:
        return await self.get()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


Callback = Callable[[SessionEvent], Awaitable[None] | None]


class EventHandle:
    """A callback consumer (`EventBus.on_event`): a task drains its own subscription and
    calls the callback, so a slow callback is a slow consumer like any other."""

    def __init__(self, subscription: Subscription, callback: Callback) -> None:
        self.subscription = subscription
        self._callback = callback
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._run(), name="session-event-callback")

    async def _run(self) -> None:
        async for event in self.subscription:
            try:
                result = self._callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a consumer's bug must not end its stream
                log.exception("session event callback failed on %r", event)

    def close(self) -> None:
        self.subscription.close()


class EventBus:
    """One producer (the server), many consumers, none able to block the producer.

    `measurement_interval`: at most one `Measurement` per connector per this many seconds
    (by the events' `at`); the others are not published at all. `clock`: Unix time for the
    `EventsDropped`/`ConsumerOverflow` notices (the events themselves carry their own `at`).
    """

    def __init__(self, *, measurement_interval: float = 1.0,
                 clock: Callable[[], float] | None = None) -> None:
        self.measurement_interval = measurement_interval
        self.clock: Callable[[], float] = clock if clock is not None else time.time
        self._subscribers: list[Subscription] = []
        self._seq = itertools.count()
        self._last_measurement: dict[str, float] = {}
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def wants_measurement(self, connector_id: str, at: float) -> bool:
        """Would a measurement of `connector_id` at `at` be published? (Lets the producer
        skip building one: the charge loop pays nothing between two published readings.)"""
        if not self._subscribers:
            return False
        last = self._last_measurement.get(connector_id)
        return last is None or at - last >= self.measurement_interval

    def publish(self, event: SessionEvent) -> None:
        """Hand `event` to every consumer: O(1) each, never blocks, never raises for them."""
        if isinstance(event, Measurement):
            if not self.wants_measurement(event.connector_id, event.at):
                return
            self._last_measurement[event.connector_id] = event.at
        if not self._subscribers:
            return
        self.published += 1
        seq = next(self._seq)
        for sub in tuple(self._subscribers):
            sub._offer(seq, event)

    def subscribe(self, connector_id: str | None = None, *,
                  measurements_max: int = DEFAULT_MEASUREMENTS_MAX,
                  lifecycle_max: int = DEFAULT_LIFECYCLE_MAX) -> Subscription:
        """A new consumer of every connector's events (or only `connector_id`'s)."""
        sub = Subscription(self, connector_id, measurements_max, lifecycle_max)
        self._subscribers.append(sub)
        return sub

    def on_event(self, callback: Callback, connector_id: str | None = None, *,
                 measurements_max: int = DEFAULT_MEASUREMENTS_MAX,
                 lifecycle_max: int = DEFAULT_LIFECYCLE_MAX) -> EventHandle:
        """Call `callback` (a function or a coroutine function) with each event, from a task
        of its own (needs a running loop); `close()` the handle to stop."""
        return EventHandle(self.subscribe(connector_id, measurements_max=measurements_max,
                                          lifecycle_max=lifecycle_max), callback)

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)
        if sub._waiter is not None and not sub._waiter.done():
            sub._waiter.set_result(None)

    def close(self) -> None:
        """End every consumer's stream (after what is queued for it)."""
        for sub in tuple(self._subscribers):
            sub.close()
