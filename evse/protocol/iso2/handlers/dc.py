"""DC: CableCheck, PreCharge, CurrentDemand and WeldingDetection.

CurrentDemand clamps the EV's target voltage and current to the charger's limits, the EV's
and the PMax schedule's, and commands SetPowerTarget (the same effect as -20's charge loop).
While a charger stop is pending the target current is zero and DC_EVSEStatus says
StopCharging.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from evse.protocol.errors import Failed, WrongChargeParameter
from evse.protocol.events import Effect, SetPowerTarget, StartCableCheck, StartPreCharge
from evse.protocol.iso2.handlers import pnc
from evse.protocol.iso2.handlers.common import (
    FINISHED,
    OK,
    ONGOING,
    HandlerResult,
    Inputs,
    dc_evse_status,
    meter_info,
    require_ev,
    schedule_limits,
    stopping,
)
from evse.protocol.iso2.session import Iso2Session
from evse.protocol.iso2.values import opt_si, physical, seconds, si
from evse.protocol.limits import EvLimits, cap
from evse.protocol.targets import dc_target
from exi_codec.schemas import iso2

VOLTAGE_TOLERANCE = 0.5  # V: a new precharge target only when it moves more than this


def _note_soc(session: Iso2Session, status: iso2.DC_EVStatusType | None) -> None:
    if status is not None and status.evresssoc is not None:
        session.record.present_soc = max(0, min(100, int(status.evresssoc)))


def handle_cable_check(
    req: iso2.CableCheckReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.CableCheckResType]:
    """The first request starts the insulation test; Ongoing until CableCheckFinished."""
    effects: list[Effect] = []
    result = inputs.charger.isolation_ok
    if session.cable_check_started is None:
        ev = require_ev(session)
        session.cable_check_started = inputs.now
        effects.append(
            StartCableCheck(voltage=cap(ev.max_voltage, inputs.charger.limits.max_voltage)))
        result = None  # only a result reported after this start counts
    if result is False:
        raise Failed("insulation fault in the cable check")
    done = result is True
    status = dc_evse_status(
        session, inputs, isolation="Valid" if done else "Invalid",
        code=None if done else "EVSE_IsolationMonitoringActive")
    res = iso2.CableCheckResType(
        response_code=OK, dc_evse_status=status, evse_processing=FINISHED if done else ONGOING)
    return res, effects


def handle_pre_charge(
    req: iso2.PreChargeReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.PreChargeResType]:
    """Regulate to the EV's target voltage (current-limited). Out-of-range targets are
    clamped into ours and the EV's range, not failed: the EV alone decides when precharge is
    complete (and real cars loop here for a while)."""
    ev = require_ev(session)
    limits = inputs.charger.limits
    requested = si(req.ev_target_voltage)
    if requested < 0:
        raise WrongChargeParameter(f"negative precharge target {requested} V")
    target = min(max(requested, limits.min_voltage), cap(limits.max_voltage, ev.max_voltage))
    effects: list[Effect] = []
    previous = session.precharge_target
    if previous is None or abs(target - previous) > VOLTAGE_TOLERANCE:
        session.precharge_target = target
        amps = min(inputs.config.precharge_max_current,
                   max(0.0, opt_si(req.ev_target_current) or inputs.config.precharge_max_current))
        effects.append(StartPreCharge(target_voltage=target, max_current=amps))
    res = iso2.PreChargeResType(
        response_code=OK,
        dc_evse_status=dc_evse_status(session, inputs, isolation="Valid"),
        evse_present_voltage=physical(inputs.charger.present_voltage, "V"),
    )
    return res, effects


def _updated(ev: EvLimits, req: iso2.CurrentDemandReqType) -> EvLimits:
    changes: dict[str, Any] = {}
    for field, name in (("ev_maximum_voltage_limit", "max_voltage"),
                        ("ev_maximum_current_limit", "max_charge_current"),
                        ("ev_maximum_power_limit", "max_charge_power")):
        value = opt_si(getattr(req, field))
        if value is not None and value >= 0:  # a negative limit is nonsense: keep the old
            changes[name] = value
    return dataclasses.replace(ev, **changes) if changes else ev


def handle_current_demand(
    req: iso2.CurrentDemandReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.CurrentDemandResType]:
    ev = session.record.ev = _updated(require_ev(session), req)
    _note_soc(session, req.dc_ev_status)
    # RemainingTimeToFullSoC in whatever time unit the car uses (some send minutes)
    session.remaining_time_to_full_s = seconds(req.remaining_time_to_full_so_c)
    charger = inputs.charger
    limits = charger.limits
    target = dc_target(
        si(req.ev_target_voltage),
        si(req.ev_target_current),
        present_voltage=charger.present_voltage,
        evse=limits,
        ev=ev,
        schedule=schedule_limits(session, inputs),
    )
    status = dc_evse_status(session, inputs, isolation="Valid")
    amps = 0.0 if stopping(status) else max(0.0, target.current)
    at = charger.present_voltage if charger.present_voltage > 1.0 else target.voltage
    effects: list[Effect] = [SetPowerTarget(voltage=target.voltage, current=amps, power=amps * at)]
    sched = schedule_limits(session, inputs)
    pnc.ask_for_receipt(session, inputs)
    res = iso2.CurrentDemandResType(
        response_code=OK,
        dc_evse_status=status,
        evse_present_voltage=physical(charger.present_voltage, "V"),
        evse_present_current=physical(charger.present_current, "A"),
        evse_current_limit_achieved=target.current_limited,
        evse_voltage_limit_achieved=target.voltage_limited,
        evse_power_limit_achieved=target.power_limited,
        evse_maximum_voltage_limit=physical(limits.max_voltage, "V"),
        evse_maximum_current_limit=physical(limits.max_charge_current, "A"),
        evse_maximum_power_limit=physical(
            cap(limits.max_charge_power, sched[0] if sched else None), "W"),
        evseid=inputs.config.evse_id,
        sa_schedule_tuple_id=session.sa_schedule_tuple_id or 1,
        meter_info=meter_info(inputs),
        receipt_required=session.receipt_requested,
    )
    return res, effects


def handle_welding_detection(
    req: iso2.WeldingDetectionReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.WeldingDetectionResType]:
    _note_soc(session, req.dc_ev_status)
    res = iso2.WeldingDetectionResType(
        response_code=OK,
        dc_evse_status=dc_evse_status(session, inputs),
        evse_present_voltage=physical(inputs.charger.present_voltage, "V"),
    )
    return res, []
