"""ChargeParameterDiscovery, CableCheck, PreCharge and WeldingDetection."""

from __future__ import annotations

from typing import Any

from evse.protocol.din.handlers.common import (
    HandlerResult,
    Inputs,
    note_ev_status,
    require_ev,
    status,
)
from evse.protocol.din.messages import schedule_tuple, schedule_tuple_entries
from evse.protocol.din.session import DinSession
from evse.protocol.din.units import from_physical, opt_from_physical, physical
from evse.protocol.errors import Failed, ProtocolError, SequenceError, WrongChargeParameter
from evse.protocol.events import Effect, EvLimitsReported, StartCableCheck, StartPreCharge
from evse.protocol.limits import EvLimits, cap
from evse.protocol.schedules import ScheduleRequest
from exi_codec.schemas import din

VOLTAGE_TOLERANCE = 0.5  # V: a new precharge target only when it moves more than this
CURRENT_RIPPLE = 5.0  # A, EVSEPeakCurrentRipple (mandatory in the response)


class WrongEnergyTransferType(ProtocolError):
    response_code = "FAILED_WrongEnergyTransferType"


def _ev_limits(p: Any) -> EvLimits:
    # Magnitudes: real cars send values outside the XSD's ranges (negative, huge): the
    # lenient decoder lets them through and the limits below keep only what is meaningful.
    current = abs(from_physical(p.ev_maximum_current_limit))
    voltage = abs(from_physical(p.ev_maximum_voltage_limit))
    power = opt_from_physical(p.ev_maximum_power_limit)
    return EvLimits(
        max_charge_power=abs(power) if power is not None else current * voltage,
        max_charge_current=current,
        max_voltage=voltage,
        min_voltage=0.0,
        target_soc=p.full_soc if p.full_soc is not None and 0 <= p.full_soc <= 100 else None,
    )


def _csms_bound(inputs: Inputs) -> bool:
    """A backend (OCPP CSMS) bound on charging applies: only then does DIN get a schedule
    of several PMax entries (without one, the single entry "the limit now" as ever)."""
    b = inputs.charger.bound
    return b is not None and (b.max_charge_power is not None or b.setpoint_w is not None)


def _ask(inputs: Inputs, ev: EvLimits) -> Any:
    provider = inputs.config.schedule_provider
    rated = inputs.charger.rated or inputs.charger.limits
    request = ScheduleRequest(now=inputs.now, timestamp=float(inputs.timestamp),
                              departure_time=None, ev_limits=ev, evse_limits=rated, bpt=False)
    detailed = getattr(provider, "schedules_for", None)
    if detailed is not None:
        return detailed(request)
    assert provider is not None  # the caller checked
    return provider.schedules(inputs.now, None, ev, rated, False)


def handle_charge_parameter_discovery(
    req: din.ChargeParameterDiscoveryReqType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.ChargeParameterDiscoveryResType]:
    """The EV's DC limits against ours. Ongoing while the charger has no power to give (the
    energy manager's limit is zero); a repetition after Finished (real cars do it) is
    answered again, but not once the cable check has started."""
    if session.cable_check_started is not None:
        raise SequenceError("ChargeParameterDiscovery after the cable check started")
    transfer = str(req.ev_requested_energy_transfer_type)
    if not transfer.startswith("DC_"):
        raise WrongEnergyTransferType(f"{transfer}: this charger is DC only")
    p = req.dc_ev_charge_parameter
    if p is None:
        raise WrongChargeParameter("DC_EVChargeParameter missing")
    note_ev_status(session, p.dc_ev_status)
    ev = _ev_limits(p)
    limits = inputs.charger.limits
    assert ev.max_voltage is not None
    if ev.max_voltage <= 0 or ev.max_voltage < limits.min_voltage:
        raise WrongChargeParameter(
            f"EV maximum voltage {ev.max_voltage} V below our minimum {limits.min_voltage} V"
        )
    session.record.ev = ev
    capacity = opt_from_physical(p.ev_energy_capacity)
    if capacity is not None and capacity > 0:
        session.record.battery_capacity_wh = capacity
    ready = limits.max_charge_power > 0 and limits.max_charge_current > 0
    p_max = cap(limits.max_charge_power, ev.max_charge_power)
    tuple_ = schedule_tuple(p_max)
    if _csms_bound(inputs) and inputs.config.schedule_provider is not None:
        # a CSMS profile applies: its time-varying composite as the PMax schedule (the
        # provider is the OCPP schedule policy; None while it has not answered: Ongoing).
        # Later periods may be above the bound now: the rated limits cap them (the policy
        # caps each period by them and the EV's); the loop follows the bound of the moment.
        # The first entry (now) never exceeds the limit now, whoever answered.
        schedules = _ask(inputs, ev)
        if schedules is None:
            ready = False
        else:
            tuple_ = schedule_tuple_entries(tuple(
                (e.duration, cap(e.power, p_max) if i == 0 else e.power)
                for i, e in enumerate(schedules.charging)))
    res = din.ChargeParameterDiscoveryResType(
        response_code=din.responseCodeType.OK,
        evse_processing=(
            din.EVSEProcessingType.Finished if ready else din.EVSEProcessingType.Ongoing
        ),
        sa_schedule_list=din.SAScheduleListType(sa_schedule_tuple=(tuple_,)),
        dc_evse_charge_parameter=din.DC_EVSEChargeParameterType(
            dc_evse_status=status(session, inputs),
            evse_maximum_current_limit=physical(limits.max_charge_current, "A"),
            evse_maximum_power_limit=physical(limits.max_charge_power, "W"),
            evse_maximum_voltage_limit=physical(limits.max_voltage, "V"),
            evse_minimum_current_limit=physical(limits.min_charge_current, "A"),
            evse_minimum_voltage_limit=physical(limits.min_voltage, "V"),
            evse_peak_current_ripple=physical(CURRENT_RIPPLE, "A"),
        ),
    )
    return res, [EvLimitsReported(ev)]


def handle_cable_check(
    req: din.CableCheckReqType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.CableCheckResType]:
    """The first request starts the insulation test; Ongoing until CableCheckFinished."""
    note_ev_status(session, req.dc_ev_status)
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
        session.isolation = "Fault"
        raise Failed("insulation fault in the cable check")
    if result:
        session.isolation = "Valid"
    res = din.CableCheckResType(
        response_code=din.responseCodeType.OK,
        dc_evse_status=status(session, inputs),
        evse_processing=(
            din.EVSEProcessingType.Finished if result else din.EVSEProcessingType.Ongoing
        ),
    )
    return res, effects


def handle_pre_charge(
    req: din.PreChargeReqType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.PreChargeResType]:
    """Regulate to the EV's target voltage (current-limited); report the present voltage.
    Repeated as long as the EV wants (long PreCharge loops are real)."""
    note_ev_status(session, req.dc_ev_status)
    ev = require_ev(session)
    limits = inputs.charger.limits
    requested = from_physical(req.ev_target_voltage)
    if requested < 0:
        raise Failed(f"negative precharge target {requested} V")
    # Clamped, not failed: the output never leaves our (and the EV's) voltage range, and the
    # EV alone decides when precharge is complete.
    target = min(max(requested, limits.min_voltage), cap(limits.max_voltage, ev.max_voltage))
    asked = abs(opt_from_physical(req.ev_target_current) or 0.0)
    max_current = min(asked, inputs.config.precharge_max_current) if asked else (
        inputs.config.precharge_max_current)
    effects: list[Effect] = []
    previous = session.precharge_target
    if previous is None or abs(target - previous) > VOLTAGE_TOLERANCE:
        session.precharge_target = target
        effects.append(StartPreCharge(target_voltage=target, max_current=max_current))
    res = din.PreChargeResType(
        response_code=din.responseCodeType.OK,
        dc_evse_status=status(session, inputs),
        evse_present_voltage=physical(inputs.charger.present_voltage, "V"),
    )
    return res, effects


def handle_welding_detection(
    req: din.WeldingDetectionReqType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.WeldingDetectionResType]:
    note_ev_status(session, req.dc_ev_status)
    res = din.WeldingDetectionResType(
        response_code=din.responseCodeType.OK,
        dc_evse_status=status(session, inputs),
        evse_present_voltage=physical(inputs.charger.present_voltage, "V"),
    )
    return res, []
