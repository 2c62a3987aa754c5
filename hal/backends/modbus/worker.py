"""The Modbus I/O of a part, on a background thread.

The HAL is polled synchronously from the charger's event loop (hal/interfaces.py): a
setpoint must never wait on I/O. A Modbus read over RS-485 takes tens of milliseconds and
a dead device a whole timeout, so each Modbus part runs its transactions on its own thread
with pymodbus's synchronous client and hands `poll(now)` the last result with the time it
was taken (monotonic seconds). The part decides whether that result is fresh enough.

Every cycle the worker sends the queued writes (commands), then reads one register block.
A failed transaction (timeout, no connection, a Modbus exception response, a short
answer) is recorded as `error` with its time; the last good block keeps its own time and
so ages until the part refuses it. A write that got no answer stays queued and goes
again next cycle; one the device refused (an exception response) is handed back to the
part (`take_refused`): retrying would not change the device's mind.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Block:
    """Registers read in one transaction, and when (worker clock)."""

    registers: tuple[int, ...]
    taken_at: float


@dataclass(frozen=True, slots=True)
class Write:
    """A register write queued by the part; `done_at` is set once the device acked it."""

    address: int
    value: int
    queued_at: float


def make_client(
    transport: str,
    *,
    host: str | None = None,
    port: int = 502,
    device: str | None = None,
    baudrate: int = 9600,
    parity: str = "N",
    stopbits: int = 1,
    timeout: float = 0.5,
) -> ModbusTcpClient | ModbusSerialClient:
    """A pymodbus synchronous client: "tcp" (host, port) or "rtu" (device, serial line)."""
    if transport == "tcp":
        if not host:
            raise ValueError("Modbus TCP needs a host")
        return ModbusTcpClient(host, port=port, timeout=timeout, retries=0)
    if transport == "rtu":
        if not device:
            raise ValueError("Modbus RTU needs a device (e.g. /dev/ttyUSB0)")
        return ModbusSerialClient(
            device, baudrate=baudrate, parity=parity, stopbits=stopbits, timeout=timeout,
            retries=0,
        )
    raise ValueError(f"Modbus transport must be 'tcp' or 'rtu', got {transport!r}")


class ModbusWorker:
    """Reads `count` input registers from `start` every `interval` s; sends queued writes
    to holding registers first. `latest`, `error`, `acked` are read by the part."""

    def __init__(
        self,
        client: Any,
        *,
        unit: int,
        start: int,
        count: int,
        interval: float,
        name: str,
        clock: Clock = time.monotonic,
    ) -> None:
        if not interval > 0:
            raise ValueError("the Modbus poll interval must be > 0")
        if not 0 <= unit <= 247:
            raise ValueError(f"Modbus unit id {unit} outside 0..247")
        self.client = client
        self.unit, self.start, self.count = unit, start, count
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._latest: Block | None = None
        self._error: tuple[str, float] | None = None
        self._acked: list[tuple[Write, float]] = []
        self._refused: list[tuple[Write, str]] = []
        self._writes: collections.deque[Write] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.transactions = 0
        self._thread = threading.Thread(target=self._run, name=f"modbus-{name}", daemon=True)
        self._thread.start()

    # ---- the part's side ---------------------------------------------------------------------

    @property
    def latest(self) -> Block | None:
        with self._lock:
            return self._latest

    @property
    def error(self) -> tuple[str, float] | None:
        """The last failure (text, time) since the last good transaction, or None."""
        with self._lock:
            return self._error

    def write(self, address: int, value: int) -> Write:
        """Queue a holding-register write and wake the worker; returns at once."""
        w = Write(address, value, self.clock())
        with self._lock:
            self._writes.append(w)
        self._wake.set()
        return w

    def take_acked(self) -> list[tuple[Write, float]]:
        """Writes the device acknowledged since the last call, with the ack time."""
        with self._lock:
            acked, self._acked = self._acked, []
        return acked

    def take_refused(self) -> list[tuple[Write, str]]:
        """Writes the device answered with an exception since the last call, and why."""
        with self._lock:
            refused, self._refused = self._refused, []
        return refused

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5.0)
        self.client.close()

    # ---- the thread ----------------------------------------------------------------------

    def _fail(self, what: str) -> None:
        with self._lock:
            if self._error is None or self._error[0] != what:
                log.warning("Modbus %s", what)
            self._error = (what, self.clock())

    def _run(self) -> None:
        while not self._stop.is_set():
            began = self.clock()
            try:
                self._cycle()
            except ModbusException as exc:  # timeout, no connection, bad frame
                self._fail(f"unit {self.unit}: {exc}")
            except OSError as exc:  # the port vanished
                self._fail(f"unit {self.unit}: {exc}")
            left = self.interval - (self.clock() - began)
            with self._lock:
                idle = not self._writes
            if left > 0 and idle:
                self._wake.wait(left)
            self._wake.clear()

    def _cycle(self) -> None:
        if not self.client.connected and not self.client.connect():
            self._fail(f"unit {self.unit}: cannot connect")
            return
        while True:
            with self._lock:
                if not self._writes:
                    break
                w = self._writes[0]  # dequeued once answered: a timeout resends it
            rr = self.client.write_register(w.address, w.value, device_id=self.unit)
            self.transactions += 1
            refused = rr.isError()
            with self._lock:
                self._writes.popleft()
                if refused:
                    self._refused.append((w, str(rr)))
                else:
                    self._acked.append((w, self.clock()))
            if refused:
                self._fail(f"unit {self.unit}: write {w.value} to {w.address:#06x} refused: {rr}")
        rr = self.client.read_input_registers(self.start, count=self.count, device_id=self.unit)
        self.transactions += 1
        if rr.isError():
            self._fail(f"unit {self.unit}: read {self.start:#06x} refused: {rr}")
            return
        registers = tuple(rr.registers)
        if len(registers) != self.count:
            self._fail(f"unit {self.unit}: {len(registers)} registers, asked {self.count}")
            return
        with self._lock:
            self._latest = Block(registers, self.clock())
            self._error = None
