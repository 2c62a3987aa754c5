"""PowerDelivery: Start (close contactors, energy may flow), Stop (power off, open),
Standby (current to zero, contactors stay closed), ScheduleRenegotiation (current to zero,
contactors stay closed, a new ScheduleExchange follows, then Start resumes the loop)."""

from __future__ import annotations

from evse.protocol.config import ControlMode
from evse.protocol.errors import PowerDeliveryNotApplied, ScheduleSelectionInvalid
from evse.protocol.events import CloseContactors, Effect, OpenContactors, StopPower
from evse.protocol.iso20.handlers.common import HandlerResult, Inputs, evse_status, res_header
from evse.protocol.session import Session
from exi_codec.schemas import iso20
from exi_codec.schemas.iso20 import PowerDeliveryReq, PowerDeliveryRes


def _start(req: PowerDeliveryReq, session: Session, inputs: Inputs) -> list[Effect]:
    if inputs.charger.stop_reason is not None:
        raise PowerDeliveryNotApplied(inputs.charger.stop_reason, terminate=True)
    profile = req.ev_power_profile
    if session.control_mode == ControlMode.SCHEDULED and profile is not None:
        chosen = profile.scheduled_evppt_control_mode
        if chosen is not None and chosen.selected_schedule_tuple_id != session.schedule_tuple_id:
            raise ScheduleSelectionInvalid(
                f"schedule tuple {chosen.selected_schedule_tuple_id} was not offered"
            )
    if req.bpt_channel_selection is not None and session.bpt:
        session.bpt_channel = str(req.bpt_channel_selection)
    if session.standby:  # leaving standby: the contactors are still closed
        session.standby = False
        return []
    if session.energy_flowing:
        return []
    session.energy_flowing = True
    return [CloseContactors()]


def handle_power_delivery(
    req: PowerDeliveryReq, session: Session, inputs: Inputs
) -> HandlerResult[PowerDeliveryRes]:
    progress = str(req.charge_progress)
    code = "OK"
    status = None
    effects: list[Effect] = []
    if progress == "Start":
        if req.ev_processing == "Finished":
            effects = _start(req, session, inputs)
    elif progress == "Stop":
        session.energy_flowing = False
        session.standby = False
        effects = [StopPower(), OpenContactors()]
    else:  # Standby or ScheduleRenegotiation: no energy until the next Start
        if session.energy_flowing and not session.standby:
            session.standby = True
            effects = [StopPower()]
        status = evse_status(iso20, session, inputs)
    res = PowerDeliveryRes(
        header=res_header(iso20, session, inputs),
        response_code=iso20.responseCodeType(code),
        evse_status=status,
    )
    return res, effects
