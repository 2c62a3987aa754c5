"""JSON form of messages, in the convention of the project's test vectors.

Element names as in the XSD; nested elements as objects; maxOccurs > 1 as arrays (even for one
item); attributes as keys; hexBinary as upper-case hex; base64Binary as base64; enums by name;
simple content with attributes as {"value": ...}.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ._tables import DT_B64, DT_BOOL, DT_ENUM, DT_HEX, DT_STRING
from .errors import ExiEncodeError


def _dt_to_json(dt: tuple[Any, ...], v: Any) -> Any:
    kind = dt[0]
    if kind == DT_HEX:
        return bytes(v).hex().upper()
    if kind == DT_B64:
        return base64.b64encode(bytes(v)).decode("ascii")
    if kind == DT_ENUM:
        return str(v.value) if hasattr(v, "value") else str(v)
    return v


def _to_json(obj: Any, module: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dts = module.DATATYPES
    single = getattr(type(obj), "_exi_json_single", ())
    for name, i, is_list, dt, _g in type(obj)._exi_fields:
        v = obj[i]
        if v is None or (is_list and not v):
            continue
        if is_list and len(v) == 1 and name in single:
            v, is_list = v[0], False
        if dt is None:
            out[name] = [_to_json(x, module) for x in v] if is_list else _to_json(v, module)
        else:
            d = dts[dt]
            out[name] = [_dt_to_json(d, x) for x in v] if is_list else _dt_to_json(d, v)
    return out


def message_to_json(msg: Any) -> dict[str, Any]:
    """A message as JSON; a root message is wrapped in its element name, like the vectors."""
    module = type(msg)._exi_module
    inner = _to_json(msg, module)
    for _uri, name, _gid, cls in module.DOCUMENT:
        if cls is type(msg):
            return {name: inner}
    return inner


def fragment_to_json(name: str, value: Any) -> dict[str, Any]:
    """A decoded fragment as JSON; fragments hold complex-typed elements (signed content)."""
    module = getattr(type(value), "_exi_module", None)
    if module is None:
        raise ExiEncodeError(f"{name}: expected a message object, got {type(value).__name__}")
    return {name: _to_json(value, module)}


def _dt_from_json(dt: tuple[Any, ...], v: Any) -> Any:
    kind = dt[0]
    try:
        if kind == DT_HEX:
            if not isinstance(v, str):
                raise ExiEncodeError("expected a hex string")
            return bytes.fromhex(v)
        if kind == DT_B64:
            if not isinstance(v, str):
                raise ExiEncodeError("expected a base64 string")
            return base64.b64decode(v, validate=True)
        if kind == DT_ENUM:
            return dt[2](v)
    except (ValueError, binascii.Error) as e:
        if isinstance(e, ExiEncodeError):
            raise
        raise ExiEncodeError(f"invalid value {v!r}: {e}") from None
    if kind == DT_BOOL and not isinstance(v, bool):
        raise ExiEncodeError(f"expected a boolean, got {v!r}")
    if kind == DT_STRING and not isinstance(v, str):
        raise ExiEncodeError(f"expected a string, got {v!r}")
    return v


def _from_json(data: Any, module: Any, gid: int, cls: Any) -> Any:
    gcls, names, flags, states = module.GRAMMARS[gid]
    if gcls is None:
        return _dt_from_json(module.DATATYPES[states[0][1][0][2]], data)
    if not isinstance(data, dict):
        raise ExiEncodeError(f"expected an object, got {type(data).__name__}")
    unknown = set(data) - set(names)
    if unknown:
        raise ExiEncodeError(f"unknown element(s) or attribute(s): {sorted(unknown)}")
    vals: list[Any] = [None] * len(names)
    for name, i, is_list, dt, g in gcls._exi_fields:
        if name not in data:
            if is_list:
                vals[i] = ()
            continue
        v = data[name]
        try:
            if is_list:
                items = v if isinstance(v, list) else [v]
                if g is not None:
                    vals[i] = tuple(_from_json(x, module, g, None) for x in items)
                else:
                    vals[i] = tuple(_dt_from_json(module.DATATYPES[dt], x) for x in items)
            elif g is not None:
                vals[i] = _from_json(v, module, g, None)
            else:
                vals[i] = _dt_from_json(module.DATATYPES[dt], v)
        except ExiEncodeError as e:
            e.path.insert(0, name)
            raise
    return tuple.__new__(cls if cls is not None else gcls, vals)


def message_from_json(data: Any, module: Any) -> Any:
    if not isinstance(data, dict) or len(data) != 1:
        raise ExiEncodeError("expected an object with exactly one key: the root element name")
    [(name, inner)] = data.items()
    for _uri, local, gid, cls in module.DOCUMENT:
        if local == name and cls is not None:
            try:
                return _from_json(inner, module, gid, cls)
            except ExiEncodeError as e:
                e.path.insert(0, name)
                raise
    raise ExiEncodeError(f"{name!r} is not a root element of schema {module.SCHEMA}")


def fragment_from_json(data: Any, module: Any, table: tuple[Any, ...]) -> tuple[str, Any]:
    """(element name, value) of a JSON fragment, for `encode_fragment`."""
    if not isinstance(data, dict) or len(data) != 1:
        raise ExiEncodeError("expected an object with exactly one key: the element name")
    [(name, inner)] = data.items()
    for _uri, local, gid in table:
        if local == name and gid >= 0 and module.GRAMMARS[gid][0] is not None:
            root = next((e[3] for e in module.DOCUMENT if e[1] == name and e[2] == gid), None)
            try:
                return name, _from_json(inner, module, gid, root)
            except ExiEncodeError as e:
                e.path.insert(0, name)
                raise
    raise ExiEncodeError(f"{name!r} is not an element of this fragment grammar")
