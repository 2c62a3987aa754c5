"""`SupervisedController`: a `ChargerController` over a safety supervisor (hal.supervisor).

    hal = SafetySupervisor(create_backend_from_spec("serial:/dev/ttymxc2,can:can0,"
        "isolation_monitor=modbus-imd:rtu:/dev/ttymxc3,meter=modbus-meter:tcp:10.0.0.7"))
    ctl = SupervisedController(hal, evse_limits=config.limits, now=t)

The supervisor (a `HalBackend` wrapping the real one) trips on its own when a check fails
and drives the safe state (current zero first, then the contactors); the plain controller
already sees `tripped`, enters its safe state and reports `EmergencyStop` to the SECC once,
which answers the EV's next request with FAILED and EVSENotification=Terminate. This
subclass adds what the session needs around that:

- **Limits**: the supervisor checks the measured voltage and currents against the EVSE
  limits (the SECC configuration's) from the start of every session, and against the lower
  of the EVSE's and the EV's once `EvLimitsReported` arrives (ChargeParameterDiscovery).
- **Trip record**: every trip seen while a session owns the connector is appended to
  `session_trips` (a new list per session, so a record that keeps a reference also gets a
  trip found during that session's shutdown, e.g. a contactor that welded when it opened),
  recorded as an action and logged with its reason.
- **Ready for the next session**: `begin_session` clears a trip left by the previous
  session when the supervisor agrees (safe state reached and no check failing any more:
  the MCU talks again, the welded contactor was repaired, the e-stop button was released;
  the latched e-stop is unlatched first, `reset_emergency_stop`). A trip whose cause is
  still present stays: the session then fails at once with that reason, so a faulty
  charger never energises.
- **Derating**: when the power supply's capabilities shrink (a CAN power module lost) or
  grow back, the SECC gets `LimitsUpdated` with the EVSE limits capped to them, so the EV
  is told the reduced maximum currents and powers in its next ChargeLoopRes.

Like the base class this is sans-IO: time enters as `now`; nothing here imports the
supervisor's module (control reaches the hardware only through `hal.interfaces`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from evse.control.controller import ChargerController, ControllerConfig
from evse.protocol import events as ev
from evse.protocol.limits import EvLimits, EvseLimits
from hal.interfaces import HalBackend, PowerSupplyCapabilities

log = logging.getLogger(__name__)


class TripLike(Protocol):
    reason: Any  # hal.supervisor.TripReason (a StrEnum with `.emergency`)
    text: str
    time: float


@dataclass(frozen=True, slots=True)
class SupervisionPolicy:
    """What the controller does around the supervisor (all on by default)."""

    reset_on_new_session: bool = True  # clear a gone trip when the next EV connects
    reset_emergency_stop: bool = True  # ... including a released emergency stop's latch
    derate_limits: bool = True  # LimitsUpdated to the SECC when the supply's capabilities change


@dataclass(frozen=True, slots=True)
class TripRecord:
    """A supervisor trip as a session record keeps it."""

    reason: str
    text: str
    time: float  # the HAL clock
    emergency: bool  # an emergency shutdown (e-stop, isolation, over-voltage/current, contactor)
    before_session: bool = False  # still active from before the session (reset refused)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"{self.reason}: {self.text}"


def session_limits(evse: EvseLimits, ev_limits: EvLimits | None) -> tuple[float, float, float]:
    """(max voltage, max charge current, max discharge current) for the supervisor: the
    lower of the EVSE's and the EV's (an EV limit it did not send does not count)."""
    volts, charge, discharge = (evse.max_voltage, evse.max_charge_current,
                                evse.max_discharge_current)
    if ev_limits is not None:
        if ev_limits.max_voltage is not None:
            volts = min(volts, ev_limits.max_voltage)
        if ev_limits.max_charge_current is not None:
            charge = min(charge, ev_limits.max_charge_current)
        if ev_limits.max_discharge_current is not None:
            discharge = min(discharge, ev_limits.max_discharge_current)
    return max(volts, 0.0), max(charge, 0.0), max(discharge, 0.0)


def derated_limits(evse: EvseLimits, caps: PowerSupplyCapabilities) -> EvseLimits:
    """The EVSE limits, no higher than what the supply can do now."""
    d_current = caps.max_discharge_current if caps.bidirectional else 0.0
    d_power = caps.max_discharge_power if caps.bidirectional else 0.0
    max_cc = min(evse.max_charge_current, caps.max_charge_current)
    max_cp = min(evse.max_charge_power, caps.max_charge_power)
    max_dc = min(evse.max_discharge_current, d_current)
    max_dp = min(evse.max_discharge_power, d_power)
    return dataclasses.replace(
        evse,
        max_charge_current=max_cc,
        max_charge_power=max_cp,
        max_discharge_current=max_dc,
        max_discharge_power=max_dp,
        min_charge_current=min(evse.min_charge_current, max_cc),
        min_charge_power=min(evse.min_charge_power, max_cp),
        min_discharge_current=min(evse.min_discharge_current, max_dc),
        min_discharge_power=min(evse.min_discharge_power, max_dp),
    )


class SupervisedController(ChargerController):
    """See the module docstring. `hal` is a `hal.supervisor.SafetySupervisor` (anything
    with its `set_limits`, `tripped`, `trips`, `active_trips` and `reset(now)`)."""

    def __init__(
        self,
        hal: HalBackend,
        *,
        evse_limits: EvseLimits | None = None,
        policy: SupervisionPolicy | None = None,
        now: float = 0.0,
        config: ControllerConfig | None = None,
        name: str = "1",
    ) -> None:
        for attr in ("set_limits", "trips", "active_trips", "reset"):
            if not hasattr(hal, attr):
                raise TypeError(f"SupervisedController needs a safety supervisor, got "
                                f"{type(hal).__name__} (no {attr!r})")
        super().__init__(hal, now=now, config=config, name=name)
        self.evse_limits = evse_limits
        self.policy = policy or SupervisionPolicy()
        self.session_trips: list[TripRecord] = []
        self._trips_seen = len(self._sup.trips)
        self._caps_seen: PowerSupplyCapabilities | None = None
        self._limits_sent: EvseLimits | None = evse_limits
        self._apply_limits(None)

    @property
    def _sup(self) -> Any:
        return self.hal

    # -- session bracket -----------------------------------------------------------------

    def begin_session(self, now: float) -> None:
        self._collect_trips(now)  # anything since the last poll belongs to the last session
        super().begin_session(now)
        self.session_trips = []  # a new list: the last session's record keeps the old one
        sup = self._sup
        if sup.tripped and self.policy.reset_on_new_session:
            self._try_reset(now)
        for trip in sup.active_trips:  # still there: the session fails with it at once
            self.session_trips.append(_record(trip, before_session=True))
            self._log.error("not ready for a session: safety trip %s: %s still active",
                            trip.reason, trip.text)
        self._trips_seen = len(sup.trips)
        self._apply_limits(None)
        self._caps_seen = None  # re-announce a derating to the new session
        self._limits_sent = self.evse_limits

    def _try_reset(self, now: float) -> None:
        sup, board = self._sup, self.hal.board
        if self.policy.reset_emergency_stop and board.emergency_stop_active:
            if board.reset_emergency_stop():
                self._record(now, "emergency_stop_reset", "button released")
            else:
                self._log.warning("emergency stop still pressed: cannot reset")
        causes = "; ".join(f"{t.reason}: {t.text}" for t in sup.active_trips)
        if sup.reset(now):
            self._record(now, "safety_reset", causes)
            self._log.warning("safety trip cleared for the new session (was: %s)", causes)

    # -- effects -------------------------------------------------------------------------

    def handle_effect(self, effect: ev.Effect, now: float) -> list[ev.Event]:
        out = super().handle_effect(effect, now)
        if isinstance(effect, ev.EvLimitsReported):
            self._apply_limits(effect.limits)
        return out

    def _apply_limits(self, ev_limits: EvLimits | None) -> None:
        if self.evse_limits is None:
            return
        volts, charge, discharge = session_limits(self.evse_limits, ev_limits)
        self._sup.set_limits(volts, charge, discharge)

    # -- polling -------------------------------------------------------------------------

    def poll(self, now: float) -> list[ev.Event]:
        out = super().poll(now)
        self._collect_trips(now)
        if self.policy.derate_limits and self.evse_limits is not None:
            out += self._derate(now)
        return out

    def _collect_trips(self, now: float) -> None:
        trips: Sequence[Any] = self._sup.trips
        if len(trips) < self._trips_seen:  # the supervisor was replaced or its list trimmed
            self._trips_seen = 0
        for trip in trips[self._trips_seen:]:
            record = _record(trip)
            self.session_trips.append(record)
            self._record(trip.time, "safety_trip", str(record))
            self._log.error("safety trip (%s): %s: %s",
                            "emergency" if record.emergency else "malfunction",
                            record.reason, record.text)
        self._trips_seen = len(trips)

    def _derate(self, now: float) -> list[ev.Event]:
        try:
            caps = self.hal.power_supply.capabilities
        except Exception:  # reporting only: the supervisor judges the hardware
            return []
        if caps == self._caps_seen:
            return []
        self._caps_seen = caps
        assert self.evse_limits is not None
        if caps.max_charge_current <= 0:  # nothing left: the supply faults, the session ends
            return []
        limits = derated_limits(self.evse_limits, caps)
        if limits == self._limits_sent:
            return []
        self._limits_sent = limits
        derated = limits != self.evse_limits
        detail = (f"charge {limits.max_charge_current:.0f} A / {limits.max_charge_power:.0f} W, "
                  f"discharge {limits.max_discharge_current:.0f} A / "
                  f"{limits.max_discharge_power:.0f} W")
        self._record(now, "derated" if derated else "derating_lifted", detail)
        if derated:
            self._log.warning("power supply derated: EVSE limits now %s", detail)
        else:
            self._log.info("power supply back to full capability: %s", detail)
        return [ev.LimitsUpdated(limits)]


def _record(trip: Any, *, before_session: bool = False) -> TripRecord:
    reason = trip.reason
    return TripRecord(
        reason=str(getattr(reason, "value", reason)),
        text=str(trip.text),
        time=float(trip.time),
        emergency=bool(getattr(reason, "emergency", False)),
        before_session=before_session,
    )
