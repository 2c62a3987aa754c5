"""`PilotLifecycle`: the connector's life from plug-in to unplug, driven by the control pilot.

    pilot = PilotLifecycle(PilotConfig(max_current=32.0))
    effects = pilot.pilot_measured("B", now)   # a board reading (any str: "A".."F")
    effects = pilot.slac_started(now)          # first CM_SLAC_PARM.REQ seen (SlacEvse)
    effects = pilot.slac_matched(now)          # CM_SLAC_MATCH.CNF sent
    effects = pilot.slac_attempt_failed(now, reason)
    effects = pilot.set_current_limit(amps, now)   # the energy policy changed the limit
    effects = pilot.handle_timeout(now)        # at or after next_deadline()

sans-IO: no clock, no hal; a reading enters as a string (hal's `PilotState` is a StrEnum
with the same letters) and every effect is returned in the order it must be carried out.

IEC 61851-1 states (DESIGN.md 5b): A +12 V no car, B +9 V connected, C +6 V ready, D +3 V
ready with ventilation, E 0 V fault, F -12 V EVSE unavailable. What we do:

- A -> B (plug-in): with digital communication, 5 % duty and `StartSlac`; SLAC must start
  (first CM_SLAC_PARM.REQ) within `slac_init_timeout` (TT_EVSE_SLAC_init) and a started
  attempt that fails is retried by the car, up to `slac_attempts` in all. Otherwise the
  charger falls back: first `ef_restarts` times an E/F step (duty 0 % = steady -12 V, for
  T_step_EF) and a fresh 5 % start, then basic AC charging (if allowed) or no charging.
- Basic AC charging (fallback, or `digital_communication=False`): the nominal duty encodes
  the allowed current (`duty_for_current`), re-sent whenever the limit changes.
- C (or D with ventilation) after a SLAC match or in basic charging: `EnergyAllowed(True)`.
  D without ventilation: refused (`SafeState`). C/D -> B while energy flows: the car paused
  or stopped, `EnergyAllowed(False)` (the controller takes the current to zero before it
  opens the contactors).
- -> A (unplug): `EndSession`, `SafeState`, duty back to 100 % (no PWM), reset.
- Out of service (`set_in_service(False)`, e.g. OCPP ChangeAvailability Inoperative): a car
  that plugs in gets no PWM and no SLAC (duty stays 100 %, phase NO_LINK) until the
  connector is back in service, when it starts as a fresh plug-in; a session already
  running is not touched (the caller waits for its end).
- E, F (except during our own E/F step) and readings that are no state: `SafeState` and the
  session ends; a later A resets, a later B starts again as a plug-in.

`times` carries plugged_at / slac_started_at / slac_matched_at / unplugged_at for the session
report; every transition is also a `LinkEvent` with its time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from evse.link import timing

# -- the pilot as read ----------------------------------------------------------------------


class Pilot(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"
    INVALID = "invalid"  # a reading between the bands, or anything unknown


def parse_pilot(reading: object) -> Pilot:
    """A board reading (hal `PilotState`, a letter) -> `Pilot`; anything else is INVALID."""
    text = str(reading).strip().upper() if reading is not None else ""
    try:
        return Pilot(text) if text != "INVALID" else Pilot.INVALID
    except ValueError:
        return Pilot.INVALID


# Duty cycle meaning "no PWM": steady +12 V (A/B without offer) and "charging not allowed".
DUTY_OFF = 100.0
DUTY_DIGITAL = 5.0  # digital communication required
DUTY_STATE_F = 0.0  # steady -12 V: EVSE unavailable (the E/F step)
MIN_BASIC_CURRENT = 6.0
MAX_BASIC_CURRENT = 80.0


def duty_for_current(amps: float) -> float:
    """IEC 61851-1 nominal duty (percent, one decimal) for an allowed AC current.

    6-51 A: duty = A / 0.6; 51-80 A: duty = A / 2.5 + 64 (DESIGN.md 5b). Above 80 A the duty
    says 80 A; below 6 A no current may be offered: no PWM (100 %).
    """
    if not amps >= MIN_BASIC_CURRENT:  # also NaN
        return DUTY_OFF
    amps = min(amps, MAX_BASIC_CURRENT)
    duty = amps / 0.6 if amps <= 51.0 else amps / 2.5 + 64.0
    return round(duty, 1)


# -- configuration, phases, effects ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PilotConfig:
    digital_communication: bool = True  # 5 % + SLAC on plug-in; False: basic charging only
    basic_charging_fallback: bool = True  # AC basic charging when SLAC does not match
    ventilation_available: bool = False  # state D allowed
    max_current: float = 32.0  # A: allowed AC current for basic charging (until changed)
    slac_init_timeout: float = timing.TT_EVSE_SLAC_INIT
    slac_attempts: int = 1 + timing.C_EV_MATCH_RETRY
    ef_restarts: int = 1  # E/F steps before giving up on SLAC
    ef_step: float = timing.T_STEP_EF


class Phase(StrEnum):
    IDLE = "idle"  # no car (A)
    WAIT_SLAC = "wait_slac"  # 5 %, waiting for CM_SLAC_PARM.REQ
    SLAC = "slac"  # matching in progress
    MATCHED = "matched"  # SLAC matched: SDP and the V2G session follow
    EF_STEP = "ef_step"  # our own E/F step before a fresh 5 % start
    BASIC = "basic"  # basic AC charging: nominal duty
    NO_LINK = "no_link"  # no match and no basic charging: nothing until unplug
    FAULT = "fault"  # E/F/invalid reading: safe state until A or B


@dataclass(frozen=True, slots=True)
class SetDuty:
    percent: float


@dataclass(frozen=True, slots=True)
class StartSlac:
    """Reset the SLAC machine and listen for a car's CM_SLAC_PARM.REQ."""


@dataclass(frozen=True, slots=True)
class StopSlac:
    """Stop matching (unplug, fallback, fault)."""


@dataclass(frozen=True, slots=True)
class SessionAllowed:
    """A session may start: "hlc" (SDP/V2G after the SLAC match) or "basic" (no messages)."""

    mode: str


@dataclass(frozen=True, slots=True)
class EnergyAllowed:
    """The pilot permits energy transfer (C, or D with ventilation) or withdraws it (the
    controller brings the current to zero before it opens the contactors)."""

    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class EndSession:
    reason: str


@dataclass(frozen=True, slots=True)
class SafeState:
    reason: str


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """Something worth a log line, MQTT state and the session report."""

    name: str
    time: float
    detail: str = ""


PilotEffect = (SetDuty | StartSlac | StopSlac | SessionAllowed | EnergyAllowed | EndSession
               | SafeState | LinkEvent)


@dataclass(frozen=True, slots=True)
class PlugTimes:
    plugged_at: float | None = None
    slac_started_at: float | None = None
    slac_matched_at: float | None = None
    unplugged_at: float | None = None


_FAULTS = (Pilot.E, Pilot.F, Pilot.INVALID)
_READY = (Pilot.C, Pilot.D)


@dataclass(slots=True)
class PilotLifecycle:
    config: PilotConfig = field(default_factory=PilotConfig)
    phase: Phase = Phase.IDLE
    car: Pilot = Pilot.A
    times: PlugTimes = field(default_factory=PlugTimes)
    current_limit: float = 0.0
    duty: float = DUTY_OFF
    energy: bool = False  # EnergyAllowed(True) is in force
    _deadline: float | None = None
    _failures: int = 0
    _ef_left: int = 0
    _car_at_fault: bool = False  # the fault came with a car plugged in
    in_service: bool = True  # False: a new car gets neither PWM nor SLAC
    _parked: bool = False  # NO_LINK because out of service (not a failed SLAC)

    def __post_init__(self) -> None:
        self.current_limit = self.config.max_current

    # -- inputs -----------------------------------------------------------------------------
    def pilot_measured(self, reading: object, now: float) -> list[PilotEffect]:
        state = parse_pilot(reading)
        previous, self.car = self.car, state
        if state == previous and state not in _FAULTS:
            return []
        out: list[PilotEffect] = []
        if state == Pilot.A:
            if self.phase == Phase.FAULT and not self._car_at_fault:
                # a fault without a car (a board reading F before its first duty, a glitch):
                # nothing was plugged, so nothing is unplugged
                self.phase = Phase.IDLE
                return [LinkEvent("fault_cleared", now)]
            if self.phase != Phase.IDLE:
                out += self._unplug(now)
            return out
        if state in _FAULTS:
            if self.phase == Phase.EF_STEP and state in (Pilot.E, Pilot.F):
                return out  # our own E/F step reads back as F (or E)
            if self.phase == Phase.FAULT:
                return out
            return self._fault(state, now)
        # B, C or D: a car is there
        if self.phase in (Phase.IDLE, Phase.FAULT):
            out += self._plug(now)
        if state == Pilot.B:
            out += self._withdraw_energy(f"car in B (was {previous})", now)
            return out
        if state == Pilot.D and not self.config.ventilation_available:
            out += self._withdraw_energy("state D without ventilation", now)
            out += [SafeState("state D (ventilation required) refused"),
                    LinkEvent("ventilation_refused", now)]
            return out
        out += self._grant_energy(now)
        return out

    def slac_started(self, now: float) -> list[PilotEffect]:
        if self.phase != Phase.WAIT_SLAC:
            return []
        self.phase = Phase.SLAC
        self._deadline = None  # the SLAC machine's own timers end an attempt
        if self.times.slac_started_at is None:
            self.times = replace(self.times, slac_started_at=now)
        return [LinkEvent("slac_started", now)]

    def slac_matched(self, now: float) -> list[PilotEffect]:
        if self.phase not in (Phase.WAIT_SLAC, Phase.SLAC):
            return []
        self.phase = Phase.MATCHED
        self._deadline = None
        self.times = replace(self.times, slac_matched_at=now)
        out: list[PilotEffect] = [LinkEvent("slac_matched", now), SessionAllowed("hlc")]
        if self.car in _READY:
            out += self._grant_energy(now)
        return out

    def slac_attempt_failed(self, now: float, reason: str) -> list[PilotEffect]:
        if self.phase not in (Phase.WAIT_SLAC, Phase.SLAC):
            return []
        self._failures += 1
        out: list[PilotEffect] = [LinkEvent("slac_attempt_failed", now, reason)]
        if self._failures >= self.config.slac_attempts:
            return out + self._fallback(f"{self._failures} SLAC attempts failed", now)
        # the car retries with a new RunID; it must start within the init time again
        self.phase = Phase.WAIT_SLAC
        self._deadline = now + self.config.slac_init_timeout
        return out

    def set_current_limit(self, amps: float, now: float) -> list[PilotEffect]:
        self.current_limit = amps
        if self.phase != Phase.BASIC:
            return []
        return self._set_duty(duty_for_current(amps))

    def set_in_service(self, in_service: bool, now: float) -> list[PilotEffect]:
        self.in_service = in_service
        if in_service and self._parked and self.phase == Phase.NO_LINK:
            self._parked = False
            return self._plug(now)  # the car still plugged in starts now
        return []

    def next_deadline(self) -> float | None:
        return self._deadline

    def handle_timeout(self, now: float) -> list[PilotEffect]:
        if self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        if self.phase == Phase.WAIT_SLAC:
            out: list[PilotEffect] = [LinkEvent("slac_init_timeout", now)]
            return out + self._fallback("no CM_SLAC_PARM.REQ within TT_EVSE_SLAC_init", now)
        if self.phase == Phase.EF_STEP:
            return self._start_digital(now)
        return []

    # -- transitions ------------------------------------------------------------------------
    def _plug(self, now: float) -> list[PilotEffect]:
        self.times = PlugTimes(plugged_at=now)
        self._failures = 0
        self._ef_left = self.config.ef_restarts
        out: list[PilotEffect] = [LinkEvent("plugged", now)]
        if not self.in_service:
            self.phase, self._deadline, self._parked = Phase.NO_LINK, None, True
            return [*out, LinkEvent("out_of_service", now), *self._set_duty(DUTY_OFF)]
        if self.config.digital_communication:
            return out + self._start_digital(now)
        return out + self._basic(now)

    def _start_digital(self, now: float) -> list[PilotEffect]:
        self.phase = Phase.WAIT_SLAC
        self._failures = 0
        self._deadline = now + self.config.slac_init_timeout
        return [*self._set_duty(DUTY_DIGITAL), StartSlac()]

    def _fallback(self, why: str, now: float) -> list[PilotEffect]:
        out: list[PilotEffect] = [StopSlac()]
        if self._ef_left > 0:
            self._ef_left -= 1
            self.phase = Phase.EF_STEP
            self._deadline = now + self.config.ef_step
            return [*out, LinkEvent("ef_step", now, why), *self._set_duty(DUTY_STATE_F)]
        if self.config.basic_charging_fallback:
            return [*out, LinkEvent("basic_charging", now, why), *self._basic(now)]
        self.phase = Phase.NO_LINK
        self._deadline = None
        return [*out, LinkEvent("no_link", now, why), *self._set_duty(DUTY_OFF)]

    def _basic(self, now: float) -> list[PilotEffect]:
        self.phase = Phase.BASIC
        self._deadline = None
        out = [*self._set_duty(duty_for_current(self.current_limit)), SessionAllowed("basic")]
        if self.car in _READY:
            out += self._grant_energy(now)
        return out

    def _grant_energy(self, now: float) -> list[PilotEffect]:
        if self.energy or self.phase not in (Phase.MATCHED, Phase.BASIC):
            return []
        if self.car == Pilot.D and not self.config.ventilation_available:
            return []
        self.energy = True
        return [EnergyAllowed(True, f"car ready ({self.car})"), LinkEvent("energy_allowed", now)]

    def _withdraw_energy(self, why: str, now: float) -> list[PilotEffect]:
        if not self.energy:
            return []
        self.energy = False
        return [EnergyAllowed(False, why), LinkEvent("energy_withdrawn", now, why)]

    def _unplug(self, now: float) -> list[PilotEffect]:
        out: list[PilotEffect] = [*self._withdraw_energy("unplugged", now), StopSlac(),
                                  EndSession("unplugged"), SafeState("unplugged")]
        self.times = replace(self.times, unplugged_at=now)
        out.append(LinkEvent("unplugged", now))
        out += self._set_duty(DUTY_OFF)
        self.phase = Phase.IDLE
        self._deadline = None
        self._failures = 0
        self._parked = False
        return out

    def _fault(self, state: Pilot, now: float) -> list[PilotEffect]:
        why = f"pilot {state}"
        self._car_at_fault = self.phase != Phase.IDLE
        out: list[PilotEffect] = [*self._withdraw_energy(why, now), SafeState(why)]
        if self.phase != Phase.IDLE:
            out += [StopSlac(), EndSession(why)]
        out.append(LinkEvent("pilot_fault", now, why))
        out += self._set_duty(DUTY_OFF)
        self.phase = Phase.FAULT
        self._deadline = None
        return out

    def _set_duty(self, percent: float) -> list[PilotEffect]:
        if percent == self.duty:
            return []
        self.duty = percent
        return [SetDuty(percent)]
