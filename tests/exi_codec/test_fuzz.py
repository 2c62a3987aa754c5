"""Bounded Hypothesis fuzzing of the decoders (see README_FUZZ.md for long runs).

Inputs: arbitrary bytes, bytes behind the EXI header, and mutations (bit flips, byte edits,
insertions, deletions, truncations, splices, boundary bytes) of real vectors and of encoded
generated fixtures. Property: decode raises ExiDecodeError (located inside the input) or returns
a message that re-encodes (strict=False) without exception and decodes again to an equal one.
"""

from __future__ import annotations

import os
from functools import cache
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import exi_codec
from tests.conftest import load_vectors

from . import fixtures as fx
from .test_robustness import outcome

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
MAX_SEED_BYTES = 600  # larger seeds only slow the pure engine down
BOUNDARY = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


@cache
def seeds(schema: str) -> tuple[bytes, ...]:
    """Real vectors of the schema, then encoded generated fixtures (every root's minimal, and
    branch variants), all small enough to keep examples fast."""
    out = [bytes.fromhex(v["hex"]) for v in load_vectors()
           if v["standard"] == schema and not v.get("exi_fragment")]
    for f in fx.fixtures(schema):
        if f.variant == "maximal":
            continue
        data = exi_codec.encode(fx.build(f))
        if len(data) <= MAX_SEED_BYTES:
            out.append(data)
    return tuple(d for d in out if len(d) <= MAX_SEED_BYTES * 4)


FRAGMENT_VECTORS = [v for v in load_vectors() if v.get("exi_fragment")]


@st.composite
def mutations(draw: Any, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "byte", "boundary", "insert", "delete", "truncate",
                                   "splice", "run"]))
        n = len(data)
        if op == "truncate":
            del data[draw(st.integers(0, n)):]
        elif op == "insert":
            at = draw(st.integers(0, n))
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "splice":  # the head of this stream, the tail of random bytes
            at = draw(st.integers(0, n))
            data[at:] = draw(st.binary(max_size=32))
        elif n == 0:
            continue
        elif op == "flip":
            bit = draw(st.integers(0, 8 * n - 1))
            data[bit >> 3] ^= 0x80 >> (bit & 7)
        elif op == "byte":
            data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif op == "boundary":
            data[draw(st.integers(0, n - 1))] = draw(st.sampled_from(BOUNDARY))
        elif op == "delete":
            at = draw(st.integers(0, n - 1))
            del data[at:at + draw(st.integers(1, 4))]
        else:  # a run of one byte value: long uints, big lengths, repeated event codes
            at = draw(st.integers(0, n - 1))
            data[at:at + 1] = bytes([draw(st.sampled_from(BOUNDARY))]) * draw(st.integers(2, 24))
    return bytes(data)


def _check(codec: ModuleType, v: dict[str, Any], data: bytes) -> None:
    try:
        value = outcome(codec, v, data, twin=True)
    except Exception as e:
        raise AssertionError(f"input {data.hex()}: {type(e).__name__}: {e}") from e
    event("decoded" if value is not None else "ExiDecodeError")


@FUZZ
@given(schema=st.sampled_from(exi_codec.SCHEMAS), data=st.binary(max_size=96),
       header=st.booleans())
def test_fuzz_arbitrary_bytes(codec: ModuleType, schema: str, data: bytes,
                              header: bool) -> None:
    if header:
        data = b"\x80" + data
    _check(codec, {"standard": schema}, data)


@pytest.mark.parametrize("schema", exi_codec.SCHEMAS)
def test_fuzz_mutated_messages(codec: ModuleType, schema: str) -> None:
    pool = seeds(schema)
    assert pool, f"no seeds for {schema}"

    @FUZZ
    @given(data=st.sampled_from(pool).flatmap(mutations))
    def run(data: bytes) -> None:
        _check(codec, {"standard": schema}, data)

    run()


@pytest.mark.skipif(not FRAGMENT_VECTORS, reason="../shared/vectors not available")
def test_fuzz_mutated_fragments(codec: ModuleType) -> None:
    @FUZZ
    @given(index=st.integers(0, len(FRAGMENT_VECTORS) - 1), choice=st.data())
    def run(index: int, choice: Any) -> None:
        v = FRAGMENT_VECTORS[index]
        data = choice.draw(mutations(bytes.fromhex(v["hex"])))
        _check(codec, v, data)

    run()
