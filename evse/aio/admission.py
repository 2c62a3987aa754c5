"""Connection admission: what an accepted socket may cost before it carries a session.

A charger's V2G link is reachable by anything on the PLC segment (or, on a bench, the
LAN), so sockets that never become a session must stay cheap and must never lock a car
out. Every accepted socket gets a `Ticket`; the `Admission` keeps the tickets that have
no session yet, oldest first, and bounds them:

- pending TLS handshakes: `max_handshakes_per_listener` per listener (one interface has a
  TLS and a TCP listener) and `max_handshakes` in total;
- connections without a session (handshaking or connected before SessionSetup):
  `max_presession_per_listener` and `max_presession`.

Over a cap the **oldest** ticket of that group is closed, silent ones (not a byte
received) before the others, never the newcomer itself. A real car sends its ClientHello
at once and finishes its handshake within tens of milliseconds, so it is never the oldest
silent one and rarely the oldest at all; closing the newest instead would let a flood that
keeps the caps full refuse every car that arrives after it. Accepts are paced by a
`TokenBucket` (`accept_rate` per second, bursts of `accept_burst`): beyond that the kernel's
listen backlog holds the connections, so a flood cannot monopolise the event loop.

The ticket also carries why its connection ended (the first reason given wins) and logs
it once, at INFO, with the peer address, when the connection is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

HANDSHAKE, CONNECTED, SESSION, CLOSED = "handshake", "connected", "session", "closed"


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """Bounds for connections without a session (defaults sized for a 512 MB board)."""

    max_handshakes_per_listener: int = 16
    max_handshakes: int = 64
    max_presession_per_listener: int = 32
    max_presession: int = 128
    handshake_timeout: float = 4.0  # seconds from accept to a finished TLS handshake
    # bytes a TLS client may send before its handshake is finished (a ClientHello plus a
    # vehicle certificate chain is a few KiB)
    handshake_max_bytes: int = 32 * 1024
    accept_rate: float = 200.0  # accepted connections per second, sustained
    accept_burst: int = 32
    # a connection that negotiated supportedAppProtocol but has no session yet keeps its
    # connector this long against newcomers (a car sends SessionSetup right after)
    evict_grace: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_handshakes_per_listener", "max_handshakes",
                     "max_presession_per_listener", "max_presession", "handshake_max_bytes",
                     "accept_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not self.handshake_timeout > 0 or not self.accept_rate > 0:
            raise ValueError("handshake_timeout and accept_rate must be > 0")
        if not self.evict_grace >= 0:
            raise ValueError("evict_grace must be >= 0")


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved; time enters as `now` (seconds)."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> float:
        """Take one token; 0.0 when one was available, else the wait (s) until it is."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class Ticket:
    """One accepted connection as admission sees it."""

    def __init__(self, listener: str, peer: str, accepted_at: float, *, tls: bool) -> None:
        self.listener = listener
        self.peer = peer
        self.accepted_at = accepted_at
        self.phase = HANDSHAKE if tls else CONNECTED
        self.reason: str | None = None
        self.connector: str | None = None
        self.bytes_in = 0  # received before the handshake finished (TLS)
        self._abort: Callable[[], None] | None = None

    def set_reason(self, reason: str) -> None:
        """Why the connection ends; the first reason given wins."""
        if self.reason is None:
            self.reason = reason

    def close(self, reason: str) -> None:
        """Drop the connection now (no flush): a stalled or surplus connection."""
        self.set_reason(reason)
        if self._abort is not None:
            abort, self._abort = self._abort, None
            abort()


class Admission:
    """Counts and bounds the connections without a session (see module doc)."""

    def __init__(self, config: AdmissionConfig, now: float) -> None:
        self.config = config
        self.bucket = TokenBucket(config.accept_rate, config.accept_burst, now)
        self._pending: dict[Ticket, None] = {}  # no session yet, oldest first
        self.evicted = 0  # closed to stay within a cap
        self.handshake_failures = 0
        self.handshake_timeouts = 0

    # -- counts --------------------------------------------------------------------------

    def pending(self, *, listener: str | None = None, phase: str | None = None) -> list[Ticket]:
        """Tickets without a session (oldest first), optionally of one listener / phase."""
        return [t for t in self._pending
                if (listener is None or t.listener == listener)
                and (phase is None or t.phase == phase)]

    # -- transitions ---------------------------------------------------------------------

    def admit(self, ticket: Ticket, abort: Callable[[], None]) -> None:
        """A new connection (its transport exists): count it, then close the oldest
        connections of any group that is now over its cap."""
        ticket._abort = abort
        self._pending[ticket] = None
        c = self.config
        if ticket.phase == HANDSHAKE:
            self._enforce(ticket, c.max_handshakes_per_listener, ticket.listener, HANDSHAKE,
                          f"evicted: more than {c.max_handshakes_per_listener} pending TLS "
                          f"handshakes on the {ticket.listener} listener")
            self._enforce(ticket, c.max_handshakes, None, HANDSHAKE,
                          f"evicted: more than {c.max_handshakes} pending TLS handshakes")
        self._enforce(ticket, c.max_presession_per_listener, ticket.listener, None,
                      f"evicted: more than {c.max_presession_per_listener} connections "
                      f"without a session on the {ticket.listener} listener")
        self._enforce(ticket, c.max_presession, None, None,
                      f"evicted: more than {c.max_presession} connections without a session")

    def _enforce(self, newcomer: Ticket, cap: int, listener: str | None, phase: str | None,
                 reason: str) -> None:
        group = self.pending(listener=listener, phase=phase)
        excess = len(group) - cap
        # silent ones first (nothing received: not even a ClientHello), then the oldest;
        # never the newcomer, which has not had a chance to send anything yet
        victims = sorted((t for t in group if t is not newcomer),
                         key=lambda t: (t.bytes_in > 0, t.accepted_at))
        for victim in victims[:max(0, excess)]:
            self.evicted += 1
            self._pending.pop(victim, None)
            victim.close(reason)

    def handshake_done(self, ticket: Ticket) -> None:
        if ticket.phase == HANDSHAKE:
            ticket.phase = CONNECTED

    def session_started(self, ticket: Ticket) -> None:
        """SessionSetup done: no longer counted, never evicted by admission."""
        ticket.phase = SESSION
        self._pending.pop(ticket, None)

    def release(self, ticket: Ticket, default_reason: str) -> None:
        """The connection is gone: uncount it and log why it closed (once)."""
        if ticket.phase == CLOSED:
            return
        ticket.phase = CLOSED
        ticket._abort = None
        self._pending.pop(ticket, None)
        ticket.set_reason(default_reason)
        where = f"connector {ticket.connector}: " if ticket.connector is not None else ""
        log.info("%sconnection from %s (%s) closed: %s", where, ticket.peer, ticket.listener,
                 ticket.reason)
