"""V2GTP framing (the V2G Transfer Protocol of ISO 15118-2/-20), sans-IO.

Every V2G message travels behind an 8-byte header: protocol version 0x01, its inverse 0xFE,
payload type (u16 big-endian) and payload length (u32 big-endian, header excluded).

TCP delivers a byte stream, so `V2GTPReassembler` cuts it back into frames (h11 style:
`feed()` bytes in, `next_frame()` frames out). UDP (SDP) carries exactly one frame per
datagram: use `decode_datagram()`.

A wrong header is ignored or the connection closed (ISO 15118-20, V2GTP header check). Each
error says which through its `action`:

- ``Action.CLOSE``: the stream can no longer be trusted (bad version bytes, so the length is
  meaningless; or a payload larger than we accept): close the TCP connection.
- ``Action.IGNORE``: the frame was dropped but the stream is still in sync (an unknown payload
  type whose length is acceptable is skipped); the session may carry on or close.

`V2GTPReassembler(discard_invalid=True)` (what the SECC uses) also discards, without an answer,
a frame with wrong version bytes (its declared length is still bounded by `max_payload`, so
the stream stays in sync) and a frame with an empty payload. Only a declared length above
`max_payload` still closes: skipping it would mean reading up to 4 GiB of junk.

UDP datagrams are never answered when bad, so `decode_datagram()` errors are all IGNORE.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import ClassVar, NoReturn

PROTOCOL_VERSION = 0x01
INVERSE_PROTOCOL_VERSION = 0xFE
HEADER = struct.Struct(">BBHI")
HEADER_SIZE = HEADER.size  # 8
DEFAULT_MAX_PAYLOAD = 65536
MAX_LENGTH_FIELD = 0xFFFFFFFF


class PayloadType(IntEnum):
    """V2GTP payload types of ISO 15118-20 (0x8001 is also -2/DIN's type for all their EXI)."""

    SAP = 0x8001  # supportedAppProtocol; ISO 15118-2 and DIN 70121 use it for every message
    COMMON = 0x8002  # -20 main stream, CommonMessages schema
    AC = 0x8003  # -20 AC main stream
    DC = 0x8004  # -20 DC main stream
    ACDP = 0x8005  # -20 ACDP (pantograph) main stream
    WPT = 0x8006  # -20 wireless main stream
    SCHEDULE_RENEGOTIATION = 0x8101  # -20 side streams
    METERING_CONFIRMATION = 0x8102
    ACDP_SYSTEM_STATUS = 0x8103
    PARKING_STATUS = 0x8104
    SDP_REQ = 0x9000
    SDP_RES = 0x9001
    SDP_REQ_WIRELESS = 0x9002  # wireless SDP variant (ACDP/WPT); not handled by sdp.py
    SDP_RES_WIRELESS = 0x9003


_KNOWN_TYPES: frozenset[int] = frozenset(PayloadType)
SDP_PAYLOAD_TYPES: frozenset[int] = frozenset(
    {
        PayloadType.SDP_REQ,
        PayloadType.SDP_RES,
        PayloadType.SDP_REQ_WIRELESS,
        PayloadType.SDP_RES_WIRELESS,
    }
)
# What may legitimately arrive on the TCP connection: everything but SDP.
STREAM_PAYLOAD_TYPES: frozenset[int] = _KNOWN_TYPES - SDP_PAYLOAD_TYPES


class Action(StrEnum):
    """What the receiver should do after a V2GTP error."""

    IGNORE = "ignore"
    CLOSE = "close"


class V2GTPError(Exception):
    """A V2GTP header check failed. `action` tells the I/O layer what to do."""

    default_action: ClassVar[Action] = Action.CLOSE

    def __init__(self, message: str, *, action: Action | None = None) -> None:
        super().__init__(message)
        self.action: Action = action if action is not None else self.default_action
        self.skipped = 0  # bytes of the discarded frame (header + payload) after IGNORE


class InvalidVersion(V2GTPError):
    """Version byte != 0x01 or inverse != 0xFE: the length cannot be trusted, so close."""


class PayloadTooLarge(V2GTPError):
    """Declared payload length exceeds `max_payload`: refuse to buffer it, close."""


class UnknownPayloadType(V2GTPError):
    """Payload type unknown or not accepted here; on a stream the frame is skipped."""

    default_action: ClassVar[Action] = Action.IGNORE

    def __init__(self, message: str, payload_type: int, *, action: Action | None = None) -> None:
        super().__init__(message, action=action)
        self.payload_type = payload_type


class EmptyPayload(V2GTPError):
    """A frame of an accepted type with payload length 0: nothing to decode, discard it."""

    default_action: ClassVar[Action] = Action.IGNORE


class TruncatedDatagram(V2GTPError):
    """A datagram shorter or longer than its header says (UDP only)."""

    default_action: ClassVar[Action] = Action.IGNORE


class BufferFull(ValueError):
    """The caller fed more than `room` bytes; drain `next_frame()` first (caller bug)."""


@dataclass(frozen=True, slots=True)
class Frame:
    payload_type: PayloadType
    payload: bytes


def encode_frame(payload_type: int, payload: bytes) -> bytes:
    """Header + payload. Any u16 type is allowed so tests can craft unknown ones."""
    if not 0 <= payload_type <= 0xFFFF:
        raise ValueError(f"payload type {payload_type!r} is not a u16")
    if len(payload) > MAX_LENGTH_FIELD:
        raise ValueError("payload longer than a u32 length field")
    header = HEADER.pack(PROTOCOL_VERSION, INVERSE_PROTOCOL_VERSION, payload_type, len(payload))
    return header + bytes(payload)


def parse_header(
    header: bytes | bytearray | memoryview,
    *,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    accepted_types: Collection[int] = STREAM_PAYLOAD_TYPES,
) -> tuple[PayloadType | None, int]:
    """Check the first 8 bytes; return (payload type or None if not accepted, length).

    Checks run in the order version, length, type: an oversized frame is refused even when
    its type is unknown, so skipping never has to wade through gigabytes.
    """
    version, inverse, payload_type, length = HEADER.unpack_from(header)
    if version != PROTOCOL_VERSION or inverse != INVERSE_PROTOCOL_VERSION:
        raise InvalidVersion(f"bad V2GTP version bytes {version:#04x} {inverse:#04x}")
    if length > max_payload:
        raise PayloadTooLarge(f"payload length {length} exceeds {max_payload}")
    if payload_type not in accepted_types or payload_type not in _KNOWN_TYPES:
        return None, length
    return PayloadType(payload_type), length


def decode_datagram(
    datagram: bytes,
    *,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    accepted_types: Collection[int] = SDP_PAYLOAD_TYPES,
) -> Frame:
    """One UDP datagram = one frame. Every error is IGNORE: a bad datagram gets no answer."""
    try:
        if len(datagram) < HEADER_SIZE:
            raise TruncatedDatagram(f"datagram of {len(datagram)} bytes has no V2GTP header")
        payload_type, length = parse_header(
            datagram, max_payload=max_payload, accepted_types=accepted_types
        )
    except V2GTPError as exc:
        exc.action = Action.IGNORE
        raise
    if len(datagram) != HEADER_SIZE + length:
        raise TruncatedDatagram(
            f"header says {length} payload bytes, datagram carries {len(datagram) - HEADER_SIZE}"
        )
    if payload_type is None:
        raw_type = HEADER.unpack_from(datagram)[2]
        raise UnknownPayloadType(f"payload type {raw_type:#06x} not accepted", raw_type)
    return Frame(payload_type, bytes(datagram[HEADER_SIZE:]))


class V2GTPReassembler:
    """Cuts a TCP byte stream into V2GTP frames.

    Memory is bounded: at most `HEADER_SIZE + max_payload` bytes are ever held. `feed()`
    raises `BufferFull` rather than buffer more, so feed at most `room` bytes and drain
    `next_frame()` in between -- or let `frames()` do both for a chunk of any size.
    After a CLOSE error the reassembler is dead: every later call raises that error again.
    """

    def __init__(
        self,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        accepted_types: Collection[int] = STREAM_PAYLOAD_TYPES,
        discard_invalid: bool = False,
    ) -> None:
        if not 0 <= max_payload <= MAX_LENGTH_FIELD:
            raise ValueError("max_payload must fit a u32 length field")
        self.max_payload = max_payload
        # May be replaced between frames (the SECC narrows it once the protocol is agreed).
        self.accepted_types = frozenset(accepted_types)
        self.discard_invalid = discard_invalid
        self._buffer = bytearray()
        self._skip = 0  # payload bytes of an ignored frame still to discard
        self._error: V2GTPError | None = None

    @property
    def room(self) -> int:
        """How many bytes `feed()` accepts right now."""
        if self._error is not None:
            return 0
        # Bytes that will be skipped are discarded on arrival, so they need no room.
        return self._skip + HEADER_SIZE + self.max_payload - len(self._buffer)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as (or skipped with) a frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise self._error
        if len(data) > self.room:
            raise BufferFull(f"{len(data)} bytes offered, room for {self.room}")
        view = memoryview(data)
        if self._skip:
            dropped = min(self._skip, len(view))
            self._skip -= dropped
            view = view[dropped:]
        self._buffer += view

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more data arrives.

        Raises a `V2GTPError` for a bad header; after an IGNORE error the bad frame is
        being skipped and the next call carries on with the following one.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        if len(buffer) < HEADER_SIZE:
            return None
        try:
            payload_type, length = parse_header(
                buffer, max_payload=self.max_payload, accepted_types=self.accepted_types
            )
        except InvalidVersion as exc:
            length = HEADER.unpack_from(buffer)[3]
            if not self.discard_invalid or length > self.max_payload:
                self._die(exc)
            exc.skipped = self._discard(length)
            exc.action = Action.IGNORE
            raise
        except V2GTPError as exc:
            self._die(exc)
        if payload_type is None:
            raw_type = HEADER.unpack_from(buffer)[2]
            unknown = UnknownPayloadType(
                f"payload type {raw_type:#06x} not accepted; {length} bytes skipped", raw_type
            )
            unknown.skipped = self._discard(length)
            raise unknown
        if length == 0 and self.discard_invalid:
            empty = EmptyPayload(f"empty payload of type {payload_type:#06x}")
            empty.skipped = self._discard(0)
            raise empty
        end = HEADER_SIZE + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[HEADER_SIZE:end])
        del self._buffer[:end]
        return Frame(payload_type, payload)

    def _die(self, exc: V2GTPError) -> NoReturn:
        self._error = exc
        self._buffer.clear()
        raise exc

    def _discard(self, length: int) -> int:
        """Drop the frame at the head of the buffer (its payload may still be on the way);
        return its size."""
        dropped = min(length, len(self._buffer) - HEADER_SIZE)
        del self._buffer[: HEADER_SIZE + dropped]
        self._skip = length - dropped
        return HEADER_SIZE + length

    def frames(self, data: bytes | bytearray | memoryview) -> Iterator[Frame | V2GTPError]:
        """Feed a chunk of any size; yield each frame it completes, in order.

        Memory stays bounded whatever the chunk size: the chunk is fed `room` bytes at a time
        and frames are handed out as they complete. Discarded frames are yielded as their
        IGNORE error (`UnknownPayloadType`; with `discard_invalid` also `InvalidVersion` and
        `EmptyPayload`) instead of raised, so the loop carries on; CLOSE errors are raised.
        """
        view = memoryview(data)
        while True:
            # Drain before feeding so a full buffer always turns into a frame or an error.
            while True:
                try:
                    frame = self.next_frame()
                except V2GTPError as exc:
                    if exc.action is not Action.IGNORE:
                        raise
                    yield exc
                    continue
                if frame is None:
                    break
                yield frame
            if not view:
                return
            n = min(self.room, len(view))
            self.feed(view[:n])
            view = view[n:]
