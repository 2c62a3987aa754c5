"""ServiceDiscovery, ServicePaymentSelection and ContractAuthentication (EIM only)."""

from __future__ import annotations

from evse.protocol.config import ControlMode, ServiceId
from evse.protocol.din.handlers.common import HandlerResult, Inputs
from evse.protocol.din.session import DinSession
from evse.protocol.errors import Failed, ProtocolError, ServiceSelectionInvalid
from evse.protocol.events import Effect, EnergyServiceSelected, RequestAuthorization
from exi_codec.schemas import din

CHARGE_SERVICE_ID = 1  # DIN's one charging service (ServiceCategory EVCharging)


class PaymentSelectionInvalid(ProtocolError):
    response_code = "FAILED_PaymentSelectionInvalid"


def handle_service_discovery(
    req: din.ServiceDiscoveryReqType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.ServiceDiscoveryResType]:
    """DC charging (DC_extended, the CCS combo connector) with external payment. A
    ServiceScope/ServiceCategory filter does not hide the charge service: it is mandatory."""
    session.record.offered_services = (ServiceId.DC,)
    session.record.offered_auth = ("EIM",)
    res = din.ServiceDiscoveryResType(
        response_code=din.responseCodeType.OK,
        payment_options=din.PaymentOptionsType(
            payment_option=(din.paymentOptionType.ExternalPayment,)
        ),
        charge_service=din.ServiceChargeType(
            service_tag=din.ServiceTagType(
                service_id=CHARGE_SERVICE_ID, service_category=din.serviceCategoryType.EVCharging
            ),
            free_service=inputs.config.free_service,
            energy_transfer_type=din.EVSESupportedEnergyTransferType.DC_extended,
        ),
    )
    return res, []


def handle_service_payment_selection(
    req: din.ServicePaymentSelectionReqType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.ServicePaymentSelectionResType]:
    if str(req.selected_payment_option) != "ExternalPayment":
        raise PaymentSelectionInvalid(f"payment {req.selected_payment_option} not offered")
    selected = req.selected_service_list.selected_service if req.selected_service_list else ()
    ids = [s.service_id for s in selected]
    if CHARGE_SERVICE_ID not in ids:
        raise ServiceSelectionInvalid(f"services {ids} do not include the charge service")
    record = session.record
    record.service = ServiceId.DC
    record.control_mode = ControlMode.SCHEDULED  # DIN's PMax schedule: EV-driven targets
    res = din.ServicePaymentSelectionResType(response_code=din.responseCodeType.OK)
    effect = EnergyServiceSelected(
        service_id=int(ServiceId.DC), control_mode=int(ControlMode.SCHEDULED),
        bidirectional=False,
    )
    return res, [effect]


def handle_contract_authentication(
    req: din.ContractAuthenticationReqType, session: DinSession, inputs: Inputs
) -> HandlerResult[din.ContractAuthenticationResType]:
    """EIM: Ongoing until the charger answers RequestAuthorization (or auto-authorize). DIN
    has no WARNING codes: a denial is FAILED and ends the session."""
    record, charger = session.record, inputs.charger
    effects: list[Effect] = []
    processing = din.EVSEProcessingType.Ongoing
    if record.authorized or charger.authorization is True or inputs.config.auto_authorize:
        record.authorized = True
        record.authorization_method = "EIM"
        processing = din.EVSEProcessingType.Finished
    elif charger.authorization is False:
        raise Failed("authorization denied")
    elif not session.authorization_requested:
        session.authorization_requested = True
        effects.append(RequestAuthorization(method="EIM", evcc_id=record.evcc_id))
    res = din.ContractAuthenticationResType(
        response_code=din.responseCodeType.OK, evse_processing=processing
    )
    return res, effects
