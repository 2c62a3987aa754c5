"""What every -2 handler gets besides the request and the session, and shared helpers.

A handler is `handle(req, session, inputs) -> (res, effects)`: `req` is the Body element of
the request, `res` the Body element of the response (the machine wraps it in a V2G_Message
with the SessionID). No I/O, no clock, no globals; a `ProtocolError` fails the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evse.protocol.config import SeccConfig
from evse.protocol.errors import Failed
from evse.protocol.handler_table import Handler as TableHandler
from evse.protocol.handler_table import HandlerResult as HandlerResult
from evse.protocol.handler_table import entry as entry
from evse.protocol.iso2.messages import ac_status, dc_status
from evse.protocol.iso2.session import Iso2Session
from evse.protocol.iso2.timeouts import Iso2Timeouts
from evse.protocol.limits import EvLimits
from evse.protocol.session import ChargerState, SessionStore
from exi_codec.schemas import iso2

OK = iso2.responseCodeType.OK
FINISHED = iso2.EVSEProcessingType.Finished
ONGOING = iso2.EVSEProcessingType.Ongoing


@dataclass(frozen=True, slots=True)
class Inputs:
    now: float  # the timer clock (monotonic in production, fake in tests)
    timestamp: int  # Unix time (EVSETimeStamp, MeterInfo)
    config: SeccConfig
    charger: ChargerState
    timeouts: Iso2Timeouts
    tls: bool = False
    header_session_id: bytes = b""  # the request header's SessionID
    new_session_id: bytes = bytes(8)  # SessionSetup: the id for a new session
    paused: SessionStore | None = None  # SessionSetup: sessions that may be resumed
    signature: Any = None  # the request header's ds:Signature (PnC requests)
    # CertificateInstallation/Update held for an asynchronous provisioning answer: that
    # answer (an Iso2Provisioned), instead of asking the configured backend
    provisioned: Any = None


Handler = TableHandler[Iso2Session, Inputs]  # a table entry (`entry(RequestClass, handle)`)


def require_ev(session: Iso2Session) -> EvLimits:
    if session.record.ev is None:  # unreachable through the state table
        raise Failed("no ChargeParameterDiscovery in this session")
    return session.record.ev


def notification(session: Iso2Session, inputs: Inputs) -> str:
    """EVSENotification: StopCharging while a charger stop is pending (the EV then ends the
    loop with PowerDelivery(Stop)); ReNegotiation while energy flows under a schedule older
    than the charger's outside bound (the CSMS changed its profiles: the EV answers with
    PowerDelivery(Renegotiate) and a new ChargeParameterDiscovery); else None."""
    if inputs.charger.stop_reason is None and inputs.charger.emergency_reason is None:
        if session.energy_flowing and renegotiation_due(session, inputs):
            return "ReNegotiation"
        return "None"
    if session.stop_notified_at is None:
        session.stop_notified_at = inputs.now
    return "StopCharging"


def renegotiation_due(session: Iso2Session, inputs: Inputs) -> bool:
    return inputs.charger.bound_version != session.record.bound_version


def stopping(status: Any) -> bool:
    """A loop response's EVSEStatus asks the EV to stop: ramp the current down."""
    return str(status.evse_notification) == "StopCharging"


def dc_evse_status(session: Iso2Session, inputs: Inputs, *, isolation: str | None = None,
                   code: str | None = None) -> iso2.DC_EVSEStatusType:
    note = notification(session, inputs)
    if code is None:
        code = "EVSE_Shutdown" if note == "StopCharging" else "EVSE_Ready"
    if inputs.charger.emergency_reason is not None:
        code = "EVSE_EmergencyShutdown"
    return dc_status(code, note, isolation, _delay(note, inputs))


def ac_evse_status(session: Iso2Session, inputs: Inputs) -> iso2.AC_EVSEStatusType:
    note = notification(session, inputs)
    return ac_status(note, _delay(note, inputs))


def evse_status_fields(session: Iso2Session, inputs: Inputs) -> dict[str, Any]:
    """The EVSEStatus choice of PowerDeliveryRes / MeteringReceiptRes (AC or DC)."""
    if session.energy == "ac":
        return {"ac_evse_status": ac_evse_status(session, inputs)}
    return {"dc_evse_status": dc_evse_status(session, inputs)}


def _delay(note: str, inputs: Inputs) -> int:
    return 0 if note == "None" else inputs.config.notification_max_delay


def meter_info(inputs: Inputs) -> iso2.MeterInfoType:
    charger = inputs.charger
    signature = charger.meter_signature
    return iso2.MeterInfoType(
        meter_id=inputs.config.meter_id,
        meter_reading=max(0, int(charger.imported_wh)),
        # SigMeterReading holds at most 64 bytes
        sig_meter_reading=bytes(signature) if signature and len(signature) <= 64 else None,
        t_meter=inputs.timestamp,
    )


def schedule_limits(session: Iso2Session, inputs: Inputs) -> tuple[float, float] | None:
    """(max charge W, max discharge W) of the offered PMaxSchedule at this time."""
    schedules = session.record.schedules
    return None if schedules is None else schedules.limits_at(inputs.now)
