"""`SeccConnection`: the sans-IO SECC, one per TCP/TLS connection, whatever the standard.

    conn = SeccConnection(config, tls=True, now=loop.time(), session_store=store,
                          peer_certificate=der)  # der: the vehicle certificate, if any
    effects = conn.receive_data(data, now)      # bytes from the socket
    effects = conn.handle_event(event, now)     # facts from the charger (events.py)
    deadline = conn.next_deadline()             # call handle_timeout(now) when reached
    effects = conn.handle_timeout(now)

Every call returns effects to carry out in order (events.py). Time only enters as `now`
(any monotonic clock); message TimeStamps are `now + epoch_offset` (Unix seconds).

The connection reassembles V2GTP frames and negotiates supportedAppProtocol (sap.py, from the
registry in standards.py); then it hands the connection to the negotiated standard's machine
(machine.py: iso20/ today), which answers every later payload, event and timer. A V2GTP
frame with a bad header (version bytes; a type not allowed here: before the negotiation all
but SAP, after it all but the machine's payload types; an empty payload) is discarded
without an answer, within a budget (discard.py).
"""

from __future__ import annotations

import secrets

import exi_codec
from evse.protocol import events as ev
from evse.protocol.config import SeccConfig
from evse.protocol.discard import DiscardBudget
from evse.protocol.machine import (
    ConnectionState,
    MachineContext,
    RandomSource,
    StandardMachine,
)
from evse.protocol.sap import answer
from evse.protocol.sap import failed_response as sap_failed
from evse.protocol.session import ChargerState, Session, SessionStore
from evse.protocol.standards import standard_for
from evse.protocol.v2gtp import PayloadType, V2GTPError, V2GTPReassembler
from evse.protocol.v2gtp import encode_frame as frame

_SAP_ONLY = frozenset({PayloadType.SAP})

__all__ = ["RandomSource", "SeccConnection"]


class SeccConnection:
    def __init__(
        self,
        config: SeccConfig,
        *,
        tls: bool,
        now: float,
        session_store: SessionStore | None = None,
        rng: RandomSource = secrets,
        epoch_offset: float = 0.0,
        peer_certificate: bytes | None = None,
        tls_version: str | None = None,
    ) -> None:
        self.config = config
        self.tls = tls
        # the negotiated TLS version ("TLSv1.2", "TLSv1.3"); None: plain TCP or not known.
        # supportedAppProtocol refuses a standard on a version it does not allow (-20 on 1.2).
        self.tls_version = tls_version if tls else None
        # DER of the vehicle's TLS client certificate (mutual TLS), None without one; binds
        # a paused session to the vehicle (session.py resume_binding).
        self.peer_certificate = bytes(peer_certificate) if peer_certificate else None
        self.charger = ChargerState(limits=config.limits)
        self.protocol: str | None = None  # the negotiated namespace
        self.machine: StandardMachine | None = None  # built by a successful negotiation
        self._closed = False
        self._store = session_store if session_store is not None else SessionStore()
        self._rng = rng
        self._epoch_offset = epoch_offset
        self._reassembler = V2GTPReassembler(
            max_payload=config.max_payload, accepted_types=_SAP_ONLY, discard_invalid=True
        )
        self._discards = DiscardBudget(config.max_ignored_frames, config.max_ignored_bytes)
        self._created = now

    @property
    def session(self) -> Session | None:
        """The negotiated standard's session record, None before the negotiation."""
        return self.machine.session if self.machine is not None else None

    @property
    def closed(self) -> bool:
        return self.machine.closed if self.machine is not None else self._closed

    @property
    def state(self) -> str:
        if self.machine is not None:
            return self.machine.state
        return ConnectionState.ENDED if self._closed else ConnectionState.SUPPORTED_APP_PROTOCOL

    # -- inputs --------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[ev.Effect]:
        effects = self.handle_timeout(now)
        if self.closed:
            return effects
        try:
            for item in self._reassembler.frames(data):
                if isinstance(item, V2GTPError):  # discarded: no answer, only counted
                    reason = self._discards.spend(item)
                    if reason is not None:
                        effects += self._abort(reason, now, close_after=0.0)
                else:
                    self._discards.reset()
                    effects += self._on_frame(item.payload_type, item.payload, now)
                if self.closed:
                    break
        except V2GTPError as exc:  # CLOSE: the stream cannot be trusted any more
            effects += self._abort(f"V2GTP error: {exc}", now, close_after=0.0)
        return effects

    def handle_event(self, event: ev.Event, now: float) -> list[ev.Effect]:
        if self.machine is not None:
            return self.machine.handle_event(event, now)
        effects = self.handle_timeout(now)
        if isinstance(event, ev.ConnectionLost):
            if not self._closed:
                effects += self._abort(event.reason, now, close_after=None)
        elif isinstance(event, ev.CableCheckFinished):
            pass  # no cable check before the negotiation
        elif not self.charger.update(event):
            raise TypeError(f"not an SECC input event: {event!r}")
        if isinstance(event, ev.EmergencyStop):
            effects += [ev.StopPower(), ev.OpenContactors()]  # at once, whatever the state
        return effects

    # -- timers --------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `handle_timeout` must be called next (same clock as `now`), None if never."""
        if self.machine is not None:
            return self.machine.next_deadline()
        if self._closed:
            return None
        return self._created + self.config.timeouts.communication_setup

    def handle_timeout(self, now: float) -> list[ev.Effect]:
        if self.machine is not None:
            return self.machine.handle_timeout(now)
        deadline = self.next_deadline()
        if deadline is None or deadline > now:
            return []
        return self._abort("communication setup timeout", now, close_after=0.0)

    # -- frames --------------------------------------------------------------------------------

    def _on_frame(self, payload_type: PayloadType, payload: bytes, now: float) -> list[ev.Effect]:
        if self.machine is not None:
            return self.machine.receive_payload(payload_type, payload, now)
        res, namespace = sap_failed(), None
        if payload_type == PayloadType.SAP:
            res, namespace = answer(payload, self.config, tls=self.tls,
                                    tls_version=self.tls_version)
        t = self.config.timeouts
        data = frame(PayloadType.SAP, exi_codec.encode(res))
        effects: list[ev.Effect] = [ev.SendData(data, deadline=now + t.performance)]
        standard = standard_for(namespace) if namespace is not None else None
        if namespace is None or standard is None or standard.factory is None:
            self._closed = True
            close = ev.CloseConnection(t.close_after_session_stop, reason="no protocol negotiated")
            return effects + [close]
        self.protocol = namespace
        self.machine = standard.factory(MachineContext(
            config=self.config,
            namespace=namespace,
            tls=self.tls,
            tls_version=self.tls_version,
            created=self._created,
            now=now,
            charger=self.charger,
            store=self._store,
            rng=self._rng,
            epoch_offset=self._epoch_offset,
            peer_certificate=self.peer_certificate,
        ))
        self._reassembler.accepted_types = self.machine.payload_types
        return effects

    def _abort(self, reason: str, now: float, *, close_after: float | None) -> list[ev.Effect]:
        if self.machine is not None:
            return self.machine.abort(reason, now, close_after=close_after)
        self._closed = True
        if close_after is None:
            return []
        return [ev.CloseConnection(after_s=close_after, reason=reason)]
