"""PowerDelivery: Start (close contactors, energy may flow), Stop (power off, open),
Renegotiate (current to zero, contactors stay closed; a ChargeParameterDiscovery follows,
then Start resumes the loop)."""

from __future__ import annotations

from evse.protocol.errors import PowerDeliveryNotApplied
from evse.protocol.events import CloseContactors, Effect, OpenContactors, StopPower
from evse.protocol.iso2.errors import TariffSelectionInvalid
from evse.protocol.iso2.handlers.common import OK, HandlerResult, Inputs, evse_status_fields
from evse.protocol.iso2.session import Iso2Session
from exi_codec.schemas import iso2


def _start(req: iso2.PowerDeliveryReqType, session: Iso2Session, inputs: Inputs) -> list[Effect]:
    if inputs.charger.stop_reason is not None:
        raise PowerDeliveryNotApplied(inputs.charger.stop_reason)
    chosen = req.sa_schedule_tuple_id
    if chosen is not None and chosen != session.sa_schedule_tuple_id:
        raise TariffSelectionInvalid(f"SAScheduleTuple {chosen} was not offered")
    # An EV ChargingProfile (even outside the PMax schedule or the XSD's ranges) is taken as
    # information only: every power target is capped by the schedule and our limits anyway.
    if session.energy_flowing:  # leaving a renegotiation, or a repeated Start
        return []
    session.energy_flowing = True
    return [CloseContactors()]


def handle_power_delivery(
    req: iso2.PowerDeliveryReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.PowerDeliveryResType]:
    progress = str(req.charge_progress)
    effects: list[Effect] = []
    if progress == "Start":
        effects = _start(req, session, inputs)
    elif progress == "Stop":
        session.energy_flowing = False
        effects = [StopPower(), OpenContactors()]
    elif session.energy_flowing:  # Renegotiate: no energy until the next Start
        effects = [StopPower()]
    res = iso2.PowerDeliveryResType(response_code=OK, **evse_status_fields(session, inputs))
    return res, effects
