"""The DIN request/response pairs: body element names, wrapping, and FAILED responses.

Every DIN message is a `V2G_Message` (Header with the SessionID, Body with one element) sent
as V2GTP payload type 0x8001. `REQUESTS` lists every request element of the schema (also
those DIN EIM never uses, so that any of them is answered in its own response type).
`failed_response()` builds a response with a FAILED* code and placeholder values in the
mandatory fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evse.protocol.din.units import physical
from exi_codec.schemas import din

# Body field names in order (BodyType is a tuple: one element set per message).
BODY_FIELDS: tuple[str, ...] = din.BodyType._py_names()
_BY_KEY = {f.replace("_", ""): f for f in BODY_FIELDS}


@dataclass(frozen=True, slots=True)
class MessageSpec:
    request: str  # body element name, e.g. "CurrentDemandReq"
    field: str  # BodyType field, e.g. "current_demand_req"

    @property
    def response(self) -> str:
        return self.request[:-3] + "Res"

    @property
    def response_field(self) -> str:
        return self.field[:-3] + "res"

    @property
    def response_class(self) -> Any:
        return getattr(din, self.response)


def _requests() -> dict[str, MessageSpec]:
    out: dict[str, MessageSpec] = {}
    for name in dir(din):
        key = name.lower()
        if name.endswith("Req") and key in _BY_KEY and hasattr(din, name[:-3] + "Res"):
            out[name] = MessageSpec(name, _BY_KEY[key])
    return out


REQUESTS: dict[str, MessageSpec] = _requests()
_BY_FIELD = {spec.field: spec for spec in REQUESTS.values()}


def body_element(msg: Any) -> tuple[str | None, Any]:
    """(BodyType field, element) of a decoded V2G_Message; (None, None) if the body is empty."""
    body = msg.body
    if body is None:
        return None, None
    for name, value in zip(BODY_FIELDS, body, strict=True):
        if value is not None:
            return name, value
    return None, None


def request_spec(field: str | None) -> MessageSpec | None:
    return _BY_FIELD.get(field) if field is not None else None


def wrap(spec: MessageSpec, session_id: bytes, res: Any) -> din.V2G_Message:
    body = din.BodyType(**{spec.response_field: res})
    return din.V2G_Message(header=din.MessageHeaderType(session_id=session_id), body=body)


def dc_evse_status(
    *,
    isolation: str | None = "Invalid",
    code: str = "EVSE_Ready",
    notification: str = "None",
    max_delay: int = 0,
) -> din.DC_EVSEStatusType:
    return din.DC_EVSEStatusType(
        evse_isolation_status=None if isolation is None else din.isolationLevelType(isolation),
        evse_status_code=din.DC_EVSEStatusCodeType(code),
        notification_max_delay=max_delay,
        evse_notification=din.EVSENotificationType(notification),
    )


def schedule_tuple(p_max_w: float, *, tuple_id: int = 1, duration: int = 86400) -> Any:
    """One SAScheduleTuple with a single PMax entry from now for `duration` seconds.

    DIN's PMax is a bare xs:short: we send watts, capped at 32767 (the binding power limit is
    EVSEMaximumPowerLimit, a PhysicalValue that carries any magnitude)."""
    p_max = max(0, min(int(p_max_w), 32767))
    entry = din.PMaxScheduleEntryType(
        relative_time_interval=din.RelativeTimeIntervalType(start=0, duration=duration),
        p_max=p_max,
    )
    return din.SAScheduleTupleType(
        sa_schedule_tuple_id=tuple_id,
        p_max_schedule=din.PMaxScheduleType(p_max_schedule_id=1, p_max_schedule_entry=(entry,)),
    )


DIN_PMAX_MAX = 32767  # PMaxType is xs:short (W)
# PMaxScheduleEntry is maxOccurs="unbounded" in the DIN XSD, but EV stacks built on the
# usual DIN codecs (OpenV2G-derived) hold at most 5 entries: more would fail their decoder
DIN_MAX_PMAX_ENTRIES = 5


def schedule_tuple_entries(entries: tuple[tuple[int, float], ...], *, tuple_id: int = 1
                           ) -> Any:
    """One SAScheduleTuple with a PMax entry per (duration s, power W) from now (a schedule
    of the CSMS): at most DIN_MAX_PMAX_ENTRIES (the tail merges into one with its smallest
    power), each PMax capped at 32767 W; only the last entry states its duration."""
    if not entries:
        return schedule_tuple(0.0, tuple_id=tuple_id)
    if len(entries) > DIN_MAX_PMAX_ENTRIES:
        tail = entries[DIN_MAX_PMAX_ENTRIES - 1:]
        entries = (*entries[:DIN_MAX_PMAX_ENTRIES - 1],
                   (sum(d for d, _ in tail), min(p for _, p in tail)))
    items, start = [], 0
    for i, (duration, power) in enumerate(entries):
        last = i == len(entries) - 1
        items.append(din.PMaxScheduleEntryType(
            relative_time_interval=din.RelativeTimeIntervalType(
                start=start, duration=max(1, int(duration)) if last else None),
            p_max=max(0, min(int(power), DIN_PMAX_MAX)),
        ))
        start += max(1, int(duration))
    return din.SAScheduleTupleType(
        sa_schedule_tuple_id=tuple_id,
        p_max_schedule=din.PMaxScheduleType(p_max_schedule_id=1,
                                            p_max_schedule_entry=tuple(items)),
    )


_schedule = schedule_tuple


def _certificate() -> dict[str, Any]:
    return {
        "id": "id1",
        "contract_signature_cert_chain": din.CertificateChainType(certificate=b""),
        "contract_signature_encrypted_private_key": b"",
        "dh_params": b"",
        "contract_id": "",
    }


def _zero(unit: str) -> din.PhysicalValueType:
    return physical(0.0, unit)


def failed_response(
    spec: MessageSpec,
    code: str,
    *,
    evse_id: bytes = b"\x00",
    present_voltage: float = 0.0,
    present_current: float = 0.0,
    status_code: str = "EVSE_Shutdown",
) -> Any:
    """The response body element to `spec` with response code `code` (a FAILED* code)."""
    status = dc_evse_status(code=status_code)
    voltage = physical(present_voltage, "V")
    table: dict[str, dict[str, Any]] = {
        "SessionSetupRes": {"evseid": evse_id},
        "ServiceDiscoveryRes": {
            "payment_options": din.PaymentOptionsType(
                payment_option=(din.paymentOptionType.ExternalPayment,)
            ),
            "charge_service": din.ServiceChargeType(
                service_tag=din.ServiceTagType(
                    service_id=1, service_category=din.serviceCategoryType.EVCharging
                ),
                free_service=False,
                energy_transfer_type=din.EVSESupportedEnergyTransferType.DC_extended,
            ),
        },
        "ServiceDetailRes": {"service_id": 1},
        "CertificateInstallationRes": _certificate(),
        "CertificateUpdateRes": {**_certificate(), "retry_counter": 0},
        "PaymentDetailsRes": {"gen_challenge": "", "date_time_now": 0},
        "ContractAuthenticationRes": {"evse_processing": "Finished"},
        "ChargeParameterDiscoveryRes": {
            "evse_processing": "Finished",
            "sa_schedule_list": din.SAScheduleListType(sa_schedule_tuple=(_schedule(0.0),)),
            "dc_evse_charge_parameter": din.DC_EVSEChargeParameterType(
                dc_evse_status=status,
                evse_maximum_current_limit=_zero("A"),
                evse_maximum_voltage_limit=_zero("V"),
                evse_minimum_current_limit=_zero("A"),
                evse_minimum_voltage_limit=_zero("V"),
                evse_peak_current_ripple=_zero("A"),
            ),
        },
        "PowerDeliveryRes": {"dc_evse_status": status},
        "ChargingStatusRes": {
            "evseid": evse_id,
            "sa_schedule_tuple_id": 1,
            "receipt_required": False,
            "ac_evse_status": din.AC_EVSEStatusType(
                power_switch_closed=False, rcd=False, notification_max_delay=0,
                evse_notification=din.EVSENotificationType.None_,
            ),
        },
        "MeteringReceiptRes": {
            "ac_evse_status": din.AC_EVSEStatusType(
                power_switch_closed=False, rcd=False, notification_max_delay=0,
                evse_notification=din.EVSENotificationType.None_,
            ),
        },
        "CableCheckRes": {"dc_evse_status": status, "evse_processing": "Finished"},
        "PreChargeRes": {"dc_evse_status": status, "evse_present_voltage": voltage},
        "CurrentDemandRes": {
            "dc_evse_status": status,
            "evse_present_voltage": voltage,
            "evse_present_current": physical(present_current, "A"),
            "evse_current_limit_achieved": False,
            "evse_voltage_limit_achieved": False,
            "evse_power_limit_achieved": False,
        },
        "WeldingDetectionRes": {"dc_evse_status": status, "evse_present_voltage": voltage},
    }
    fields = table.get(spec.response, {})
    return spec.response_class(response_code=din.responseCodeType(code), **fields)
