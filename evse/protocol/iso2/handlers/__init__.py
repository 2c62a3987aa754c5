"""One pure handler per -2 message pair: `handle(req, session, inputs) -> (res, effects)`.

`HANDLERS` maps a request element name to its handler's typed table entry (`entry(RequestClass,
handle)`, evse.protocol.handler_table); `req` and `res` are Body elements.
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
from evse.protocol.iso2.handlers.common import Handler, HandlerResult, Inputs, entry
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
from exi_codec.schemas import iso2

HANDLERS: dict[str, Handler] = {
    "SessionSetupReq": entry(iso2.SessionSetupReqType, handle_session_setup),
    "ServiceDiscoveryReq": entry(iso2.ServiceDiscoveryReqType, handle_service_discovery),
    "ServiceDetailReq": entry(iso2.ServiceDetailReqType, handle_service_detail),
    "PaymentServiceSelectionReq": entry(
        iso2.PaymentServiceSelectionReqType, handle_payment_service_selection),
    "PaymentDetailsReq": entry(iso2.PaymentDetailsReqType, handle_payment_details),
    "CertificateInstallationReq": entry(
        iso2.CertificateInstallationReqType, handle_certificate_installation),
    "CertificateUpdateReq": entry(iso2.CertificateUpdateReqType, handle_certificate_update),
    "AuthorizationReq": entry(iso2.AuthorizationReqType, handle_authorization),
    "ChargeParameterDiscoveryReq": entry(
        iso2.ChargeParameterDiscoveryReqType, handle_charge_parameter_discovery),
    "CableCheckReq": entry(iso2.CableCheckReqType, handle_cable_check),
    "PreChargeReq": entry(iso2.PreChargeReqType, handle_pre_charge),
    "PowerDeliveryReq": entry(iso2.PowerDeliveryReqType, handle_power_delivery),
    "CurrentDemandReq": entry(iso2.CurrentDemandReqType, handle_current_demand),
    "ChargingStatusReq": entry(iso2.ChargingStatusReqType, handle_charging_status),
    "MeteringReceiptReq": entry(iso2.MeteringReceiptReqType, handle_metering_receipt),
    "WeldingDetectionReq": entry(iso2.WeldingDetectionReqType, handle_welding_detection),
    "SessionStopReq": entry(iso2.SessionStopReqType, handle_session_stop),
}

__all__ = ["HANDLERS", "Handler", "HandlerResult", "Inputs"]
