"""PowerDelivery and CurrentDemand (the charge loop).

The EV sends EVTargetVoltage/EVTargetCurrent; we clamp them to the charger's and the EV's
limits and command SetPowerTarget. While a charger stop is pending, or the EV is not ready
(EVReady false, an error code), the target current is zero; a pending stop also shows as
EVSE_Shutdown with EVSENotification=StopCharging, and the EV ends with PowerDelivery(false).
"""

from __future__ import annotations

import dataclasses

from evse.protocol.din.handlers.common import (
    HandlerResult,
    Inputs,
    ev_ready,
    note_ev_status,
    require_ev,
    status,
)
from evse.protocol.din.session import DinSession
from evse.protocol.din.units import opt_from_physical, physical, seconds
from evse.protocol.errors import PowerDeliveryNotApplied
from evse.protocol.events import (
    CloseContactors,
    Effect,
    OpenContactors,
    SetPowerTarget,
    StopPower,
)
from evse.protocol.limits import EvLimits
from evse.protocol.targets import dc_target
from exi_codec.schemas import din


def handle_power_delivery(
    req: din.PowerDeliveryReqType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.PowerDeliveryResType]:
    """ReadyToChargeState true closes the contactors (energy may flow), false stops the power
    and opens them. The ChargingProfile is informational (real cars send profiles outside the
    XSD's ranges): the charge loop's limits bind."""
    param = req.dc_ev_power_delivery_parameter
    if param is not None:
        note_ev_status(session, param.dc_ev_status)
    effects: list[Effect] = []
    if req.ready_to_charge_state:
        if inputs.charger.stop_reason is not None:
            raise PowerDeliveryNotApplied(inputs.charger.stop_reason)
        if not session.energy_flowing:
            session.energy_flowing = session.record.energy_flowing = True
            effects.append(CloseContactors())
    else:
        session.energy_flowing = session.record.energy_flowing = False
        effects = [StopPower(), OpenContactors()]
    res = din.PowerDeliveryResType(
        response_code=din.responseCodeType.OK, dc_evse_status=status(session, inputs)
    )
    return res, effects


def _updated(ev: EvLimits, req: din.CurrentDemandReqType) -> EvLimits:
    changes: dict[str, float] = {}
    for field, name in (
        ("max_voltage", req.ev_maximum_voltage_limit),
        ("max_charge_current", req.ev_maximum_current_limit),
        ("max_charge_power", req.ev_maximum_power_limit),
    ):
        value = opt_from_physical(name)
        if value is not None:
            changes[field] = abs(value)  # magnitudes, whatever a car sends
    return dataclasses.replace(ev, **changes) if changes else ev  # type: ignore[arg-type]


def handle_current_demand(
    req: din.CurrentDemandReqType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.CurrentDemandResType]:
    note_ev_status(session, req.dc_ev_status)
    ev = session.record.ev = _updated(require_ev(session), req)
    session.remaining_time_to_full_soc_s = seconds(req.remaining_time_to_full_so_c)
    session.remaining_time_to_bulk_soc_s = seconds(req.remaining_time_to_bulk_so_c)
    session.charging_complete = bool(req.charging_complete)
    charger = inputs.charger
    voltage = opt_from_physical(req.ev_target_voltage) or 0.0
    current = opt_from_physical(req.ev_target_current) or 0.0
    at_voltage = charger.present_voltage if charger.present_voltage > 1.0 else voltage
    # DIN is charge only: a negative target current is a car's quirk, not a discharge request
    target = dc_target(
        voltage, max(current, 0.0), present_voltage=at_voltage, evse=charger.limits, ev=ev
    )
    evse_status = status(session, inputs)
    stopping = charger.stop_reason is not None or charger.emergency_reason is not None
    amps = 0.0 if stopping or not ev_ready(req.dc_ev_status) else target.current
    watts = amps * (at_voltage if at_voltage > 1.0 else target.voltage)
    limits = charger.limits
    res = din.CurrentDemandResType(
        response_code=din.responseCodeType.OK,
        dc_evse_status=evse_status,
        evse_present_voltage=physical(charger.present_voltage, "V"),
        evse_present_current=physical(charger.present_current, "A"),
        evse_current_limit_achieved=target.current_limited,
        evse_voltage_limit_achieved=target.voltage_limited,
        evse_power_limit_achieved=target.power_limited,
        evse_maximum_voltage_limit=physical(limits.max_voltage, "V"),
        evse_maximum_current_limit=physical(limits.max_charge_current, "A"),
        evse_maximum_power_limit=physical(limits.max_charge_power, "W"),
    )
    return res, [SetPowerTarget(voltage=target.voltage, current=amps, power=watts)]
