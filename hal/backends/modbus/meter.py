"""`modbus-meter`: an SDM630-class DIN-rail energy meter over Modbus RTU or TCP."""

from __future__ import annotations

from typing import Any, ClassVar

from hal.backends.modbus.device import ModbusDevice
from hal.backends.modbus.registers import (
    SDM630_BLOCK_COUNT,
    SDM630_BLOCK_START,
    DecodeError,
    decode_sdm630,
)
from hal.backends.modbus.worker import ModbusWorker
from hal.interfaces import HalError, Meter, MeterReading


class StaleReading(HalError):
    """No reading fresh enough to report as current (the device is silent or failing)."""


class ModbusMeter(Meter):
    """The Meter interface over a `ModbusWorker` reading the SDM630 block.

    `poll(now)` takes the worker's last block; its `timestamp` is `now` minus the block's
    age. `reading()` refuses (StaleReading) a block older than `max_age` seconds, one that
    did not decode, and any before the first: a charger must never bill or report an old
    value as the present one.
    """

    def __init__(self, worker: ModbusWorker, meter_id: str, max_age: float) -> None:
        if not max_age > 0:
            raise ValueError("max_age must be > 0")
        self._worker = worker
        self._meter_id = meter_id
        self.max_age = max_age
        self._reading: MeterReading | None = None
        self._taken_at = 0.0  # worker clock of the reading
        self._fault: str | None = None

    @property
    def meter_id(self) -> str:
        return self._meter_id

    @property
    def fault(self) -> str | None:
        """A device failure (timeout, exception response, undecodable block, stale)."""
        return self._fault

    def update(self, now: float) -> None:
        worker = self._worker
        block, error = worker.latest, worker.error
        faults = [] if error is None else [error[0]]
        if block is not None and block.taken_at > self._taken_at:
            try:
                values = decode_sdm630(block.registers)
            except DecodeError as exc:
                faults.append(f"meter {self._meter_id}: {exc}")
            else:
                age = worker.clock() - block.taken_at
                self._reading = MeterReading(
                    meter_id=self._meter_id,
                    energy_imported_wh=values.imported_wh,
                    energy_exported_wh=values.exported_wh,
                    voltage=values.voltage,
                    current=values.current,
                    timestamp=now - age,
                )
                self._taken_at = block.taken_at
        age = worker.clock() - self._taken_at
        if self._reading is not None and age > self.max_age:
            faults.append(f"meter {self._meter_id}: no fresh reading for {age:.1f} s")
        self._fault = "; ".join(faults) if faults else None

    def reading(self) -> MeterReading:
        if self._reading is None:
            raise StaleReading(f"meter {self._meter_id}: no reading yet")
        age = self._worker.clock() - self._taken_at
        if age > self.max_age:
            raise StaleReading(
                f"meter {self._meter_id}: last reading {age:.1f} s old (max {self.max_age} s)"
            )
        return self._reading


class ModbusMeterBackend(ModbusDevice):
    """Provides the meter: an SDM630-class meter (connection options: `ModbusDevice`)."""

    name = "modbus-meter"
    provides: ClassVar[tuple[str, ...]] = ("meter",)
    block_start = SDM630_BLOCK_START
    block_count = SDM630_BLOCK_COUNT

    def __init__(self, *, meter_id: str | None = None, interval: float = 0.5,
                 unit: int = 1, **connection: Any) -> None:
        super().__init__(interval=interval, unit=unit, **connection)
        meter_id = meter_id or f"MODBUS-{self.where}-{unit}"
        self._meter = ModbusMeter(self.worker, meter_id, self.max_age)

    @property
    def meter(self) -> ModbusMeter:
        return self._meter

    @property
    def fault(self) -> str | None:
        return self._meter.fault

    def _poll_device(self, now: float) -> None:
        self._meter.update(now)
