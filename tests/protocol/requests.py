"""A minimal valid instance of every -20 request (CommonMessages, DC, AC), for table tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evse.protocol.iso20.messages import REQUESTS
from exi_codec.schemas import iso20, iso20_ac, iso20_dc


def _r(m: Any, v: int) -> Any:
    return m.RationalNumberType(exponent=0, value=v)


def _dc_cpd(h: Any) -> Any:
    m = iso20_dc
    return m.DC_ChargeParameterDiscoveryReq(
        header=h,
        dc_cpd_req_energy_transfer_mode=(
            m.DC_CPDReqEnergyTransferModeType(
                ev_maximum_charge_power=_r(m, 30000),
                ev_minimum_charge_power=_r(m, 0),
                ev_maximum_charge_current=_r(m, 100),
                ev_minimum_charge_current=_r(m, 0),
                ev_maximum_voltage=_r(m, 450),
                ev_minimum_voltage=_r(m, 200),
            )
        ),
    )


_BUILDERS: dict[str, Callable[[Any], Any]] = {
    "SessionSetupReq": lambda h: iso20.SessionSetupReq(header=h, evccid="EV1"),
    "AuthorizationSetupReq": lambda h: iso20.AuthorizationSetupReq(header=h),
    "AuthorizationReq": lambda h: iso20.AuthorizationReq(
        header=h,
        selected_authorization_service="EIM",
        eim_a_req_authorization_mode=iso20.EIM_AReqAuthorizationModeType(),
    ),
    "ServiceDiscoveryReq": lambda h: iso20.ServiceDiscoveryReq(header=h),
    "ServiceDetailReq": lambda h: iso20.ServiceDetailReq(header=h, service_id=2),
    "ServiceSelectionReq": lambda h: iso20.ServiceSelectionReq(
        header=h,
        selected_energy_transfer_service=iso20.SelectedServiceType(
            service_id=2, parameter_set_id=1
        ),
    ),
    "ScheduleExchangeReq": lambda h: iso20.ScheduleExchangeReq(
        header=h,
        maximum_supporting_points=12,
        scheduled_se_req_control_mode=iso20.Scheduled_SEReqControlModeType(),
    ),
    "PowerDeliveryReq": lambda h: iso20.PowerDeliveryReq(
        header=h, ev_processing="Finished", charge_progress="Start"
    ),
    "SessionStopReq": lambda h: iso20.SessionStopReq(header=h, charging_session="Terminate"),
    "CertificateInstallationReq": lambda h: iso20.CertificateInstallationReq(
        header=h,
        oem_provisioning_certificate_chain=iso20.SignedCertificateChainType(
            id="id1", certificate=b"x"
        ),
        list_of_root_certificate_i_ds=iso20.ListOfRootCertificateIDsType(
            root_certificate_id=(
                iso20.X509IssuerSerialType(x509_issuer_name="CN=root", x509_serial_number=1),
            )
        ),
        maximum_contract_certificate_chains=1,
    ),
    "MeteringConfirmationReq": lambda h: iso20.MeteringConfirmationReq(
        header=h,
        signed_metering_data=iso20.SignedMeteringDataType(
            id="id1",
            session_id=h.session_id,
            meter_info=iso20.MeterInfoType(meter_id="M", charged_energy_reading_wh=0),
            dynamic_smdt_control_mode=iso20.Dynamic_SMDTControlModeType(),
        ),
    ),
    "VehicleCheckInReq": lambda h: iso20.VehicleCheckInReq(
        header=h, ev_check_in_status="CheckIn", parking_method="Manual"
    ),
    "VehicleCheckOutReq": lambda h: iso20.VehicleCheckOutReq(
        header=h, ev_check_out_status="CheckOut", check_out_time=0
    ),
    "DC_ChargeParameterDiscoveryReq": _dc_cpd,
    "DC_CableCheckReq": lambda h: iso20_dc.DC_CableCheckReq(header=h),
    "DC_PreChargeReq": lambda h: iso20_dc.DC_PreChargeReq(
        header=h,
        ev_processing="Ongoing",
        ev_present_voltage=_r(iso20_dc, 300),
        ev_target_voltage=_r(iso20_dc, 400),
    ),
    "DC_ChargeLoopReq": lambda h: iso20_dc.DC_ChargeLoopReq(
        header=h,
        meter_info_requested=False,
        ev_present_voltage=_r(iso20_dc, 400),
        scheduled_dc_cl_req_control_mode=iso20_dc.Scheduled_DC_CLReqControlModeType(
            ev_target_current=_r(iso20_dc, 10), ev_target_voltage=_r(iso20_dc, 400)
        ),
    ),
    "DC_WeldingDetectionReq": lambda h: iso20_dc.DC_WeldingDetectionReq(
        header=h, ev_processing="Finished"
    ),
    "AC_ChargeParameterDiscoveryReq": lambda h: iso20_ac.AC_ChargeParameterDiscoveryReq(
        header=h,
        ac_cpd_req_energy_transfer_mode=iso20_ac.AC_CPDReqEnergyTransferModeType(
            ev_maximum_charge_power=_r(iso20_ac, 11000), ev_minimum_charge_power=_r(iso20_ac, 0)
        ),
    ),
    "AC_ChargeLoopReq": lambda h: iso20_ac.AC_ChargeLoopReq(
        header=h,
        meter_info_requested=False,
        scheduled_ac_cl_req_control_mode=iso20_ac.Scheduled_AC_CLReqControlModeType(
            ev_present_active_power=_r(iso20_ac, 3000)
        ),
    ),
}

assert set(_BUILDERS) == set(REQUESTS), set(REQUESTS) ^ set(_BUILDERS)
REQUEST_NAMES = sorted(REQUESTS)


def build(name: str, session_id: bytes, timestamp: int = 1_700_000_000) -> Any:
    module = REQUESTS[name].module
    return _BUILDERS[name](module.MessageHeaderType(session_id=session_id, time_stamp=timestamp))
