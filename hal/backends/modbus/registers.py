"""Register maps of the Modbus parts, and their decoding (pure: no I/O).

Energy meter: the Eastron SDM630 (Modbus V2) input-register map, function code 04, every
value an IEEE-754 float32 in two registers, high word first (big-endian), as published in
Eastron's "SDM630 Modbus Protocol" document. Other SDM-family DIN-rail meters (SDM72D-M,
SDM120/230 single-phase) use the same addresses for the registers read here.

Insulation monitoring device: there is no one public register map for IMDs (Bender,
Dold, Cirprotec each have their own, some only under NDA), so this is a GENERIC map defined
here and documented in docs/hardware.md; a device with another map needs a gateway
configuration or a subclass with its own map.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

# ---- SDM630 (input registers, FC 04, float32 big-endian) -------------------------------------


class Sdm630(IntEnum):
    """Register address (0-based protocol address; the manual's 3xxxx number minus 30001)."""

    L1_VOLTAGE = 0x0000  # V, phase 1 line to neutral
    L2_VOLTAGE = 0x0002
    L3_VOLTAGE = 0x0004
    L1_CURRENT = 0x0006  # A
    L2_CURRENT = 0x0008
    L3_CURRENT = 0x000A
    TOTAL_POWER = 0x0034  # W, total system power; negative while exporting
    IMPORT_KWH = 0x0048  # kWh, total import active energy
    EXPORT_KWH = 0x004A  # kWh, total export active energy


# One read covers every register above (76 registers < the 125 a read may ask for).
SDM630_BLOCK_START = 0x0000
SDM630_BLOCK_COUNT = Sdm630.EXPORT_KWH + 2


def float32_at(registers: list[int] | tuple[int, ...], address: int, start: int = 0) -> float:
    """The float32 in registers[address - start], [address - start + 1] (high word first)."""
    i = address - start
    if i < 0 or i + 1 >= len(registers):
        raise ValueError(f"register {address:#06x} outside the block read")
    high, low = registers[i], registers[i + 1]
    value: float = struct.unpack(">f", struct.pack(">HH", high, low))[0]
    return value


def float32_registers(value: float) -> tuple[int, int]:
    """The two registers of a float32, high word first (for simulators and tests)."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return high, low


class DecodeError(ValueError):
    """A register block that cannot be a valid reading (NaN, infinite, negative energy)."""


@dataclass(frozen=True, slots=True)
class MeterValues:
    voltage: float  # V, phase 1 (the DC meters' one voltage)
    current: float  # A, signed: negative while energy flows back (total power < 0)
    power: float  # W, signed
    imported_wh: float
    exported_wh: float


def decode_sdm630(registers: list[int] | tuple[int, ...]) -> MeterValues:
    """Decode the block read from SDM630_BLOCK_START. The SDM630 reports current magnitudes;
    the sign comes from the total system power (ISO 15118-20: negative while the EV
    discharges)."""

    def f(reg: Sdm630) -> float:
        return float32_at(registers, reg, SDM630_BLOCK_START)

    values = {reg.name: f(reg) for reg in Sdm630}
    bad = [name for name, v in values.items() if not math.isfinite(v)]
    if bad:
        raise DecodeError(f"not a number in {', '.join(bad)}")
    imported, exported = values["IMPORT_KWH"], values["EXPORT_KWH"]
    if imported < 0 or exported < 0:
        raise DecodeError(f"negative energy register (import {imported}, export {exported})")
    power = values["TOTAL_POWER"]
    current = abs(values["L1_CURRENT"]) + abs(values["L2_CURRENT"]) + abs(values["L3_CURRENT"])
    return MeterValues(
        voltage=values["L1_VOLTAGE"],
        current=-current if power < 0 else current,
        power=power,
        imported_wh=imported * 1000.0,
        exported_wh=exported * 1000.0,
    )


# ---- generic IMD -------------------------------------------------------------------------------


class ImdRegister(IntEnum):
    """The generic IMD map (0-based protocol addresses)."""

    # Holding register, FC 06 write: one command per write (ImdCommand).
    COMMAND = 0x0000
    # Input registers, FC 04, read as one block of IMD_BLOCK_COUNT from RESISTANCE.
    RESISTANCE = 0x0000  # float32 ohms, high word first; +inf = above the measuring range
    STATUS = 0x0002  # ImdStatus bits
    COUNTER = 0x0003  # uint16, +1 (wrapping) at every completed measurement
    FAULT_CODE = 0x0004  # uint16, 0 = no device fault


IMD_BLOCK_COUNT = 5


class ImdCommand(IntEnum):
    START = 1  # start measuring (continuous)
    STOP = 2
    SELF_TEST = 3  # clears SELF_TEST_PASSED/FAILED, sets SELF_TEST_RUNNING until done


class ImdStatus(IntFlag):
    MEASURING = 0x01
    VALUE_VALID = 0x02  # RESISTANCE holds a completed measurement
    SELF_TEST_RUNNING = 0x04
    SELF_TEST_PASSED = 0x08
    SELF_TEST_FAILED = 0x10
    ALARM = 0x20  # resistance below the device's own alarm threshold
    DEVICE_FAULT = 0x40  # see FAULT_CODE


@dataclass(frozen=True, slots=True)
class ImdValues:
    resistance_ohm: float
    status: ImdStatus
    counter: int
    fault_code: int


def decode_imd(registers: list[int] | tuple[int, ...]) -> ImdValues:
    if len(registers) < IMD_BLOCK_COUNT:
        raise DecodeError(f"IMD block of {len(registers)} registers, need {IMD_BLOCK_COUNT}")
    resistance = float32_at(registers, ImdRegister.RESISTANCE)
    status = ImdStatus(registers[ImdRegister.STATUS] & 0x7F)
    if (math.isnan(resistance) or resistance < 0) and ImdStatus.VALUE_VALID in status:
        raise DecodeError(f"invalid resistance {resistance} marked valid")
    return ImdValues(
        resistance_ohm=resistance,
        status=status,
        counter=registers[ImdRegister.COUNTER],
        fault_code=registers[ImdRegister.FAULT_CODE],
    )
