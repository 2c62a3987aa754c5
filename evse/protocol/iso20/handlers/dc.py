"""DC_ChargeParameterDiscovery, DC_CableCheck, DC_PreCharge and DC_WeldingDetection."""

from __future__ import annotations

from typing import Any

from evse.protocol.errors import Failed, WrongChargeParameter
from evse.protocol.events import Effect, EvLimitsReported, StartCableCheck, StartPreCharge
from evse.protocol.iso20.handlers.common import (
    HandlerResult,
    Inputs,
    rational,
    require_ev,
    res_header,
)
from evse.protocol.limits import EvLimits, EvseLimits, cap
from evse.protocol.session import Session
from evse.protocol.units import from_rational
from exi_codec.schemas import iso20_dc as dc
from exi_codec.schemas.iso20_dc import (
    DC_CableCheckReq,
    DC_CableCheckRes,
    DC_ChargeParameterDiscoveryReq,
    DC_ChargeParameterDiscoveryRes,
    DC_PreChargeReq,
    DC_PreChargeRes,
    DC_WeldingDetectionReq,
    DC_WeldingDetectionRes,
)

VOLTAGE_TOLERANCE = 0.5  # V: a new precharge target only when it moves more than this


def _ev_limits(p: Any, bpt: bool) -> EvLimits:
    def magnitude(r: Any) -> float:
        return abs(from_rational(r))  # some EVs send discharge limits as negative numbers

    return EvLimits(
        max_charge_power=from_rational(p.ev_maximum_charge_power),
        min_charge_power=from_rational(p.ev_minimum_charge_power),
        max_charge_current=from_rational(p.ev_maximum_charge_current),
        min_charge_current=from_rational(p.ev_minimum_charge_current),
        max_voltage=from_rational(p.ev_maximum_voltage),
        min_voltage=from_rational(p.ev_minimum_voltage),
        max_discharge_power=magnitude(p.ev_maximum_discharge_power) if bpt else 0.0,
        min_discharge_power=magnitude(p.ev_minimum_discharge_power) if bpt else 0.0,
        max_discharge_current=magnitude(p.ev_maximum_discharge_current) if bpt else None,
        min_discharge_current=magnitude(p.ev_minimum_discharge_current) if bpt else None,
        target_soc=p.target_soc,
    )


def _check(ev: EvLimits, limits: EvseLimits) -> None:
    assert ev.max_voltage is not None and ev.min_voltage is not None
    if ev.max_voltage <= 0 or ev.max_charge_power < 0 or (ev.max_charge_current or 0) < 0:
        raise WrongChargeParameter("EV maximum voltage, power or current out of range")
    if ev.max_voltage < limits.min_voltage or ev.min_voltage > limits.max_voltage:
        raise WrongChargeParameter(
            f"EV voltage range {ev.min_voltage}-{ev.max_voltage} V does not meet ours "
            f"{limits.min_voltage}-{limits.max_voltage} V"
        )


def handle_dc_charge_parameter_discovery(
    req: DC_ChargeParameterDiscoveryReq, session: Session, inputs: Inputs
) -> HandlerResult[DC_ChargeParameterDiscoveryRes]:
    params = (
        req.bpt_dc_cpd_req_energy_transfer_mode
        if session.bpt
        else (req.dc_cpd_req_energy_transfer_mode)
    )
    if params is None:
        kind = "BPT_DC" if session.bpt else "DC"
        raise WrongChargeParameter(f"the selected service needs {kind}_CPDReqEnergyTransferMode")
    limits = inputs.charger.limits
    ev = _ev_limits(params, session.bpt)
    _check(ev, limits)
    session.ev = ev
    fields = {
        "evse_maximum_charge_power": rational(dc, limits.max_charge_power),
        "evse_minimum_charge_power": rational(dc, limits.min_charge_power),
        "evse_maximum_charge_current": rational(dc, limits.max_charge_current),
        "evse_minimum_charge_current": rational(dc, limits.min_charge_current),
        "evse_maximum_voltage": rational(dc, limits.max_voltage),
        "evse_minimum_voltage": rational(dc, limits.min_voltage),
        "evse_power_ramp_limitation": (
            None if limits.power_ramp_limit is None else rational(dc, limits.power_ramp_limit)
        ),
    }
    hdr = res_header(dc, session, inputs)
    if session.bpt:
        mode = dc.BPT_DC_CPDResEnergyTransferModeType(
            **fields,
            evse_maximum_discharge_power=rational(dc, limits.max_discharge_power),
            evse_minimum_discharge_power=rational(dc, limits.min_discharge_power),
            evse_maximum_discharge_current=rational(dc, limits.max_discharge_current),
            evse_minimum_discharge_current=rational(dc, limits.min_discharge_current),
        )
        res = DC_ChargeParameterDiscoveryRes(
            header=hdr,
            response_code=dc.responseCodeType.OK,
            bpt_dc_cpd_res_energy_transfer_mode=mode,
        )
    else:
        res = DC_ChargeParameterDiscoveryRes(
            header=hdr,
            response_code=dc.responseCodeType.OK,
            dc_cpd_res_energy_transfer_mode=dc.DC_CPDResEnergyTransferModeType(**fields),
        )
    return res, [EvLimitsReported(ev)]


def handle_dc_cable_check(
    req: DC_CableCheckReq, session: Session, inputs: Inputs
) -> HandlerResult[DC_CableCheckRes]:
    """The first request starts the insulation test; Ongoing until CableCheckFinished."""
    effects: list[Effect] = []
    result = inputs.charger.isolation_ok
    if session.cable_check_started is None:
        ev = require_ev(session)
        session.cable_check_started = inputs.now
        effects.append(
            StartCableCheck(voltage=cap(ev.max_voltage, inputs.charger.limits.max_voltage))
        )
        result = None  # only a result reported after this start counts
    if result is False:
        raise Failed("insulation fault in the cable check")
    res = DC_CableCheckRes(
        header=res_header(dc, session, inputs),
        response_code=dc.responseCodeType.OK,
        evse_processing=dc.processingType.Finished if result else dc.processingType.Ongoing,
    )
    return res, effects


def handle_dc_pre_charge(
    req: DC_PreChargeReq, session: Session, inputs: Inputs
) -> HandlerResult[DC_PreChargeRes]:
    """Regulate to the EV's target voltage (current-limited); report the present voltage."""
    ev = require_ev(session)
    limits = inputs.charger.limits
    requested = from_rational(req.ev_target_voltage)
    highest = cap(limits.max_voltage, ev.max_voltage)
    if requested < 0:
        raise WrongChargeParameter(f"negative precharge target {requested} V")
    # Out-of-range targets are clamped, not failed: the output never leaves our (and the EV's)
    # voltage range, and the EV alone decides when precharge is complete. Some EVs (Josev's
    # simulator: 20 kV) send targets they cannot mean; failing them would end the session.
    target = min(max(requested, limits.min_voltage), highest)
    effects: list[Effect] = []
    previous = session.precharge_target
    if previous is None or abs(target - previous) > VOLTAGE_TOLERANCE:
        session.precharge_target = target
        effects.append(
            StartPreCharge(target_voltage=target, max_current=inputs.config.precharge_max_current)
        )
    res = DC_PreChargeRes(
        header=res_header(dc, session, inputs),
        response_code=dc.responseCodeType.OK,
        evse_present_voltage=rational(dc, inputs.charger.present_voltage),
    )
    return res, effects


def handle_dc_welding_detection(
    req: DC_WeldingDetectionReq, session: Session, inputs: Inputs
) -> HandlerResult[DC_WeldingDetectionRes]:
    res = DC_WeldingDetectionRes(
        header=res_header(dc, session, inputs),
        response_code=dc.responseCodeType.OK,
        evse_present_voltage=rational(dc, inputs.charger.present_voltage),
    )
    return res, []
