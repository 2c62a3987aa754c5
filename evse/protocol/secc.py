"""`SeccConnection`: the sans-IO ISO 15118-20 SECC, one per TCP/TLS connection.

    conn = SeccConnection(config, tls=True, now=loop.time(), session_store=store,
                          peer_certificate=der)  # der: the vehicle certificate, if any
    effects = conn.receive_data(data, now)      # bytes from the socket
    effects = conn.handle_event(event, now)     # facts from the charger (events.py)
    deadline = conn.next_deadline()             # call handle_timeout(now) when reached
    effects = conn.handle_timeout(now)

Every call returns effects to carry out in order (events.py). Time only enters as `now`
(any monotonic clock); message TimeStamps are `now + epoch_offset` (Unix seconds). Every
call first runs the timers that are due. Any FAILED response, timeout or lost connection
ends the session with StopPower and OpenContactors first.
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

import exi_codec
from evse.protocol import events as ev
from evse.protocol.config import SeccConfig
from evse.protocol.errors import Failed, ProtocolError, SequenceError, UnknownSession
from evse.protocol.handlers import HANDLERS, Inputs
from evse.protocol.messages import PAYLOAD_SCHEMAS, REQUESTS, MessageSpec, failed_response
from evse.protocol.sap import answer
from evse.protocol.sap import failed_response as sap_failed
from evse.protocol.session import ZERO_SESSION_ID, ChargerState, Session, SessionStore
from evse.protocol.states import ENERGY_STATES, TRANSITIONS, State, expected_request, outcome
from evse.protocol.v2gtp import PayloadType, UnknownPayloadType, V2GTPError, V2GTPReassembler
from evse.protocol.v2gtp import encode_frame as frame
from exi_codec import ExiDecodeError

_STOPPING = frozenset({State.DC_POWER_OFF, State.DC_WELDING_DETECTION, State.AC_POWER_OFF})
_TERMINAL = (ev.SessionEnded, ev.CloseConnection)


class RandomSource(Protocol):
    def token_bytes(self, nbytes: int) -> bytes: ...


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
    ) -> None:
        self.config = config
        self.tls = tls
        # DER of the vehicle's TLS client certificate (mutual TLS), None without one; binds
        # a paused session to the vehicle (session.py resume_binding).
        self.peer_certificate = bytes(peer_certificate) if peer_certificate else None
        self.charger = ChargerState(limits=config.limits)
        self.session: Session | None = None  # created by a successful supportedAppProtocol
        self.protocol: str | None = None
        self.closed = False
        self._store = session_store if session_store is not None else SessionStore()
        self._rng = rng
        self._epoch_offset = epoch_offset
        self._reassembler = V2GTPReassembler(max_payload=config.max_payload)
        self._created = now
        self._sequence_deadline: float | None = None
        self._started = False  # SessionStarted was emitted: SessionEnded will be too

    @property
    def state(self) -> State:
        if self.session is not None:
            return self.session.state
        return State.ENDED if self.closed else State.SUPPORTED_APP_PROTOCOL

    # -- inputs --------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[ev.Effect]:
        effects = self.handle_timeout(now)
        if self.closed:
            return effects
        try:
            for item in self._reassembler.frames(data):
                if isinstance(item, UnknownPayloadType):
                    continue  # skipped by the reassembler; the stream is still in sync
                effects += self._on_frame(item.payload_type, item.payload, now)
                if self.closed:
                    break
        except V2GTPError as exc:  # CLOSE: the stream cannot be trusted any more
            effects += self._end(f"V2GTP error: {exc}", now, close_after=0.0)
        return effects

    def handle_event(self, event: ev.Event, now: float) -> list[ev.Effect]:
        effects = self.handle_timeout(now)
        session = self.session
        if isinstance(event, ev.CableCheckFinished):
            # Only a result for the cable check in progress counts.
            if session and session.cable_check_started and session.state == State.DC_CABLE_CHECK:
                self.charger.isolation_ok = event.isolation_ok
        elif isinstance(event, ev.ConnectionLost):
            if not self.closed:
                effects += self._end(event.reason, now, close_after=None)
        elif not self.charger.update(event):
            raise TypeError(f"not an SECC input event: {event!r}")
        if isinstance(event, ev.EmergencyStop):
            effects += [ev.StopPower(), ev.OpenContactors()]  # at once, whatever the state
        return effects

    # -- timers --------------------------------------------------------------------------------

    def _deadlines(self) -> dict[str, float]:
        if self.closed:
            return {}
        t, s = self.config.timeouts, self.session
        out: dict[str, float] = {}
        if s is None or not s.established:
            out["communication setup timeout"] = self._created + t.communication_setup
        if self._sequence_deadline is not None:
            out["sequence timeout: the EV sent no request"] = self._sequence_deadline
        if s is not None:
            out.update(s.deadlines(t, self.config.notification_max_delay))
        return out

    def next_deadline(self) -> float | None:
        """When `handle_timeout` must be called next (same clock as `now`), None if never."""
        return min(self._deadlines().values(), default=None)

    def handle_timeout(self, now: float) -> list[ev.Effect]:
        expired = [reason for reason, at in self._deadlines().items() if at <= now]
        if not expired:
            return []
        return self._end(expired[0], now, close_after=0.0)

    # -- frames --------------------------------------------------------------------------------

    def _on_frame(self, payload_type: PayloadType, payload: bytes, now: float) -> list[ev.Effect]:
        if self.session is None:
            return self._on_sap(payload_type, payload, now)
        schema = PAYLOAD_SCHEMAS.get(payload_type)
        if schema is None:
            return self._unidentified(f"payload type {payload_type:#06x} not supported", now)
        try:
            msg = exi_codec.decode(payload, schema)
        except ExiDecodeError as exc:
            spec = REQUESTS.get(exc.path[0]) if exc.path else None
            if spec is not None and spec.schema == schema:
                return self._fail(spec, Failed(f"undecodable {spec.request}: {exc}"), now)
            return self._unidentified(f"undecodable EXI: {exc}", now)
        spec = REQUESTS.get(type(msg).__name__)
        if spec is None:
            return self._unidentified(f"{type(msg).__name__} is not a request", now)
        return self._on_request(msg, spec, now)

    def _on_sap(self, payload_type: PayloadType, payload: bytes, now: float) -> list[ev.Effect]:
        res, namespace = sap_failed(), None
        if payload_type == PayloadType.SAP:
            res, namespace = answer(payload, self.config, tls=self.tls)
        t = self.config.timeouts
        data = frame(PayloadType.SAP, exi_codec.encode(res))
        effects: list[ev.Effect] = [ev.SendData(data, deadline=now + t.performance)]
        if namespace is None:
            self.closed = True
            return effects + [ev.CloseConnection(
                after_s=t.close_after_session_stop,
                reason="supportedAppProtocol: no protocol in common")]
        self.protocol = namespace
        self.session = Session(protocol=namespace)
        self._sequence_deadline = now + t.sequence
        return effects

    def _unidentified(self, reason: str, now: float) -> list[ev.Effect]:
        expected = expected_request(self.state)
        if expected is None:
            return self._end(reason, now, close_after=0.0)
        return self._fail(REQUESTS[expected], Failed(reason), now)

    # -- requests ------------------------------------------------------------------------------

    def _check(self, msg: Any, name: str, session: Session) -> None:
        ev_id = bytes(msg.header.session_id)
        if session.established and name != "SessionSetupReq" and ev_id != session.session_id:
            raise UnknownSession(f"SessionID {ev_id.hex()} unknown")
        if name not in TRANSITIONS.get(session.state, {}):
            raise SequenceError(f"{name} not allowed in state {session.state}")
        charger = self.charger
        if charger.emergency_reason is not None:
            raise Failed(charger.emergency_reason, terminate=True)
        stopping = session.state in ENERGY_STATES or session.state in _STOPPING
        if charger.stop_reason is not None and not stopping and name != "SessionStopReq":
            raise Failed(charger.stop_reason)

    def _on_request(self, msg: Any, spec: MessageSpec, now: float) -> list[ev.Effect]:
        session, name = self.session, spec.request
        assert session is not None
        row = TRANSITIONS.get(session.state, {})
        try:
            self._check(msg, name, session)
            res, effects = HANDLERS[name](msg, session, self._inputs(name, now))
            key = outcome(msg, res, session.energy)
            next_state = row[name].get(key)
            if next_state is None:
                raise SequenceError(f"{name} ({key}) not allowed in state {session.state}")
            data = frame(spec.payload_type, exi_codec.encode(res))
        except ProtocolError as exc:
            return self._fail(spec, exc, now, msg)
        except Exception as exc:  # a bug must still leave the charger safe
            return self._fail(spec, Failed(f"internal error: {exc!r}"), now, msg)
        if str(res.response_code).startswith("FAILED"):
            return self._fail(spec, ProtocolError(str(res.response_code)), now, msg)
        session.state = next_state
        processing = getattr(res, "evse_processing", None)
        if processing is None or processing == "Finished":
            session.ongoing_since = None
        elif session.ongoing_since is None:
            session.ongoing_since = now
        send = ev.SendData(data, deadline=now + self.config.timeouts.performance_time(name))
        out: list[ev.Effect] = [e for e in effects if not isinstance(e, _TERMINAL)]
        out += [send, *(e for e in effects if isinstance(e, _TERMINAL))]
        for effect in effects:
            if isinstance(effect, ev.SessionStarted):
                self._started = True
                if effect.resumed:
                    self._store.take(effect.session_id)
            elif isinstance(effect, ev.StartCableCheck):
                self.charger.isolation_ok = None
        if key == "pause":
            self._store.pause(session)
        if session.state == State.ENDED:
            self.closed = True
            self._sequence_deadline = None
        else:
            self._sequence_deadline = now + self.config.timeouts.sequence_after(name)
        return out

    def _inputs(self, name: str, now: float) -> Inputs:
        new_id, challenge = ZERO_SESSION_ID, None
        if name == "SessionSetupReq":
            while new_id == ZERO_SESSION_ID or new_id in self._store:
                new_id = self._rng.token_bytes(8)
        elif name == "AuthorizationSetupReq" and self.config.offer_pnc and self.tls:
            challenge = self._rng.token_bytes(16)
        return Inputs(
            now=now,
            timestamp=self._timestamp(now),
            config=self.config,
            charger=self.charger,
            tls=self.tls,
            new_session_id=new_id,
            gen_challenge=challenge,
            paused=self._store,
            vehicle_certificate=self.peer_certificate if self.tls else None,
        )

    def _timestamp(self, now: float) -> int:
        return max(0, int(now + self._epoch_offset))

    # -- ending --------------------------------------------------------------------------------

    def _fail(
        self, spec: MessageSpec, exc: ProtocolError, now: float, req: Any = None
    ) -> list[ev.Effect]:
        """Answer `spec` with the error's FAILED code, then end the session."""
        session = self.session
        session_id = ZERO_SESSION_ID
        if session is not None and session.established:
            session_id = session.session_id
        elif req is not None:
            session_id = bytes(req.header.session_id)
        limits = self.charger.limits
        res = failed_response(
            spec,
            exc.response_code,
            session_id=session_id,
            timestamp=self._timestamp(now),
            req=req,
            evse_id=self.config.evse_id,
            service_id=int(self.config.services[0]),
            present_voltage=self.charger.present_voltage,
            present_current=self.charger.present_current,
            nominal_frequency=limits.nominal_frequency,
            terminate=exc.terminate or self.charger.emergency_reason is not None,
        )
        send = ev.SendData(frame(spec.payload_type, exi_codec.encode(res, strict=False)))
        reason = exc.response_code
        if exc.reason != exc.response_code:
            reason += f": {exc.reason}"
        return self._end(
            reason, now, send=send, close_after=self.config.timeouts.close_after_session_stop
        )

    def _end(
        self,
        reason: str,
        now: float,
        *,
        send: ev.SendData | None = None,
        close_after: float | None,
    ) -> list[ev.Effect]:
        """Safe state first, then the response (if any), SessionEnded, CloseConnection."""
        effects: list[ev.Effect] = []
        if self.session is not None:
            effects += [ev.StopPower(), ev.OpenContactors()]
            self.session.state = State.ENDED
            self.session.energy_flowing = False
        if send is not None:
            effects.append(send)
        if self._started:
            effects.append(ev.SessionEnded(reason=reason, failed=True))
        if close_after is not None:
            effects.append(ev.CloseConnection(after_s=close_after, reason=reason))
        self.closed = True
        self._sequence_deadline = None
        return effects
