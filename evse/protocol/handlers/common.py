"""What every handler gets besides the request and the session, and small shared helpers.

A handler is `handle(req, session, inputs) -> (res, effects)`: no I/O, no clock, no globals.
It may update `session` (the protocol's own state), reads `inputs` (the context of this
request and the charger's latest facts) and raises a `ProtocolError` to fail the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from evse.protocol.config import SeccConfig
from evse.protocol.errors import Failed
from evse.protocol.events import Effect
from evse.protocol.limits import EvLimits
from evse.protocol.messages import header
from evse.protocol.session import ZERO_SESSION_ID, ChargerState, Session, SessionStore
from evse.protocol.units import to_rational


@dataclass(frozen=True, slots=True)
class Inputs:
    now: float  # the timer clock (monotonic in production, fake in tests)
    timestamp: int  # Unix time for message headers and schedule time anchors
    config: SeccConfig
    charger: ChargerState
    tls: bool = True
    new_session_id: bytes = ZERO_SESSION_ID  # SessionSetup: the id for a new session
    gen_challenge: bytes | None = None  # AuthorizationSetup with PnC: 16 random bytes
    paused: SessionStore | None = None  # SessionSetup: sessions that may be resumed


HandlerResult = tuple[Any, list[Effect]]
Handler = Callable[[Any, Session, Inputs], HandlerResult]


def res_header(module: ModuleType, session: Session, inputs: Inputs) -> Any:
    return header(module, session.session_id, inputs.timestamp)


def rational(module: ModuleType, x: float) -> Any:
    return to_rational(x, module.RationalNumberType)


def require_ev(session: Session) -> EvLimits:
    if session.ev is None:  # unreachable through the state table
        raise Failed("no ChargeParameterDiscovery in this session")
    return session.ev


def evse_status(module: ModuleType, session: Session, inputs: Inputs) -> Any:
    """EVSEStatus with EVSENotification=Terminate while a charger stop is pending, else None."""
    if inputs.charger.stop_reason is None:
        return None
    if session.terminate_notified_at is None:
        session.terminate_notified_at = inputs.now
    return module.EVSEStatusType(
        notification_max_delay=inputs.config.notification_max_delay,
        evse_notification="Terminate",
    )


def desired_power(session: Session, inputs: Inputs) -> float:
    """Dynamic mode: the charger's setpoint, else the schedule's, else full charge power."""
    if inputs.charger.setpoint_w is not None:
        return inputs.charger.setpoint_w
    if session.schedules is not None:
        return session.schedules.setpoint_at(inputs.now)
    return inputs.charger.limits.max_charge_power


def schedule_limits(session: Session, inputs: Inputs) -> tuple[float, float] | None:
    """Scheduled mode: (max charge W, max discharge W) of the schedule at this time."""
    if session.schedules is None:
        return None
    return session.schedules.limits_at(inputs.now)


def meter_info(module: ModuleType, session: Session, inputs: Inputs) -> Any:
    charger = inputs.charger
    return module.MeterInfoType(
        meter_id=inputs.config.meter_id,
        charged_energy_reading_wh=max(0, int(charger.imported_wh)),
        bpt_discharged_energy_reading_wh=max(0, int(charger.exported_wh)) if session.bpt else None,
        meter_timestamp=inputs.timestamp,
    )


def remaining_departure(session: Session, inputs: Inputs) -> int | None:
    if session.departure_at is None:
        return None
    return max(0, int(session.departure_at - inputs.now))
