"""The -2 request/response pairs: V2G_Message wrapping, request lookup, FAILED responses.

Every -2 message is a `V2G_Message` (Header with the SessionID, Body with one element),
sent as V2GTP payload type 0x8001. `REQUESTS` maps each request element name (also those
we do not implement) to its Body field, so that any of them can be answered in kind.
`failed_response()` builds the response of a request with a FAILED* code and placeholder
values in the mandatory fields.
"""

from __future__ import annotations

from typing import Any

from evse.protocol.iso2.values import physical
from exi_codec.schemas import iso2

SCHEMA = "iso2"


def _snake(name: str) -> str:
    out = [name[0].lower()]
    for ch in name[1:]:
        out.append("_" + ch.lower() if ch.isupper() else ch)
    return "".join(out)


# request element -> Body field name (SessionSetupReq -> session_setup_req)
REQUESTS: dict[str, str] = {
    name: _snake(name)
    for name in (
        "SessionSetupReq", "ServiceDiscoveryReq", "ServiceDetailReq",
        "PaymentServiceSelectionReq", "PaymentDetailsReq", "AuthorizationReq",
        "ChargeParameterDiscoveryReq", "CableCheckReq", "PreChargeReq", "PowerDeliveryReq",
        "CurrentDemandReq", "ChargingStatusReq", "MeteringReceiptReq", "WeldingDetectionReq",
        "SessionStopReq", "CertificateInstallationReq", "CertificateUpdateReq",
    )
}
assert all(hasattr(iso2.BodyType, f) for f in REQUESTS.values())


def response_name(request: str) -> str:
    return request[:-3] + "Res"


def request_of(msg: Any) -> tuple[str, Any] | None:
    """(request name, body element) of a decoded V2G_Message; None when the body holds no
    request (a response, or nothing)."""
    body = getattr(msg, "body", None)
    if body is None:
        return None
    for name, field in REQUESTS.items():
        element = getattr(body, field)
        if element is not None:
            return name, element
    return None


def wrap(res: Any, session_id: bytes) -> iso2.V2G_Message:
    """The V2G_Message carrying response body element `res` (a *ResType)."""
    name = type(res).__name__.removesuffix("Type")
    body = iso2.BodyType(**{_snake(name): res})
    return iso2.V2G_Message(header=iso2.MessageHeaderType(session_id=session_id), body=body)


def dc_status(code: str = "EVSE_Ready", notification: str = "None",
              isolation: str | None = None, max_delay: int = 0) -> iso2.DC_EVSEStatusType:
    return iso2.DC_EVSEStatusType(
        notification_max_delay=max_delay,
        evse_notification=iso2.EVSENotificationType(notification),
        evse_isolation_status=None if isolation is None else iso2.isolationLevelType(isolation),
        evse_status_code=iso2.DC_EVSEStatusCodeType(code),
    )


def ac_status(notification: str = "None", max_delay: int = 0) -> iso2.AC_EVSEStatusType:
    return iso2.AC_EVSEStatusType(
        notification_max_delay=max_delay,
        evse_notification=iso2.EVSENotificationType(notification),
        rcd=False,
    )


def _placeholders(name: str, req: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    """Mandatory fields of each response besides ResponseCode (values to say "stopped")."""
    volts = physical(ctx["voltage"], "V")
    dc = ctx["energy"] != "ac"
    status = dc_status("EVSE_Shutdown")
    either = {"dc_evse_status": status} if dc else {"ac_evse_status": ac_status()}
    chain = iso2.CertificateChainType(certificate=b"")
    pnc = {
        "sa_provisioning_certificate_chain": chain,
        "contract_signature_cert_chain": chain,
        "contract_signature_encrypted_private_key": iso2.ContractSignatureEncryptedPrivateKeyType(
            id="id2", value=bytes(48)),
        "d_hpublickey": iso2.DiffieHellmanPublickeyType(id="id3", value=bytes(65)),
        "e_maid": iso2.EMAIDType(id="id4", value="ZZ00000000000"),
    }
    fields: dict[str, dict[str, Any]] = {
        "SessionSetupRes": {"evseid": ctx["evse_id"]},
        "ServiceDiscoveryRes": {
            "payment_option_list": iso2.PaymentOptionListType(
                payment_option=(iso2.paymentOptionType.ExternalPayment,)),
            "charge_service": iso2.ChargeServiceType(
                service_id=1, service_category=iso2.serviceCategoryType.EVCharging,
                free_service=False,
                supported_energy_transfer_mode=iso2.SupportedEnergyTransferModeType(
                    energy_transfer_mode=(iso2.EnergyTransferModeType.DC_extended,))),
        },
        "ServiceDetailRes": {"service_id": getattr(req, "service_id", None) or 1},
        "PaymentDetailsRes": {"gen_challenge": bytes(16), "evse_time_stamp": ctx["timestamp"]},
        "AuthorizationRes": {"evse_processing": iso2.EVSEProcessingType.Finished},
        "ChargeParameterDiscoveryRes": {
            "evse_processing": iso2.EVSEProcessingType.Finished,
            **({"dc_evse_charge_parameter": iso2.DC_EVSEChargeParameterType(
                dc_evse_status=status,
                evse_maximum_current_limit=physical(0, "A"),
                evse_maximum_power_limit=physical(0, "W"),
                evse_maximum_voltage_limit=physical(0, "V"),
                evse_minimum_current_limit=physical(0, "A"),
                evse_minimum_voltage_limit=physical(0, "V"),
                evse_peak_current_ripple=physical(0, "A"),
            )} if dc else {"ac_evse_charge_parameter": iso2.AC_EVSEChargeParameterType(
                ac_evse_status=ac_status(),
                evse_nominal_voltage=physical(ctx["nominal_voltage"], "V"),
                evse_max_current=physical(0, "A"),
            )}),
        },
        "CableCheckRes": {
            "dc_evse_status": status, "evse_processing": iso2.EVSEProcessingType.Finished},
        "PreChargeRes": {"dc_evse_status": status, "evse_present_voltage": volts},
        "PowerDeliveryRes": either,
        "CurrentDemandRes": {
            "dc_evse_status": status,
            "evse_present_voltage": volts,
            "evse_present_current": physical(ctx["current"], "A"),
            "evse_current_limit_achieved": False,
            "evse_voltage_limit_achieved": False,
            "evse_power_limit_achieved": False,
            "evseid": ctx["evse_id"],
            "sa_schedule_tuple_id": 1,
        },
        "ChargingStatusRes": {
            "evseid": ctx["evse_id"], "sa_schedule_tuple_id": 1, "ac_evse_status": ac_status()},
        "MeteringReceiptRes": either,
        "WeldingDetectionRes": {"dc_evse_status": status, "evse_present_voltage": volts},
        "CertificateInstallationRes": pnc,
        "CertificateUpdateRes": pnc,
    }
    return fields.get(name, {})


def failed_response(
    request: str,
    code: str,
    *,
    req: Any = None,
    energy: str | None = None,
    evse_id: str = "ZZ00000",
    timestamp: int = 0,
    present_voltage: float = 0.0,
    present_current: float = 0.0,
    nominal_voltage: float = 230.0,
) -> Any:
    """The response body element to `request` with response code `code` (a FAILED* code)."""
    name = response_name(request)
    ctx = {
        "energy": energy,
        "evse_id": evse_id,
        "timestamp": timestamp,
        "voltage": present_voltage,
        "current": present_current,
        "nominal_voltage": nominal_voltage,
    }
    cls = getattr(iso2, name + "Type")
    return cls(response_code=iso2.responseCodeType(code), **_placeholders(name, req, ctx))
