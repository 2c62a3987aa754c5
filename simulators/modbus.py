"""Simulated Modbus devices for tests and benches: an SDM630-class meter and a generic-map
insulation monitor (docs/hardware.md), each a pymodbus server (TCP on loopback, or RTU on a
pty pair) whose registers a Python model fills on every request, so a test controls what
the device says, and whether it answers at all (an exception response, or silence)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import tty
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hal.backends.modbus.registers import (
    ImdCommand,
    ImdStatus,
    Sdm630,
    float32_registers,
)


@dataclass
class Faults:
    exception: ExcCodes | None = None  # answer every request with this exception
    refuse_writes: ExcCodes | None = None  # answer writes (commands) with this exception
    silent: bool = False  # never answer (the client times out)


@dataclass
class Sdm630Model:
    """What the meter measures; the registers follow at every read."""

    voltage: float = 400.0
    currents: tuple[float, float, float] = (10.0, 10.0, 10.0)
    power: float = 12_000.0
    import_kwh: float = 1234.5
    export_kwh: float = 67.25
    faults: Faults = field(default_factory=Faults)
    reads: int = 0
    raw: dict[int, tuple[int, int]] = field(default_factory=dict)  # address -> forced words

    def fill(self, regs: list[int], start: int) -> None:
        values = {
            Sdm630.L1_VOLTAGE: self.voltage, Sdm630.L2_VOLTAGE: self.voltage,
            Sdm630.L3_VOLTAGE: self.voltage, Sdm630.L1_CURRENT: self.currents[0],
            Sdm630.L2_CURRENT: self.currents[1], Sdm630.L3_CURRENT: self.currents[2],
            Sdm630.TOTAL_POWER: self.power, Sdm630.IMPORT_KWH: self.import_kwh,
            Sdm630.EXPORT_KWH: self.export_kwh,
        }
        for address, value in values.items():
            regs[address - start], regs[address - start + 1] = float32_registers(value)
        for address, words in self.raw.items():
            regs[address - start], regs[address - start + 1] = words
        self.reads += 1

    def written(self, address: int, value: int) -> None:
        pass


@dataclass
class ImdModel:
    """A generic-map IMD: a measurement completes at every read while measuring; a self
    test takes two reads."""

    resistance_ohm: float = 2e6
    alarm_below_ohm: float = 100e3
    fail_self_test: bool = False
    device_fault_code: int = 0
    faults: Faults = field(default_factory=Faults)
    measuring: bool = False
    counter: int = 7  # whatever the device counted before we came
    valid: bool = True  # a value from an earlier run is still in the register
    self_test_reads_left: int | None = None
    self_test_result: bool | None = None
    commands: list[int] = field(default_factory=list)

    def written(self, address: int, value: int) -> None:
        self.commands.append(value)
        if value == ImdCommand.START:
            self.measuring = True
        elif value == ImdCommand.STOP:
            self.measuring = False
        elif value == ImdCommand.SELF_TEST:
            self.self_test_result, self.self_test_reads_left = None, 2

    def fill(self, regs: list[int], start: int) -> None:
        if self.measuring:
            self.counter = (self.counter + 1) & 0xFFFF
            self.valid = True
        if self.self_test_reads_left is not None:
            self.self_test_reads_left -= 1
            if self.self_test_reads_left <= 0:
                self.self_test_reads_left = None
                self.self_test_result = not self.fail_self_test
        status = ImdStatus(0)
        if self.measuring:
            status |= ImdStatus.MEASURING
        if self.valid:
            status |= ImdStatus.VALUE_VALID
        if self.self_test_reads_left is not None:
            status |= ImdStatus.SELF_TEST_RUNNING
        elif self.self_test_result is True:
            status |= ImdStatus.SELF_TEST_PASSED
        elif self.self_test_result is False:
            status |= ImdStatus.SELF_TEST_FAILED
        if self.valid and self.resistance_ohm < self.alarm_below_ohm:
            status |= ImdStatus.ALARM
        if self.device_fault_code:
            status |= ImdStatus.DEVICE_FAULT
        regs[0 - start], regs[1 - start] = float32_registers(self.resistance_ohm)
        regs[2 - start] = int(status)
        regs[3 - start] = self.counter
        regs[4 - start] = self.device_fault_code


class PtyBridge:
    """Two pseudo-terminals joined back to back (what `socat pty pty` does): the server
    opens `server_port`, the client `client_port`. `mute` drops every byte."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self.server_master, self.server_port = self._pty()
        self.client_master, self.client_port = self._pty()
        self.mute = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _pty(self) -> tuple[int, str]:
        master, slave = os.openpty()
        tty.setraw(slave)
        self._fds += [master, slave]  # the slave stays open: the pty lives as long as we do
        return master, os.ttyname(slave)

    def _run(self) -> None:
        peer = {self.server_master: self.client_master, self.client_master: self.server_master}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(peer), [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data and not self.mute:
                    os.write(peer[fd], data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)


class ModbusDeviceServer:
    """A pymodbus server for one unit, run on its own event loop in a thread."""

    def __init__(self, model: Any, *, transport: str, unit: int = 1,
                 input_count: int = 100, holding_count: int = 10) -> None:
        self.model = model
        self.transport = transport
        self.unit = unit
        device = SimDevice(
            unit,
            simdata=(
                [SimData(0, datatype=DataType.BITS)],
                [SimData(0, datatype=DataType.BITS)],
                [SimData(0, count=holding_count, datatype=DataType.REGISTERS)],
                [SimData(0, count=input_count, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )
        self.bridge: PtyBridge | None = None
        self.port = 0
        if transport == "tcp":
            # Port 0: the kernel picks a free one, no race with other test processes.
            self._make: Any = lambda: ModbusTcpServer(device, address=("127.0.0.1", 0))
        else:
            self.bridge = PtyBridge()
            port = self.bridge.server_port
            self._make = lambda: ModbusSerialServer(device, port=port, baudrate=115200)
            self.client_options = {
                "transport": "rtu", "device": self.bridge.client_port, "baudrate": 115200}
        self._server: Any = None
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._started.wait(5.0):
            raise RuntimeError("the Modbus test server did not start")
        if transport == "tcp":
            self.client_options: dict[str, Any] = {
                "transport": "tcp", "host": "127.0.0.1", "port": self.port}

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = self._make()  # pymodbus servers are made on their loop
            await self._server.serve_forever(background=True)
            if self.transport == "tcp":
                self.port = self._server.transport.sockets[0].getsockname()[1]
            self._started.set()
            await self._server.serving

        with contextlib.suppress(Exception):
            self._loop.run_until_complete(serve())
        # Requests still waiting (a silent device) end here, not as "destroyed" tasks.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _action(self, function_code: int, start_address: int, address: int,
                      count: int, current_registers: list[int],
                      set_values: list[int] | None) -> ExcCodes | None:
        faults: Faults = self.model.faults
        if faults.silent:
            await asyncio.sleep(3600)  # cancelled at shutdown
        if faults.exception is not None:
            return faults.exception
        if function_code == 6 and faults.refuse_writes is not None:
            return faults.refuse_writes
        if function_code == 4:
            self.model.fill(current_registers, start_address)
        elif function_code == 6 and set_values is not None:
            self.model.written(address, set_values[0])
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)
        if self._thread.is_alive() and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if self.bridge is not None:
            self.bridge.close()
