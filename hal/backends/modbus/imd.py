"""`modbus-imd`: an insulation monitoring device over Modbus RTU or TCP (the generic map
of hal/backends/modbus/registers.py)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from hal.backends.modbus.device import ModbusDevice
from hal.backends.modbus.registers import (
    IMD_BLOCK_COUNT,
    DecodeError,
    ImdCommand,
    ImdRegister,
    ImdStatus,
    ImdValues,
    decode_imd,
)
from hal.backends.modbus.worker import ModbusWorker
from hal.interfaces import IsolationMonitor, IsolationReading


class ModbusIsolationMonitor(IsolationMonitor):
    """The IsolationMonitor interface over a `ModbusWorker`.

    Commands are queued to the worker and return at once. A resistance counts only when
    the device reports a completed measurement (VALUE_VALID) whose COUNTER moved after our
    START was acknowledged - a value measured before it, or one the device keeps
    repeating, is never taken for a new one - and while the block is younger than
    `max_age`; otherwise `reading()` is None and `fault` says why.
    """

    def __init__(self, worker: ModbusWorker, max_age: float) -> None:
        if not max_age > 0:
            raise ValueError("max_age must be > 0")
        self._worker = worker
        self.max_age = max_age
        self._measuring = False
        self._start_acked_at: float | None = None  # worker clock
        self._baseline: int | None = None  # COUNTER seen first after the START ack
        self._self_test_acked_at: float | None = None
        self._self_test_pending = False
        self._self_test_passed: bool | None = None
        self._values: ImdValues | None = None
        self._taken_at = 0.0
        self._reading: IsolationReading | None = None
        self._fault: str | None = None
        self._refused: str | None = None  # a command the device refused, until one is acked

    def start(self) -> None:
        if not self._measuring:
            self._measuring = True
            self._start_acked_at = None
            self._baseline = None
            self._reading = None
            self._worker.write(ImdRegister.COMMAND, ImdCommand.START)

    def stop(self) -> None:
        self._measuring = False
        self._reading = None
        self._worker.write(ImdRegister.COMMAND, ImdCommand.STOP)

    def start_self_test(self) -> None:
        self._self_test_passed = None
        self._self_test_pending = True
        self._self_test_acked_at = None
        self._worker.write(ImdRegister.COMMAND, ImdCommand.SELF_TEST)

    @property
    def measuring(self) -> bool:
        return self._measuring

    @property
    def self_test_passed(self) -> bool | None:
        return self._self_test_passed

    @property
    def alarm(self) -> bool:
        """The device's own low-resistance alarm (judging the value is control's job)."""
        v = self._values
        return v is not None and ImdStatus.ALARM in v.status and self._fresh()

    def reading(self) -> IsolationReading | None:
        return self._reading if self._fresh() else None

    @property
    def fault(self) -> str | None:
        return self._fault

    def _fresh(self) -> bool:
        return self._worker.clock() - self._taken_at <= self.max_age

    def update(self, now: float) -> None:
        worker = self._worker
        for w, acked_at in worker.take_acked():
            self._refused = None
            if w.value == ImdCommand.START and self._measuring:
                self._start_acked_at = acked_at
            elif w.value == ImdCommand.SELF_TEST and self._self_test_pending:
                self._self_test_acked_at = acked_at
        for w, why in worker.take_refused():
            self._refused = f"IMD refused {ImdCommand(w.value).name}: {why}"
            if w.value == ImdCommand.SELF_TEST:
                self._self_test_pending = False  # no result will come
        error = worker.error
        faults = [] if error is None else [error[0]]
        if self._refused is not None and self._refused not in faults:
            faults.append(self._refused)
        block = worker.latest
        if block is not None and block.taken_at > self._taken_at:
            try:
                values = decode_imd(block.registers)
            except DecodeError as exc:
                faults.append(f"IMD: {exc}")
            else:
                self._values, self._taken_at = values, block.taken_at
                self._take(values, block.taken_at, now - (worker.clock() - block.taken_at))
        last = self._values
        if last is not None and ImdStatus.DEVICE_FAULT in last.status:
            faults.append(f"IMD device fault (code {last.fault_code})")
        if self._measuring and self._values is not None and not self._fresh():
            age = worker.clock() - self._taken_at
            faults.append(f"IMD: no fresh status for {age:.1f} s")
        self._fault = "; ".join(faults) if faults else None

    def _take(self, values: ImdValues, taken_at: float, timestamp: float) -> None:
        status = values.status
        started = self._start_acked_at
        if self._measuring and started is not None and taken_at > started:
            if self._baseline is None:
                self._baseline = values.counter  # what was there when we started
            elif (
                values.counter != self._baseline
                and ImdStatus.VALUE_VALID in status
                and ImdStatus.MEASURING in status
            ):
                self._reading = IsolationReading(values.resistance_ohm, timestamp)
        tested = self._self_test_acked_at
        done = (
            self._self_test_pending
            and tested is not None
            and taken_at > tested
            and ImdStatus.SELF_TEST_RUNNING not in status
        )
        if done and ImdStatus.SELF_TEST_PASSED in status:
            self._self_test_passed, self._self_test_pending = True, False
        elif done and ImdStatus.SELF_TEST_FAILED in status:
            self._self_test_passed, self._self_test_pending = False, False


class ModbusImdBackend(ModbusDevice):
    """Provides the isolation monitor: the generic IMD map (connection options:
    `ModbusDevice`)."""

    name = "modbus-imd"
    provides: ClassVar[tuple[str, ...]] = ("isolation_monitor",)
    block_start = ImdRegister.RESISTANCE
    block_count = IMD_BLOCK_COUNT

    def __init__(self, *, interval: float = 0.2, **connection: Any) -> None:
        super().__init__(interval=interval, **connection)
        self._imd = ModbusIsolationMonitor(self.worker, self.max_age)

    @property
    def isolation_monitor(self) -> ModbusIsolationMonitor:
        return self._imd

    @property
    def fault(self) -> str | None:
        return self._imd.fault

    def _poll_device(self, now: float) -> None:
        self._imd.update(now)

    def _close_device(self) -> None:
        try:
            self._imd.stop()
            deadline = self.worker.clock() + self.worker.interval * 2
            while self.worker.clock() < deadline and not self.worker.take_acked():
                time.sleep(0.01)  # let the STOP go out before the port closes (bounded)
        finally:
            super()._close_device()
