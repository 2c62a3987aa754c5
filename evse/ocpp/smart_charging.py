"""Charging profiles from the CSMS (OCPP 2.0.1 K01-K08, 2.1 operation modes) and the limits
they put on each EVSE at a given time.

Arbitration (docs/ocpp.md): within each purpose the valid, active profile with the highest
stackLevel counts; TxProfile (for the EVSE's running transaction) replaces TxDefaultProfile;
ChargingStationMaxProfile (EVSE 0) bounds everything. The result only ever lowers what the
charger would do: the safety limits and the hardware stay below, the local energy policy
(plan, MQTT setpoints) plans inside it.

2.1 operation modes of the period in force: ChargingOnly (the default) allows no discharge;
Idle allows neither charge nor discharge; CentralSetpoint asks for `setpoint` (negative:
discharge) within the limits; ExternalSetpoint and ExternalLimits leave the setpoint to the
local policy within `limit` and `dischargeLimit` (absent: not limited by this profile).
A Dynamic profile that is not updated within its dynUpdateInterval is ignored (dead-man:
the next lower profile, or none, applies again).

A ChargingStationMaxProfile bounds charge by `limit` and discharge only by its own
`dischargeLimit`; operation modes are those of the transaction's profile.

Units: W as given; A are converted at 230 V per phase x numberPhases (default 3).
Times are Unix seconds; `now` enters from outside.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ChargingLimits", "ProfileError", "ProfileRejected", "ProfileStore"]

PURPOSES = ("ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile",
            "ChargingStationExternalConstraints", "PriorityCharging", "LocalGeneration")
SUPPORTED_PURPOSES = ("ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile")
DISCHARGE_MODES = ("CentralSetpoint", "ExternalSetpoint", "ExternalLimits")
VOLTS_PER_PHASE = 230.0


class ProfileError(ValueError):
    """A profile with values out of range: answered with a CallError of `code`."""

    code = "PropertyConstraintViolation"


class ProfileRejected(ValueError):
    """A well-formed profile the station does not take: answered status Rejected."""


@dataclass(frozen=True, slots=True)
class ChargingLimits:
    """What the CSMS allows an EVSE at one instant (W; None: not limited by OCPP)."""

    max_charge_w: float | None = None
    max_discharge_w: float | None = None
    setpoint_w: float | None = None  # CentralSetpoint: the power asked for (< 0: discharge)
    operation_mode: str | None = None


def parse_time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass(slots=True)
class _Stored:
    evse_id: int
    profile: dict[str, Any]
    updated_at: float

    @property
    def purpose(self) -> str:
        return str(self.profile["chargingProfilePurpose"])

    @property
    def stack_level(self) -> int:
        return int(self.profile["stackLevel"])


@dataclass(slots=True)
class ProfileStore:
    station_max_w: float | None = None  # the station's own maximum, for A->W sanity only
    # OCPP 2.1 price schedules / sales tariffs: checks a profile's and returns what the EV
    # gets (or None), raising ProfileError / ProfileRejected (evse.aio.ocpp_prices)
    price_check: Callable[[dict[str, Any]], Any] | None = None
    _profiles: dict[int, _Stored] = field(default_factory=dict)  # by profile id
    _prices: dict[int, Any] = field(default_factory=dict)  # profile id -> price_check's result
    _tx: dict[int, tuple[str, float]] = field(default_factory=dict)  # evse -> (tx id, start)
    _dead_man: bool = True  # False only inside composite(dead_man=False)

    # -- transactions (TxProfile and Relative profiles need them) ---------------------------
    def transaction_started(self, evse_id: int, tx_id: str, now: float) -> None:
        self._tx[evse_id] = (tx_id, now)

    def transaction_ended(self, evse_id: int) -> None:
        tx = self._tx.pop(evse_id, None)
        if tx is not None:  # a TxProfile lives as long as its transaction
            for pid in [p for p, s in self._profiles.items() if s.purpose == "TxProfile"
                        and s.profile.get("transactionId") == tx[0]]:
                self._drop(pid)

    # -- CSMS operations ---------------------------------------------------------------------
    def set(self, evse_id: int, profile: dict[str, Any], now: float) -> None:
        """SetChargingProfile: validate, then store (replacing the same id, or the same
        purpose + stack level on the same EVSE)."""
        self._validate(evse_id, profile)
        price = self.price_check(profile) if self.price_check is not None else None
        for pid in [p for p, s in self._profiles.items()
                    if s.evse_id == evse_id and s.purpose == profile["chargingProfilePurpose"]
                    and s.stack_level == profile["stackLevel"]
                    and p != profile["id"]]:
            self._drop(pid)
        self._profiles[int(profile["id"])] = _Stored(evse_id, profile, now)
        self._prices.pop(int(profile["id"]), None)
        if price is not None:
            self._prices[int(profile["id"])] = price

    def _drop(self, pid: int) -> None:
        del self._profiles[pid]
        self._prices.pop(pid, None)

    def clear(self, profile_id: int | None = None, evse_id: int | None = None,
              purpose: str | None = None, stack_level: int | None = None) -> bool:
        """ClearChargingProfile: True if anything was cleared."""
        gone = [p for p, s in self._profiles.items()
                if (profile_id is None or p == profile_id)
                and (evse_id is None or s.evse_id == evse_id)
                and (purpose is None or s.purpose == purpose)
                and (stack_level is None or s.stack_level == stack_level)]
        for p in gone:
            self._drop(p)
        return bool(gone)

    def get(self, evse_id: int | None = None, purpose: str | None = None,
            stack_level: int | None = None, ids: tuple[int, ...] = ()
            ) -> list[tuple[int, dict[str, Any]]]:
        """GetChargingProfiles: (EVSE id, profile) of every match."""
        return [(s.evse_id, s.profile) for p, s in sorted(self._profiles.items())
                if (evse_id is None or s.evse_id == evse_id)
                and (purpose is None or s.purpose == purpose)
                and (stack_level is None or s.stack_level == stack_level)
                and (not ids or p in ids)]

    # -- the limits --------------------------------------------------------------------------
    def limits_at(self, evse_id: int, t: float) -> ChargingLimits:
        station = self._winner(0, "ChargingStationMaxProfile", t)
        tx = self._winner(evse_id, "TxProfile", t)
        if tx is None:
            tx = self._winner(evse_id, "TxDefaultProfile", t)
            if tx is None:
                tx = self._winner(0, "TxDefaultProfile", t)
        charge: float | None = None
        discharge: float | None = None
        setpoint: float | None = None
        mode: str | None = None
        for period in (station, tx):
            if period is None:
                continue
            p, unit_w = period
            c, d, sp, m = self._period_limits(p, unit_w, station_max=period is station)
            charge = c if charge is None else (charge if c is None else min(charge, c))
            discharge = d if discharge is None else (
                discharge if d is None else min(discharge, d))
            if period is tx:
                setpoint, mode = sp, m
        if setpoint is not None:  # a central setpoint never leaves the limits
            if setpoint >= 0 and charge is not None:
                setpoint = min(setpoint, charge)
            elif setpoint < 0 and discharge is not None:
                setpoint = -min(-setpoint, discharge)
        return ChargingLimits(charge, discharge, setpoint, mode)

    def price_at(self, evse_id: int, t: float) -> Any:
        """The price information (price_check's result) of the transaction's profile in force
        at t (TxProfile, else TxDefaultProfile of the EVSE, else of the station), or None."""
        for evse, purpose in ((evse_id, "TxProfile"), (evse_id, "TxDefaultProfile"),
                              (0, "TxDefaultProfile")):
            best: tuple[int, int] | None = None
            for pid, s in self._profiles.items():
                if s.evse_id == evse and s.purpose == purpose and \
                        self._active_period(s, t) is not None and \
                        (best is None or s.stack_level > best[0]):
                    best = (s.stack_level, pid)
            if best is not None:
                return self._prices.get(best[1])
        return None

    def next_change(self, evse_id: int, t: float, horizon: float) -> float:
        """The next instant after t (up to t + horizon) where a period boundary, a validity
        edge or a dead-man expiry may change `limits_at`: for composite schedules."""
        edges = [t + horizon]
        for s in self._profiles.values():
            if s.evse_id not in (0, evse_id):
                continue
            p = s.profile
            for key in ("validFrom", "validTo"):
                if key in p:
                    edges.append(parse_time(p[key]))
            if p["chargingProfileKind"] == "Dynamic" and p.get("dynUpdateInterval") and \
                    self._dead_man:
                edges.append(s.updated_at + float(p["dynUpdateInterval"]))
            start = self._schedule_start(s, t)
            if start is None:
                continue
            for sched in p["chargingSchedule"][:1]:
                if "duration" in sched:
                    edges.append(start + float(sched["duration"]))
                for period in sched["chargingSchedulePeriod"]:
                    edges.append(start + float(period["startPeriod"]))
        later = [e for e in edges if e > t]
        return min(later) if later else t + horizon

    def composite(self, evse_id: int, start: float, duration: float, *,
                  dead_man: bool = True) -> list[tuple[float, ChargingLimits]]:
        """GetCompositeSchedule: (offset s, limits) at every change within the window.
        `dead_man=False`: as if every Dynamic profile were updated in time (what the CSMS
        plans, without the expiry edge that each of its updates moves)."""
        out: list[tuple[float, ChargingLimits]] = []
        t = start
        self._dead_man = dead_man
        try:
            while t < start + duration and len(out) < 1024:
                lim = self.limits_at(evse_id, t)
                if not out or out[-1][1] != lim:
                    out.append((t - start, lim))
                t = self.next_change(evse_id, t, start + duration - t)
        finally:
            self._dead_man = True
        return out

    # -- internals ---------------------------------------------------------------------------
    def _schedule_start(self, s: _Stored, t: float) -> float | None:
        p = s.profile
        sched = p["chargingSchedule"][0]
        kind = p["chargingProfileKind"]
        if kind == "Relative":
            tx = self._tx.get(s.evse_id) if s.evse_id else next(iter(self._tx.values()), None)
            return tx[1] if tx is not None else None
        if kind == "Dynamic":
            return s.updated_at
        start = parse_time(sched["startSchedule"]) if "startSchedule" in sched else s.updated_at
        if kind == "Recurring":
            period = 7 * 86400.0 if p.get("recurrencyKind") == "Weekly" else 86400.0
            if t >= start:
                start += ((t - start) // period) * period
        return start

    def _active_period(self, s: _Stored, t: float) -> tuple[dict[str, Any], float] | None:
        p = s.profile
        if "validFrom" in p and t < parse_time(p["validFrom"]):
            return None
        if "validTo" in p and t >= parse_time(p["validTo"]):
            return None
        if p["chargingProfileKind"] == "Dynamic" and p.get("dynUpdateInterval") and \
                self._dead_man and t >= s.updated_at + float(p["dynUpdateInterval"]):
            return None  # dead-man: the CSMS stopped updating it
        if s.purpose == "TxProfile":
            tx = self._tx.get(s.evse_id)
            if tx is None or tx[0] != p.get("transactionId"):
                return None
        start = self._schedule_start(s, t)
        if start is None or t < start:
            return None
        sched = p["chargingSchedule"][0]
        if "duration" in sched and t >= start + float(sched["duration"]):
            return None
        current = None
        for period in sched["chargingSchedulePeriod"]:
            if start + float(period["startPeriod"]) <= t:
                current = period
        if current is None:
            return None
        phases = float(current.get("numberPhases", 3) or 3)
        unit_w = 1.0 if sched["chargingRateUnit"] == "W" else VOLTS_PER_PHASE * phases
        return current, unit_w

    def _winner(self, evse_id: int, purpose: str, t: float
                ) -> tuple[dict[str, Any], float] | None:
        best: tuple[int, tuple[dict[str, Any], float]] | None = None
        for s in self._profiles.values():
            if s.evse_id != evse_id or s.purpose != purpose:
                continue
            active = self._active_period(s, t)
            if active is not None and (best is None or s.stack_level > best[0]):
                best = (s.stack_level, active)
        return best[1] if best else None

    @staticmethod
    def _period_limits(period: dict[str, Any], unit_w: float, *, station_max: bool = False
                       ) -> tuple[float | None, float | None, float | None, str]:
        mode = str(period.get("operationMode", "ChargingOnly"))
        charge = float(period["limit"]) * unit_w if "limit" in period else None
        if "dischargeLimit" in period:
            discharge: float | None = -float(period["dischargeLimit"]) * unit_w
        elif station_max:  # the station's bound: discharge only where it says so
            discharge = None
        else:
            discharge = None if mode in DISCHARGE_MODES else 0.0
        if station_max:
            return charge, discharge, None, mode
        if mode == "ChargingOnly":
            discharge = 0.0
        elif mode == "Idle":
            charge, discharge = 0.0, 0.0
        setpoint = (float(period["setpoint"]) * unit_w
                    if mode == "CentralSetpoint" and "setpoint" in period else None)
        return charge, discharge, setpoint, mode

    def _validate(self, evse_id: int, p: dict[str, Any]) -> None:
        purpose = p["chargingProfilePurpose"]
        if purpose not in SUPPORTED_PURPOSES:
            raise ProfileRejected(f"purpose {purpose} is not supported")
        if evse_id < 0:
            raise ProfileError(f"evseId {evse_id} < 0")
        if purpose == "ChargingStationMaxProfile" and evse_id != 0:
            raise ProfileRejected("ChargingStationMaxProfile is for evseId 0")
        if purpose == "TxProfile":
            tx = self._tx.get(evse_id)
            if evse_id == 0 or tx is None or p.get("transactionId") != tx[0]:
                raise ProfileRejected("TxProfile needs the EVSE's running transactionId")
        if int(p["stackLevel"]) < 0:
            raise ProfileError("stackLevel < 0")
        schedules = p["chargingSchedule"]
        if not schedules:
            raise ProfileError("no chargingSchedule")
        for key in ("validFrom", "validTo"):
            if key in p:
                _check_time(p[key], key)
        for sched in schedules:
            _validate_schedule(sched)


def _check_time(value: Any, name: str) -> None:
    try:
        parse_time(value)
    except ValueError:
        raise ProfileError(f"{name} is not a date-time") from None


def _validate_schedule(sched: dict[str, Any]) -> None:
    """One chargingSchedule: unit, start, duration, periods (CallError: ProfileError)."""
    if sched["chargingRateUnit"] not in ("W", "A"):
        raise ProfileError(f"chargingRateUnit {sched['chargingRateUnit']}")
    if "startSchedule" in sched:
        _check_time(sched["startSchedule"], "startSchedule")
    if float(sched.get("duration", 0)) < 0:
        raise ProfileError("duration < 0")
    periods = sched["chargingSchedulePeriod"]
    if not periods or periods[0]["startPeriod"] != 0:
        raise ProfileError("the first chargingSchedulePeriod must start at 0")
    starts = [int(x["startPeriod"]) for x in periods]
    if starts != sorted(set(starts)):
        raise ProfileError("startPeriod values must increase")
    for x in periods:
        if "limit" in x and float(x["limit"]) < 0:
            raise ProfileError(f"limit {x['limit']} < 0 (discharge is dischargeLimit)")
        if "dischargeLimit" in x and float(x["dischargeLimit"]) > 0:
            raise ProfileError(f"dischargeLimit {x['dischargeLimit']} > 0")
        if not 0 <= int(x.get("numberPhases", 3)) <= 3:
            raise ProfileError("numberPhases out of 0-3")
