"""One pure handler per -20 message pair: `handle(req, session, inputs) -> (res, effects)`.

`HANDLERS` maps a request root element name to its handler. Requests without a handler
(VehicleCheckIn/Out) are never legal in the state table, so they are answered
FAILED_SequenceError in their own message set.
"""

from __future__ import annotations

from evse.protocol.iso20.handlers.ac import (
    handle_ac_charge_loop,
    handle_ac_charge_parameter_discovery,
)
from evse.protocol.iso20.handlers.authorization import (
    handle_authorization,
    handle_authorization_setup,
)
from evse.protocol.iso20.handlers.certificate_installation import handle_certificate_installation
from evse.protocol.iso20.handlers.common import Handler, HandlerResult, Inputs, entry
from evse.protocol.iso20.handlers.dc import (
    handle_dc_cable_check,
    handle_dc_charge_parameter_discovery,
    handle_dc_pre_charge,
    handle_dc_welding_detection,
)
from evse.protocol.iso20.handlers.dc_loop import handle_dc_charge_loop
from evse.protocol.iso20.handlers.metering_confirmation import handle_metering_confirmation
from evse.protocol.iso20.handlers.power_delivery import handle_power_delivery
from evse.protocol.iso20.handlers.schedule_exchange import handle_schedule_exchange
from evse.protocol.iso20.handlers.services import (
    handle_service_detail,
    handle_service_discovery,
    handle_service_selection,
    parameter_sets,
)
from evse.protocol.iso20.handlers.session import handle_session_setup, handle_session_stop
from exi_codec.schemas.iso20 import (
    AuthorizationReq,
    AuthorizationSetupReq,
    CertificateInstallationReq,
    MeteringConfirmationReq,
    PowerDeliveryReq,
    ScheduleExchangeReq,
    ServiceDetailReq,
    ServiceDiscoveryReq,
    ServiceSelectionReq,
    SessionSetupReq,
    SessionStopReq,
)
from exi_codec.schemas.iso20_ac import (
    AC_ChargeLoopReq,
    AC_ChargeParameterDiscoveryReq,
)
from exi_codec.schemas.iso20_dc import (
    DC_CableCheckReq,
    DC_ChargeLoopReq,
    DC_ChargeParameterDiscoveryReq,
    DC_PreChargeReq,
    DC_WeldingDetectionReq,
)

HANDLERS: dict[str, Handler] = {
    "SessionSetupReq": entry(SessionSetupReq, handle_session_setup),
    "AuthorizationSetupReq": entry(AuthorizationSetupReq, handle_authorization_setup),
    "AuthorizationReq": entry(AuthorizationReq, handle_authorization),
    "CertificateInstallationReq": entry(
        CertificateInstallationReq, handle_certificate_installation),
    "MeteringConfirmationReq": entry(MeteringConfirmationReq, handle_metering_confirmation),
    "ServiceDiscoveryReq": entry(ServiceDiscoveryReq, handle_service_discovery),
    "ServiceDetailReq": entry(ServiceDetailReq, handle_service_detail),
    "ServiceSelectionReq": entry(ServiceSelectionReq, handle_service_selection),
    "ScheduleExchangeReq": entry(ScheduleExchangeReq, handle_schedule_exchange),
    "PowerDeliveryReq": entry(PowerDeliveryReq, handle_power_delivery),
    "SessionStopReq": entry(SessionStopReq, handle_session_stop),
    "DC_ChargeParameterDiscoveryReq": entry(
        DC_ChargeParameterDiscoveryReq, handle_dc_charge_parameter_discovery),
    "DC_CableCheckReq": entry(DC_CableCheckReq, handle_dc_cable_check),
    "DC_PreChargeReq": entry(DC_PreChargeReq, handle_dc_pre_charge),
    "DC_ChargeLoopReq": entry(DC_ChargeLoopReq, handle_dc_charge_loop),
    "DC_WeldingDetectionReq": entry(DC_WeldingDetectionReq, handle_dc_welding_detection),
    "AC_ChargeParameterDiscoveryReq": entry(
        AC_ChargeParameterDiscoveryReq, handle_ac_charge_parameter_discovery),
    "AC_ChargeLoopReq": entry(AC_ChargeLoopReq, handle_ac_charge_loop),
}

__all__ = ["HANDLERS", "Handler", "HandlerResult", "Inputs", "entry", "parameter_sets"]
