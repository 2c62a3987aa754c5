"""The message set of the host <-> safety-MCU link (docs/serial_protocol.md is the spec).

A frame body is ``type (u8) | seq (u16 LE) | payload``; all multi-byte fields are
little-endian. This module only packs and unpacks; `hal.backends.serial.link` (host) and
`simulators.mcu` (the simulated MCU) hold the state machines. Decoding never trusts the
peer: a payload of the wrong length raises `MalformedMessage`, which both ends count and
drop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0

HEADER = struct.Struct("<BH")  # type, seq


class MsgType(IntEnum):
    # host -> MCU
    HELLO = 0x01
    HEARTBEAT = 0x02
    SET_PWM = 0x10
    SET_CONTACTORS = 0x11
    EMERGENCY_STOP = 0x12
    RESET_EMERGENCY_STOP = 0x13
    # MCU -> host
    HELLO_REPLY = 0x81
    ACK = 0x82
    STATUS = 0x90
    ERROR_REPORT = 0xA0


#: Host commands that the MCU acknowledges (ACK with the command's seq).
COMMANDS = frozenset(
    {
        MsgType.SET_PWM,
        MsgType.SET_CONTACTORS,
        MsgType.EMERGENCY_STOP,
        MsgType.RESET_EMERGENCY_STOP,
    }
)


class AckResult(IntEnum):
    OK = 0
    REJECTED_NOT_READY = 1  # no HELLO yet, or in the host-timeout safe state
    REJECTED_EMERGENCY_STOP = 2  # energising refused while the e-stop is latched
    REJECTED_BUTTON_PRESSED = 3  # reset refused: the button is still pressed
    REJECTED_INVALID = 4  # field out of range
    REJECTED_FAULT = 5  # an MCU fault blocks the command (e.g. welded contactor)


class Features(IntFlag):
    PILOT_PWM = 1 << 0
    PROXIMITY_PILOT = 1 << 1
    CONTACTOR_FEEDBACK = 1 << 2
    EMERGENCY_STOP_INPUT = 1 << 3
    HOST_EMERGENCY_STOP = 1 << 4
    ISOLATION_MONITOR = 1 << 5  # reserved: not in protocol 1.0


class PilotCode(IntEnum):
    A = 0
    B = 1
    C = 2
    D = 3
    E = 4
    F = 5


class McuState(IntEnum):
    WAIT_HELLO = 0  # after reset: safe state, waiting for the host
    ACTIVE = 1  # host alive: commands accepted
    SAFE_HOST_TIMEOUT = 2  # host silent too long: safe state until a new HELLO
    SAFE_FAULT = 3  # internal fault: safe state until a reset of the MCU


class EstopFlags(IntFlag):
    LATCHED = 1 << 0
    BUTTON_PRESSED = 1 << 1
    HOST_TRIGGERED = 1 << 2


class ErrorFlags(IntFlag):
    CONTACTOR_WELDED = 1 << 0  # feedback closed while commanded open
    CONTACTOR_STUCK_OPEN = 1 << 1  # feedback open while commanded closed
    HOST_TIMEOUT = 1 << 2
    PILOT_FAULT = 1 << 3  # pilot reads E or an implausible level
    RX_CRC_ERRORS = 1 << 4  # the MCU saw CRC errors since the last STATUS
    INTERNAL = 1 << 15


class ErrorCode(IntEnum):
    HOST_TIMEOUT = 1
    CONTACTOR_WELDED = 2
    CONTACTOR_STUCK_OPEN = 3
    EMERGENCY_STOP_PRESSED = 4
    RX_FRAMING = 5  # detail: CRC + COBS errors seen by the MCU so far
    UNKNOWN_MESSAGE = 6  # detail: the type byte
    PROTOCOL_VERSION = 7  # detail: the host's major version
    PILOT_FAULT = 8
    INTERNAL = 255


class MalformedMessage(ValueError):
    pass


# ---- payloads ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """host -> MCU: start (or restart) a session."""

    major: int
    minor: int
    keepalive_interval_ms: int  # how often the host promises to send something

    FMT = struct.Struct("<BBH")

    def pack(self) -> bytes:
        return self.FMT.pack(self.major, self.minor, self.keepalive_interval_ms)

    @classmethod
    def unpack(cls, data: bytes) -> Hello:
        return cls(*_unpack(cls.FMT, data, allow_longer=True))


@dataclass(frozen=True, slots=True)
class HelloReply:
    """MCU -> host: capabilities."""

    major: int
    minor: int
    features: Features
    host_timeout_ms: int  # the MCU enters its safe state after this much host silence
    status_interval_ms: int  # the MCU sends STATUS at least this often
    estop_contactor_delay_ms: int  # e-stop: contactors open this long after the report
    firmware_id: str  # ASCII, at most 32 bytes

    FMT = struct.Struct("<BBIHHHB")

    def pack(self) -> bytes:
        fw = self.firmware_id.encode("ascii", "replace")[:32]
        return (
            self.FMT.pack(
                self.major,
                self.minor,
                int(self.features),
                self.host_timeout_ms,
                self.status_interval_ms,
                self.estop_contactor_delay_ms,
                len(fw),
            )
            + fw
        )

    @classmethod
    def unpack(cls, data: bytes) -> HelloReply:
        if len(data) < cls.FMT.size:
            raise MalformedMessage(f"HELLO_REPLY needs {cls.FMT.size}+ bytes, got {len(data)}")
        major, minor, features, timeout, interval, delay, fw_len = cls.FMT.unpack_from(data)
        fw = data[cls.FMT.size : cls.FMT.size + fw_len]
        if len(fw) != fw_len or fw_len > 32:
            raise MalformedMessage("HELLO_REPLY firmware id length mismatch")
        return cls(
            major,
            minor,
            Features(features),
            timeout,
            interval,
            delay,
            fw.decode("ascii", "replace"),
        )


@dataclass(frozen=True, slots=True)
class Ack:
    acked_seq: int
    acked_type: int
    result: AckResult

    FMT = struct.Struct("<HBB")

    def pack(self) -> bytes:
        return self.FMT.pack(self.acked_seq, self.acked_type, int(self.result))

    @classmethod
    def unpack(cls, data: bytes) -> Ack:
        seq, typ, result = _unpack(cls.FMT, data)
        try:
            res = AckResult(result)
        except ValueError as exc:
            raise MalformedMessage(f"unknown ACK result {result}") from exc
        return cls(seq, typ, res)


@dataclass(frozen=True, slots=True)
class Status:
    """MCU -> host, every status interval and at once on any change."""

    state: McuState
    pilot: PilotCode  # as measured
    pwm_permille: int  # duty being generated, 0..1000 (1000 = steady +12 V, 0 = state F)
    pp_current_a: int  # proximity pilot: cable rating in A, 0 = no or invalid cable
    contactors_commanded: bool  # what the MCU drives
    contactors_feedback: bool  # auxiliary contacts: True = closed
    estop: EstopFlags
    errors: ErrorFlags
    uptime_ms: int
    last_command_seq: int  # seq of the last host command executed

    FMT = struct.Struct("<BBHBBBBHIH")

    def pack(self) -> bytes:
        return self.FMT.pack(
            int(self.state),
            int(self.pilot),
            self.pwm_permille,
            self.pp_current_a,
            int(self.contactors_commanded),
            int(self.contactors_feedback),
            int(self.estop),
            int(self.errors),
            self.uptime_ms & 0xFFFFFFFF,
            self.last_command_seq,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Status:
        state, pilot, pwm, pp, cmd, fb, estop, errors, uptime, last = _unpack(
            cls.FMT, data, allow_longer=True
        )
        try:
            return cls(
                McuState(state),
                PilotCode(pilot),
                pwm,
                pp,
                bool(cmd),
                bool(fb),
                EstopFlags(estop),
                ErrorFlags(errors),
                uptime,
                last,
            )
        except ValueError as exc:
            raise MalformedMessage(f"STATUS field out of range: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ErrorReport:
    code: int  # ErrorCode, or a newer code this host does not know
    detail: int
    text: str  # ASCII, at most 32 bytes

    FMT = struct.Struct("<BIB")

    def pack(self) -> bytes:
        text = self.text.encode("ascii", "replace")[:32]
        return self.FMT.pack(self.code, self.detail & 0xFFFFFFFF, len(text)) + text

    @classmethod
    def unpack(cls, data: bytes) -> ErrorReport:
        if len(data) < cls.FMT.size:
            raise MalformedMessage("ERROR_REPORT too short")
        code, detail, n = cls.FMT.unpack_from(data)
        text = data[cls.FMT.size : cls.FMT.size + n]
        if len(text) != n or n > 32:
            raise MalformedMessage("ERROR_REPORT text length mismatch")
        return cls(code, detail, text.decode("ascii", "replace"))


def pack_u8(value: int) -> bytes:
    return bytes((value,))


def pack_u16(value: int) -> bytes:
    return struct.pack("<H", value)


def unpack_u8(data: bytes) -> int:
    if len(data) != 1:
        raise MalformedMessage(f"expected 1 byte, got {len(data)}")
    return data[0]


def unpack_u16(data: bytes) -> int:
    if len(data) != 2:
        raise MalformedMessage(f"expected 2 bytes, got {len(data)}")
    return int(struct.unpack("<H", data)[0])


def _unpack(fmt: struct.Struct, data: bytes, allow_longer: bool = False) -> tuple[int, ...]:
    # A newer minor version may append fields to some messages; older readers ignore them.
    if len(data) < fmt.size or (len(data) > fmt.size and not allow_longer):
        raise MalformedMessage(f"payload of {len(data)} bytes, expected {fmt.size}")
    return tuple(fmt.unpack_from(data))


def pack_body(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(msg_type, seq & 0xFFFF) + payload


def unpack_body(body: bytes) -> tuple[int, int, bytes]:
    """(type, seq, payload); raises MalformedMessage on a body shorter than the header."""
    if len(body) < HEADER.size:
        raise MalformedMessage(f"body of {len(body)} bytes is shorter than the header")
    msg_type, seq = HEADER.unpack_from(body)
    return msg_type, seq, body[HEADER.size :]


def seq_after(seq: int) -> int:
    return (seq + 1) & 0xFFFF
