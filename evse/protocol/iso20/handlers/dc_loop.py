"""DC_ChargeLoop, Scheduled and Dynamic, with and without BPT.

Scheduled: the EV sends EVTargetVoltage/EVTargetCurrent (negative current = discharge under
BPT); we clamp them to the charger's limits, the EV's and the schedule's, and command
SetPowerTarget. Dynamic: the charger decides the power (SetpointUpdated or the schedule),
within the EV's limits. While a charger stop is pending the target current is zero and the
response carries EVSEStatus(EVSENotification=Terminate).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from evse.protocol.config import ControlMode
from evse.protocol.errors import Failed
from evse.protocol.events import Effect, SetPowerTarget
from evse.protocol.iso20.handlers.common import (
    HandlerResult,
    Inputs,
    desired_power,
    evse_status,
    meter_info,
    metering_status,
    note_display,
    rational,
    remaining_departure,
    require_ev,
    res_header,
    schedule_limits,
)
from evse.protocol.limits import EvLimits, cap
from evse.protocol.session import Session
from evse.protocol.targets import current_for_power, dc_target
from evse.protocol.units import opt_from_rational
from exi_codec.schemas import iso20_dc as dc
from exi_codec.schemas.iso20_dc import DC_ChargeLoopReq, DC_ChargeLoopRes

# request field -> EvLimits field, for the optional/mandatory EV limits inside the loop
_EV_FIELDS = {
    "ev_maximum_charge_power": "max_charge_power",
    "ev_minimum_charge_power": "min_charge_power",
    "ev_maximum_charge_current": "max_charge_current",
    "ev_maximum_voltage": "max_voltage",
    "ev_minimum_voltage": "min_voltage",
    "ev_maximum_discharge_power": "max_discharge_power",
    "ev_minimum_discharge_power": "min_discharge_power",
    "ev_maximum_discharge_current": "max_discharge_current",
}
_MAGNITUDES = {"max_discharge_power", "min_discharge_power", "max_discharge_current"}


def updated_ev_limits(ev: EvLimits, mode: Any) -> EvLimits:
    changes: dict[str, Any] = {}
    for req_field, ev_field in _EV_FIELDS.items():
        value = opt_from_rational(getattr(mode, req_field, None))
        if value is not None:
            changes[ev_field] = abs(value) if ev_field in _MAGNITUDES else value
    return dataclasses.replace(ev, **changes) if changes else ev


def _mode(req: DC_ChargeLoopReq, scheduled: bool) -> Any:
    if scheduled:
        return req.bpt_scheduled_dc_cl_req_control_mode or req.scheduled_dc_cl_req_control_mode
    return req.bpt_dynamic_dc_cl_req_control_mode or req.dynamic_dc_cl_req_control_mode


def _res_mode(session: Session, inputs: Inputs, bpt: bool, scheduled: bool) -> dict[str, Any]:
    limits = inputs.charger.limits
    sched = schedule_limits(session, inputs) if scheduled else None
    max_charge = cap(limits.max_charge_power, sched[0] if sched else None)
    max_discharge = cap(limits.max_discharge_power, sched[1] if sched else None)
    common = {
        "evse_maximum_charge_power": rational(dc, max_charge),
        "evse_minimum_charge_power": rational(dc, limits.min_charge_power),
        "evse_maximum_charge_current": rational(dc, limits.max_charge_current),
        "evse_maximum_voltage": rational(dc, limits.max_voltage),
    }
    discharge = {
        "evse_maximum_discharge_power": rational(dc, max_discharge),
        "evse_minimum_discharge_power": rational(dc, limits.min_discharge_power),
        "evse_maximum_discharge_current": rational(dc, limits.max_discharge_current),
        "evse_minimum_voltage": rational(dc, limits.min_voltage),
    }
    dynamic: dict[str, Any] = {
        "departure_time": remaining_departure(session, inputs),
        "minimum_soc": session.minimum_soc,
        "target_soc": session.target_soc,
    }
    if scheduled and bpt:
        mode: Any = dc.BPT_Scheduled_DC_CLResControlModeType(**common, **discharge)
        return {"bpt_scheduled_dc_cl_res_control_mode": mode}
    if scheduled:
        return {"scheduled_dc_cl_res_control_mode": dc.Scheduled_DC_CLResControlModeType(**common)}
    if bpt:
        mode = dc.BPT_Dynamic_DC_CLResControlModeType(**dynamic, **common, **discharge)
        return {"bpt_dynamic_dc_cl_res_control_mode": mode}
    return {
        "dynamic_dc_cl_res_control_mode": dc.Dynamic_DC_CLResControlModeType(**dynamic, **common)
    }


def handle_dc_charge_loop(
    req: DC_ChargeLoopReq, session: Session, inputs: Inputs
) -> HandlerResult[DC_ChargeLoopRes]:
    scheduled = session.control_mode == ControlMode.SCHEDULED
    mode = _mode(req, scheduled)
    if mode is None:
        raise Failed(f"DC_ChargeLoopReq does not match the selected {session.control_mode!r}")
    bpt = type(mode).__name__.startswith("BPT_")
    if bpt and not session.bpt:
        raise Failed("BPT control mode in a session without a BPT service")
    ev = session.ev = updated_ev_limits(require_ev(session), mode)
    note_display(session, req, mode)
    charger = inputs.charger
    ev_voltage = opt_from_rational(req.ev_present_voltage) or 0.0
    at_voltage = charger.present_voltage if charger.present_voltage > 1.0 else ev_voltage
    if scheduled:
        voltage = opt_from_rational(mode.ev_target_voltage) or 0.0
        current = opt_from_rational(mode.ev_target_current) or 0.0
        schedule = schedule_limits(session, inputs)
    else:
        voltage = cap(ev.max_voltage, charger.limits.max_voltage)
        current = current_for_power(desired_power(session, inputs), at_voltage or voltage)
        schedule = None
    target = dc_target(
        voltage,
        current,
        present_voltage=at_voltage,
        evse=charger.limits,
        ev=ev,
        schedule=schedule,
        bpt=session.bpt,
        channel=session.bpt_channel,
    )
    status = evse_status(dc, session, inputs)
    effects: list[Effect] = []
    if not session.standby:
        amps = 0.0 if status is not None else target.current  # stop pending: ramp down
        watts = amps * (at_voltage if at_voltage > 1.0 else target.voltage)
        effects.append(SetPowerTarget(voltage=target.voltage, current=amps, power=watts))
    info = meter_info(dc, session, inputs) if req.meter_info_requested else None
    res = DC_ChargeLoopRes(
        header=res_header(dc, session, inputs),
        response_code=dc.responseCodeType.OK,
        evse_status=metering_status(dc, session, inputs, status, info),
        meter_info=info,
        evse_present_current=rational(dc, charger.present_current),
        evse_present_voltage=rational(dc, charger.present_voltage),
        evse_power_limit_achieved=target.power_limited,
        evse_current_limit_achieved=target.current_limited,
        evse_voltage_limit_achieved=target.voltage_limited,
        **_res_mode(session, inputs, bpt, scheduled),
    )
    return res, effects
