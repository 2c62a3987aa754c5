"""Per-connection state: the -20 session (protocol side) and the charger's inputs.

`Session` is what the handlers read and update; `ChargerState` is what the charger told us
through events (handlers only read it). `SessionStore` keeps paused sessions across TCP
connections so that SessionSetup with the old SessionID can resume them.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass, field

from evse.protocol.config import BPT_SERVICES, DC_SERVICES, ControlMode, ServiceId
from evse.protocol.events import (
    AuthorizationDenied,
    AuthorizationGranted,
    EmergencyStop,
    LimitsUpdated,
    MeasurementsUpdated,
    PauseRequested,
    PowerBoundUpdated,
    SetpointUpdated,
    StopRequested,
)
from evse.protocol.iso20.states import ENERGY_STATES, State
from evse.protocol.iso20.timeouts import Timeouts
from evse.protocol.limits import EvLimits, EvseLimits, bounded, clamp_setpoint
from evse.protocol.schedules import Schedules

ZERO_SESSION_ID = bytes(8)


def resume_binding(session_id: bytes, vehicle_certificate: bytes) -> bytes:
    """SHA-512(SessionID || SHA-512(vehicle certificate DER)): what a paused session is bound
    to when the vehicle authenticated with its certificate in (mutual) TLS."""
    inner = hashlib.sha512(bytes(vehicle_certificate)).digest()
    return hashlib.sha512(bytes(session_id) + inner).digest()


def same_vehicle(paused: Session, vehicle_certificate: bytes | None) -> bool:
    """May a connection presenting `vehicle_certificate` (None: none) resume `paused`?

    Yes when the paused session was not bound (no vehicle certificate in its TLS
    connection), else only with the certificate it was bound to."""
    if paused.vehicle_binding is None:
        return True
    if vehicle_certificate is None:
        return False
    return hmac.compare_digest(
        resume_binding(paused.session_id, vehicle_certificate), paused.vehicle_binding
    )


@dataclass
class Session:
    protocol: str  # negotiated namespace
    state: State = State.SESSION_SETUP
    session_id: bytes = ZERO_SESSION_ID
    evcc_id: str = ""
    established: bool = False
    resumed: bool = False
    # authorization
    offered_auth: tuple[str, ...] = ()
    gen_challenge: bytes | None = None
    authorization_requested: bool = False
    authorized: bool = False
    authorization_method: str | None = None  # "EIM" / "PnC" once authorized
    emaid: str | None = None  # PnC: the verified contract's eMAID
    # PnC: digest of the verified request's Id, GenChallenge and contract chain while the EV
    # polls (EVSEProcessing=Ongoing); a repeat must carry the same credentials
    pnc_credentials: bytes | None = None
    authorization_retries: int = 0  # AuthorizationRes warnings that let the EV try again
    # SHA-512(SessionID || SHA-512(vehicle certificate)) when the vehicle presented a TLS
    # client certificate: a paused session resumes only with the same certificate.
    vehicle_binding: bytes | None = None
    # services
    offered_services: tuple[ServiceId, ...] = ()
    detailed_services: tuple[ServiceId, ...] = ()  # ServiceDetail was requested for these
    service: ServiceId | None = None
    parameter_set_id: int | None = None
    control_mode: ControlMode | None = None
    # charge parameters and schedules
    ev: EvLimits | None = None
    departure_at: float | None = None  # on the `now` clock
    minimum_soc: int | None = None
    target_soc: int | None = None
    schedules: Schedules | None = None
    schedule_tuple_id: int | None = None
    bound_version: int = 0  # ChargerState.bound_version when the schedule was negotiated
    # progress and timers (on the `now` clock)
    ongoing_since: float | None = None
    cable_check_started: float | None = None
    precharge_target: float | None = None
    bpt_channel: str | None = None  # "Charge" / "Discharge" from PowerDelivery
    energy_flowing: bool = False
    standby: bool = False
    terminate_notified_at: float | None = None
    # what the EV shows (DisplayParameters, energy requests in the loop): for the energy
    # manager's state of charge estimate; the protocol itself never acts on them
    present_soc: int | None = None  # percent
    display_target_soc: int | None = None  # percent
    battery_capacity_wh: float | None = None
    ev_target_energy_wh: float | None = None  # EVTargetEnergyRequest (to the target SOC)

    @property
    def energy(self) -> str | None:
        """ "dc" or "ac" once a service is selected."""
        if self.service is None:
            return None
        return "dc" if self.service in DC_SERVICES else "ac"

    @property
    def bpt(self) -> bool:
        return self.service in BPT_SERVICES

    def deadlines(self, t: Timeouts, notification_max_delay: int) -> dict[str, float]:
        """The session's own timers that are running: {reason: deadline}."""
        out: dict[str, float] = {}
        if self.ongoing_since is not None:
            out["EVSEProcessing=Ongoing for too long"] = self.ongoing_since + t.ongoing
        if self.cable_check_started is not None and self.state == State.DC_CABLE_CHECK:
            out["cable check timeout"] = self.cable_check_started + t.cable_check
        if self.terminate_notified_at is not None and self.state in ENERGY_STATES:
            out["the EV did not stop after EVSENotification=Terminate"] = (
                self.terminate_notified_at + notification_max_delay
            )
        return out

    def resume_from(self, paused: Session) -> None:
        """Take over what a paused session agreed (id, EV, service, limits, schedules)."""
        for name in (
            "session_id",
            "evcc_id",
            "offered_auth",
            "authorized",
            "authorization_method",
            "emaid",
            "offered_services",
            "service",
            "parameter_set_id",
            "control_mode",
            "ev",
            "departure_at",
            "minimum_soc",
            "target_soc",
            "schedules",
            "schedule_tuple_id",
        ):
            setattr(self, name, getattr(paused, name))
        self.resumed = True


@dataclass
class ChargerState:
    """The latest facts from the charger (updated by `SeccConnection.handle_event`)."""

    limits: EvseLimits
    present_voltage: float = 0.0
    present_current: float = 0.0
    present_power: float | None = None
    imported_wh: float = 0.0
    exported_wh: float = 0.0
    meter_signature: bytes | None = None  # the meter's signature over its latest reading
    authorization: bool | None = None  # True granted, False denied, None pending
    isolation_ok: bool | None = None  # result of the running cable check
    stop_reason: str | None = None
    emergency_reason: str | None = None
    setpoint_w: float | None = None  # Dynamic mode, negative = discharge
    pause_reason: str | None = None  # EVSENotification=Pause until the EV pauses
    # Arbitration (docs/ocpp.md): `limits` and `setpoint_w` are what the handlers use: the
    # charger's own limits (`rated`, LimitsUpdated) and the local setpoint, both within the
    # outside bound (PowerBoundUpdated: the CSMS) - in this one place for every protocol.
    rated: EvseLimits | None = None
    local_setpoint_w: float | None = None
    bound: PowerBoundUpdated | None = None
    bound_version: int = 0  # +1 at each bound that asks for renegotiation

    def __post_init__(self) -> None:
        if self.rated is None:
            self.rated = self.limits
        if self.local_setpoint_w is None:
            self.local_setpoint_w = self.setpoint_w
        self._arbitrate()

    def _arbitrate(self) -> None:
        rated, b = self.rated or self.limits, self.bound
        self.limits = rated if b is None else bounded(rated, b.max_charge_power,
                                                      b.max_discharge_power)
        want = b.setpoint_w if b is not None and b.setpoint_w is not None else (
            self.local_setpoint_w)
        self.setpoint_w = None if want is None else clamp_setpoint(want, self.limits)

    def update(self, event: object) -> bool:
        """Record a charger fact; False if `event` is not one this state keeps."""
        if isinstance(event, MeasurementsUpdated):
            self.present_voltage = event.present_voltage
            self.present_current = event.present_current
            self.present_power = event.present_power
            if event.imported_wh is not None:
                self.imported_wh = event.imported_wh
            if event.exported_wh is not None:
                self.exported_wh = event.exported_wh
            if event.imported_wh is not None or event.meter_signature is not None:
                self.meter_signature = event.meter_signature
        elif isinstance(event, AuthorizationGranted | AuthorizationDenied):
            self.authorization = isinstance(event, AuthorizationGranted)
        elif isinstance(event, StopRequested):
            self.stop_reason = event.reason
        elif isinstance(event, EmergencyStop):
            self.emergency_reason = event.reason
        elif isinstance(event, PauseRequested):
            self.pause_reason = event.reason
        else:
            return self._power_input(event)
        return True

    def _power_input(self, event: object) -> bool:
        """Limits, setpoints and the outside bound: all through `_arbitrate`."""
        if isinstance(event, LimitsUpdated):
            self.rated = event.limits
        elif isinstance(event, SetpointUpdated):
            self.local_setpoint_w = event.power_w
        elif isinstance(event, PowerBoundUpdated):
            self.bound = event
            if event.renegotiate:
                self.bound_version += 1
        else:
            return False
        self._arbitrate()
        return True

    @property
    def power(self) -> float:
        if self.present_power is not None:
            return self.present_power
        return self.present_voltage * self.present_current


@dataclass
class SessionStore:
    """Paused sessions by SessionID, oldest dropped beyond `max_sessions`, and dropped
    `max_age` after they were first seen by `expire(now)` (which the I/O layer calls
    periodically; None: never).

    Share one store between all connections of a charge point.
    """

    max_sessions: int = 16
    max_age: float | None = None  # s on the `now` clock of `expire`
    _paused: OrderedDict[bytes, Session] = field(default_factory=OrderedDict)
    _seen: dict[bytes, float] = field(default_factory=dict)

    def expire(self, now: float) -> list[bytes]:
        """Drop paused sessions older than `max_age`; return their SessionIDs."""
        for sid in list(self._seen):
            if sid not in self._paused:
                del self._seen[sid]  # resumed or dropped meanwhile
        for sid in self._paused:
            self._seen.setdefault(sid, now)
        if self.max_age is None:
            return []
        old = [sid for sid, at in self._seen.items() if now - at > self.max_age]
        for sid in old:
            del self._paused[sid], self._seen[sid]
        return old

    def pause(self, session: Session) -> None:
        self._seen.pop(session.session_id, None)  # paused again: its age starts anew
        self._paused[session.session_id] = copy.deepcopy(session)
        self._paused.move_to_end(session.session_id)
        while len(self._paused) > self.max_sessions:
            self._paused.popitem(last=False)

    def get(self, session_id: bytes) -> Session | None:
        return self._paused.get(bytes(session_id))

    def take(self, session_id: bytes) -> Session | None:
        return self._paused.pop(bytes(session_id), None)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._paused

    def __len__(self) -> int:
        return len(self._paused)
