"""What every DIN handler gets besides the request and the session, and shared helpers.

A handler is `handle(req, session, inputs) -> (res, effects)` over the request's Body element
(the machine unwraps the V2G_Message and wraps the response): no I/O, no clock, no globals.
It may update `session`, reads `inputs` and raises a `ProtocolError` to fail the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evse.protocol.config import SeccConfig
from evse.protocol.din.messages import dc_evse_status
from evse.protocol.din.session import DinSession
from evse.protocol.errors import Failed
from evse.protocol.handler_table import Handler as TableHandler
from evse.protocol.handler_table import HandlerResult as HandlerResult
from evse.protocol.handler_table import entry as entry
from evse.protocol.limits import EvLimits
from evse.protocol.session import ZERO_SESSION_ID, ChargerState
from exi_codec.schemas import din


@dataclass(frozen=True, slots=True)
class Inputs:
    now: float  # the timer clock (monotonic in production, fake in tests)
    timestamp: int  # Unix time (SessionSetupRes DateTimeNow)
    config: SeccConfig
    charger: ChargerState
    new_session_id: bytes = ZERO_SESSION_ID  # SessionSetup: the id for the new session


Handler = TableHandler[DinSession, Inputs]  # a table entry (`entry(RequestClass, handle)`)


def require_ev(session: DinSession) -> EvLimits:
    if session.record.ev is None:  # unreachable through the state table
        raise Failed("no ChargeParameterDiscovery in this session")
    return session.record.ev


def status(session: DinSession, inputs: Inputs) -> din.DC_EVSEStatusType:
    """DC_EVSEStatus from the charger's facts: EmergencyShutdown, or Shutdown with
    EVSENotification=StopCharging while a charger stop is pending (the EV must then stop
    within NotificationMaxDelay), IsolationMonitoringActive during the cable check."""
    charger = inputs.charger
    if charger.emergency_reason is not None:
        return dc_evse_status(isolation=session.isolation, code="EVSE_EmergencyShutdown")
    if charger.stop_reason is not None:
        if session.terminate_notified_at is None:
            session.terminate_notified_at = inputs.now
        return dc_evse_status(
            isolation=session.isolation,
            code="EVSE_Shutdown",
            notification="StopCharging",
            max_delay=inputs.config.notification_max_delay,
        )
    checking = session.cable_check_started is not None and session.isolation == "Invalid"
    code = "EVSE_IsolationMonitoringActive" if checking else "EVSE_Ready"
    return dc_evse_status(isolation=session.isolation, code=code)


def note_ev_status(session: DinSession, ev_status: Any) -> None:
    """Keep the EV's state of charge (for the energy manager); real cars send values outside
    0..100 (the lenient decoder lets them through): clamp them."""
    if ev_status is not None and ev_status.evresssoc is not None:
        session.record.present_soc = max(0, min(100, int(ev_status.evresssoc)))


def ev_ready(ev_status: Any) -> bool:
    """The EV is ready for current: EVReady not false and no error code."""
    if ev_status is None:
        return True
    code = ev_status.ev_error_code
    return ev_status.ev_ready is not False and (code is None or str(code) == "NO_ERROR")


def evse_id(config: SeccConfig) -> bytes:
    """DIN's EVSEID is hexBinary (at most 32 bytes): the configured id's ASCII bytes."""
    raw = config.evse_id.encode("ascii", "replace")[:32]
    return raw or b"\x00"
