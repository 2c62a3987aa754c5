"""`DinMachine`: the DIN SPEC 70121 session of one connection after supportedAppProtocol
(the `StandardMachine` of machine.py; `SeccConnection` builds it for the DIN namespace).

Every DIN message is a V2G_Message in V2GTP payload type 0x8001. Received EXI is decoded
leniently on value facets (real cars send values the XSD forbids; the handlers decide) with
the maximum length facets enforced; bytes after the end of the EXI stream (a trailing 0x00
some cars send) are ignored by the decoder. Every call first runs the timers that are due.
Any FAILED response, timeout or lost connection ends the session with StopPower and
OpenContactors first.
"""

from __future__ import annotations

from typing import Any

import exi_codec
from evse.protocol import events as ev
from evse.protocol.din import timeouts
from evse.protocol.din.handlers import HANDLERS, Inputs
from evse.protocol.din.messages import (
    REQUESTS,
    MessageSpec,
    body_element,
    failed_response,
    request_spec,
    wrap,
)
from evse.protocol.din.session import DinSession
from evse.protocol.din.states import (
    ENERGY_STATES,
    STOPPING_STATES,
    TRANSITIONS,
    State,
    expected_request,
    outcome,
)
from evse.protocol.errors import Failed, ProtocolError, SequenceError, UnknownSession
from evse.protocol.machine import MachineContext
from evse.protocol.session import ZERO_SESSION_ID, Session
from evse.protocol.v2gtp import PayloadType
from evse.protocol.v2gtp import encode_frame as frame
from exi_codec import ExiDecodeError

_TERMINAL = (ev.SessionEnded, ev.CloseConnection)
PAYLOAD_TYPES = frozenset({PayloadType.SAP})  # DIN sends every message as 0x8001
_SPEC_BY_NAME = REQUESTS


class DinMachine:
    def __init__(self, ctx: MachineContext) -> None:
        self.config = ctx.config
        self.charger = ctx.charger
        self._din = DinSession(record=Session(protocol=ctx.namespace))
        self._rng = ctx.rng
        self._epoch_offset = ctx.epoch_offset
        self._created = ctx.created
        self._closed = False
        self._sequence_deadline: float | None = ctx.now + ctx.config.timeouts.sequence
        self._started = False  # SessionStarted was emitted: SessionEnded will be too

    payload_types = PAYLOAD_TYPES

    @property
    def session(self) -> Session:
        return self._din.record

    @property
    def din(self) -> DinSession:
        return self._din

    @property
    def state(self) -> State:
        return self._din.state

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
            msg = exi_codec.decode(payload, "din", max_lengths=True)
        except ExiDecodeError as exc:
            name = exc.path[2] if len(exc.path) > 2 and exc.path[1] == "Body" else None
            spec = _SPEC_BY_NAME.get(name) if name is not None else None
            if spec is not None:
                return effects + self._fail(spec, Failed(f"undecodable {name}: {exc}"), now)
            return effects + self._unidentified(f"undecodable EXI: {exc}", now)
        if type(msg).__name__ != "V2G_Message":
            return effects + self._unidentified(f"{type(msg).__name__} is not a request", now)
        field, req = body_element(msg)
        spec = request_spec(field)
        if spec is None:
            return effects + self._unidentified(f"body {field} is not a request", now)
        return effects + self._on_request(msg, req, spec, now)

    def handle_event(self, event: ev.Event, now: float) -> list[ev.Effect]:
        effects = self.handle_timeout(now)
        din = self._din
        if isinstance(event, ev.CableCheckFinished):
            # Only a result for the cable check in progress counts.
            if din.cable_check_started is not None and din.state == State.CABLE_CHECK:
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
        t, s = self.config.timeouts, self._din
        out: dict[str, float] = {}
        if not s.record.established:
            out["communication setup timeout"] = self._created + t.communication_setup
        if self._sequence_deadline is not None:
            out["sequence timeout: the EV sent no request"] = self._sequence_deadline
        if s.ongoing_since is not None:
            out["EVSEProcessing=Ongoing for too long"] = s.ongoing_since + t.ongoing
        if s.cable_check_started is not None and s.state == State.CABLE_CHECK:
            out["cable check timeout"] = s.cable_check_started + t.cable_check
        if s.terminate_notified_at is not None and s.state in ENERGY_STATES:
            out["the EV did not stop after EVSENotification=StopCharging"] = (
                s.terminate_notified_at + self.config.notification_max_delay
            )
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

    def _check(self, msg: Any, name: str) -> None:
        din, charger = self._din, self.charger
        ev_id = bytes(msg.header.session_id or b"")
        established = din.record.established
        if established and name != "SessionSetupReq" and ev_id != din.session_id:
            raise UnknownSession(f"SessionID {ev_id.hex()} unknown")
        if name not in TRANSITIONS.get(din.state, {}):
            raise SequenceError(f"{name} not allowed in state {din.state}")
        if charger.emergency_reason is not None:
            raise Failed(charger.emergency_reason)
        stopping = din.state in ENERGY_STATES or din.state in STOPPING_STATES
        if charger.stop_reason is not None and not stopping and name != "SessionStopReq":
            raise Failed(charger.stop_reason)

    def _on_request(self, msg: Any, req: Any, spec: MessageSpec, now: float) -> list[ev.Effect]:
        din, name = self._din, spec.request
        row = TRANSITIONS.get(din.state, {})
        try:
            self._check(msg, name)
            res, effects = HANDLERS[name](req, din, self._inputs(name, now))
            next_state = row[name].get(outcome(name, req, res))
            if next_state is None:
                raise SequenceError(f"{name} ({outcome(name, req, res)}) not allowed in "
                                    f"state {din.state}")
            data = frame(PayloadType.SAP, exi_codec.encode(wrap(spec, din.session_id, res)))
        except ProtocolError as exc:
            return self._fail(spec, exc, now, msg)
        except Exception as exc:  # a bug must still leave the charger safe
            return self._fail(spec, Failed(f"internal error: {exc!r}"), now, msg)
        din.state = next_state
        processing = getattr(res, "evse_processing", None)
        if processing is None or processing == "Finished":
            din.ongoing_since = None
        elif din.ongoing_since is None:
            din.ongoing_since = now
        send = ev.SendData(data, deadline=now + timeouts.performance_time(name))
        out: list[ev.Effect] = [e for e in effects if not isinstance(e, _TERMINAL)]
        out += [send, *(e for e in effects if isinstance(e, _TERMINAL))]
        for effect in effects:
            if isinstance(effect, ev.SessionStarted):
                self._started = True
            elif isinstance(effect, ev.StartCableCheck):
                self.charger.isolation_ok = None
        if din.state == State.ENDED:
            self._closed = True
            self._sequence_deadline = None
        else:
            self._sequence_deadline = now + self.config.timeouts.sequence
        return out

    def _inputs(self, name: str, now: float) -> Inputs:
        new_id = ZERO_SESSION_ID
        if name == "SessionSetupReq":
            while new_id == ZERO_SESSION_ID:
                new_id = self._rng.token_bytes(8)
        return Inputs(
            now=now,
            timestamp=max(0, int(now + self._epoch_offset)),
            config=self.config,
            charger=self.charger,
            new_session_id=new_id,
        )

    # -- ending --------------------------------------------------------------------------------

    def _fail(
        self, spec: MessageSpec, exc: ProtocolError, now: float, msg: Any = None
    ) -> list[ev.Effect]:
        """Answer `spec` with the error's FAILED code, then end the session."""
        din = self._din
        session_id = din.session_id if din.record.established else ZERO_SESSION_ID
        if not din.record.established and msg is not None and msg.header is not None:
            session_id = bytes(msg.header.session_id or b"") or ZERO_SESSION_ID
        emergency = self.charger.emergency_reason is not None
        res = failed_response(
            spec,
            exc.response_code,
            evse_id=self.config.evse_id.encode("ascii", "replace")[:32] or b"\x00",
            present_voltage=self.charger.present_voltage,
            present_current=self.charger.present_current,
            status_code="EVSE_EmergencyShutdown" if emergency else "EVSE_Shutdown",
        )
        data = exi_codec.encode(wrap(spec, session_id, res), strict=False)
        send = ev.SendData(frame(PayloadType.SAP, data))
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
        self._din.state = State.ENDED
        self._din.energy_flowing = self._din.record.energy_flowing = False
        if send is not None:
            effects.append(send)
        if self._started:
            effects.append(ev.SessionEnded(reason=reason, failed=True))
        if close_after is not None:
            effects.append(ev.CloseConnection(after_s=close_after, reason=reason))
        self._closed = True
        self._sequence_deadline = None
        return effects
