"""AC_ChargeParameterDiscovery and AC_ChargeLoop (AC and AC_BPT, Scheduled and Dynamic).

On AC the EV's converter regulates; we send the target active power (negative = the EV
discharges) and command SetPowerTarget for the charger's own bookkeeping (contactors, PWM,
grid code). Powers are totals over all phases.
"""

from __future__ import annotations

from typing import Any

from evse.protocol.config import ControlMode
from evse.protocol.errors import Failed, WrongChargeParameter
from evse.protocol.events import Effect, EvLimitsReported, SetPowerTarget
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
from evse.protocol.iso20.handlers.dc_loop import updated_ev_limits
from evse.protocol.limits import EvLimits
from evse.protocol.session import Session
from evse.protocol.targets import ac_target
from evse.protocol.units import opt_from_rational
from exi_codec.schemas import iso20_ac as ac
from exi_codec.schemas.iso20_ac import (
    AC_ChargeLoopReq,
    AC_ChargeLoopRes,
    AC_ChargeParameterDiscoveryReq,
    AC_ChargeParameterDiscoveryRes,
)


def _total(p: Any, name: str, magnitude: bool = False) -> float:
    """Sum of a power over the phases (L1 field plus the optional _l2/_l3 fields)."""
    total = 0.0
    for suffix in ("", "_l2", "_l3"):
        value = opt_from_rational(getattr(p, name + suffix, None)) or 0.0
        total += abs(value) if magnitude else value
    return total


def handle_ac_charge_parameter_discovery(
    req: AC_ChargeParameterDiscoveryReq, session: Session, inputs: Inputs
) -> HandlerResult[AC_ChargeParameterDiscoveryRes]:
    bpt = session.bpt
    params = req.bpt_ac_cpd_req_energy_transfer_mode if bpt else req.ac_cpd_req_energy_transfer_mode
    if params is None:
        kind = "BPT_AC" if bpt else "AC"
        raise WrongChargeParameter(f"the selected service needs {kind}_CPDReqEnergyTransferMode")
    ev = EvLimits(
        max_charge_power=_total(params, "ev_maximum_charge_power"),
        min_charge_power=_total(params, "ev_minimum_charge_power"),
        max_discharge_power=_total(params, "ev_maximum_discharge_power", True) if bpt else 0.0,
        min_discharge_power=_total(params, "ev_minimum_discharge_power", True) if bpt else 0.0,
    )
    if ev.max_charge_power < 0 or ev.min_charge_power > inputs.charger.limits.max_charge_power:
        raise WrongChargeParameter("EV power range does not meet ours")
    session.ev = ev
    limits = inputs.charger.limits
    fields: dict[str, Any] = {
        "evse_maximum_charge_power": rational(ac, limits.max_charge_power),
        "evse_minimum_charge_power": rational(ac, limits.min_charge_power),
        "evse_nominal_frequency": rational(ac, limits.nominal_frequency),
        "evse_power_ramp_limitation": (
            None if limits.power_ramp_limit is None else rational(ac, limits.power_ramp_limit)
        ),
    }
    hdr = res_header(ac, session, inputs)
    if bpt:
        mode: Any = ac.BPT_AC_CPDResEnergyTransferModeType(
            **fields,
            evse_maximum_discharge_power=rational(ac, limits.max_discharge_power),
            evse_minimum_discharge_power=rational(ac, limits.min_discharge_power),
        )
        res = AC_ChargeParameterDiscoveryRes(
            header=hdr,
            response_code=ac.responseCodeType.OK,
            bpt_ac_cpd_res_energy_transfer_mode=mode,
        )
    else:
        mode = ac.AC_CPDResEnergyTransferModeType(**fields)
        res = AC_ChargeParameterDiscoveryRes(
            header=hdr, response_code=ac.responseCodeType.OK, ac_cpd_res_energy_transfer_mode=mode
        )
    return res, [EvLimitsReported(ev)]


def _mode(req: AC_ChargeLoopReq, scheduled: bool) -> Any:
    if scheduled:
        return req.bpt_scheduled_ac_cl_req_control_mode or req.scheduled_ac_cl_req_control_mode
    return req.bpt_dynamic_ac_cl_req_control_mode or req.dynamic_ac_cl_req_control_mode


def handle_ac_charge_loop(
    req: AC_ChargeLoopReq, session: Session, inputs: Inputs
) -> HandlerResult[AC_ChargeLoopRes]:
    scheduled = session.control_mode == ControlMode.SCHEDULED
    mode = _mode(req, scheduled)
    if mode is None:
        raise Failed(f"AC_ChargeLoopReq does not match the selected {session.control_mode!r}")
    bpt = type(mode).__name__.startswith("BPT_")
    if bpt and not session.bpt:
        raise Failed("BPT control mode in a session without a BPT service")
    ev = session.ev = updated_ev_limits(require_ev(session), mode)
    note_display(session, req, mode)
    charger = inputs.charger
    limits = charger.limits
    schedule = schedule_limits(session, inputs) if scheduled else None
    if scheduled:  # the schedule is the target; the charger's setpoint is for Dynamic mode
        wanted = (
            session.schedules.setpoint_at(inputs.now)
            if session.schedules
            else (limits.max_charge_power)
        )
    else:
        wanted = desired_power(session, inputs)
    power, _ = ac_target(
        wanted,
        evse=limits,
        ev=ev,
        schedule=schedule,
        bpt=session.bpt,
        channel=session.bpt_channel,
    )
    status = evse_status(ac, session, inputs)
    if status is not None:
        power = 0.0  # stop pending: ramp down
    effects: list[Effect] = []
    if not session.standby:
        volts = limits.nominal_voltage
        effects.append(
            SetPowerTarget(voltage=volts, current=power / (volts * limits.phases), power=power)
        )
    fields: dict[str, Any] = {
        "evse_target_active_power": rational(ac, 0.0 if session.standby else power),
        "evse_present_active_power": rational(ac, charger.power),
    }
    dynamic: dict[str, Any] = {
        "departure_time": remaining_departure(session, inputs),
        "minimum_soc": session.minimum_soc,
        "target_soc": session.target_soc,
    }
    if scheduled:
        cls: Any = (
            ac.BPT_Scheduled_AC_CLResControlModeType
            if bpt
            else ac.Scheduled_AC_CLResControlModeType
        )
        key = "bpt_scheduled_ac_cl_res_control_mode" if bpt else "scheduled_ac_cl_res_control_mode"
        res_mode: dict[str, Any] = {key: cls(**fields)}
    else:
        cls = ac.BPT_Dynamic_AC_CLResControlModeType if bpt else ac.Dynamic_AC_CLResControlModeType
        key = "bpt_dynamic_ac_cl_res_control_mode" if bpt else "dynamic_ac_cl_res_control_mode"
        res_mode = {key: cls(**dynamic, **fields)}
    info = meter_info(ac, session, inputs) if req.meter_info_requested else None
    res = AC_ChargeLoopRes(
        header=res_header(ac, session, inputs),
        response_code=ac.responseCodeType.OK,
        evse_status=metering_status(ac, session, inputs, status, info),
        meter_info=info,
        **res_mode,
    )
    return res, effects
