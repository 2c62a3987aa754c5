"""ServiceDiscovery, ServiceDetail and PaymentServiceSelection.

-2 offers one charge service (ServiceID 1) with the energy transfer modes of the station's
services, and the payment options: ExternalPayment (EIM), and Contract (Plug & Charge) over
TLS when the station has an `iso2_pnc` backend.
"""

from __future__ import annotations

from evse.protocol.config import AC_SERVICES, DC_SERVICES
from evse.protocol.errors import ServiceIDInvalid, ServiceSelectionInvalid
from evse.protocol.iso2.errors import NoChargeServiceSelected, PaymentSelectionInvalid
from evse.protocol.iso2.handlers import pnc
from evse.protocol.iso2.handlers.common import OK, HandlerResult, Inputs
from evse.protocol.iso2.session import Iso2Session
from exi_codec.schemas import iso2

CHARGE_SERVICE_ID = 1
_DC_MODES = ("DC_extended", "DC_core")
_AC_MODES = ("AC_three_phase_core", "AC_single_phase_core")


def energy_transfer_modes(inputs: Inputs) -> tuple[str, ...]:
    services = inputs.config.services
    modes: tuple[str, ...] = ()
    if any(s in DC_SERVICES for s in services):
        modes += _DC_MODES
    if any(s in AC_SERVICES for s in services):
        modes += _AC_MODES if inputs.charger.limits.phases == 3 else _AC_MODES[1:]
    return modes


def payment_options(inputs: Inputs) -> tuple[str, ...]:
    """ExternalPayment always; Contract over TLS with a -2 PnC backend (listed first)."""
    if pnc.offered(inputs):
        return (pnc.CONTRACT, "ExternalPayment")
    return ("ExternalPayment",)


def handle_service_discovery(
    req: iso2.ServiceDiscoveryReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.ServiceDiscoveryResType]:
    # ServiceScope/ServiceCategory filter value-added services; we list none, and the
    # charge service is always stated.
    service = iso2.ChargeServiceType(
        service_id=CHARGE_SERVICE_ID,
        service_name="AC_DC_Charging",
        service_category=iso2.serviceCategoryType.EVCharging,
        free_service=inputs.config.free_service,
        supported_energy_transfer_mode=iso2.SupportedEnergyTransferModeType(
            energy_transfer_mode=tuple(
                iso2.EnergyTransferModeType(m) for m in energy_transfer_modes(inputs))
        ),
    )
    options = tuple(iso2.paymentOptionType(o) for o in payment_options(inputs))
    res = iso2.ServiceDiscoveryResType(
        response_code=OK,
        payment_option_list=iso2.PaymentOptionListType(payment_option=options),
        charge_service=service,
    )
    return res, []


def handle_service_detail(
    req: iso2.ServiceDetailReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.ServiceDetailResType]:
    """Only the charge service exists (no parameter sets); other ids are invalid."""
    if req.service_id != CHARGE_SERVICE_ID:
        raise ServiceIDInvalid(f"no service {req.service_id}")
    return iso2.ServiceDetailResType(response_code=OK, service_id=CHARGE_SERVICE_ID), []


def handle_payment_service_selection(
    req: iso2.PaymentServiceSelectionReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.PaymentServiceSelectionResType]:
    option = str(req.selected_payment_option)
    if option not in payment_options(inputs):
        raise PaymentSelectionInvalid(f"payment option {option} not offered")
    selected = req.selected_service_list.selected_service if req.selected_service_list else ()
    ids = [s.service_id for s in selected]
    if CHARGE_SERVICE_ID not in ids:
        raise NoChargeServiceSelected("the charge service (ServiceID 1) was not selected")
    unknown = [i for i in ids if i != CHARGE_SERVICE_ID]
    if unknown:
        raise ServiceSelectionInvalid(f"services {unknown} were not offered")
    session.payment_option = option
    return iso2.PaymentServiceSelectionResType(response_code=OK), []
