"""`Iso20Machine`: the ISO 15118-20 session of one connection after supportedAppProtocol
(the `StandardMachine` of machine.py; `SeccConnection` builds it for a -20 namespace).

Received EXI is decoded with the maximum length facets enforced: an over-long field is a
schema violation (FAILED, the session ends). Every call first runs the timers that are due.
Any FAILED response, timeout or lost connection ends the session with StopPower and
OpenContactors first.
"""

from __future__ import annotations

from typing import Any

import exi_codec
from evse.protocol import events as ev
from evse.protocol.errors import Failed, ProtocolError, SequenceError, UnknownSession
from evse.protocol.iso20.handlers import HANDLERS, Inputs
from evse.protocol.iso20.handlers.common import response_code
from evse.protocol.iso20.messages import (
    PAYLOAD_SCHEMAS,
    REQUESTS,
    MessageSpec,
    failed_response,
)
from evse.protocol.iso20.states import ENERGY_STATES, TRANSITIONS, State, expected_request
from evse.protocol.iso20.states import outcome as transition_outcome
from evse.protocol.machine import MachineContext
from evse.protocol.session import ZERO_SESSION_ID, Session
from evse.protocol.v2gtp import PayloadType
from evse.protocol.v2gtp import encode_frame as frame
from exi_codec import ExiDecodeError

_STOPPING = frozenset({State.DC_POWER_OFF, State.DC_WELDING_DETECTION, State.AC_POWER_OFF})
_TERMINAL = (ev.SessionEnded, ev.CloseConnection)
PAYLOAD_TYPES = frozenset(PAYLOAD_SCHEMAS)  # the -20 main streams we implement


class Iso20Machine:
    def __init__(self, ctx: MachineContext) -> None:
        self.config = ctx.config
        self.tls = ctx.tls
        self.charger = ctx.charger
        self.peer_certificate = ctx.peer_certificate
        self._session = Session(protocol=ctx.namespace)
        self._store = ctx.store
        self._rng = ctx.rng
        self._epoch_offset = ctx.epoch_offset
        self._created = ctx.created
        self._closed = False
        self._sequence_deadline: float | None = ctx.now + ctx.config.timeouts.sequence
        self._started = False  # SessionStarted was emitted: SessionEnded will be too

    payload_types = PAYLOAD_TYPES

    @property
    def session(self) -> Session:
        return self._session

    @property
    def state(self) -> State:
        return self._session.state

    @property
    def closed(self) -> bool:
        return self._closed

    # -- inputs --------------------------------------------------------------------------------

    def receive_payload(
        self, payload_type: PayloadType, payload: bytes, now: float
    ) -> list[ev.Effect]:
        effects = self.handle_timeout(now)
        if self._closed:
            return effects
        schema = PAYLOAD_SCHEMAS.get(payload_type)
        if schema is None:
            return effects + self._unidentified(f"payload type {payload_type:#06x}", now)
        try:
            msg = exi_codec.decode(payload, schema, max_lengths=True)
        except ExiDecodeError as exc:
            spec = REQUESTS.get(exc.path[0]) if exc.path else None
            if spec is not None and spec.schema == schema:
                return effects + self._fail(spec, Failed(f"undecodable {spec.request}: {exc}"), now)
            return effects + self._unidentified(f"undecodable EXI: {exc}", now)
        spec = REQUESTS.get(type(msg).__name__)
        if spec is None:
            return effects + self._unidentified(f"{type(msg).__name__} is not a request", now)
        return effects + self._on_request(msg, spec, now)

    def handle_event(self, event: ev.Event, now: float) -> list[ev.Effect]:
        effects = self.handle_timeout(now)
        session = self._session
        if isinstance(event, ev.CableCheckFinished):
            # Only a result for the cable check in progress counts.
            if session.cable_check_started and session.state == State.DC_CABLE_CHECK:
                self.charger.isolation_ok = event.isolation_ok
        elif isinstance(event, ev.ConnectionLost):
            if not self._closed:
                effects += self.abort(event.reason, now, close_after=None)
        elif not self.charger.update(event):
            raise TypeError(f"not an SECC input event: {event!r}")
        if isinstance(event, ev.EmergencyStop):
            effects += [ev.StopPower(), ev.OpenContactors()]  # at once, whatever the state
        return effects

    # -- timers --------------------------------------------------------------------------------

    def _deadlines(self) -> dict[str, float]:
        if self._closed:
            return {}
        t, s = self.config.timeouts, self._session
        out: dict[str, float] = {}
        if not s.established:
            out["communication setup timeout"] = self._created + t.communication_setup
        if self._sequence_deadline is not None:
            out["sequence timeout: the EV sent no request"] = self._sequence_deadline
        out.update(s.deadlines(t, self.config.notification_max_delay))
        return out

    def next_deadline(self) -> float | None:
        return min(self._deadlines().values(), default=None)

    def handle_timeout(self, now: float) -> list[ev.Effect]:
        expired = [reason for reason, at in self._deadlines().items() if at <= now]
        if not expired:
            return []
        return self.abort(expired[0], now, close_after=0.0)

    # -- requests ------------------------------------------------------------------------------

    def _unidentified(self, reason: str, now: float) -> list[ev.Effect]:
        expected = expected_request(self.state)
        if expected is None:
            return self.abort(reason, now, close_after=0.0)
        return self._fail(REQUESTS[expected], Failed(reason), now)

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
        session, name = self._session, spec.request
        row = TRANSITIONS.get(session.state, {})
        try:
            self._check(msg, name, session)
            res, effects = HANDLERS[name](msg, session, self._inputs(name, now))
            key = transition_outcome(msg, res, session.energy)
            next_state = row[name].get(key)
            if next_state is None:
                raise SequenceError(f"{name} ({key}) not allowed in state {session.state}")
            data = frame(spec.payload_type, exi_codec.encode(res))
        except ProtocolError as exc:
            return self._fail(spec, exc, now, msg)
        except Exception as exc:  # a bug must still leave the charger safe
            return self._fail(spec, Failed(f"internal error: {exc!r}"), now, msg)
        code = response_code(res)
        if code.startswith("FAILED"):
            return self._fail(spec, ProtocolError(code), now, msg)
        session.state = next_state
        # the Ongoing limit runs from the first Ongoing answer (not every response has one)
        processing = getattr(res, "evse_processing", None)
        if processing is None or processing == "Finished":
            session.ongoing_since = None
        elif session.ongoing_since is None:
            session.ongoing_since = now
        send = ev.SendData(data, deadline=now + self.config.timeouts.performance_time(name))
        out: list[ev.Effect] = [e for e in effects if not isinstance(e, _TERMINAL)]
        out += [send, *(e for e in effects if isinstance(e, _TERMINAL))]
        self._after_response(effects, name, key, now)
        return out

    def _after_response(self, effects: list[ev.Effect], name: str, key: str,
                        now: float) -> None:
        """The machine's own bookkeeping once a response is sent: resumed sessions leave the
        store, a pause enters it, the sequence timer restarts (or stops at the end)."""
        session = self._session
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
            self._closed = True
            self._sequence_deadline = None
        else:
            self._sequence_deadline = now + self.config.timeouts.sequence_after(name)

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
        session = self._session
        session_id = ZERO_SESSION_ID
        if session.established:
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
        close_after = self.config.timeouts.close_after_session_stop
        return self.abort(reason, now, send=send, close_after=close_after)

    def abort(
        self,
        reason: str,
        now: float,
        *,
        send: ev.SendData | None = None,
        close_after: float | None,
    ) -> list[ev.Effect]:
        """Safe state first, then the response (if any), SessionEnded, CloseConnection."""
        effects: list[ev.Effect] = [ev.StopPower(), ev.OpenContactors()]
        self._session.state = State.ENDED
        self._session.energy_flowing = False
        if send is not None:
            effects.append(send)
        if self._started:
            effects.append(ev.SessionEnded(reason=reason, failed=True))
        if close_after is not None:
            effects.append(ev.CloseConnection(after_s=close_after, reason=reason))
        self._closed = True
        self._sequence_deadline = None
        return effects
