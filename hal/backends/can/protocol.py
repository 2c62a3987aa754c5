"""Frames of the DC power-module protocol (docs/can_protocol.md is the spec).

Identifier layout (29-bit extended, the public Infypower BEG/BEC style)::

    bits 28..26  error code      (3 bits; 0 in requests, the module's result in replies)
    bits 25..22  device number   (4 bits; 0x0A = one module, 0x0B = a group)
    bits 21..16  command number  (6 bits)
    bits 15..8   destination     (8 bits; modules 0x00..0x3E, 0x3F = broadcast)
    bits  7..0   source          (8 bits; the controller is 0xF0)

Every frame carries 8 data bytes, big-endian. Command numbers 0x03/0x04/0x1A/0x1C follow
the family's usual meaning; 0x21/0x22 (direction, discharge) and the status-bit layout are
this project's choice (see the spec).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

DEVICE_MODULE = 0x0A
DEVICE_GROUP = 0x0B
BROADCAST = 0x3F
CONTROLLER = 0xF0
MAX_MODULE_ADDRESS = 0x3E
BITRATE = 125_000


class ErrorCode(IntEnum):
    NORMAL = 0
    COMMAND_INVALID = 2
    DATA_INVALID = 3
    STARTING = 7  # the module is still starting up


class Command(IntEnum):
    READ_OUTPUT = 0x03  # reply: voltage, current (float32 each)
    READ_STATUS = 0x04  # reply: direction, on/off, temperature, status bits
    SET_ON_OFF = 0x1A  # byte 0: 0x00 on, 0x01 off
    SET_OUTPUT = 0x1C  # charge: voltage limit mV (u32), current mA (u32)
    SET_DIRECTION = 0x21  # byte 0: 0x00 charge (AC->DC, to the EV), 0x01 discharge
    SET_DISCHARGE = 0x22  # discharge: cut-off voltage mV (u32), current mA (u32)


READS = frozenset({Command.READ_OUTPUT, Command.READ_STATUS})
WRITES = frozenset(
    {Command.SET_ON_OFF, Command.SET_OUTPUT, Command.SET_DIRECTION, Command.SET_DISCHARGE}
)


class Direction(IntEnum):
    CHARGE = 0
    DISCHARGE = 1


class StatusBits(IntFlag):
    FAULT = 1 << 0  # summary: output disabled by a fault
    OUTPUT_SHORT = 1 << 1
    OVER_TEMPERATURE = 1 << 2
    AC_INPUT_FAULT = 1 << 3
    OUTPUT_OVER_VOLTAGE = 1 << 4
    FAN_FAULT = 1 << 5
    OUTPUT_OFF = 1 << 6
    DISCHARGING = 1 << 7
    CURRENT_LIMITED = 1 << 8
    CAN_TIMEOUT = 1 << 9  # the module switched off: no controller frame for too long


FAULT_BITS = (
    StatusBits.FAULT
    | StatusBits.OUTPUT_SHORT
    | StatusBits.OVER_TEMPERATURE
    | StatusBits.AC_INPUT_FAULT
    | StatusBits.OUTPUT_OVER_VOLTAGE
    | StatusBits.FAN_FAULT
)


class MalformedFrame(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class FrameId:
    error: int
    device: int
    command: int
    destination: int
    source: int

    def encode(self) -> int:
        if not (
            0 <= self.error < 8
            and 0 <= self.device < 16
            and 0 <= self.command < 64
            and 0 <= self.destination < 256
            and 0 <= self.source < 256
        ):
            raise ValueError(f"identifier field out of range: {self}")
        return (
            self.error << 26
            | self.device << 22
            | self.command << 16
            | self.destination << 8
            | self.source
        )

    @classmethod
    def decode(cls, can_id: int) -> FrameId:
        if not 0 <= can_id < 1 << 29:
            raise MalformedFrame(f"not a 29-bit identifier: {can_id:#x}")
        return cls(
            (can_id >> 26) & 0x7,
            (can_id >> 22) & 0xF,
            (can_id >> 16) & 0x3F,
            (can_id >> 8) & 0xFF,
            can_id & 0xFF,
        )


_U32X2 = struct.Struct(">II")
_F32X2 = struct.Struct(">ff")
_STATUS = struct.Struct(">BBBBI")
ZERO = bytes(8)


def pack_milli_pair(a: float, b: float) -> bytes:
    """Two non-negative quantities in milli-units (mV, mA) as big-endian u32."""
    ma, mb = round(a * 1000), round(b * 1000)
    if not (0 <= ma < 1 << 32 and 0 <= mb < 1 << 32):
        raise ValueError(f"out of range for u32 milli-units: {a}, {b}")
    return _U32X2.pack(ma, mb)


def unpack_milli_pair(data: bytes) -> tuple[float, float]:
    if len(data) != 8:
        raise MalformedFrame(f"expected 8 data bytes, got {len(data)}")
    a, b = _U32X2.unpack(data)
    return a / 1000.0, b / 1000.0


def pack_output(voltage: float, current: float) -> bytes:
    return _F32X2.pack(voltage, current)


def unpack_output(data: bytes) -> tuple[float, float]:
    if len(data) != 8:
        raise MalformedFrame(f"expected 8 data bytes, got {len(data)}")
    v, i = _F32X2.unpack(data)
    if not (math.isfinite(v) and math.isfinite(i)):
        raise MalformedFrame("non-finite measurement")
    return v, i


@dataclass(frozen=True, slots=True)
class ModuleStatus:
    direction: Direction
    on: bool
    temperature_c: int
    bits: StatusBits

    def pack(self) -> bytes:
        return _STATUS.pack(
            int(self.direction),
            0 if self.on else 1,
            max(0, min(255, self.temperature_c + 40)),
            0,
            int(self.bits),
        )

    @classmethod
    def unpack(cls, data: bytes) -> ModuleStatus:
        if len(data) != 8:
            raise MalformedFrame(f"expected 8 data bytes, got {len(data)}")
        direction, off, temp, _, bits = _STATUS.unpack(data)
        if direction > 1 or off > 1:
            raise MalformedFrame(f"status field out of range: {data.hex()}")
        return cls(Direction(direction), off == 0, temp - 40, StatusBits(bits))


def pack_on_off(on: bool) -> bytes:
    return bytes((0 if on else 1,)) + bytes(7)


def pack_direction(direction: Direction) -> bytes:
    return bytes((int(direction),)) + bytes(7)
