"""Modbus parts (pymodbus, RTU or TCP): `modbus-meter` (SDM630-class energy meter) and
`modbus-imd` (insulation monitoring device, generic map). Register maps and their sources:
`registers` and docs/hardware.md."""

from hal.backends.modbus.imd import ModbusImdBackend, ModbusIsolationMonitor
from hal.backends.modbus.meter import ModbusMeter, ModbusMeterBackend, StaleReading

__all__ = [
    "ModbusImdBackend",
    "ModbusIsolationMonitor",
    "ModbusMeter",
    "ModbusMeterBackend",
    "StaleReading",
]
