"""The reference EXI engine in pure Python: bit-packed reader/writer and the grammar interpreter.

It interprets the tables of a generated schema module (see _tables.py). The Cython engine
(_engine_c.pyx) implements the same functions with the same behaviour; tests run both.
Canonical encoding as ISO 15118 codecs produce it: no string-table hits, no level-2 events.
"""

from __future__ import annotations

from typing import Any

from ._tables import (
    AT,
    CH,
    DT_B64,
    DT_BOOL,
    DT_DECIMAL,
    DT_ENUM,
    DT_HEX,
    DT_INT,
    DT_NBIT,
    DT_STRING,
    DT_UINT,
    EE,
    SE,
)
from .errors import ExiDecodeError, ExiEncodeError

EXI_HEADER = 0x80  # '10' distinguishing bits, no options, final version 1
MAX_UINT_OCTETS = 24  # 168 bits: xs:integer holds X.509 serial numbers (up to 20 bytes)


def width(n: int) -> int:
    return (n - 1).bit_length() if n > 1 else 0


class Reader:
    __slots__ = ("data", "pos", "end", "strict", "max_lengths")

    def __init__(self, data: bytes, strict: bool = False, max_lengths: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data) * 8
        self.strict = strict  # also enforce the length facets (EXI's encoding ignores them)
        self.max_lengths = strict or max_lengths  # enforce the maximum lengths only

    def error(self, message: str) -> ExiDecodeError:
        return ExiDecodeError(message, self.pos)

    def bits(self, n: int) -> int:
        if n == 0:
            return 0
        pos = self.pos
        end = pos + n
        if end > self.end:
            raise self.error("unexpected end of stream")
        first = pos >> 3
        last = (end + 7) >> 3
        v = int.from_bytes(self.data[first:last], "big")
        self.pos = end
        return (v >> ((last << 3) - end)) & ((1 << n) - 1)

    def uint(self) -> int:
        value = shift = 0
        for _ in range(MAX_UINT_OCTETS):
            b = self.bits(8)
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise self.error("unsigned integer too long")

    def value(self, dt: tuple[Any, ...]) -> Any:
        kind = dt[0]
        if kind == DT_NBIT:
            v = self.bits(dt[1]) + dt[2]
            # The n bits can carry more than the facet allows: real cars send such values
            # (a 4 where the facet says 1..3); lenient decoding hands them to the application.
            if v > dt[3] and self.strict:
                raise self.error(f"value {v} above maximum {dt[3]}")
            return v
        if kind == DT_BOOL:
            return self.bits(1) == 1
        if kind == DT_UINT:
            v = self.uint()
            if v < dt[1] or (dt[2] is not None and v > dt[2]):
                raise self.error(f"value {v} out of range")
            return v
        if kind == DT_INT:
            neg = self.bits(1)
            v = self.uint()
            if neg:
                v = -v - 1
            if (dt[1] is not None and v < dt[1]) or (dt[2] is not None and v > dt[2]):
                raise self.error(f"value {v} out of range")
            return v
        if kind == DT_ENUM:
            idx = self.bits(dt[1])
            members = _members(dt[2])
            if idx >= len(members):
                raise self.error(f"enumeration index {idx} out of range")
            return members[idx]
        if kind == DT_STRING:
            n = self.uint()
            if n < 2:
                raise self.error("string table reference (not used by ISO 15118 codecs)")
            n -= 2
            self._check_length(n, dt, 8)
            chars = []
            for _ in range(n):
                c = self.uint()
                if c > 0x10FFFF:
                    raise self.error("invalid code point")
                chars.append(chr(c))
            return "".join(chars)
        if kind in (DT_HEX, DT_B64):
            n = self.uint()
            self._check_length(n, dt, 8)
            if not self.pos & 7:
                start = self.pos >> 3
                self.pos += n * 8
                return bytes(self.data[start:start + n])
            return bytes(self.bits(8) for _ in range(n))
        if kind == DT_DECIMAL:
            neg = self.bits(1)
            integral = self.uint()
            frac = self.uint()
            text = f"{'-' if neg else ''}{integral}.{str(frac)[::-1]}"
            return text
        raise self.error(f"unsupported datatype {kind}")

    def _check_length(self, n: int, dt: tuple[Any, ...], min_bits: int) -> None:
        if self.max_lengths and dt[2] is not None and n > dt[2]:
            raise self.error(f"length {n} above maximum {dt[2]}")
        if self.strict and n < dt[1]:
            raise self.error(f"length {n} below minimum {dt[1]}")
        if n * min_bits > self.end - self.pos:  # bounds memory by the input, strict or not
            raise self.error(f"length {n} beyond the end of the stream")


_MEMBERS: dict[type, tuple[Any, ...]] = {}
_INDEX: dict[type, dict[str, int]] = {}


def _members(enum_cls: type) -> tuple[Any, ...]:
    m = _MEMBERS.get(enum_cls)
    if m is None:
        m = _MEMBERS[enum_cls] = tuple(enum_cls)  # type: ignore[arg-type]
    return m


def _index(enum_cls: type) -> dict[str, int]:
    m = _INDEX.get(enum_cls)
    if m is None:
        m = _INDEX[enum_cls] = {str(v.value): i for i, v in enumerate(_members(enum_cls))}
    return m


class Writer:
    __slots__ = ("buf", "acc", "nacc", "strict")

    def __init__(self, strict: bool = True) -> None:
        self.buf = bytearray()
        self.acc = 0
        self.nacc = 0
        self.strict = strict  # enforce the length facets

    def bits(self, value: int, n: int) -> None:
        if n == 0:
            return
        acc = (self.acc << n) | value
        nacc = self.nacc + n
        while nacc >= 8:
            nacc -= 8
            self.buf.append((acc >> nacc) & 0xFF)
        self.acc = acc & ((1 << nacc) - 1)
        self.nacc = nacc

    def uint(self, v: int) -> None:
        while True:
            low = v & 0x7F
            v >>= 7
            if v:
                self.bits(low | 0x80, 8)
            else:
                self.bits(low, 8)
                return

    def getvalue(self) -> bytes:
        if self.nacc:
            self.bits(0, 8 - self.nacc)
        return bytes(self.buf)

    def value(self, dt: tuple[Any, ...], v: Any) -> None:
        kind = dt[0]
        if kind in (DT_NBIT, DT_UINT, DT_INT):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ExiEncodeError(f"expected an integer, got {type(v).__name__}")
            lo, hi = (dt[2], dt[3]) if kind == DT_NBIT else (dt[1], dt[2])
            if kind == DT_NBIT and not self.strict:  # what a lenient decode accepted
                hi = lo + (1 << dt[1]) - 1
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ExiEncodeError(f"value {v} outside the schema's range [{lo}, {hi}]")
            if kind == DT_NBIT:
                self.bits(v - lo, dt[1])
            elif kind == DT_UINT:
                self.uint(v)
            elif v < 0:
                self.bits(1, 1)
                self.uint(-v - 1)
            else:
                self.bits(0, 1)
                self.uint(v)
        elif kind == DT_BOOL:
            if not isinstance(v, bool):
                raise ExiEncodeError(f"expected a bool, got {type(v).__name__}")
            self.bits(1 if v else 0, 1)
        elif kind == DT_ENUM:
            idx = _index(dt[2]).get(v) if isinstance(v, str) else None
            if idx is None:
                raise ExiEncodeError(f"{v!r} is not a value of {dt[2].__name__}")
            self.bits(idx, dt[1])
        elif kind == DT_STRING:
            if not isinstance(v, str):
                raise ExiEncodeError(f"expected a str, got {type(v).__name__}")
            if self.strict:
                _check_len(len(v), dt)
            self.uint(len(v) + 2)
            for c in v:
                self.uint(ord(c))
        elif kind in (DT_HEX, DT_B64):
            if not isinstance(v, (bytes, bytearray, memoryview)):
                raise ExiEncodeError(f"expected bytes, got {type(v).__name__}")
            b = bytes(v)
            if self.strict:
                _check_len(len(b), dt)
            self.uint(len(b))
            if not self.nacc:
                self.buf += b
            else:
                for x in b:
                    self.bits(x, 8)
        elif kind == DT_DECIMAL:
            text = str(v)
            neg = text.startswith("-")
            integral, _, frac = text.lstrip("+-").partition(".")
            self.bits(1 if neg else 0, 1)
            self.uint(int(integral or "0"))
            self.uint(int(frac[::-1] or "0"))
        else:
            raise ExiEncodeError(f"unsupported datatype {kind}")


def _check_len(n: int, dt: tuple[Any, ...]) -> None:
    if dt[2] is not None and n > dt[2]:
        raise ExiEncodeError(f"length {n} above the schema's maximum {dt[2]}")
    if n < dt[1]:
        raise ExiEncodeError(f"length {n} below the schema's minimum {dt[1]}")


# -- grammar interpreter -------------------------------------------------------------------------
def _decode_element(r: Reader, grammars: tuple[Any, ...], dts: tuple[Any, ...], gid: int,
                    cls: Any) -> Any:
    gcls, names, flags, states = grammars[gid]
    if gcls is None:  # simple type: CH value, EE
        if r.bits(1):
            raise r.error("unsupported event (expected characters)")
        v = r.value(dts[states[0][1][0][2]])
        if r.bits(1):
            raise r.error("unsupported event (expected end of element)")
        return v
    vals: list[Any] = [None] * len(names)
    state = 0
    while True:
        bits, prods = states[state]
        code = r.bits(bits)
        if code >= len(prods):
            raise r.error("unsupported event (second-level event code: deviation from schema)")
        kind, f, arg, nxt = prods[code]
        if kind == SE:
            try:
                v = _decode_element(r, grammars, dts, arg, None)
            except ExiDecodeError as e:
                e.path.insert(0, names[f])
                raise
            if flags[f]:
                if vals[f] is None:
                    vals[f] = [v]
                else:
                    vals[f].append(v)
            else:
                vals[f] = v
        elif kind == EE:
            break
        elif kind in (AT, CH):
            try:
                vals[f] = r.value(dts[arg])
            except ExiDecodeError as e:
                e.path.insert(0, names[f])
                raise
        else:
            raise r.error("wildcard or untyped content is not supported")
        state = nxt
    for i, is_list in enumerate(flags):
        if is_list:
            vals[i] = tuple(vals[i]) if vals[i] is not None else ()
    return tuple.__new__(cls if cls is not None else gcls, vals)


def _encode_element(w: Writer, grammars: tuple[Any, ...], dts: tuple[Any, ...], gid: int,
                    obj: Any) -> None:
    gcls, names, flags, states = grammars[gid]
    if gcls is None:
        w.bits(0, 1)
        w.value(dts[states[0][1][0][2]], obj)
        w.bits(0, 1)
        return
    if not isinstance(obj, gcls):
        raise ExiEncodeError(f"expected {gcls.__name__}, got {type(obj).__name__}")
    used = [0] * len(names)
    state = 0
    while True:
        bits, prods = states[state]
        chosen = None
        for code, prod in enumerate(prods):
            kind, f = prod[0], prod[1]
            if kind == EE:
                chosen = code
                break
            if kind in (SE, AT, CH):
                v = obj[f]
                if v is None:
                    continue
                if flags[f]:
                    if used[f] < len(v):
                        chosen = code
                        break
                elif not used[f]:
                    chosen = code
                    break
        if chosen is None:
            expected = [names[p[1]] for p in prods if p[1] >= 0]
            raise ExiEncodeError(f"missing required element; expected one of {expected}",
                                 [expected[0]] if len(set(expected)) == 1 else [])
        kind, f, arg, nxt = prods[chosen]
        w.bits(chosen, bits)
        if kind == EE:
            for i, v in enumerate(obj):
                if v is not None and (used[i] < len(v) if flags[i] else not used[i]):
                    raise ExiEncodeError(
                        "value not allowed here (choice already taken, too many items, or "
                        "out of sequence)", [names[i]])
            return
        v = obj[f]
        try:
            if kind == SE:
                _encode_element(w, grammars, dts, arg, v[used[f]] if flags[f] else v)
            else:
                w.value(dts[arg], v)
        except ExiEncodeError as e:
            e.path.insert(0, names[f])
            raise
        used[f] += 1
        state = nxt


def _roots(module: Any) -> dict[type, int]:
    roots = getattr(module, "_EXI_ROOTS", None)
    if roots is None:
        roots = {entry[3]: i for i, entry in enumerate(module.DOCUMENT) if entry[3] is not None}
        module._EXI_ROOTS = roots
    return roots


def _finish(r: Reader) -> None:
    """After ED: padding bits, then tolerate trailing 0x00 bytes (seen from real cars)."""
    end_byte = (r.pos + 7) >> 3
    if any(r.data[end_byte:]):
        raise ExiDecodeError("unexpected data after the end of the EXI stream", end_byte * 8)


def decode(data: bytes, module: Any, strict: bool = False, max_lengths: bool = False) -> Any:
    r = Reader(bytes(data), strict, max_lengths)
    if r.bits(8) != EXI_HEADER:
        raise ExiDecodeError("not an EXI stream with the ISO 15118 header 0x80", 0)
    doc = module.DOCUMENT
    code = r.bits(width(len(doc) + 1))
    if code >= len(doc):
        raise ExiDecodeError("unknown root element", r.pos)
    _uri, name, gid, cls = doc[code]
    if cls is None:
        raise ExiDecodeError(f"{name} is not a message element", r.pos)
    try:
        msg = _decode_element(r, module.GRAMMARS, module.DATATYPES, gid, cls)
    except ExiDecodeError as e:
        e.path.insert(0, name)
        raise
    _finish(r)
    return msg


def encode(msg: Any, strict: bool = True) -> bytes:
    module: Any = getattr(type(msg), "_exi_module", None)
    roots = _roots(module) if module is not None else {}
    code = roots.get(type(msg))
    if code is None:
        raise ExiEncodeError(f"{type(msg).__name__} is not a message (root element) type")
    _uri, name, gid, _cls = module.DOCUMENT[code]
    w = Writer(strict)
    w.bits(EXI_HEADER, 8)
    w.bits(code, width(len(module.DOCUMENT) + 1))
    try:
        _encode_element(w, module.GRAMMARS, module.DATATYPES, gid, msg)
    except ExiEncodeError as e:
        e.path.insert(0, name)
        raise
    return w.getvalue()  # DocEnd's ED takes zero bits


def decode_fragment(data: bytes, module: Any, table: tuple[Any, ...],
                    strict: bool = False, max_lengths: bool = False) -> tuple[str, Any]:
    r = Reader(bytes(data), strict, max_lengths)
    if r.bits(8) != EXI_HEADER:
        raise ExiDecodeError("not an EXI stream with the ISO 15118 header 0x80", 0)
    n = width(len(table) + 2)
    code = r.bits(n)
    if code >= len(table) or table[code][2] < 0 or module.GRAMMARS[table[code][2]][0] is None:
        raise ExiDecodeError("unsupported fragment element (signed content is complex-typed)",
                             r.pos)
    _uri, name, gid = table[code]
    root = _fragment_class(module, name, gid)
    try:
        value = _decode_element(r, module.GRAMMARS, module.DATATYPES, gid, root)
    except ExiDecodeError as e:
        e.path.insert(0, name)
        raise
    if r.bits(n) != len(table) + 1:
        raise ExiDecodeError("expected the end of the fragment (one element per fragment)", r.pos)
    _finish(r)
    return name, value


def encode_fragment(name: str, value: Any, module: Any, table: tuple[Any, ...],
                    strict: bool = True) -> bytes:
    code = fragment_code(name, value, table)
    gid = table[code][2]
    n = width(len(table) + 2)
    w = Writer(strict)
    w.bits(EXI_HEADER, 8)
    w.bits(code, n)
    try:
        _encode_element(w, module.GRAMMARS, module.DATATYPES, gid, value)
    except ExiEncodeError as e:
        e.path.insert(0, name)
        raise
    w.bits(len(table) + 1, n)
    return w.getvalue()


def fragment_code(name: str, value: Any, table: tuple[Any, ...]) -> int:
    """The fragment event code of element `name` holding `value`.

    Fragments carry signed content, which is always complex-typed; a local name can stand for
    several declarations (xmldsig's and CommonTypes' Exponent), so the value's grammar decides.
    """
    grammar = getattr(type(value), "_exi_grammar", -1)
    candidates = [i for i, e in enumerate(table) if e[1] == name and e[2] >= 0]
    for i in candidates:
        if table[i][2] == grammar:
            return i
    if not candidates:
        raise ExiEncodeError(f"{name} is not an element of this fragment grammar")
    raise ExiEncodeError(f"{name}: expected a message object of its complex type, got "
                         f"{type(value).__name__} (fragments hold complex-typed elements)")


def _fragment_class(module: Any, name: str, gid: int) -> Any:
    for entry in module.DOCUMENT:
        if entry[1] == name and entry[2] == gid:
            return entry[3]
    return None
