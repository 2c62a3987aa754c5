"""What goes into and out of the sans-IO SECC core.

Inputs are facts in the past tense, handed to `SeccConnection.handle_event(event, now)`
(received bytes go to `SeccConnection.receive_data(data, now)` instead). Effects are
commands in the imperative, returned by every call in the order they must be carried out.

Units are SI floats. Sign convention: current and power are negative while the EV discharges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evse.protocol.limits import EvLimits, EvseLimits

# -- inputs (past tense) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CableCheckFinished:
    """The insulation test started by `StartCableCheck` is over."""

    isolation_ok: bool


@dataclass(frozen=True, slots=True)
class MeasurementsUpdated:
    """Latest readings at the charger output (DC: V and A; AC: total active power in W)."""

    present_voltage: float
    present_current: float
    present_power: float | None = None  # None: voltage * current
    imported_wh: float | None = None  # meter register, energy to the EV
    exported_wh: float | None = None  # meter register, energy from the EV
    meter_signature: bytes | None = None  # the meter's signature over this reading, if any


@dataclass(frozen=True, slots=True)
class AuthorizationGranted:
    id_token: str = ""


@dataclass(frozen=True, slots=True)
class AuthorizationDenied:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StopRequested:
    """The charger (user, backend) wants the session to end normally."""

    reason: str = "stop requested by the charger"


@dataclass(frozen=True, slots=True)
class EmergencyStop:
    """Power off now; the session fails at the EV's next request (or its timeout)."""

    reason: str = "emergency stop"


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    reason: str = "connection lost"


@dataclass(frozen=True, slots=True)
class LimitsUpdated:
    limits: EvseLimits


@dataclass(frozen=True, slots=True)
class SetpointUpdated:
    """Dynamic control mode: the power the charger wants (W, negative = EV discharges).

    None hands control back to the schedule from ScheduleExchange.
    """

    power_w: float | None


@dataclass(frozen=True, slots=True)
class PowerBoundUpdated:
    """A bound on the power from above every local decision: the backend's (OCPP CSMS's)
    composite limit (docs/ocpp.md, "Arbitration"). It caps the charger's limits
    (`LimitsUpdated`, derating) and every local setpoint (`SetpointUpdated`) until replaced;
    it never raises them. None: not bounded in that direction (0: no flow that way).

    `setpoint_w` (a central setpoint, negative = discharge) replaces the local setpoint while
    it is set. `renegotiate`: the schedule the EV has may exceed the new bound; a Scheduled
    -2 / -20 session is asked to renegotiate (DIN cannot be: its limits follow alone).
    """

    max_charge_power: float | None = None
    max_discharge_power: float | None = None
    setpoint_w: float | None = None
    renegotiate: bool = False


@dataclass(frozen=True, slots=True)
class PauseRequested:
    """The charger (user, energy manager) asks the EV to pause the session.

    -20 has no charger-initiated SessionStop: the charger sends EVSEStatus with
    EVSENotification=Pause (in ChargeLoopRes / PowerDeliveryRes) and ramps the current to
    zero; the EV then sends PowerDelivery(Stop) and SessionStop(ChargingSession=Pause) and
    may resume later with its SessionID (OK_OldSessionJoined).
    """

    reason: str = "pause requested by the charger"


@dataclass(frozen=True, slots=True)
class Iso2CertificateAnswered:
    """The answer to a `RequestIso2Certificate`: an `evse.protocol.config.Iso2Provisioned`
    (body + header Signature, or a FAILED code); ignored once the SECC gave up waiting."""

    answer: Any


Event = (
    CableCheckFinished
    | MeasurementsUpdated
    | AuthorizationGranted
    | AuthorizationDenied
    | StopRequested
    | EmergencyStop
    | ConnectionLost
    | LimitsUpdated
    | SetpointUpdated
    | PowerBoundUpdated
    | PauseRequested
    | Iso2CertificateAnswered
)

# -- effects (imperative) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendData:
    """Write these bytes (a complete V2GTP frame) to the connection.

    `deadline`: the time (same clock as `now`) by which the standard wants the response
    sent; informational, for the adapter to report a late send.
    """

    data: bytes
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class StartCableCheck:
    voltage: float


@dataclass(frozen=True, slots=True)
class StartPreCharge:
    target_voltage: float
    max_current: float


@dataclass(frozen=True, slots=True)
class SetPowerTarget:
    """DC: regulate `current` (negative = discharge) with `voltage` as the voltage limit.

    AC: the EV's converter does the work; `power` is the target active power (total, W),
    `voltage` the nominal phase voltage and `current` the per-phase current it implies.
    """

    voltage: float
    current: float
    power: float


@dataclass(frozen=True, slots=True)
class CloseContactors:
    pass


@dataclass(frozen=True, slots=True)
class OpenContactors:
    """Open the output contactors (the control layer waits for zero current first)."""


@dataclass(frozen=True, slots=True)
class StopPower:
    """Ramp the current to zero and switch the power stage off."""


@dataclass(frozen=True, slots=True)
class RequestAuthorization:
    """Ask the backend/user: answer with AuthorizationGranted or AuthorizationDenied."""

    method: str  # "EIM" or "PnC"
    evcc_id: str
    emaid: str | None = None
    certificate_chain: tuple[bytes, ...] = ()  # PnC: contract leaf first, then sub-CAs


@dataclass(frozen=True, slots=True)
class RequestIso2Certificate:
    """-2 CertificateInstallation/UpdateReq held: deliver `Iso2CertificateAnswered` before
    `deadline` (the `now` clock), else the SECC answers the EV FAILED itself."""

    action: str  # "Install" or "Update"
    message: Any  # the EV's whole V2G_Message (header with its Signature)
    session_id: bytes
    timestamp: int  # Unix seconds
    deadline: float


@dataclass(frozen=True, slots=True)
class SessionStarted:
    session_id: bytes
    evcc_id: str
    protocol: str  # the negotiated namespace
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class EnergyServiceSelected:
    """The EV chose a service: 1 AC, 2 DC, 5 AC_BPT, 6 DC_BPT; control mode 1/2."""

    service_id: int
    control_mode: int
    bidirectional: bool


@dataclass(frozen=True, slots=True)
class EvLimitsReported:
    """The EV's limits from ChargeParameterDiscovery (for the energy manager)."""

    limits: EvLimits


@dataclass(frozen=True, slots=True)
class SessionEnded:
    reason: str
    failed: bool
    paused: bool = False


@dataclass(frozen=True, slots=True)
class MeteringConfirmed:
    """PnC: the EV's MeteringConfirmationReq verified with its contract key. The signed
    record for billing: SignedMeteringData and the header Signature as received."""

    session_id: bytes
    emaid: str | None
    signed_metering_data: Any  # iso20.SignedMeteringDataType
    signature: Any  # iso20 SignatureType (the request header's)


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the TCP/TLS connection `after_s` seconds from now (0: at once).

    `reason`: why, for the log (informational: not part of equality).
    """

    after_s: float = 0.0
    reason: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class ReportWarning:
    """Tell the operator about a problem the session survived (e.g. `energy_policy`: the
    schedule provider failed and the EV got the default schedule)."""

    code: str
    message: str


Effect = (
    SendData
    | StartCableCheck
    | StartPreCharge
    | SetPowerTarget
    | CloseContactors
    | OpenContactors
    | StopPower
    | RequestAuthorization
    | RequestIso2Certificate
    | SessionStarted
    | EnergyServiceSelected
    | EvLimitsReported
    | SessionEnded
    | CloseConnection
    | MeteringConfirmed
    | ReportWarning
)

SAFE_STATE: tuple[Effect, ...] = (StopPower(), OpenContactors())

__all__ = [
    "AuthorizationDenied",
    "AuthorizationGranted",
    "CableCheckFinished",
    "CloseConnection",
    "CloseContactors",
    "ConnectionLost",
    "Effect",
    "MeteringConfirmed",
    "ReportWarning",
    "EmergencyStop",
    "EnergyServiceSelected",
    "Event",
    "EvLimits",
    "EvLimitsReported",
    "EvseLimits",
    "Iso2CertificateAnswered",
    "LimitsUpdated",
    "MeasurementsUpdated",
    "OpenContactors",
    "PauseRequested",
    "PowerBoundUpdated",
    "RequestAuthorization",
    "RequestIso2Certificate",
    "SAFE_STATE",
    "SendData",
    "SessionEnded",
    "SessionStarted",
    "SetPowerTarget",
    "SetpointUpdated",
    "StartCableCheck",
    "StartPreCharge",
    "StopPower",
    "StopRequested",
]
