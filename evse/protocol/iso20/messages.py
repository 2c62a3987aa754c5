"""The -20 request/response pairs: schema, V2GTP payload type, and FAILED responses.

`REQUESTS` lists every request root element of the CommonMessages, DC and AC schemas (also
those we do not implement, so that any of them can be answered in its own message set).
`failed_response()` builds the response of a request with a FAILED* code and placeholder
values in the mandatory fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from evse.protocol.units import to_rational
from evse.protocol.v2gtp import PayloadType
from exi_codec.schemas import iso20, iso20_ac, iso20_dc

SCHEMA_MODULES: dict[str, ModuleType] = {"iso20": iso20, "iso20_dc": iso20_dc, "iso20_ac": iso20_ac}
PAYLOAD_SCHEMAS: dict[PayloadType, str] = {
    PayloadType.COMMON: "iso20",
    PayloadType.DC: "iso20_dc",
    PayloadType.AC: "iso20_ac",
}
_SCHEMA_PAYLOAD = {schema: pt for pt, schema in PAYLOAD_SCHEMAS.items()}


@dataclass(frozen=True, slots=True)
class MessageSpec:
    request: str
    schema: str

    @property
    def response(self) -> str:
        return self.request[:-3] + "Res"

    @property
    def module(self) -> ModuleType:
        return SCHEMA_MODULES[self.schema]

    @property
    def payload_type(self) -> PayloadType:
        return _SCHEMA_PAYLOAD[self.schema]

    @property
    def response_class(self) -> Any:
        return getattr(self.module, self.response)


def _requests(schema: str) -> dict[str, MessageSpec]:
    module = SCHEMA_MODULES[schema]
    names = [entry[1] for entry in module.DOCUMENT if entry[1].endswith("Req")]
    return {name: MessageSpec(name, schema) for name in names if hasattr(module, name[:-3] + "Res")}


REQUESTS: dict[str, MessageSpec] = {
    **_requests("iso20"),
    **_requests("iso20_dc"),
    **_requests("iso20_ac"),
}


def header(module: ModuleType, session_id: bytes, timestamp: int) -> Any:
    return module.MessageHeaderType(session_id=session_id, time_stamp=timestamp)


def _zero(m: ModuleType) -> Any:
    return m.RationalNumberType(exponent=0, value=0)


def _cert_install(m: ModuleType, req: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    chain = m.ContractCertificateChainType(
        certificate=b"", sub_certificates=m.SubCertificatesType(certificate=(b"",))
    )
    data = m.SignedInstallationDataType(
        id="id1",
        contract_certificate_chain=chain,
        ecdh_curve="SECP521",
        dh_public_key=bytes(133),
        secp521_encrypted_private_key=bytes(94),
    )
    return {
        "evse_processing": "Finished",
        "cps_certificate_chain": m.CertificateChainType(certificate=b""),
        "signed_installation_data": data,
        "remaining_contract_certificate_chains": 0,
    }


_Filler = Callable[[ModuleType, Any, dict[str, Any]], dict[str, Any]]

# Mandatory fields of each response besides Header and ResponseCode.
_FILLERS: dict[str, _Filler] = {
    "SessionSetupRes": lambda m, req, ctx: {"evseid": ctx["evse_id"]},
    "AuthorizationSetupRes": lambda m, req, ctx: {
        "authorization_services": ("EIM",),
        "certificate_installation_service": False,
        "eim_as_res_authorization_mode": m.EIM_ASResAuthorizationModeType(),
    },
    "AuthorizationRes": lambda m, req, ctx: {"evse_processing": "Finished"},
    "ServiceDiscoveryRes": lambda m, req, ctx: {
        "service_renegotiation_supported": False,
        "energy_transfer_service_list": m.ServiceListType(
            service=(m.ServiceType(service_id=ctx["service_id"], free_service=False),)
        ),
    },
    "ServiceDetailRes": lambda m, req, ctx: {
        "service_id": getattr(req, "service_id", None) or ctx["service_id"],
        "service_parameter_list": m.ServiceParameterListType(
            parameter_set=(
                m.ParameterSetType(
                    parameter_set_id=0,
                    parameter=(m.ParameterType(name="ControlMode", int_value=1),),
                ),
            )
        ),
    },
    "ScheduleExchangeRes": lambda m, req, ctx: {
        "evse_processing": "Finished",
        "dynamic_se_res_control_mode": m.Dynamic_SEResControlModeType(),
    },
    "CertificateInstallationRes": _cert_install,
    "VehicleCheckOutRes": lambda m, req, ctx: {"evse_check_out_status": "Completed"},
    "DC_ChargeParameterDiscoveryRes": lambda m, req, ctx: {
        "dc_cpd_res_energy_transfer_mode": m.DC_CPDResEnergyTransferModeType(
            evse_maximum_charge_power=_zero(m),
            evse_minimum_charge_power=_zero(m),
            evse_maximum_charge_current=_zero(m),
            evse_minimum_charge_current=_zero(m),
            evse_maximum_voltage=_zero(m),
            evse_minimum_voltage=_zero(m),
        )
    },
    "DC_CableCheckRes": lambda m, req, ctx: {"evse_processing": "Finished"},
    "DC_PreChargeRes": lambda m, req, ctx: {"evse_present_voltage": ctx["voltage"]},
    "DC_WeldingDetectionRes": lambda m, req, ctx: {"evse_present_voltage": ctx["voltage"]},
    "DC_ChargeLoopRes": lambda m, req, ctx: {
        "evse_present_current": to_rational(ctx["current"], m.RationalNumberType),
        "evse_present_voltage": ctx["voltage"],
        "evse_power_limit_achieved": False,
        "evse_current_limit_achieved": False,
        "evse_voltage_limit_achieved": False,
        "scheduled_dc_cl_res_control_mode": m.Scheduled_DC_CLResControlModeType(),
    },
    "AC_ChargeParameterDiscoveryRes": lambda m, req, ctx: {
        "ac_cpd_res_energy_transfer_mode": m.AC_CPDResEnergyTransferModeType(
            evse_maximum_charge_power=_zero(m),
            evse_minimum_charge_power=_zero(m),
            evse_nominal_frequency=to_rational(ctx["frequency"], m.RationalNumberType),
        )
    },
    "AC_ChargeLoopRes": lambda m, req, ctx: {
        "scheduled_ac_cl_res_control_mode": m.Scheduled_AC_CLResControlModeType(),
    },
}

_WITH_EVSE_STATUS = frozenset({"PowerDeliveryRes", "DC_ChargeLoopRes", "AC_ChargeLoopRes"})


def failed_response(
    spec: MessageSpec,
    code: str,
    *,
    session_id: bytes,
    timestamp: int,
    req: Any = None,
    evse_id: str = "ZZ00000",
    service_id: int = 2,
    present_voltage: float = 0.0,
    present_current: float = 0.0,
    nominal_frequency: float = 50.0,
    terminate: bool = False,
) -> Any:
    """The response to `spec` with response code `code` (a FAILED* code)."""
    m = spec.module
    ctx = {
        "evse_id": evse_id,
        "service_id": service_id,
        "voltage": to_rational(present_voltage, m.RationalNumberType),
        "current": present_current,
        "frequency": nominal_frequency,
    }
    filler = _FILLERS.get(spec.response)
    fields = filler(m, req, ctx) if filler is not None else {}
    if terminate and spec.response in _WITH_EVSE_STATUS:
        fields["evse_status"] = m.EVSEStatusType(
            notification_max_delay=0, evse_notification="Terminate"
        )
    return spec.response_class(
        header=header(m, session_id, timestamp), response_code=code, **fields
    )
