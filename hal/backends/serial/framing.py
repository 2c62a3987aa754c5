"""Byte-level framing of the host <-> safety-MCU link: COBS + CRC-32, 0x00 delimited.

A frame on the wire is ``COBS(body || CRC32(body) as u32 little-endian) || 0x00``. COBS
(Consistent Overhead Byte Stuffing) removes every 0x00 from the encoded bytes, so 0x00 only
ever delimits frames and a receiver resynchronises at the next delimiter after any line
noise. The CRC is zlib's CRC-32 (IEEE 802.3 polynomial, reflected, init and xorout
0xFFFFFFFF), computed over the unstuffed body.

`FrameDecoder` is the receive side: feed it whatever bytes arrived, get back the bodies of
the valid frames. It never raises on bad input: COBS errors, CRC mismatches, runt and
oversized frames are counted in `FramingStats` and dropped.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

DELIMITER = 0x00
CRC_SIZE = 4

# Bodies are small (the largest message is ~40 bytes); the limit bounds memory on garbage.
DEFAULT_MAX_BODY = 128


class CobsError(ValueError):
    """The bytes between two delimiters are not a valid COBS encoding."""


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode `data`: the result contains no 0x00 and is at most len/254 + 1 longer."""
    out = bytearray()
    code_index = 0
    out.append(0)  # placeholder for the first code byte
    code = 1
    for byte in data:
        if byte == 0:
            out[code_index] = code
            code_index = len(out)
            out.append(0)
            code = 1
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:  # a full block of 254 non-zero bytes: no implied zero follows
            out[code_index] = code
            code_index = len(out)
            out.append(0)
            code = 1
    out[code_index] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Invert `cobs_encode`; raises `CobsError` on a zero byte or a truncated block."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError("zero byte inside a COBS frame")
        end = i + code
        if end > n:
            raise CobsError("COBS block runs past the end of the frame")
        block = data[i + 1 : end]
        if 0 in block:
            raise CobsError("zero byte inside a COBS frame")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_frame(body: bytes) -> bytes:
    """The wire bytes for one frame body: COBS(body || crc32 LE) || 0x00."""
    return cobs_encode(body + struct.pack("<I", crc32(body))) + b"\x00"


@dataclass(slots=True)
class FramingStats:
    """Receive-side counters of the framing layer (monotonic, never reset by the decoder)."""

    bytes_received: int = 0
    frames_received: int = 0  # valid frames handed up
    empty_frames: int = 0  # back-to-back delimiters (harmless; senders may use them to flush)
    cobs_errors: int = 0
    crc_errors: int = 0
    runt_frames: int = 0  # shorter than the CRC
    oversized_frames: int = 0  # more bytes than the limit before a delimiter
    discarded_bytes: int = 0  # bytes thrown away with bad or oversized frames

    @property
    def errors(self) -> int:
        return self.cobs_errors + self.crc_errors + self.runt_frames + self.oversized_frames


class FrameDecoder:
    """Stream of bytes in, valid frame bodies out; bad frames are counted and dropped."""

    def __init__(self, max_body: int = DEFAULT_MAX_BODY, stats: FramingStats | None = None) -> None:
        self.max_body = max_body
        # COBS adds one byte per 254 and one at the start; the CRC adds four.
        self.max_encoded = max_body + CRC_SIZE + (max_body + CRC_SIZE) // 254 + 1
        self.stats = stats if stats is not None else FramingStats()
        self._buffer = bytearray()
        self._overflow = False  # inside an oversized frame: drop until the next delimiter
        self.last_error: str | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Consume `data`; return the bodies (CRC stripped) of the complete valid frames."""
        stats = self.stats
        stats.bytes_received += len(data)
        bodies: list[bytes] = []
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                self._accumulate(data[start:])
                return bodies
            self._accumulate(data[start:end])
            start = end + 1
            body = self._finish_frame()
            if body is not None:
                bodies.append(body)

    def _accumulate(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._overflow:
            self.stats.discarded_bytes += len(chunk)
            return
        self._buffer += chunk
        if len(self._buffer) > self.max_encoded:
            self._overflow = True
            self.stats.oversized_frames += 1
            self.stats.discarded_bytes += len(self._buffer)
            self.last_error = f"frame longer than {self.max_encoded} bytes"
            self._buffer.clear()

    def _finish_frame(self) -> bytes | None:
        stats = self.stats
        if self._overflow:
            self._overflow = False
            return None
        raw = bytes(self._buffer)
        self._buffer.clear()
        if not raw:
            stats.empty_frames += 1
            return None
        try:
            decoded = cobs_decode(raw)
        except CobsError as exc:
            stats.cobs_errors += 1
            stats.discarded_bytes += len(raw)
            self.last_error = str(exc)
            return None
        if len(decoded) <= CRC_SIZE:
            stats.runt_frames += 1
            stats.discarded_bytes += len(raw)
            self.last_error = f"runt frame of {len(decoded)} bytes"
            return None
        body, (crc,) = decoded[:-CRC_SIZE], struct.unpack("<I", decoded[-CRC_SIZE:])
        if crc32(body) != crc:
            stats.crc_errors += 1
            stats.discarded_bytes += len(raw)
            self.last_error = f"CRC mismatch: got {crc:08x}, computed {crc32(body):08x}"
            return None
        stats.frames_received += 1
        return body

    def reset(self) -> None:
        self._buffer.clear()
        self._overflow = False
