"""SessionSetup and SessionStop."""

from __future__ import annotations

from evse.protocol.config import ControlMode
from evse.protocol.errors import NoServiceRenegotiationSupported, PauseNotAllowed
from evse.protocol.events import (
    CloseConnection,
    Effect,
    EnergyServiceSelected,
    OpenContactors,
    SessionEnded,
    SessionStarted,
    StopPower,
)
from evse.protocol.iso20.handlers.common import HandlerResult, Inputs, res_header
from evse.protocol.session import ZERO_SESSION_ID, Session, resume_binding, same_vehicle
from exi_codec.schemas import iso20
from exi_codec.schemas.iso20 import SessionSetupReq, SessionSetupRes, SessionStopReq, SessionStopRes


def handle_session_setup(
    req: SessionSetupReq, session: Session, inputs: Inputs
) -> HandlerResult[SessionSetupRes]:
    """A paused session's id (same EVCCID) resumes it; anything else starts a new session.

    The EV sends an all-zero SessionID for a new session; an unknown non-zero id is treated
    the same way (new session, new id). A session paused on a connection where the vehicle
    presented a TLS client certificate is bound to SHA-512(SessionID || SHA-512(certificate))
    and resumes only on a connection presenting the same certificate; otherwise the EV gets a
    new session (OK_NewSessionEstablished, new id, authorization from scratch) and the paused
    session stays resumable by its vehicle.
    """
    old_id = bytes(req.header.session_id)
    paused = inputs.paused.get(old_id) if inputs.paused and old_id != ZERO_SESSION_ID else None
    if (paused is not None and paused.evcc_id == req.evccid and paused.service is not None
            and same_vehicle(paused, inputs.vehicle_certificate)):
        session.resume_from(paused)
        code = "OK_OldSessionJoined"
    else:
        session.session_id = inputs.new_session_id
        session.evcc_id = str(req.evccid)
        code = "OK_NewSessionEstablished"
    session.established = True
    cert = inputs.vehicle_certificate
    session.vehicle_binding = None if cert is None else resume_binding(session.session_id, cert)
    res = SessionSetupRes(
        header=res_header(iso20, session, inputs),
        response_code=iso20.responseCodeType(code),
        evseid=inputs.config.evse_id,
    )
    started = SessionStarted(
        session_id=session.session_id,
        evcc_id=session.evcc_id,
        protocol=session.protocol,
        resumed=session.resumed,
    )
    effects: list[Effect] = [started]
    if session.resumed and session.service is not None and session.control_mode is not None:
        effects.append(
            EnergyServiceSelected(int(session.service), int(session.control_mode), session.bpt)
        )
    return res, effects


def handle_session_stop(
    req: SessionStopReq, session: Session, inputs: Inputs
) -> HandlerResult[SessionStopRes]:
    """Terminate ends the session; Pause ends it too but keeps it resumable (the connection
    stores it). Power goes to a safe state in both cases (a no-op when already off)."""
    choice = req.charging_session
    if choice == "ServiceRenegotiation":
        raise NoServiceRenegotiationSupported("service renegotiation is not supported")
    pause = choice == "Pause"
    if pause and session.service is None:
        raise PauseNotAllowed("nothing to resume: no service selected yet")
    dynamic = session.control_mode == ControlMode.DYNAMIC
    if pause and dynamic and inputs.charger.pause_reason is None:
        raise PauseNotAllowed("in Dynamic mode only the SECC may initiate a pause")
    reason = "EV paused the session" if pause else "EV terminated the session"
    if req.ev_termination_code:
        reason += f" ({req.ev_termination_code}: {req.ev_termination_explanation or ''})"
    session.energy_flowing = False
    effects: list[Effect] = [
        StopPower(),
        OpenContactors(),
        SessionEnded(reason=reason, failed=False, paused=pause),
        CloseConnection(inputs.config.timeouts.close_after_session_stop, reason=reason),
    ]
    return SessionStopRes(
        header=res_header(iso20, session, inputs), response_code=iso20.responseCodeType.OK
    ), effects
