"""AC: ChargingStatus and MeteringReceipt.

On AC the EV's charger regulates; each ChargingStatus commands SetPowerTarget (total power,
nominal phase voltage, per-phase current) from the PMax schedule capped by the charger's and
the EV's limits, as -20's AC loop does, and tells the EV its current limit (EVSEMaxCurrent).
Under EIM no receipt is asked for (ReceiptRequired=false), so a MeteringReceiptReq is out of
sequence; Plug & Charge asks for one (pnc.ask_for_receipt) and verifies its signature.
"""

from __future__ import annotations

from evse.protocol.errors import SequenceError
from evse.protocol.events import Effect, SetPowerTarget
from evse.protocol.iso2.handlers import pnc
from evse.protocol.iso2.handlers.common import (
    OK,
    HandlerResult,
    Inputs,
    ac_evse_status,
    evse_status_fields,
    meter_info,
    require_ev,
    schedule_limits,
    stopping,
)
from evse.protocol.iso2.session import Iso2Session
from evse.protocol.iso2.values import physical
from evse.protocol.targets import ac_target
from exi_codec.schemas import iso2

_PHASES = {"AC_single_phase_core": 1, "AC_three_phase_core": 3}


def handle_charging_status(
    req: iso2.ChargingStatusReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.ChargingStatusResType]:
    ev = require_ev(session)
    limits = inputs.charger.limits
    schedule = schedule_limits(session, inputs)
    wanted = schedule[0] if schedule is not None else limits.max_charge_power
    power, _ = ac_target(wanted, evse=limits, ev=ev, schedule=schedule)
    status = ac_evse_status(session, inputs)
    if stopping(status):
        power = 0.0  # stop pending: ramp down
    phases = _PHASES.get(session.transfer_mode or "", limits.phases)
    volts = limits.nominal_voltage
    amps = power / (volts * phases)
    effects: list[Effect] = [SetPowerTarget(voltage=volts, current=amps, power=power)]
    pnc.ask_for_receipt(session, inputs)
    res = iso2.ChargingStatusResType(
        response_code=OK,
        evseid=inputs.config.evse_id,
        sa_schedule_tuple_id=session.sa_schedule_tuple_id or 1,
        evse_max_current=physical(amps, "A"),
        meter_info=meter_info(inputs),
        receipt_required=session.receipt_requested,
        ac_evse_status=status,
    )
    return res, effects


def handle_metering_receipt(
    req: iso2.MeteringReceiptReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.MeteringReceiptResType]:
    if not session.receipt_requested:
        raise SequenceError("MeteringReceiptReq without ReceiptRequired=true")
    pnc.verify_receipt(req, session, inputs)
    session.receipt_requested = False
    return iso2.MeteringReceiptResType(response_code=OK,
                                       **evse_status_fields(session, inputs)), []
