"""SessionSetup and SessionStop."""

from __future__ import annotations

from evse.protocol.events import (
    CloseConnection,
    Effect,
    OpenContactors,
    SessionEnded,
    SessionStarted,
    StopPower,
)
from evse.protocol.iso2.handlers.common import OK, HandlerResult, Inputs
from evse.protocol.iso2.session import Iso2Session
from exi_codec.schemas import iso2


def _fresh(session_id: bytes) -> bool:
    """No session to resume: real cars send an empty SessionID, or a single 0x00, rather than
    eight zero bytes."""
    return not any(session_id)


def handle_session_setup(
    req: iso2.SessionSetupReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.SessionSetupResType]:
    """A paused -2 session's id with the same EVCCID resumes it (OK_OldSessionJoined); any
    other id (zero, empty, unknown) starts a new session with a new id."""
    record = session.record
    old_id = inputs.header_session_id
    evcc_id = bytes(req.evccid or b"").hex().upper()
    paused = None
    if inputs.paused is not None and not _fresh(old_id):
        paused = inputs.paused.get(old_id)
    if (paused is not None and paused.protocol == record.protocol
            and paused.evcc_id == evcc_id and paused.service is not None):
        record.resume_from(paused)
        session.transfer_mode = None  # stated again by the next ChargeParameterDiscovery
        code = iso2.responseCodeType.OK_OldSessionJoined
    else:
        record.session_id = inputs.new_session_id
        record.evcc_id = evcc_id
        code = iso2.responseCodeType.OK_NewSessionEstablished
    record.established = True
    res = iso2.SessionSetupResType(
        response_code=code, evseid=inputs.config.evse_id, evse_time_stamp=inputs.timestamp
    )
    # A resumed session states its energy service again at its next ChargeParameterDiscovery.
    effects: list[Effect] = [SessionStarted(
        session_id=record.session_id, evcc_id=record.evcc_id, protocol=record.protocol,
        resumed=record.resumed,
    )]
    return res, effects


def handle_session_stop(
    req: iso2.SessionStopReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.SessionStopResType]:
    """Terminate ends the session; Pause ends it too and keeps it resumable (the machine
    stores it) once there is something to resume (a ChargeParameterDiscovery). Accepted at
    any point after SessionSetup: power goes to a safe state first (a no-op when off)."""
    pause = req.charging_session == "Pause"
    reason = "EV paused the session" if pause else "EV terminated the session"
    session.energy_flowing = False
    effects: list[Effect] = [
        StopPower(),
        OpenContactors(),
        SessionEnded(reason=reason, failed=False,
                     paused=pause and session.record.service is not None),
        CloseConnection(inputs.timeouts.close_after_session_stop, reason=reason),
    ]
    return iso2.SessionStopResType(response_code=OK), effects
