"""SessionSetup and SessionStop."""

from __future__ import annotations

from evse.protocol.din.handlers.common import HandlerResult, Inputs, evse_id
from evse.protocol.din.session import DinSession
from evse.protocol.events import (
    CloseConnection,
    Effect,
    OpenContactors,
    SessionEnded,
    SessionStarted,
    StopPower,
)
from exi_codec.schemas import din


def handle_session_setup(
    req: din.SessionSetupReqType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.SessionSetupResType]:
    """Always a new session (DIN has no pause/resume). The EV's SessionID is not checked:
    real cars send zero, a single 0x00 or an empty SessionID for a new session."""
    record = session.record
    record.session_id = inputs.new_session_id
    record.evcc_id = bytes(req.evccid or b"").hex().upper()
    record.established = True
    res = din.SessionSetupResType(
        response_code=din.responseCodeType.OK_NewSessionEstablished,
        evseid=evse_id(inputs.config),
        date_time_now=inputs.timestamp,
    )
    started = SessionStarted(
        session_id=record.session_id, evcc_id=record.evcc_id, protocol=record.protocol
    )
    return res, [started]


def handle_session_stop(
    req: din.SessionStopType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.SessionStopResType]:
    """OK at any point after SessionSetup (real cars stop after CableCheck or PreCharge too):
    power goes to a safe state first (a no-op when already off)."""
    session.energy_flowing = False
    session.record.energy_flowing = False
    reason = "EV terminated the session"
    effects: list[Effect] = [
        StopPower(),
        OpenContactors(),
        SessionEnded(reason=reason, failed=False),
        CloseConnection(inputs.config.timeouts.close_after_session_stop, reason=reason),
    ]
    return din.SessionStopResType(response_code=din.responseCodeType.OK), effects
