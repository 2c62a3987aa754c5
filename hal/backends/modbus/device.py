"""The shared base of the Modbus part backends: connection options, worker, freshness."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from hal.backends.device import DeviceBackend
from hal.backends.modbus.worker import Clock, ModbusWorker, make_client


class ModbusDevice(DeviceBackend):
    """One Modbus unit on "tcp" (host, port) or "rtu" (device, serial line options),
    read as one input-register block (`block_start`, `block_count`) every `interval` s.

    A value is fresh while younger than `max_age` (default: three intervals plus one
    timeout, so a single lost answer is tolerated and a silent device is not)."""

    block_start: ClassVar[int] = 0
    block_count: ClassVar[int] = 1

    def __init__(
        self,
        *,
        transport: str = "tcp",
        host: str | None = None,
        port: int = 502,
        device: str | None = None,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        unit: int = 1,
        timeout: float = 0.5,
        interval: float = 0.5,
        max_age: float | None = None,
        client: Any = None,
        clock: Clock = time.monotonic,
    ) -> None:
        where = f"tcp:{host}:{port}" if transport == "tcp" else f"rtu:{device}"
        super().__init__(target=f"{where} unit {unit}")
        self.where = where
        if client is None:
            client = make_client(
                transport, host=host, port=port, device=device, baudrate=baudrate,
                parity=parity, stopbits=stopbits, timeout=timeout,
            )
        self.worker = ModbusWorker(
            client, unit=unit, start=self.block_start, count=self.block_count,
            interval=interval, name=self.name, clock=clock,
        )
        self.max_age = max_age if max_age is not None else 3 * interval + timeout

    def _close_device(self) -> None:
        self.worker.close()
