"""COBS + CRC-32 framing and the message codecs of the safety-MCU link (no I/O)."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal.backends.serial.framing import (
    CobsError,
    FrameDecoder,
    cobs_decode,
    cobs_encode,
    encode_frame,
)
from hal.backends.serial.protocol import (
    Ack,
    AckResult,
    ErrorFlags,
    ErrorReport,
    EstopFlags,
    Features,
    Hello,
    HelloReply,
    MalformedMessage,
    McuState,
    MsgType,
    PilotCode,
    Status,
    pack_body,
    unpack_body,
    unpack_u8,
    unpack_u16,
)

# Reference encodings (the worked examples usually given for COBS).
COBS_VECTORS = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
]


@pytest.mark.parametrize(("raw", "encoded"), COBS_VECTORS)
def test_cobs_vectors(raw: bytes, encoded: bytes) -> None:
    assert cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw


def test_cobs_accepts_the_short_form_of_a_full_last_block() -> None:
    # Some encoders end a 254-byte block without the trailing 0x01: both decode the same.
    assert cobs_decode(b"\xff" + bytes(range(1, 255))) == bytes(range(1, 255))


@given(st.binary(max_size=800))
def test_cobs_round_trip_and_no_zero(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize("bad", [b"\x00", b"\x05\x11\x22", b"\x03\x11\x00"])
def test_cobs_rejects_bad_input(bad: bytes) -> None:
    with pytest.raises(CobsError):
        cobs_decode(bad)


def test_frame_layout() -> None:
    body = b"\x90\x01\x00abc"
    wire = encode_frame(body)
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    decoded = cobs_decode(wire[:-1])
    assert decoded[:-4] == body
    assert struct.unpack("<I", decoded[-4:])[0] == zlib.crc32(body)


@given(st.lists(st.binary(min_size=1, max_size=60), max_size=8), st.integers(1, 7))
def test_decoder_reassembles_frames_split_anywhere(bodies: list[bytes], chunk: int) -> None:
    stream = b"".join(b"\x00" + encode_frame(b) for b in bodies)
    decoder = FrameDecoder()
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += decoder.feed(stream[i : i + chunk])
    assert out == bodies
    assert decoder.stats.errors == 0


@given(st.binary(max_size=300))
def test_decoder_survives_any_garbage_and_resyncs(garbage: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(garbage)  # never raises
    assert decoder.feed(b"\x00" + encode_frame(b"\x90\x07\x00ok")) == [b"\x90\x07\x00ok"]


def test_decoder_counts_each_kind_of_error() -> None:
    decoder = FrameDecoder(max_body=32)
    body = b"\x82\x01\x00payload"
    good = encode_frame(body)
    bad_crc = cobs_encode(body + struct.pack("<I", zlib.crc32(body) ^ 1)) + b"\x00"
    stream = (
        bad_crc
        + b"\x05\x01\x00"  # COBS error: the block runs past the delimiter
        + b"\x02\x01\x00"  # runt: decodes to a single byte
        + bytes(range(1, 200))
        + b"\x00"  # oversized
        + good
    )
    assert decoder.feed(stream) == [b"\x82\x01\x00payload"]
    stats = decoder.stats
    assert stats.crc_errors == 1
    assert stats.cobs_errors == 1
    assert stats.runt_frames == 1
    assert stats.oversized_frames == 1
    assert stats.frames_received == 1
    assert stats.errors == 4


def test_oversized_frame_split_over_many_reads_is_dropped_whole() -> None:
    decoder = FrameDecoder(max_body=16)
    for _ in range(50):
        assert decoder.feed(b"\x11" * 10) == []
    assert decoder.stats.oversized_frames == 1
    assert decoder.feed(b"\x00" + encode_frame(b"\x02\x00\x00")) == [b"\x02\x00\x00"]


# ---- messages ----------------------------------------------------------------------------


def test_messages_round_trip() -> None:
    hello = Hello(1, 0, 100)
    assert Hello.unpack(hello.pack()) == hello
    reply = HelloReply(
        1, 2, Features.PILOT_PWM | Features.PROXIMITY_PILOT, 500, 100, 50, "fw-1.2.3"
    )
    assert HelloReply.unpack(reply.pack()) == reply
    ack = Ack(0xBEEF, MsgType.SET_CONTACTORS, AckResult.REJECTED_EMERGENCY_STOP)
    assert Ack.unpack(ack.pack()) == ack
    status = Status(
        McuState.ACTIVE,
        PilotCode.C,
        50,
        32,
        True,
        True,
        EstopFlags.LATCHED | EstopFlags.BUTTON_PRESSED,
        ErrorFlags.CONTACTOR_WELDED,
        123456,
        77,
    )
    assert Status.unpack(status.pack()) == status
    report = ErrorReport(2, 7, "welded")
    assert ErrorReport.unpack(report.pack()) == report
    assert unpack_body(pack_body(MsgType.STATUS, 0x1_0005, b"x")) == (0x90, 5, b"x")


def test_status_layout_is_little_endian() -> None:
    status = Status(
        McuState.ACTIVE,
        PilotCode.B,
        0x0102,
        13,
        False,
        False,
        EstopFlags(0),
        ErrorFlags(0x0304),
        0x05060708,
        0x090A,
    )
    assert status.pack() == bytes.fromhex("01 01 0201 0d 00 00 00 0403 08070605 0a09")


def test_newer_minor_versions_may_append_fields() -> None:
    status = Status(
        McuState.ACTIVE, PilotCode.A, 1000, 0, False, False, EstopFlags(0), ErrorFlags(0), 1, 0
    )
    assert Status.unpack(status.pack() + b"\x99\x98") == status


@pytest.mark.parametrize(
    ("decode", "data"),
    [
        (Status.unpack, b"\x01\x02"),
        (Status.unpack, bytes([9]) + bytes(15)),  # unknown state
        (Ack.unpack, b"\x01\x00\x10\x63"),  # unknown result
        (Ack.unpack, b"\x01"),
        (HelloReply.unpack, bytes(11) + b"\x05ab"),  # firmware id shorter than its length
        (ErrorReport.unpack, b"\x01\x00\x00\x00\x00\x09abc"),
        (unpack_u8, b""),
        (unpack_u16, b"\x01"),
        (unpack_body, b"\x90"),
    ],
)
def test_malformed_payloads_raise_malformed_message(decode: object, data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode(data)  # type: ignore[operator]
