"""EXI codec for ISO 15118-20, ISO 15118-2, DIN SPEC 70121 and supportedAppProtocol.

    msg = exi_codec.decode(data, "iso20_dc")   # -> typed message (e.g. DC_ChargeLoopReq)
    data = exi_codec.encode(msg)               # -> bytes (the schema comes with the class)
    exi_codec.to_json(msg) / exi_codec.from_json(obj, "iso20_dc")

Two engines with the same behaviour: the Cython one (`_engine_c`, built by setup.py) and the pure
Python reference (`_engine_py`). Set EXI_CODEC_PURE=1 to force the pure one. ENGINE names the
one in use.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from . import _engine_py
from ._json import (
    fragment_from_json,
    fragment_to_json,
    message_from_json,
    message_to_json,
)
from ._model import ExiEnum, Message
from .errors import ExiDecodeError, ExiEncodeError, ExiError

SCHEMAS = ("sap", "iso20", "iso20_dc", "iso20_ac", "iso20_wpt", "iso20_acdp", "iso2", "din")
# Fragment grammars (for XML signatures): the whole schema set, or xmldsig alone (-20 SignedInfo).
FRAGMENT_GRAMMARS = ("schema", "xmldsig")

_engine: Any = _engine_py
ENGINE = "pure"
if not os.environ.get("EXI_CODEC_PURE"):
    try:
        from . import _engine_c  # type: ignore[attr-defined]

        _engine = _engine_c
        ENGINE = "cython"
    except ImportError:  # not built (EXI_CODEC_NO_EXT) or unsupported platform
        pass


_MODULES: dict[str, ModuleType] = {}


def schema_module(schema: str) -> ModuleType:
    """The generated module of a schema (imported on first use, then cached: hot path)."""
    mod = _MODULES.get(schema)
    if mod is None:
        if schema not in SCHEMAS:
            raise ValueError(f"unknown schema {schema!r}; one of {', '.join(SCHEMAS)}")
        mod = _MODULES[schema] = importlib.import_module(f"exi_codec.schemas.{schema}")
    return mod


def decode(data: bytes, schema: str, *, strict: bool = False, max_lengths: bool = False) -> Any:
    """Decode an EXI document (the V2GTP payload) of `schema` into its message object.

    Structure, ranges, enumerations and counts (maxOccurs) are always checked. Length facets
    (min/maxLength of strings and binaries) do not change the EXI encoding and real peers
    exceed them, so they are enforced only with strict=True; lengths are always bounded by
    the input itself. max_lengths=True enforces the maximum lengths alone: what an untrusted
    peer must not exceed (memory, logs), while a too short value stays accepted.
    """
    return _engine.decode(data, schema_module(schema), strict, max_lengths)


def encode(msg: Message, *, strict: bool = True) -> bytes:
    """Encode a message object (a root element class of a generated schema module).

    strict=False skips the length facets, to re-encode what a lenient decode accepted.
    """
    return _engine.encode(msg, strict)  # type: ignore[no-any-return]


def _fragment_table(schema: str, grammar: str) -> tuple[ModuleType, tuple[Any, ...]]:
    mod = schema_module(schema)
    if grammar not in FRAGMENT_GRAMMARS:
        raise ValueError(f"unknown fragment grammar {grammar!r}; one of {FRAGMENT_GRAMMARS}")
    return mod, (mod.XMLDSIG_FRAGMENT if grammar == "xmldsig" else mod.FRAGMENT)


def decode_fragment(data: bytes, schema: str, grammar: str = "schema", *,
                    strict: bool = False, max_lengths: bool = False) -> tuple[str, Any]:
    """Decode an EXI fragment (signed content) -> (element name, value).

    grammar="schema": the fragment grammar of the whole schema set (-20 PnC_AReqAuthorizationMode
    and the other signed elements, every -2 fragment); grammar="xmldsig": the xmldsig schema
    alone, which -20 uses for SignedInfo. `strict` and `max_lengths` as for `decode`.
    """
    mod, table = _fragment_table(schema, grammar)
    return _engine.decode_fragment(  # type: ignore[no-any-return]
        data, mod, table, strict, max_lengths)


def encode_fragment(name: str, value: Any, schema: str, grammar: str = "schema", *,
                    strict: bool = True) -> bytes:
    """Encode one element as an EXI fragment, the byte string that XML signatures digest."""
    mod, table = _fragment_table(schema, grammar)
    return _engine.encode_fragment(name, value, mod, table, strict)  # type: ignore[no-any-return]


def to_json(msg: Message) -> dict[str, Any]:
    """`msg` in the JSON convention of the test vectors (docs/exi_codec.md)."""
    return message_to_json(msg)


def from_json(obj: Any, schema: str) -> Any:
    """The message of `schema` that `obj` (the JSON convention) describes."""
    return message_from_json(obj, schema_module(schema))


__all__ = [
    "ENGINE", "SCHEMAS", "FRAGMENT_GRAMMARS", "ExiDecodeError", "ExiEncodeError", "ExiError",
    "ExiEnum", "Message", "decode", "encode", "decode_fragment", "encode_fragment", "to_json",
    "from_json", "fragment_to_json", "fragment_from_json", "schema_module",
]
