"""One pure handler per -2 message pair: `handle(req, session, inputs) -> (res, effects)`.

`HANDLERS` maps a request element name to its handler; `req` and `res` are Body elements.
"""

from __future__ import annotations

from evse.protocol.iso2.handlers.ac import handle_charging_status, handle_metering_receipt
from evse.protocol.iso2.handlers.authorization import (
    handle_authorization,
    handle_certificate_installation,
    handle_certificate_update,
    handle_payment_details,
)
from evse.protocol.iso2.handlers.charge_parameters import handle_charge_parameter_discovery
from evse.protocol.iso2.handlers.common import Handler, HandlerResult, Inputs
from evse.protocol.iso2.handlers.dc import (
    handle_cable_check,
    handle_current_demand,
    handle_pre_charge,
    handle_welding_detection,
)
from evse.protocol.iso2.handlers.power_delivery import handle_power_delivery
from evse.protocol.iso2.handlers.services import (
    handle_payment_service_selection,
    handle_service_detail,
    handle_service_discovery,
)
from evse.protocol.iso2.handlers.session import handle_session_setup, handle_session_stop

HANDLERS: dict[str, Handler] = {
    "SessionSetupReq": handle_session_setup,
    "ServiceDiscoveryReq": handle_service_discovery,
    "ServiceDetailReq": handle_service_detail,
    "PaymentServiceSelectionReq": handle_payment_service_selection,
    "PaymentDetailsReq": handle_payment_details,
    "CertificateInstallationReq": handle_certificate_installation,
    "CertificateUpdateReq": handle_certificate_update,
    "AuthorizationReq": handle_authorization,
    "ChargeParameterDiscoveryReq": handle_charge_parameter_discovery,
    "CableCheckReq": handle_cable_check,
    "PreChargeReq": handle_pre_charge,
    "PowerDeliveryReq": handle_power_delivery,
    "CurrentDemandReq": handle_current_demand,
    "ChargingStatusReq": handle_charging_status,
    "MeteringReceiptReq": handle_metering_receipt,
    "WeldingDetectionReq": handle_welding_detection,
    "SessionStopReq": handle_session_stop,
}

__all__ = ["HANDLERS", "Handler", "HandlerResult", "Inputs"]
