"""What every handler gets besides the request and the session, and small shared helpers.

A handler is `handle(req, session, inputs) -> (res, effects)`: no I/O, no clock, no globals.
It may update `session` (the protocol's own state), reads `inputs` (the context of this
request and the charger's latest facts) and raises a `ProtocolError` to fail the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, cast

from evse.protocol.config import ControlMode, SeccConfig
from evse.protocol.errors import Failed
from evse.protocol.handler_table import Handler as TableHandler
from evse.protocol.handler_table import HandlerResult as HandlerResult
from evse.protocol.handler_table import entry as entry
from evse.protocol.iso20.messages import header
from evse.protocol.limits import EvLimits
from evse.protocol.session import ZERO_SESSION_ID, ChargerState, Session, SessionStore
from evse.protocol.units import from_rational, to_rational
from exi_codec import Message


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
    vehicle_certificate: bytes | None = None  # DER of the TLS client certificate, if any


class Response(Protocol):
    """What the machine reads of every -20 response (all of them carry a ResponseCode)."""

    @property
    def response_code(self) -> object: ...


def response_code(res: Message) -> str:
    """The ResponseCode of a -20 response (every handler returns one)."""
    return str(cast(Response, res).response_code)


Handler = TableHandler[Session, Inputs]  # a table entry (`entry(RequestClass, handle)`)


def res_header(module: ModuleType, session: Session, inputs: Inputs) -> Any:
    return header(module, session.session_id, inputs.timestamp)


def rational(module: ModuleType, x: float) -> Any:
    return to_rational(x, module.RationalNumberType)


def require_ev(session: Session) -> EvLimits:
    if session.ev is None:  # unreachable through the state table
        raise Failed("no ChargeParameterDiscovery in this session")
    return session.ev


def evse_status(module: ModuleType, session: Session, inputs: Inputs) -> Any:
    """EVSEStatus with EVSENotification=Terminate while a charger stop is pending, Pause
    while a charger pause is pending (PauseRequested), else None."""
    if inputs.charger.stop_reason is None:
        if inputs.charger.pause_reason is None:
            return None
        return module.EVSEStatusType(
            notification_max_delay=inputs.config.notification_max_delay,
            evse_notification="Pause",
        )
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
        meter_signature=_meter_signature(charger.meter_signature),
        meter_timestamp=inputs.timestamp,
    )


def _meter_signature(signature: bytes | None) -> bytes | None:
    """The meter's own signature over its reading, when it fits MeterSignature (<= 64 bytes,
    e.g. Ed25519); a longer one cannot go into -20's MeterInfo."""
    if signature is None or not 0 < len(signature) <= 64:
        return None
    return bytes(signature)


def renegotiation_due(session: Session, inputs: Inputs) -> bool:
    """A Scheduled session with energy flowing under a schedule older than the charger's
    outside bound (the CSMS changed its profiles, `ChargerState.bound_version`)."""
    return (session.control_mode == ControlMode.SCHEDULED and session.energy_flowing
            and not session.standby
            and inputs.charger.bound_version != session.bound_version)


def metering_status(module: ModuleType, session: Session, inputs: Inputs, status: Any,
                    info: Any) -> Any:
    """EVSEStatus of a charge-loop response: `status` (Terminate/Pause) first; else
    EVSENotification=ScheduleRenegotiation when `renegotiation_due` (the EV answers with
    PowerDelivery(ScheduleRenegotiation) and a new ScheduleExchange; the loop's limits
    already follow the bound meanwhile); else, in a PnC session with
    `pnc_metering_confirmation` and MeterInfo in this response, EVSENotification=
    MeteringConfirmation (the EV answers with a signed MeteringConfirmationReq)."""
    if status is None and renegotiation_due(session, inputs):
        return module.EVSEStatusType(
            notification_max_delay=inputs.config.notification_max_delay,
            evse_notification="ScheduleRenegotiation")
    if status is not None or info is None or not inputs.config.pnc_metering_confirmation \
            or session.authorization_method != "PnC":
        return status
    return module.EVSEStatusType(notification_max_delay=inputs.config.notification_max_delay,
                                 evse_notification="MeteringConfirmation")


def remaining_departure(session: Session, inputs: Inputs) -> int | None:
    if session.departure_at is None:
        return None
    return max(0, int(session.departure_at - inputs.now))


def note_display(session: Session, req: Any, mode: Any) -> None:
    """Keep what the EV shows about its battery (DisplayParameters, EVTargetEnergyRequest of
    the Dynamic loop) for the charger's energy manager; never used by the protocol."""
    display = getattr(req, "display_parameters", None)
    if display is not None:
        if display.present_soc is not None:
            session.present_soc = int(display.present_soc)
        if display.target_soc is not None:
            session.display_target_soc = int(display.target_soc)
        capacity = getattr(display, "battery_energy_capacity", None)
        if capacity is not None:
            value = from_rational(capacity)
            session.battery_capacity_wh = value if value > 0 else None
    target = getattr(mode, "ev_target_energy_request", None)
    if target is not None:
        session.ev_target_energy_wh = from_rational(target)
