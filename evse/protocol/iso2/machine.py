"""`Iso2Machine`: the ISO 15118-2 session of one connection after supportedAppProtocol
(the `StandardMachine` of machine.py; `SeccConnection` builds it for the -2 namespace).

Every message is a V2G_Message in V2GTP payload type 0x8001, decoded leniently on value
facets (a real car's out-of-range value reaches the handler, which decides) with the maximum
length facets enforced. Trailing bytes after the EXI stream (some cars add 0x00) are ignored
by the decoder. Every call first runs the timers that are due. Any FAILED response, timeout
or lost connection ends the session with StopPower and OpenContactors first.
Certificate* requests may be held for an asynchronous answer (held.py): the machine emits
`RequestIso2Certificate` and answers at `Iso2CertificateAnswered`, or FAILED at its deadline.
"""

from __future__ import annotations

from typing import Any

import exi_codec
from evse.protocol import events as ev
from evse.protocol.errors import Failed, ProtocolError, SequenceError, UnknownSession
from evse.protocol.iso2.handlers import HANDLERS, Inputs
from evse.protocol.iso2.handlers.pnc import backend as pnc_backend
from evse.protocol.iso2.held import CERTIFICATE_ACTIONS, NO_PROVISIONING_ANSWER, Held
from evse.protocol.iso2.messages import SCHEMA, failed_response, request_of, wrap
from evse.protocol.iso2.session import Iso2Session
from evse.protocol.iso2.states import (
    ENERGY_STATES,
    STOPPING_STATES,
    TRANSITIONS,
    State,
    expected_request,
)
from evse.protocol.iso2.states import outcome as transition_outcome
from evse.protocol.iso2.timeouts import Iso2Timeouts
from evse.protocol.machine import MachineContext
from evse.protocol.session import ZERO_SESSION_ID, Session
from evse.protocol.v2gtp import PayloadType
from evse.protocol.v2gtp import encode_frame as frame
from exi_codec import ExiDecodeError

_TERMINAL = (ev.SessionEnded, ev.CloseConnection)
PAYLOAD_TYPES = frozenset({PayloadType.SAP})  # DIN and -2 send every message as 0x8001


def timeouts_for(ctx: MachineContext) -> Iso2Timeouts:
    """-2 performance times; the other timers follow the station's configured ones."""
    t = ctx.config.timeouts
    return Iso2Timeouts(
        sequence=t.sequence,
        ongoing=t.ongoing,
        cable_check=t.cable_check,
        communication_setup=t.communication_setup,
        close_after_session_stop=t.close_after_session_stop,
    )


class Iso2Machine:
    def __init__(self, ctx: MachineContext) -> None:
        self.config = ctx.config
        self.tls = ctx.tls
        self.charger = ctx.charger
        self.timeouts = timeouts_for(ctx)
        self._s = Iso2Session(record=Session(protocol=ctx.namespace))
        self._store = ctx.store
        self._rng = ctx.rng
        self._epoch_offset = ctx.epoch_offset
        self._created = ctx.created
        self._closed = False
        self._sequence_deadline: float | None = ctx.now + self.timeouts.sequence
        self._started = False  # SessionStarted was emitted: SessionEnded will be too
        self._held: Held | None = None  # a Certificate* request awaiting its answer

    payload_types = PAYLOAD_TYPES

    @property
    def session(self) -> Session:
        return self._s.record

    @property
    def iso2_session(self) -> Iso2Session:
        return self._s

    @property
    def state(self) -> State:
        return self._s.state

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
        try:
            msg = exi_codec.decode(payload, SCHEMA, max_lengths=True)
        except ExiDecodeError as exc:
            return effects + self._unidentified(f"undecodable EXI: {exc}", now)
        found = request_of(msg)
        if found is None:
            return effects + self._unidentified("the V2G_Message holds no request", now)
        name, req = found
        session_id = bytes(msg.header.session_id)
        if self._held is not None:  # the EV must wait for our answer
            return effects + self._fail(name, SequenceError(
                f"{name} while {self._held.name} is being answered"), now, req, session_id)
        if name in CERTIFICATE_ACTIONS and self.config.iso2_certificates_async:
            return effects + self._hold(name, req, msg, session_id, now)
        return effects + self._on_request(name, req, session_id, now, msg.header.signature)

    def handle_event(self, event: ev.Event, now: float) -> list[ev.Effect]:
        effects = self.handle_timeout(now)
        s = self._s
        if isinstance(event, ev.Iso2CertificateAnswered):
            held, self._held = self._held, None
            if held is not None and not self._closed:  # else late: FAILED was sent already
                effects += self._on_request(held.name, held.req, held.session_id, now,
                                            held.signature, provisioned=event.answer,
                                            received=held.received)
        elif isinstance(event, ev.CableCheckFinished):
            if s.cable_check_started is not None and s.state == State.DC_CABLE_CHECK:
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
        t, s = self.timeouts, self._s
        out: dict[str, float] = {}
        if not s.record.established:
            out["communication setup timeout"] = self._created + t.communication_setup
        if self._sequence_deadline is not None:
            out["sequence timeout: the EV sent no request"] = self._sequence_deadline
        if self._held is not None:
            out[NO_PROVISIONING_ANSWER] = self._held.deadline
        out.update(s.deadlines(t, self.config.notification_max_delay))
        return out

    def next_deadline(self) -> float | None:
        return min(self._deadlines().values(), default=None)

    def handle_timeout(self, now: float) -> list[ev.Effect]:
        expired = [reason for reason, at in self._deadlines().items() if at <= now]
        if not expired:
            return []
        held = self._held
        if held is not None and NO_PROVISIONING_ANSWER in expired:
            # the EV hears FAILED inside its performance time, then the session ends
            self._held = None
            return self._fail(held.name, Failed(NO_PROVISIONING_ANSWER), now, held.req,
                              held.session_id)
        return self.abort(expired[0], now, close_after=0.0)

    # -- requests ------------------------------------------------------------------------------

    def _unidentified(self, reason: str, now: float) -> list[ev.Effect]:
        expected = expected_request(self.state)
        if expected is None:
            return self.abort(reason, now, close_after=0.0)
        return self._fail(expected, Failed(reason), now)

    def _check(self, name: str, session_id: bytes) -> None:
        s = self._s
        if s.record.established and name != "SessionSetupReq" \
                and session_id != s.record.session_id:
            raise UnknownSession(f"SessionID {session_id.hex()} unknown")
        if name not in TRANSITIONS.get(s.state, {}):
            raise SequenceError(f"{name} not allowed in state {s.state}")
        charger = self.charger
        if charger.emergency_reason is not None and name != "SessionStopReq":
            raise Failed(charger.emergency_reason)
        stopping = s.state in ENERGY_STATES or s.state in STOPPING_STATES
        if charger.stop_reason is not None and not stopping and name != "SessionStopReq":
            raise Failed(charger.stop_reason)

    def _hold(self, name: str, req: Any, msg: Any, session_id: bytes, now: float
              ) -> list[ev.Effect]:
        """Check a Certificate* request as `_on_request` would, then ask for its answer."""
        try:
            self._check(name, session_id)
            pnc_backend(self._inputs(name, session_id, now))  # PnC offered here at all
        except ProtocolError as exc:
            return self._fail(name, exc, now, req, session_id)
        deadline = now + self.timeouts.provisioning
        self._held = Held(now, name, req, session_id, msg.header.signature, deadline)
        self._sequence_deadline = None  # our turn: the EV waits for the response
        return [ev.RequestIso2Certificate(action=CERTIFICATE_ACTIONS[name], message=msg,
                                          session_id=session_id,
                                          timestamp=self._timestamp(now), deadline=deadline)]

    def _on_request(self, name: str, req: Any, session_id: bytes, now: float,
                    signature: Any = None, provisioned: Any = None,
                    received: float | None = None) -> list[ev.Effect]:
        s = self._s
        row = TRANSITIONS.get(s.state, {})
        try:
            self._check(name, session_id)
            s.response_signature = None
            inputs = self._inputs(name, session_id, now, signature, provisioned)
            res, effects = HANDLERS[name](req, s, inputs)
            key = transition_outcome(req, res, s.energy)
            next_state = row[name].get(key)
            if next_state is None:
                raise SequenceError(f"{name} ({key}) not allowed in state {s.state}")
            data = frame(PayloadType.SAP, exi_codec.encode(
                wrap(res, s.record.session_id, s.response_signature)))
        except ProtocolError as exc:
            return self._fail(name, exc, now, req, session_id)
        except Exception as exc:  # a bug must still leave the charger safe
            return self._fail(name, Failed(f"internal error: {exc!r}"), now, req, session_id)
        s.state = next_state
        processing = getattr(res, "evse_processing", None)
        if processing is None or processing == "Finished":
            s.ongoing_since = None
        elif s.ongoing_since is None:
            s.ongoing_since = now
        since = now if received is None else received  # a held request: from its arrival
        send = ev.SendData(data, deadline=since + self.timeouts.performance_time(name))
        out: list[ev.Effect] = [e for e in effects if not isinstance(e, _TERMINAL)]
        out += [send, *(e for e in effects if isinstance(e, _TERMINAL))]
        for effect in effects:
            if isinstance(effect, ev.SessionStarted):
                self._started = True
                if effect.resumed:
                    self._store.take(effect.session_id)
            elif isinstance(effect, ev.StartCableCheck):
                self.charger.isolation_ok = None
            elif isinstance(effect, ev.SessionEnded) and effect.paused:
                self._store.pause(s.record)
        if s.state == State.ENDED:
            self._closed = True
            self._sequence_deadline = None
        else:
            self._sequence_deadline = now + self.timeouts.sequence
        return out

    def _inputs(self, name: str, session_id: bytes, now: float,
                signature: Any = None, provisioned: Any = None) -> Inputs:
        new_id = ZERO_SESSION_ID
        if name == "SessionSetupReq":
            while new_id == ZERO_SESSION_ID or new_id in self._store:
                new_id = self._rng.token_bytes(8)
        return Inputs(
            now=now,
            timestamp=self._timestamp(now),
            config=self.config,
            charger=self.charger,
            timeouts=self.timeouts,
            tls=self.tls,
            header_session_id=session_id,
            new_session_id=new_id,
            paused=self._store,
            signature=signature,
            provisioned=provisioned,
        )

    def _timestamp(self, now: float) -> int:
        return max(0, int(now + self._epoch_offset))

    # -- ending --------------------------------------------------------------------------------

    def _fail(self, request: str, exc: ProtocolError, now: float, req: Any = None,
              session_id: bytes | None = None) -> list[ev.Effect]:
        """Answer `request` with the error's FAILED code, then end the session."""
        s = self._s
        answer_id = s.record.session_id if s.record.established else (session_id or b"")
        if not answer_id:
            answer_id = ZERO_SESSION_ID
        energy = s.energy
        if request == "ChargeParameterDiscoveryReq" and req is not None and energy is None:
            energy = "ac" if str(req.requested_energy_transfer_mode).startswith("AC") else "dc"
        res = failed_response(
            request,
            exc.response_code,
            req=req,
            energy=energy,
            evse_id=self.config.evse_id,
            timestamp=self._timestamp(now),
            present_voltage=self.charger.present_voltage,
            present_current=self.charger.present_current,
            nominal_voltage=self.charger.limits.nominal_voltage,
        )
        data = exi_codec.encode(wrap(res, answer_id[:8]), strict=False)
        send = ev.SendData(frame(PayloadType.SAP, data))
        reason = exc.response_code
        if exc.reason != exc.response_code:
            reason += f": {exc.reason}"
        return self.abort(reason, now, send=send,
                          close_after=self.timeouts.close_after_session_stop)

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
        self._s.state = State.ENDED
        self._s.energy_flowing = False
        self._held = None
        if send is not None:
            effects.append(send)
        if self._started:
            effects.append(ev.SessionEnded(reason=reason, failed=True))
        if close_after is not None:
            effects.append(ev.CloseConnection(after_s=close_after, reason=reason))
        self._closed = True
        self._sequence_deadline = None
        return effects
