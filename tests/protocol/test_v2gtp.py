import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evse.protocol.v2gtp import (
    HEADER_SIZE,
    STREAM_PAYLOAD_TYPES,
    Action,
    BufferFull,
    EmptyPayload,
    Frame,
    InvalidVersion,
    PayloadTooLarge,
    PayloadType,
    TruncatedDatagram,
    UnknownPayloadType,
    V2GTPError,
    V2GTPReassembler,
    decode_datagram,
    encode_frame,
)


def test_header_layout_is_01_fe_type_length_big_endian() -> None:
    frame = encode_frame(PayloadType.DC, b"\x80\x01\x02")
    assert frame == bytes.fromhex("01fe8004 00000003 800102".replace(" ", ""))


@pytest.mark.parametrize(
    ("member", "value"),
    [
        (PayloadType.SAP, 0x8001),
        (PayloadType.COMMON, 0x8002),
        (PayloadType.AC, 0x8003),
        (PayloadType.DC, 0x8004),
        (PayloadType.ACDP, 0x8005),
        (PayloadType.WPT, 0x8006),
        (PayloadType.SCHEDULE_RENEGOTIATION, 0x8101),
        (PayloadType.PARKING_STATUS, 0x8104),
        (PayloadType.SDP_REQ, 0x9000),
        (PayloadType.SDP_RES, 0x9001),
    ],
)
def test_payload_type_values(member: PayloadType, value: int) -> None:
    assert member == value


def test_sdp_types_are_not_accepted_on_the_stream_by_default() -> None:
    assert PayloadType.SDP_REQ not in STREAM_PAYLOAD_TYPES
    assert PayloadType.SAP in STREAM_PAYLOAD_TYPES


def test_encode_rejects_non_u16_type() -> None:
    with pytest.raises(ValueError):
        encode_frame(0x10000, b"")


def test_single_frame_round_trip() -> None:
    r = V2GTPReassembler()
    r.feed(encode_frame(PayloadType.COMMON, b"hello"))
    assert r.next_frame() == Frame(PayloadType.COMMON, b"hello")
    assert r.next_frame() is None
    assert r.buffered == 0


def test_frame_split_byte_by_byte() -> None:
    data = encode_frame(PayloadType.DC, bytes(range(200)))
    r = V2GTPReassembler()
    for i in range(len(data) - 1):
        r.feed(data[i : i + 1])
        assert r.next_frame() is None
    r.feed(data[-1:])
    assert r.next_frame() == Frame(PayloadType.DC, bytes(range(200)))


def test_several_frames_in_one_segment() -> None:
    frames = [
        Frame(PayloadType.SAP, b"a"),
        Frame(PayloadType.COMMON, b""),
        Frame(PayloadType.AC, b"xyz"),
    ]
    r = V2GTPReassembler()
    r.feed(b"".join(encode_frame(f.payload_type, f.payload) for f in frames) + b"\x01\xfe")
    assert [r.next_frame() for _ in frames] == frames
    assert r.next_frame() is None
    assert r.buffered == 2  # start of the next header waits


def test_empty_payload_frame() -> None:
    r = V2GTPReassembler()
    r.feed(encode_frame(PayloadType.METERING_CONFIRMATION, b""))
    assert r.next_frame() == Frame(PayloadType.METERING_CONFIRMATION, b"")


@given(
    payloads=st.lists(
        st.tuples(st.sampled_from(sorted(STREAM_PAYLOAD_TYPES)), st.binary(max_size=300)),
        min_size=1,
        max_size=8,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
)
def test_any_segmentation_yields_the_same_frames(
    payloads: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(t, p) for t, p in payloads)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    r = V2GTPReassembler(max_payload=300)
    got: list[Frame] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        r.feed(stream[a:b])
        while (frame := r.next_frame()) is not None:
            got.append(frame)
    assert got == [Frame(PayloadType(t), p) for t, p in payloads]
    assert r.buffered == 0


@pytest.mark.parametrize("head", [b"\x02\xfd", b"\x01\xff", b"\x00\xff", b"\x01\x01"])
def test_invalid_version_closes_and_stays_dead(head: bytes) -> None:
    r = V2GTPReassembler()
    r.feed(head + struct.pack(">HI", PayloadType.DC, 1) + b"x")
    with pytest.raises(InvalidVersion) as info:
        r.next_frame()
    assert info.value.action is Action.CLOSE
    assert r.buffered == 0
    assert r.room == 0
    with pytest.raises(InvalidVersion):
        r.feed(encode_frame(PayloadType.DC, b"ok"))
    with pytest.raises(InvalidVersion):
        r.next_frame()


@pytest.mark.parametrize("head", [b"\x02\xfd", b"\x01\xff", b"\x00\xff", b"\x01\x01"])
def test_discard_invalid_skips_a_bad_version_by_its_length(head: bytes) -> None:
    r = V2GTPReassembler(discard_invalid=True)
    bad = head + struct.pack(">HI", PayloadType.DC, 5) + b"xxxxx"
    out = list(r.frames(bad[:11]))  # payload split: the rest is skipped on arrival
    assert len(out) == 1 and isinstance(out[0], InvalidVersion)
    assert out[0].action is Action.IGNORE and out[0].skipped == 13
    assert list(r.frames(bad[11:] + encode_frame(PayloadType.DC, b"ok"))) == [
        Frame(PayloadType.DC, b"ok")
    ]


def test_discard_invalid_still_closes_on_an_oversized_bad_version() -> None:
    r = V2GTPReassembler(max_payload=100, discard_invalid=True)
    with pytest.raises(InvalidVersion) as info:
        list(r.frames(b"\x02\xfd" + struct.pack(">HI", PayloadType.DC, 101)))
    assert info.value.action is Action.CLOSE and r.room == 0


def test_discard_invalid_drops_empty_payloads() -> None:
    r = V2GTPReassembler(discard_invalid=True)
    out = list(r.frames(encode_frame(PayloadType.DC, b"") + encode_frame(PayloadType.AC, b"a")))
    assert isinstance(out[0], EmptyPayload) and out[0].skipped == HEADER_SIZE
    assert out[1] == Frame(PayloadType.AC, b"a")


def test_accepted_types_may_change_between_frames() -> None:
    r = V2GTPReassembler(accepted_types={PayloadType.SAP})
    stream = encode_frame(PayloadType.DC, b"1") + encode_frame(PayloadType.SAP, b"2")
    stream += encode_frame(PayloadType.DC, b"3") + encode_frame(PayloadType.SAP, b"4")
    got = []
    for item in r.frames(stream):
        got.append(item if isinstance(item, Frame) else type(item).__name__)
        if item == Frame(PayloadType.SAP, b"2"):
            r.accepted_types = frozenset({PayloadType.DC})
    assert got == ["UnknownPayloadType", Frame(PayloadType.SAP, b"2"),
                   Frame(PayloadType.DC, b"3"), "UnknownPayloadType"]


def test_payload_too_large_is_detected_from_the_header_alone() -> None:
    r = V2GTPReassembler(max_payload=100)
    r.feed(encode_frame(PayloadType.DC, bytes(101))[:HEADER_SIZE])
    with pytest.raises(PayloadTooLarge) as info:
        r.next_frame()
    assert info.value.action is Action.CLOSE


def test_payload_of_exactly_max_is_accepted() -> None:
    r = V2GTPReassembler(max_payload=100)
    r.feed(encode_frame(PayloadType.DC, bytes(100)))
    assert r.next_frame() == Frame(PayloadType.DC, bytes(100))


def test_huge_declared_length_of_unknown_type_is_too_large_not_skipped() -> None:
    r = V2GTPReassembler()
    r.feed(b"\x01\xfe\x12\x34\xff\xff\xff\xff")
    with pytest.raises(PayloadTooLarge):
        r.next_frame()


def test_unknown_type_is_skipped_and_stream_continues() -> None:
    r = V2GTPReassembler()
    bad = encode_frame(0x1234, b"junk-junk")
    good = encode_frame(PayloadType.DC, b"ok")
    r.feed(bad[:11])  # header + 3 of 9 payload bytes
    with pytest.raises(UnknownPayloadType) as info:
        r.next_frame()
    assert info.value.action is Action.IGNORE
    assert info.value.payload_type == 0x1234
    assert r.buffered == 0
    r.feed(bad[11:] + good)
    assert r.next_frame() == Frame(PayloadType.DC, b"ok")


def test_sdp_on_the_stream_is_not_accepted() -> None:
    r = V2GTPReassembler()
    r.feed(encode_frame(PayloadType.SDP_REQ, b"\x00\x00"))
    with pytest.raises(UnknownPayloadType):
        r.next_frame()


def test_accepted_types_are_configurable() -> None:
    r = V2GTPReassembler(accepted_types={PayloadType.SAP})
    r.feed(encode_frame(PayloadType.COMMON, b"x") + encode_frame(PayloadType.SAP, b"y"))
    with pytest.raises(UnknownPayloadType):
        r.next_frame()
    assert r.next_frame() == Frame(PayloadType.SAP, b"y")


def test_buffer_is_bounded_by_header_plus_max_payload() -> None:
    r = V2GTPReassembler(max_payload=10)
    assert r.room == HEADER_SIZE + 10
    with pytest.raises(BufferFull):
        r.feed(bytes(HEADER_SIZE + 11))
    r.feed(encode_frame(PayloadType.DC, bytes(10)))
    assert r.room == 0
    with pytest.raises(BufferFull):
        r.feed(b"\x01")
    assert r.next_frame() is not None
    assert r.room == HEADER_SIZE + 10


def test_frames_handles_a_chunk_larger_than_the_buffer() -> None:
    r = V2GTPReassembler(max_payload=16)
    chunk = b"".join(encode_frame(PayloadType.DC, bytes([i]) * 16) for i in range(50))
    chunk += encode_frame(0x4242, b"?" * 16) + encode_frame(PayloadType.AC, b"end")
    out = list(r.frames(chunk))
    assert [f.payload for f in out[:50] if isinstance(f, Frame)] == [
        bytes([i]) * 16 for i in range(50)
    ]
    assert isinstance(out[50], UnknownPayloadType)
    assert out[51] == Frame(PayloadType.AC, b"end")
    assert r.buffered == 0


def test_frames_raises_close_errors() -> None:
    r = V2GTPReassembler()
    with pytest.raises(InvalidVersion):
        list(r.frames(b"\x02\xfe\x80\x02\x00\x00\x00\x00"))


@given(st.binary(max_size=600))
def test_garbage_never_crashes_or_overflows(data: bytes) -> None:
    r = V2GTPReassembler(max_payload=64)
    try:
        for _ in r.frames(data):
            assert r.buffered <= HEADER_SIZE + 64
    except V2GTPError as exc:
        assert exc.action is Action.CLOSE
    assert r.buffered <= HEADER_SIZE + 64


def test_decode_datagram() -> None:
    frame = decode_datagram(encode_frame(PayloadType.SDP_REQ, b"\x10\x00"))
    assert frame == Frame(PayloadType.SDP_REQ, b"\x10\x00")


@pytest.mark.parametrize(
    ("datagram", "error"),
    [
        (b"\x01\xfe\x90", TruncatedDatagram),
        (encode_frame(PayloadType.SDP_REQ, b"\x10\x00") + b"!", TruncatedDatagram),
        (encode_frame(PayloadType.SDP_REQ, b"\x10\x00")[:-1], TruncatedDatagram),
        (b"\x01\xfd" + encode_frame(PayloadType.SDP_REQ, b"\x10\x00")[2:], InvalidVersion),
        (encode_frame(PayloadType.DC, b"\x10\x00"), UnknownPayloadType),
        (encode_frame(PayloadType.SDP_REQ, bytes(70000)), PayloadTooLarge),
    ],
)
def test_bad_datagrams_are_all_ignored(datagram: bytes, error: type[V2GTPError]) -> None:
    with pytest.raises(error) as info:
        decode_datagram(datagram)
    assert info.value.action is Action.IGNORE


@given(st.binary(max_size=600))
def test_garbage_with_discard_invalid_stays_bounded(data: bytes) -> None:
    r = V2GTPReassembler(max_payload=64, discard_invalid=True)
    try:
        for item in r.frames(data):
            assert r.buffered <= HEADER_SIZE + 64
            if isinstance(item, V2GTPError):
                assert item.action is Action.IGNORE and item.skipped >= HEADER_SIZE
    except V2GTPError as exc:
        assert isinstance(exc, PayloadTooLarge | InvalidVersion) and exc.action is Action.CLOSE
    assert r.buffered <= HEADER_SIZE + 64
