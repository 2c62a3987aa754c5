"""One pure handler per DIN message pair: `handle(req, session, inputs) -> (res, effects)`.

`HANDLERS` maps a request's Body element name to its handler. Requests without a handler
(ServiceDetail, PaymentDetails, ChargingStatus, MeteringReceipt, CertificateInstallation/
Update: AC or Plug & Charge, which DIN EIM DC never uses) are never legal in the state table,
so they are answered FAILED_SequenceError in their own response type.
"""

from __future__ import annotations

from evse.protocol.din.handlers.common import Handler, HandlerResult, Inputs, entry
from evse.protocol.din.handlers.dc import (
    handle_cable_check,
    handle_charge_parameter_discovery,
    handle_pre_charge,
    handle_welding_detection,
)
from evse.protocol.din.handlers.loop import handle_current_demand, handle_power_delivery
from evse.protocol.din.handlers.services import (
    handle_contract_authentication,
    handle_service_discovery,
    handle_service_payment_selection,
)
from evse.protocol.din.handlers.session import handle_session_setup, handle_session_stop
from exi_codec.schemas import din

HANDLERS: dict[str, Handler] = {
    "SessionSetupReq": entry(din.SessionSetupReqType, handle_session_setup),
    "ServiceDiscoveryReq": entry(din.ServiceDiscoveryReqType, handle_service_discovery),
    "ServicePaymentSelectionReq": entry(
        din.ServicePaymentSelectionReqType, handle_service_payment_selection),
    "ContractAuthenticationReq": entry(
        din.ContractAuthenticationReqType, handle_contract_authentication),
    "ChargeParameterDiscoveryReq": entry(
        din.ChargeParameterDiscoveryReqType, handle_charge_parameter_discovery),
    "CableCheckReq": entry(din.CableCheckReqType, handle_cable_check),
    "PreChargeReq": entry(din.PreChargeReqType, handle_pre_charge),
    "PowerDeliveryReq": entry(din.PowerDeliveryReqType, handle_power_delivery),
    "CurrentDemandReq": entry(din.CurrentDemandReqType, handle_current_demand),
    "WeldingDetectionReq": entry(din.WeldingDetectionReqType, handle_welding_detection),
    "SessionStopReq": entry(din.SessionStopType, handle_session_stop),
}

__all__ = ["HANDLERS", "Handler", "HandlerResult", "Inputs"]
