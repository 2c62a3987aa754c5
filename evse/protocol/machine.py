"""The seam between `SeccConnection` (common: V2GTP, supportedAppProtocol) and the machine of
the standard it negotiated (iso20/, iso2/, din/).

After a successful supportedAppProtocol the connection builds the negotiated standard's
machine with `MachineFactory(MachineContext)` and from then on hands it every V2GTP payload
of a type it accepts, every charger event and every timer. A machine is sans-IO like the rest
of the core: time enters as `now`, every effect leaves as a returned `events.Effect`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from evse.protocol import events as ev
from evse.protocol.config import SeccConfig
from evse.protocol.session import ChargerState, Session, SessionStore
from evse.protocol.v2gtp import PayloadType


class ConnectionState(StrEnum):
    """The connection's states outside any standard's machine (values shared with them)."""

    SUPPORTED_APP_PROTOCOL = "SupportedAppProtocol"
    ENDED = "Ended"


class RandomSource(Protocol):
    def token_bytes(self, nbytes: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class MachineContext:
    """What the connection knows when it hands over to a standard's machine."""

    config: SeccConfig
    namespace: str  # the negotiated ProtocolNamespace (e.g. urn:din:70121:2012:MsgDef)
    tls: bool
    created: float  # `now` when the TCP/TLS connection was accepted (communication setup)
    now: float  # `now` of the supportedAppProtocolRes
    charger: ChargerState  # shared with the connection: events before SAP are kept
    store: SessionStore  # paused sessions (resume with the old SessionID)
    rng: RandomSource
    epoch_offset: float  # `now + epoch_offset` = Unix seconds (message TimeStamps)
    peer_certificate: bytes | None  # DER of the vehicle's TLS client certificate
    tls_version: str | None = None  # "TLSv1.2" / "TLSv1.3" on TLS; None: plain TCP, unknown


class StandardMachine(Protocol):
    """One standard's session over one connection (after supportedAppProtocol).

    Every method returns the effects to carry out in order. Once `closed` is true the
    connection calls nothing but the properties. Any end (FAILED, timeout, `abort`) puts the
    power stage into a safe state first (StopPower, OpenContactors) and, if SessionStarted was
    emitted, emits SessionEnded."""

    @property
    def payload_types(self) -> frozenset[PayloadType]:
        """The V2GTP payload types this standard receives; others are discarded unanswered."""
        ...

    @property
    def state(self) -> str:
        """The standard's state name (a StrEnum); ConnectionState.ENDED once ended."""
        ...

    @property
    def closed(self) -> bool: ...

    @property
    def session(self) -> Session | None:
        """The common session record (SessionID, EVCCID, limits, ...) read by the adapters."""
        ...

    def receive_payload(
        self, payload_type: PayloadType, payload: bytes, now: float
    ) -> list[ev.Effect]:
        """One complete V2GTP payload (header removed) of a type in `payload_types`."""
        ...

    def handle_event(self, event: ev.Event, now: float) -> list[ev.Effect]:
        """A fact from the charger (events.py); raise TypeError for a non-SECC event."""
        ...

    def next_deadline(self) -> float | None: ...

    def handle_timeout(self, now: float) -> list[ev.Effect]: ...

    def abort(self, reason: str, now: float, *, close_after: float | None) -> list[ev.Effect]:
        """End at once without an answer (V2GTP stream broken, junk budget spent, connection
        lost: close_after None = the connection is already gone)."""
        ...


MachineFactory = Callable[[MachineContext], StandardMachine]
