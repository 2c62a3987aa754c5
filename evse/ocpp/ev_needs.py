"""NotifyEVChargingNeeds and NotifyEVChargingSchedule payloads (OCPP 2.0.1 K15-K17; 2.1 with
V2X charging parameters and control mode) from what the EV told at ScheduleExchange and the
schedules the station gave it. Powers in W, currents in A, voltages in V."""

from __future__ import annotations

from typing import Any

from evse.ocpp.station import iso_time

__all__ = ["charging_needs", "ev_charging_schedule"]


def charging_needs(evse_id: int, version: str, now: float, *, bpt: bool,
                   departure_s: int | None, ev_max_power: float,
                   ev_max_current: float | None, ev_max_voltage: float | None,
                   ev_max_discharge_power: float = 0.0, target_soc: int | None = None,
                   dynamic: bool = False,
                   energy_wh: tuple[float | None, float | None, float | None] = (
                       None, None, None)) -> dict[str, Any]:
    """A DC EV's needs. Under 2.0.1 a BPT EV is reported as DC (2.0.1 has no BPT).
    `energy_wh`: the EV's (target, minimum, maximum) energy requests (-20), when given."""
    transfer = "DC_BPT" if bpt and version == "2.1" else "DC"
    needs: dict[str, Any] = {"requestedEnergyTransfer": transfer}
    if departure_s is not None:
        needs["departureTime"] = iso_time(now + departure_s)
    if ev_max_current is not None and ev_max_voltage is not None:
        needs["dcChargingParameters"] = {"evMaxCurrent": round(ev_max_current, 3),
                                         "evMaxVoltage": round(ev_max_voltage, 3),
                                         "evMaxPower": round(ev_max_power, 3)}
    if version == "2.1":
        v2x: dict[str, Any] = {"maxChargePower": round(ev_max_power, 3)}
        if bpt:
            v2x["maxDischargePower"] = round(ev_max_discharge_power, 3)
        if target_soc is not None:
            v2x["targetSoC"] = target_soc
        for key, value in zip(("evTargetEnergyRequest", "evMinEnergyRequest",
                               "evMaxEnergyRequest"), energy_wh, strict=True):
            if value is not None:
                v2x[key] = round(value, 3)
        needs["v2xChargingParameters"] = v2x
        needs["controlMode"] = "DynamicControl" if dynamic else "ScheduledControl"
    payload: dict[str, Any] = {"evseId": evse_id, "chargingNeeds": needs}
    if version == "2.1":
        payload["timestamp"] = iso_time(now)
    return payload


def ev_charging_schedule(evse_id: int, version: str, start: float,
                         periods: list[tuple[int, float, float]], schedule_id: int = 1,
                         ) -> dict[str, Any]:
    """The schedule given to the EV: (start offset s, max charge W, max discharge W) each."""
    out = []
    for offset, charge, discharge in periods:
        p: dict[str, Any] = {"startPeriod": int(offset), "limit": round(charge, 3)}
        if version == "2.1" and discharge > 0:
            p["dischargeLimit"] = -round(discharge, 3)
        out.append(p)
    return {"timeBase": iso_time(start), "evseId": evse_id,
            "chargingSchedule": {"id": schedule_id, "chargingRateUnit": "W",
                                 "chargingSchedulePeriod": out}}
