"""Wire helpers of the simulated EV: rational numbers, schemas <-> V2GTP payload types,
framing and decoding of the SECC's responses.

Each generated schema module carries its own copy of the CommonTypes classes, so helpers
that build nested values take the schema module (`iso20`, `iso20_dc`, `iso20_ac`).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import exi_codec
from evse.protocol.v2gtp import PayloadType, encode_frame
from exi_codec.schemas import iso20, iso20_ac, iso20_dc, sap

SCHEMA_MODULES: dict[str, ModuleType] = {
    "sap": sap,
    "iso20": iso20,
    "iso20_dc": iso20_dc,
    "iso20_ac": iso20_ac,
}
SCHEMA_PAYLOAD_TYPES: dict[str, PayloadType] = {
    "sap": PayloadType.SAP,
    "iso20": PayloadType.COMMON,
    "iso20_ac": PayloadType.AC,
    "iso20_dc": PayloadType.DC,
}
PAYLOAD_TYPE_SCHEMAS: dict[int, str] = {int(v): k for k, v in SCHEMA_PAYLOAD_TYPES.items()}

SHORT_MIN, SHORT_MAX = -32768, 32767


def rational(mod: ModuleType, x: float) -> Any:
    """`x` as the schema's RationalNumberType (value: xs:short, exponent: xs:byte), with the
    finest exponent that fits and trailing zeros folded into the exponent (400 -> 400e0)."""
    if not math.isfinite(x):
        raise ValueError(f"cannot encode {x!r} as a rational number")
    if x == 0:
        return mod.RationalNumberType(exponent=0, value=0)
    for exponent in range(-3, 128):
        value = round(x * 10**-exponent) if exponent < 0 else round(x / 10**exponent)
        if SHORT_MIN <= value <= SHORT_MAX:
            break
    else:  # pragma: no cover - a float never needs an exponent above 127 within short range
        raise ValueError(f"{x!r} out of range")
    if value == 0:
        return mod.RationalNumberType(exponent=0, value=0)
    while value % 10 == 0 and exponent < 127:
        value //= 10
        exponent += 1
    return mod.RationalNumberType(exponent=exponent, value=value)


def value_of(r: Any) -> float:
    """The float value of a -20 RationalNumberType (one class for every -20 module)."""
    return float(r.value) * 10.0 ** int(r.exponent)


def maybe_value(r: Any) -> float | None:
    return None if r is None else value_of(r)


def header(mod: ModuleType, session_id: bytes, timestamp: int) -> Any:
    return mod.MessageHeaderType(session_id=session_id, time_stamp=timestamp)


def message_name(msg: Any) -> str:
    return type(msg).__name__


def message_schema(msg: Any) -> str:
    return str(type(msg)._exi_module.SCHEMA)


def frame(msg: Any) -> bytes:
    """EXI-encode a message and put it behind its V2GTP header."""
    return encode_frame(SCHEMA_PAYLOAD_TYPES[message_schema(msg)], exi_codec.encode(msg))


def decode_payload(payload_type: int, payload: bytes) -> Any:
    """Decode a V2GTP payload with the schema its payload type names."""
    schema = PAYLOAD_TYPE_SCHEMAS.get(int(payload_type))
    if schema is None:
        raise ValueError(f"payload type {int(payload_type):#06x} carries no schema the EV reads")
    return exi_codec.decode(payload, schema)


def response_name_for(request_name: str) -> str:
    """supportedAppProtocolReq -> supportedAppProtocolRes, DC_ChargeLoopReq -> ..Res."""
    if not request_name.endswith("Req"):
        raise ValueError(f"{request_name} is not a request")
    return request_name[:-3] + "Res"


def parameter_int(param: Any) -> int | None:
    """The integer value of a ServiceDetail ParameterType, whichever branch carries it."""
    for attr in ("int_value", "short_value", "byte_value"):
        v = getattr(param, attr)
        if v is not None:
            return int(v)
    if param.bool_value is not None:
        return int(bool(param.bool_value))
    return None


def parameter_value(param: Any) -> Any:
    for attr in ("bool_value", "byte_value", "short_value", "int_value", "finite_string"):
        v = getattr(param, attr)
        if v is not None:
            return v
    if param.rational_number is not None:
        return value_of(param.rational_number)
    return None
