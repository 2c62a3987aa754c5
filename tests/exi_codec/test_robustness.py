"""The decoder faces an untrusted peer: damaged, truncated, padded, random and hostile streams give
ExiDecodeError (with a bit offset inside the input and a path) or a valid message, never another
exception, a hang or a big allocation. The encoder refuses invalid messages with ExiEncodeError
naming the offending field.
"""

from __future__ import annotations

import os
import random
import time
import tracemalloc
from types import ModuleType
from typing import Any

import pytest

import exi_codec
from exi_codec import _engine_py
from exi_codec._engine_py import Writer, width
from exi_codec._tables import DT_B64, DT_HEX, DT_STRING
from tests.conftest import load_vectors

from . import fixtures as fx

VECTORS = load_vectors()
IDS = [v["id"] for v in VECTORS]
needs_vectors = pytest.mark.skipif(not VECTORS, reason="../shared/vectors not available")

# Bit flips: every bit of every vector (~72,000 decodes) with the Cython engine. The pure engine
# flips every bit of vectors up to PURE_FLIP_BUDGET bits; of the longer ones (certificate
# carriers: the 1,894-byte PnC_AReqAuthorizationMode alone costs 10-25 s) it flips the first
# 1024 bits, then every k-th bit (k odd, so every bit position within a byte is hit) for about
# 2048 more: ~60,000 decodes. EXI_FLIP_FULL=1 flips every bit with the pure engine too.
PURE_FLIP_BUDGET = 4096
FLIP_FULL = bool(os.environ.get("EXI_FLIP_FULL"))


def flip_positions(n_bits: int, pure: bool) -> range | list[int]:
    if not pure or FLIP_FULL or n_bits <= PURE_FLIP_BUDGET:
        return range(n_bits)
    stride = (n_bits // 2048) | 1
    return [*range(1024), *range(1024, n_bits, stride)]


# -- helpers --------------------------------------------------------------------------------------
def _grammar(v: dict[str, Any]) -> str:
    return "xmldsig" if v["standard"] == "iso20" and v["message"] == "SignedInfo" else "schema"


def _decode(codec: ModuleType, v: dict[str, Any], data: bytes, strict: bool = False,
            engine: Any = None) -> Any:
    """Decode a message or fragment; engine=<module> bypasses the selected engine."""
    schema = v["standard"]
    if engine is not None:
        mod = exi_codec.schema_module(schema)
        if v.get("exi_fragment"):
            _m, table = exi_codec._fragment_table(schema, _grammar(v))
            return engine.decode_fragment(data, mod, table, strict)
        return engine.decode(data, mod, strict)
    if v.get("exi_fragment"):
        return codec.decode_fragment(data, schema, _grammar(v), strict=strict)
    return codec.decode(data, schema, strict=strict)


def _encode(codec: ModuleType, v: dict[str, Any], value: Any, strict: bool = False,
            engine: Any = None) -> bytes:
    schema = v["standard"]
    out: bytes
    if v.get("exi_fragment"):
        name, inner = value
        if engine is not None:
            mod, table = exi_codec._fragment_table(schema, _grammar(v))
            out = engine.encode_fragment(name, inner, mod, table, strict)
        else:
            out = codec.encode_fragment(name, inner, schema, _grammar(v), strict=strict)
        return out
    if engine is not None:
        return engine.encode(value, strict)  # type: ignore[no-any-return]
    return codec.encode(value, strict=strict)  # type: ignore[no-any-return]


def check_error(e: exi_codec.ExiDecodeError, data: bytes) -> None:
    """Every decode error locates itself: a bit offset inside the input and a list path."""
    assert isinstance(e.bit_offset, int), e
    assert 0 <= e.bit_offset <= 8 * len(data), f"bit offset {e.bit_offset} outside the input: {e}"
    assert isinstance(e.path, list) and all(isinstance(p, str) for p in e.path), e
    assert isinstance(str(e), str)


def outcome(codec: ModuleType, v: dict[str, Any], data: bytes, twin: bool = False) -> Any:
    """None for an ExiDecodeError; else the decoded value, after checking that it re-encodes
    (lenient: length facets are not checked on decode) and decodes again to the same value.
    twin=True: when codec runs the Cython engine, the pure one must agree (accept the same
    streams, decode them to the same value, re-encode them to the same bytes)."""
    try:
        value = _decode(codec, v, data)
    except codec.ExiDecodeError as e:
        check_error(e, data)
        value = out = None
    else:
        out = _encode(codec, v, value)
        assert _decode(codec, v, out) == value, f"re-encoded {out.hex()} decodes differently"
    if twin and codec._engine is not _engine_py:
        try:
            reference = _decode(exi_codec, v, data, engine=_engine_py)
        except exi_codec.ExiDecodeError:
            reference = None
        assert value == reference, f"the engines disagree: {value!r} != pure {reference!r}"
        if value is not None:
            assert out == _encode(exi_codec, v, value, engine=_engine_py)
    return value


def flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit >> 3] ^= 0x80 >> (bit & 7)
    return bytes(b)


# -- damaged vectors ------------------------------------------------------------------------------
@needs_vectors
@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_every_truncation(codec: ModuleType, vector: dict[str, Any]) -> None:
    """A prefix is an error unless the whole EXI stream fits in it (trailing zero bytes cut):
    then it decodes to the full message, and the canonical encoding is the prefix (up to
    trailing zero bytes and the padding bits of the last byte). Two zero bytes are appended so
    that the last prefixes are such valid streams."""
    data = bytes.fromhex(vector["hex"]) + b"\x00\x00"
    full = _decode(codec, vector, data)
    valid = 0
    for n in range(len(data) + 1):
        prefix = data[:n]
        try:
            value = outcome(codec, vector, prefix)
        except Exception as e:
            raise AssertionError(f"prefix of {n} bytes: {type(e).__name__}: {e}") from e
        if value is None:
            continue
        assert value == full, f"prefix of {n} bytes decodes to another message"
        canon = _encode(codec, vector, value)
        assert len(canon) <= n and not any(prefix[len(canon):]), (n, canon.hex())
        assert prefix[:len(canon) - 1] == canon[:-1], (n, canon.hex())
        # the last byte may differ only in padding bits: it must decode the same
        assert _decode(codec, vector, canon[:-1] + prefix[len(canon) - 1:len(canon)]) == value
        valid += 1
    assert valid >= 3  # the vector itself and the two zero-padded forms


@needs_vectors
@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_every_bit_flip(codec: ModuleType, vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    for bit in flip_positions(len(data) * 8, codec._engine is _engine_py):
        damaged = flip(data, bit)
        try:
            outcome(codec, vector, damaged)
        except Exception as e:
            raise AssertionError(f"bit {bit} flipped ({damaged.hex()}): {type(e).__name__}: "
                                 f"{e}") from e


@needs_vectors
@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_trailing_bytes(codec: ModuleType, vector: dict[str, Any]) -> None:
    """Trailing 0x00 (sent by real cars) is tolerated; anything else after the stream is not."""
    data = bytes.fromhex(vector["hex"])
    value = _decode(codec, vector, data)
    assert _decode(codec, vector, data + b"\x00") == value
    assert _decode(codec, vector, data + b"\x00" * 7) == value
    for garbage in (b"\x01", b"\x80", b"\xff", b"\x00\x00\x01", b"\x00" * 30 + b"\x10"):
        with pytest.raises(codec.ExiDecodeError) as info:
            _decode(codec, vector, data + garbage)
        check_error(info.value, data + garbage)
        assert info.value.bit_offset >= 8 * len(data.rstrip(b"\x00"))


@pytest.mark.parametrize("schema", exi_codec.SCHEMAS)
def test_random_bytes(codec: ModuleType, schema: str) -> None:
    rng = random.Random(f"random-bytes-{schema}")
    v = {"standard": schema}
    for i in range(400):
        n = rng.randrange(0, 48)
        data = bytes(rng.getrandbits(8) for _ in range(n))
        if i % 2 and data:  # get past the header check half of the time
            data = b"\x80" + data[1:]
        try:
            outcome(codec, v, data, twin=True)
        except Exception as e:
            raise AssertionError(f"{data.hex()}: {type(e).__name__}: {e}") from e


@pytest.mark.parametrize("schema", ["iso20", "iso2"])
@pytest.mark.parametrize("grammar", exi_codec.FRAGMENT_GRAMMARS)
def test_random_fragment_bytes(codec: ModuleType, schema: str, grammar: str) -> None:
    rng = random.Random(f"random-fragments-{schema}-{grammar}")
    v = {"standard": schema, "exi_fragment": True, "message": ""}
    if grammar == "xmldsig":
        v["message"] = "SignedInfo"
        if schema != "iso20":
            pytest.skip("the xmldsig fragment grammar is used with -20 only")
    for _ in range(300):
        data = b"\x80" + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))
        try:
            outcome(codec, v, data, twin=True)
        except Exception as e:
            raise AssertionError(f"{data.hex()}: {type(e).__name__}: {e}") from e


def test_not_exi(codec: ModuleType) -> None:
    for data in (b"", b"\x00", b"\x81\x00", b"\x40", b"\xff" * 4):
        with pytest.raises(codec.ExiDecodeError) as info:
            codec.decode(data, "iso20")
        check_error(info.value, data)
    with pytest.raises(codec.ExiDecodeError) as info:
        codec.decode(b"\x80\xff", "sap")  # root element code out of range
    check_error(info.value, b"\x80\xff")


SIMPLE_ROOTS = {schema: [code for code, e in enumerate(exi_codec.schema_module(schema).DOCUMENT)
                         if e[3] is None] for schema in exi_codec.SCHEMAS}


@pytest.mark.parametrize("schema", [s for s, codes in SIMPLE_ROOTS.items() if codes])
def test_simple_typed_root_element(codec: ModuleType, schema: str) -> None:
    """DOCUMENT also lists xmldsig's global simple-typed elements (DigestValue, KeyName,
    MgmtData), which have no message class. A stream with one as its root must not decode to a
    value that encode() cannot take back (found by test_fuzz: hex 802c00 in iso20 decodes
    to b"" and encode(b"") fails). Either refuse it or round-trip it."""
    mod = exi_codec.schema_module(schema)
    for code in SIMPLE_ROOTS[schema]:
        dt = mod.DATATYPES[mod.GRAMMARS[mod.DOCUMENT[code][2]][3][0][1][0][2]]
        w = Writer()
        w.bits(0x80, 8)
        w.bits(code, width(len(mod.DOCUMENT) + 1))
        w.bits(0, 1)  # CH
        w.value(dt, fx.value_for(dt, fx.MIN))
        w.bits(0, 1)  # EE
        data = w.getvalue()
        try:
            value = codec.decode(data, schema)
        except codec.ExiDecodeError as e:
            check_error(e, data)
            continue
        try:
            out = codec.encode(value, strict=False)
        except Exception as e:
            raise AssertionError(f"{mod.DOCUMENT[code][1]} root ({data.hex()}) decodes to "
                                 f"{value!r}, which encode() refuses: {e!r}") from e
        assert out == data


# -- hostile lengths ------------------------------------------------------------------------------
class _Stop(Exception):
    pass


class _LengthBomb(Writer):
    """Writes a message until the first value of the given kinds, then a huge length instead."""

    def __init__(self, kinds: tuple[int, ...], length: int) -> None:
        super().__init__(strict=False)
        self.kinds = kinds
        self.length = length

    def value(self, dt: tuple[Any, ...], v: Any) -> None:
        if dt[0] in self.kinds:
            self.uint(self.length)
            raise _Stop
        super().value(dt, v)


def _bomb(schema: str, kinds: tuple[int, ...], length: int) -> bytes | None:
    mod = exi_codec.schema_module(schema)
    for f in fx.fixtures(schema, branches=False):
        if f.variant != "maximal":
            continue
        msg = fx.build(f)
        code = next(i for i, e in enumerate(mod.DOCUMENT) if e[3] is type(msg))
        w = _LengthBomb(kinds, length)
        w.bits(0x80, 8)
        w.bits(code, width(len(mod.DOCUMENT) + 1))
        try:
            _engine_py._encode_element(w, mod.GRAMMARS, mod.DATATYPES, f.gid, msg)
        except _Stop:
            return w.getvalue() + bytes(40)
    return None


@pytest.mark.parametrize("length", [2**31 - 1, 2**32 + 7, 2**62, 2**69, 2**200],
                         ids=["2^31-1", "2^32+7", "2^62", "2^69", "2^200"])
@pytest.mark.parametrize("kind", ["string", "binary"])
@pytest.mark.parametrize("schema", exi_codec.SCHEMAS)
def test_huge_length_prefix(codec: ModuleType, schema: str, kind: str, length: int) -> None:
    kinds = (DT_STRING,) if kind == "string" else (DT_HEX, DT_B64)
    data = _bomb(schema, kinds, length + 2 if kind == "string" else length)
    if data is None:
        pytest.skip(f"no {kind} in {schema}")
    for strict in (False, True):
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            with pytest.raises(codec.ExiDecodeError) as info:
                codec.decode(data, schema, strict=strict)
            elapsed = time.perf_counter() - t0
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        check_error(info.value, data)
        assert info.value.path, info.value
        assert elapsed < 0.5, f"took {elapsed:.3f} s"
        assert peak < 1 << 20, f"allocated {peak} bytes"


@pytest.mark.parametrize("missing", [1, 2])
@pytest.mark.parametrize("present", [0, 1, 3, 200])
def test_binary_longer_than_the_rest(codec: ModuleType, present: int, missing: int) -> None:
    """A byte-aligned binary longer than what is left by as many octets as its length takes
    (1 up to 127, 2 from 128): the rest of the input must be measured after the length was
    read, not before (iso20 hex 805c01: RSAKeyValue/Modulus of length 1, nothing after it)."""
    from exi_codec.schemas import iso20

    code = next(i for i, e in enumerate(iso20.DOCUMENT) if e[1] == "RSAKeyValue")
    states = iso20.GRAMMARS[iso20.DOCUMENT[code][2]][3]
    w = Writer()
    w.bits(0x80, 8)
    w.bits(code, width(len(iso20.DOCUMENT) + 1))
    w.bits(0, states[0][0])  # SE(Modulus)
    w.bits(0, 1)  # CH
    w.uint(present + missing)
    assert w.nacc == 0  # the aligned fast path
    data = w.getvalue() + bytes(range(1, present + 1))
    with pytest.raises(codec.ExiDecodeError) as info:
        codec.decode(data, "iso20")
    check_error(info.value, data)
    assert info.value.path == ["RSAKeyValue", "Modulus"]


# -- counts beyond maxOccurs ----------------------------------------------------------------------
def _app_protocol(i: int, priority: int | None = None) -> Any:
    from exi_codec.schemas import sap

    return sap.AppProtocolType(protocol_namespace=f"urn:iso:std:iso:15118:-20:DC:{i}",
                               version_number_major=1, version_number_minor=0, schema_id=i % 256,
                               priority=i % 20 + 1 if priority is None else priority)


def _sap_req_stream(n: int) -> bytes:
    """supportedAppProtocolReq with n AppProtocol entries, written at the bit level: past the
    20th entry the grammar only has EE, so the event code written is the first one beyond the
    table (the escape to second-level events, which ISO 15118 streams never use)."""
    from exi_codec.schemas import sap

    gid = sap.DOCUMENT[0][2]
    states = sap.GRAMMARS[gid][3]
    item_gid = states[0][1][0][2]
    w = Writer()
    w.bits(0x80, 8)
    w.bits(0, width(len(sap.DOCUMENT) + 1))
    s = 0
    for i in range(n):
        bits, prods = states[s]
        se = [c for c, p in enumerate(prods) if p[0] == 1]
        w.bits(se[0] if se else len(prods), bits)
        _engine_py._encode_element(w, sap.GRAMMARS, sap.DATATYPES, item_gid, _app_protocol(i))
        s = prods[se[0]][3] if se else s
    bits, prods = states[s]
    w.bits(next(c for c, p in enumerate(prods) if p[0] == 2), bits)  # EE
    return w.getvalue()


def test_sap_stream_builder_matches_encoder(codec: ModuleType) -> None:
    from exi_codec.schemas import sap

    for n in (1, 2, 19, 20):
        msg = sap.supportedAppProtocolReq(app_protocol=tuple(_app_protocol(i) for i in range(n)))
        assert _sap_req_stream(n) == codec.encode(msg)
        assert codec.decode(_sap_req_stream(n), "sap") == msg


@pytest.mark.parametrize("n", [21, 22, 40])
def test_more_app_protocols_than_max_occurs(codec: ModuleType, n: int) -> None:
    data = _sap_req_stream(n)
    with pytest.raises(codec.ExiDecodeError) as info:
        codec.decode(data, "sap")
    check_error(info.value, data)
    assert info.value.path == ["supportedAppProtocolReq"]
    assert info.value.bit_offset > 8 * len(_sap_req_stream(20)) - 16  # after the 20th entry


# -- integer extremes -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
                                   2**69, 2**159, 2**167, -1, -(2**63), -(2**63) - 1, -(2**64),
                                   -(2**69), -(2**159)])
def test_unbounded_integer_round_trip(codec: ModuleType, value: int) -> None:
    """xs:integer (HMACOutputLength, X509SerialNumber) is unbounded in the schema; 168 bits
    must survive: X.509 serial numbers are up to 20 bytes."""
    from exi_codec.schemas import iso20

    msg = iso20.SignatureMethod(algorithm="urn:x", hmac_output_length=value)
    assert codec.decode(codec.encode(msg), "iso20") == msg


@pytest.mark.parametrize("value", [0, 2**32, 2**63 - 1, 2**63, 2**64 - 1])
def test_unsigned_long_round_trip(codec: ModuleType, value: int) -> None:
    from exi_codec.schemas import iso20

    msg = iso20.SessionSetupReq(header=iso20.MessageHeaderType(session_id=bytes(8),
                                                               time_stamp=value), evccid="E")
    assert codec.decode(codec.encode(msg), "iso20") == msg


def test_unsigned_integer_too_long(codec: ModuleType) -> None:
    """More than 24 octets (168 bits) is refused, not accumulated without bound."""
    data = _sap_req_stream(1)
    w = Writer()
    w.bits(0x80, 8)
    w.bits(1, width(3))  # supportedAppProtocolRes
    w.bits(0, 1)  # ResponseCode
    w.bits(0, 1)  # CH
    w.bits(0, 2)  # OK_SuccessfulNegotiation
    w.bits(0, 1)  # EE
    w.bits(0, 2)  # SchemaID
    w.bits(0, 1)  # CH
    for _ in range(200):
        w.bits(0xFF, 8)
    data = w.getvalue() + b"\x00" * 4
    with pytest.raises(codec.ExiDecodeError) as info:
        codec.decode(data, "sap")
    check_error(info.value, data)
    assert info.value.path == ["supportedAppProtocolRes", "SchemaID"]


# -- encoder errors -------------------------------------------------------------------------------
def _minimal(schema: str, root: str) -> Any:
    f = next(f for f in fx.fixtures(schema, branches=False)
             if f.root == root and f.variant == "minimal")
    return fx.build(f)


def _minimal_of(schema: str, cls: Any) -> Any:
    return fx.analysis(schema).minimal(cls._exi_grammar)


def _dc_loop(**ev_present_voltage: Any) -> Any:
    from exi_codec.schemas import iso20_dc

    msg = _minimal("iso20_dc", "DC_ChargeLoopReq")
    return msg.replace(ev_present_voltage=iso20_dc.RationalNumberType(**ev_present_voltage))


def _header(**kw: Any) -> Any:
    from exi_codec.schemas import iso20

    base = {"session_id": bytes(8), "time_stamp": 0}
    base.update(kw)
    return iso20.MessageHeaderType(**base)


def _setup_req(**kw: Any) -> Any:
    from exi_codec.schemas import iso20

    base = {"header": _header(), "evccid": "WMIV1234567890ABCDEX"}
    base.update(kw)
    return iso20.SessionSetupReq(**base)


def _encode_cases() -> list[Any]:
    from exi_codec.schemas import iso20, sap

    P = pytest.param
    loop = ["DC_ChargeLoopReq"]
    setup = ["SessionSetupReq"]
    return [
        # out of range
        P(lambda: _dc_loop(exponent=200, value=1), loop + ["EVPresentVoltage", "Exponent"],
          id="byte-200"),
        P(lambda: _dc_loop(exponent=-129, value=1), loop + ["EVPresentVoltage", "Exponent"],
          id="byte--129"),
        P(lambda: _dc_loop(exponent=0, value=32768), loop + ["EVPresentVoltage", "Value"],
          id="short-32768"),
        P(lambda: _setup_req(header=_header(time_stamp=-1)), setup + ["Header", "TimeStamp"],
          id="ulong--1"),
        P(lambda: _setup_req(header=_header(time_stamp=2**64)), setup + ["Header", "TimeStamp"],
          id="ulong-2^64"),
        P(lambda: sap.supportedAppProtocolReq(app_protocol=(_app_protocol(0, priority=0),)),
          ["supportedAppProtocolReq", "AppProtocol", "Priority"], id="priority-0"),
        P(lambda: sap.supportedAppProtocolReq(app_protocol=(_app_protocol(0, priority=21),)),
          ["supportedAppProtocolReq", "AppProtocol", "Priority"], id="priority-21"),
        # enumerations
        P(lambda: iso20.SessionSetupRes(header=_header(), response_code="OK_Maybe", evseid="E"),
          ["SessionSetupRes", "ResponseCode"], id="enum-unknown"),
        P(lambda: iso20.SessionSetupRes(header=_header(), response_code=3, evseid="E"),
          ["SessionSetupRes", "ResponseCode"], id="enum-int"),
        # wrong python types
        P(lambda: _setup_req(header=_header(time_stamp="1")), setup + ["Header", "TimeStamp"],
          id="str-for-int"),
        P(lambda: _setup_req(header=_header(time_stamp=1.0)), setup + ["Header", "TimeStamp"],
          id="float-for-int"),
        P(lambda: _setup_req(header=_header(time_stamp=True)), setup + ["Header", "TimeStamp"],
          id="bool-for-int"),
        P(lambda: _setup_req(header=_header(session_id="00" * 8)), setup + ["Header", "SessionID"],
          id="str-for-bytes"),
        P(lambda: _setup_req(evccid=b"WMI"), setup + ["EVCCID"], id="bytes-for-str"),
        P(lambda: _minimal("iso20_dc", "DC_ChargeLoopReq").replace(meter_info_requested=1),
          loop + ["MeterInfoRequested"], id="int-for-bool"),
        P(lambda: _setup_req(header=iso20.RationalNumberType(exponent=0, value=0)),
          setup + ["Header"], id="wrong-class"),
        # length facets (strict)
        P(lambda: _setup_req(evccid="X" * 256), setup + ["EVCCID"], id="string-too-long"),
        P(lambda: _setup_req(header=_header(session_id=bytes(9))), setup + ["Header", "SessionID"],
          id="binary-too-long"),
        P(lambda: _setup_req(header=_header(session_id=bytes(7))), setup + ["Header", "SessionID"],
          id="binary-too-short"),
        # structure
        P(lambda: iso20.AuthorizationReq(
            header=_header(), selected_authorization_service="EIM",
            eim_a_req_authorization_mode=iso20.EIM_AReqAuthorizationModeType(),
            pnc_a_req_authorization_mode=_minimal_of("iso20",
                                                      iso20.PnC_AReqAuthorizationModeType)),
          ["AuthorizationReq", "PnC_AReqAuthorizationMode"], id="two-choice-branches"),
        P(lambda: sap.supportedAppProtocolReq(app_protocol=tuple(_app_protocol(i)
                                                                 for i in range(21))),
          ["supportedAppProtocolReq", "AppProtocol"], id="21-app-protocols"),
    ]


@pytest.mark.parametrize(("make", "path"), _encode_cases())
def test_encode_error_names_the_field(codec: ModuleType, make: Any, path: list[str]) -> None:
    msg = make()
    with pytest.raises(codec.ExiEncodeError) as info:
        codec.encode(msg)
    assert info.value.path == path, str(info.value)


def test_length_facets_only_when_strict(codec: ModuleType) -> None:
    for msg in (_setup_req(evccid="X" * 256), _setup_req(header=_header(session_id=bytes(9)))):
        data = codec.encode(msg, strict=False)
        assert codec.decode(data, "iso20") == msg
        with pytest.raises(codec.ExiDecodeError) as info:
            codec.decode(data, "iso20", strict=True)
        check_error(info.value, data)
        assert info.value.path[0] == "SessionSetupReq"


def test_max_lengths_enforces_the_upper_bounds_only(codec: ModuleType) -> None:
    """max_lengths=True: an over-long string or binary (60,000 characters, 1,000 bytes) is a
    decode error, a too short one is still accepted (what the SECC needs on its input)."""
    for msg, field in (
        (_setup_req(evccid="X" * 60_000), "EVCCID"),
        (_setup_req(header=_header(session_id=bytes(1000))), "SessionID"),
    ):
        data = codec.encode(msg, strict=False)
        assert codec.decode(data, "iso20") == msg  # the default stays lenient
        with pytest.raises(codec.ExiDecodeError) as info:
            codec.decode(data, "iso20", max_lengths=True)
        check_error(info.value, data)
        assert info.value.path[0] == "SessionSetupReq" and info.value.path[-1] == field
    at_limit = _setup_req(evccid="X" * 255, header=_header(session_id=bytes(7)))
    data = codec.encode(at_limit, strict=False)
    assert codec.decode(data, "iso20", max_lengths=True) == at_limit
    with pytest.raises(codec.ExiDecodeError):
        codec.decode(data, "iso20", strict=True)  # strict also enforces the minimum
    empty = _setup_req(evccid="")
    assert codec.decode(codec.encode(empty), "iso20", max_lengths=True) == empty


def test_max_lengths_applies_to_fragments(codec: ModuleType) -> None:
    from exi_codec.schemas import iso20

    mode = iso20.PnC_AReqAuthorizationModeType(
        id="id1", gen_challenge=bytes(1000),
        contract_certificate_chain=iso20.ContractCertificateChainType(
            certificate=b"c", sub_certificates=iso20.SubCertificatesType(certificate=(b"s",))))
    data = codec.encode_fragment("PnC_AReqAuthorizationMode", mode, "iso20", strict=False)
    assert codec.decode_fragment(data, "iso20")[1] == mode
    with pytest.raises(codec.ExiDecodeError) as info:
        codec.decode_fragment(data, "iso20", max_lengths=True)
    assert info.value.path[-1] == "GenChallenge"


def test_missing_required_element(codec: ModuleType) -> None:
    """A missing element is named: in the path when only one element can come next, in the
    message when it is a choice."""
    from exi_codec.schemas import iso20

    with pytest.raises(codec.ExiEncodeError) as info:
        codec.encode(iso20.SessionSetupReq(header=_header()))
    assert info.value.path == ["SessionSetupReq", "EVCCID"], str(info.value)


def test_missing_choice(codec: ModuleType) -> None:
    from exi_codec.schemas import iso20

    with pytest.raises(codec.ExiEncodeError) as info:
        codec.encode(iso20.AuthorizationReq(header=_header(), selected_authorization_service="EIM"))
    assert info.value.path == ["AuthorizationReq"]
    assert "EIM_AReqAuthorizationMode" in info.value.message
    assert "PnC_AReqAuthorizationMode" in info.value.message


@pytest.mark.parametrize("obj", ["SessionSetupReq", 3, None, b"\x80", {"SessionSetupReq": {}}],
                         ids=["str", "int", "None", "bytes", "dict"])
def test_encode_non_message(codec: ModuleType, obj: Any) -> None:
    with pytest.raises(codec.ExiEncodeError):
        codec.encode(obj)


def test_encode_inner_type_as_message(codec: ModuleType) -> None:
    with pytest.raises(codec.ExiEncodeError):
        codec.encode(_header())


def test_from_json_errors_name_the_field(codec: ModuleType) -> None:
    cases = [
        ({"SessionSetupReq": {"Header": {"SessionID": "XYZ", "TimeStamp": 0}, "EVCCID": "E"}},
         ["SessionSetupReq", "Header", "SessionID"]),
        ({"SessionSetupReq": {"Header": {"SessionID": "00" * 8, "TimeStamp": 0}, "EVCCID": 5}},
         ["SessionSetupReq", "EVCCID"]),
        ({"SessionSetupReq": {"Header": {"SessionID": "00" * 8, "Bogus": 0}}},
         ["SessionSetupReq", "Header"]),
        ({"SessionSetupRes": {"ResponseCode": "Nope"}}, ["SessionSetupRes", "ResponseCode"]),
        ({"NoSuchMessage": {}}, []),
    ]
    for obj, path in cases:
        with pytest.raises(codec.ExiEncodeError) as info:
            codec.from_json(obj, "iso20")
        assert info.value.path == path, (obj, str(info.value))


def test_lenient_decode_accepts_nbit_values_beyond_the_range_facet(codec: ModuleType) -> None:
    """A bounded integer is sent in n bits that can carry more than its facet allows (DIN
    EVRESSSOC 0..100 in 7 bits): real cars send such values, so the lenient decode returns
    them (the handler decides) while strict decoding refuses them; encode(strict=False)
    re-creates the stream, strict encoding refuses the value, and what n bits cannot carry
    is refused always."""
    from exi_codec.schemas import din

    def msg(soc: int) -> Any:
        status = din.DC_EVStatusType(ev_ready=True, ev_error_code="NO_ERROR", evresssoc=soc)
        return din.V2G_Message(header=din.MessageHeaderType(session_id=b"\x01" * 8),
                               body=din.BodyType(cable_check_req=din.CableCheckReqType(
                                   dc_ev_status=status)))

    data = codec.encode(msg(120), strict=False)
    # the 7 bits of 100 (0b1100100) replaced by those of 120 (0b1111000)
    assert data == codec.encode(msg(100))[:-2] + b"\x1e\x00"
    assert codec.decode(data, "din") == msg(120)
    assert codec.decode(data, "din", max_lengths=True) == msg(120)
    with pytest.raises(exi_codec.ExiDecodeError, match="above maximum 100"):
        codec.decode(data, "din", strict=True)
    with pytest.raises(exi_codec.ExiEncodeError):
        codec.encode(msg(120))
    with pytest.raises(exi_codec.ExiEncodeError):
        codec.encode(msg(128), strict=False)
