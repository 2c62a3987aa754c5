"""The Modbus parts against a pymodbus server the test controls, over TCP on loopback and
RTU over a pty pair: register decoding, commands, and every failure (timeout, exception
response, garbage) -> a HAL fault, never a stale reading reported as current."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import pytest
from pymodbus.constants import ExcCodes

from hal.backends.modbus import ModbusImdBackend, ModbusMeterBackend, StaleReading
from hal.backends.modbus.registers import (
    SDM630_BLOCK_COUNT,
    DecodeError,
    Sdm630,
    decode_imd,
    decode_sdm630,
    float32_at,
    float32_registers,
)
from hal.parts import compose
from hal.registry import target_options
from simulators.modbus import ImdModel, ModbusDeviceServer, Sdm630Model

TRANSPORTS = ["tcp", "rtu"]
# Generous bounds: the machine is shared, the worker threads and the server are real.
WAIT = 10.0


def poll_until(backend: object, cond: Callable[[], bool], timeout: float = WAIT) -> float:
    """Poll on the real clock until `cond()`; the time it took."""
    start = time.monotonic()
    while True:
        now = time.monotonic()
        backend.poll(now)  # type: ignore[attr-defined]
        if cond():
            return now - start
        assert now - start < timeout, "condition not reached"
        time.sleep(0.01)


# ---- decoding (pure) ---------------------------------------------------------------------


def block(**values: float) -> list[int]:
    regs = [0] * SDM630_BLOCK_COUNT
    for name, value in values.items():
        address = Sdm630[name]
        regs[address], regs[address + 1] = float32_registers(value)
    return regs


def test_float32_is_high_word_first() -> None:
    # 230.0 = 0x43660000 (IEEE-754): high word 0x4366 first, as the SDM630 sends it.
    assert float32_registers(230.0) == (0x4366, 0x0000)
    assert float32_at([0, 0x4366, 0x0000], 1) == 230.0
    with pytest.raises(ValueError):
        float32_at([0x4366], 0)


def test_sdm630_block_decodes_with_signed_current() -> None:
    regs = block(L1_VOLTAGE=401.5, L1_CURRENT=5.0, L2_CURRENT=6.0, L3_CURRENT=7.0,
                 TOTAL_POWER=8000.0, IMPORT_KWH=12.5, EXPORT_KWH=0.25)
    v = decode_sdm630(regs)
    assert (v.voltage, v.current, v.power) == (401.5, 18.0, 8000.0)
    assert (v.imported_wh, v.exported_wh) == (12_500.0, 250.0)
    # Energy flowing back (V2G): the meter reports current magnitudes, the power's sign
    # gives the direction (ISO 15118-20: negative while the EV discharges).
    v = decode_sdm630(block(L1_CURRENT=5.0, TOTAL_POWER=-3000.0))
    assert v.current == -5.0 and v.power == -3000.0


@pytest.mark.parametrize("bad", [{"IMPORT_KWH": math.nan}, {"EXPORT_KWH": -1.0},
                                 {"L1_VOLTAGE": math.inf}])
def test_sdm630_garbage_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(DecodeError):
        decode_sdm630(block(**bad))


def test_imd_block_decodes() -> None:
    high, low = float32_registers(1.5e6)
    v = decode_imd([high, low, 0x03, 41, 0])
    assert v.resistance_ohm == 1.5e6 and v.counter == 41 and int(v.status) == 3
    nan_high, nan_low = float32_registers(math.nan)
    with pytest.raises(DecodeError):
        decode_imd([nan_high, nan_low, 0x02, 0, 0])  # marked valid but not a number
    with pytest.raises(DecodeError):
        decode_imd([0, 0, 0])


def test_modbus_targets() -> None:
    assert target_options("modbus-meter", "tcp:10.0.0.7:1502") == {
        "transport": "tcp", "host": "10.0.0.7", "port": 1502}
    assert target_options("modbus-imd", "tcp:[fd00::7]:502") == {
        "transport": "tcp", "host": "fd00::7", "port": 502}
    assert target_options("modbus-imd", "rtu:/dev/ttyUSB0") == {
        "transport": "rtu", "device": "/dev/ttyUSB0"}
    for bad in ("udp:x", "tcp:", "tcp:h:99999"):
        with pytest.raises(ValueError):
            target_options("modbus-meter", bad)


# ---- the meter against a server ------------------------------------------------------------


@pytest.fixture(params=TRANSPORTS)
def meter_rig(request: pytest.FixtureRequest) -> Iterator[tuple[Sdm630Model, ModbusMeterBackend]]:
    model = Sdm630Model()
    server = ModbusDeviceServer(model, transport=request.param, unit=3)
    backend = ModbusMeterBackend(**server.client_options, unit=3, interval=0.05,
                                 timeout=0.3, max_age=1.0, meter_id="SDM-T")
    try:
        yield model, backend
    finally:
        backend.close()
        server.close()


def test_meter_reads_the_registers(meter_rig: tuple[Sdm630Model, ModbusMeterBackend]) -> None:
    model, backend = meter_rig
    meter = backend.meter
    with pytest.raises(StaleReading):
        meter.reading()  # nothing read yet: no value at all, not a zero
    poll_until(backend, lambda: backend.fault is None and meter._reading is not None)
    r = meter.reading()
    assert r.meter_id == "SDM-T" and r.voltage == 400.0 and r.current == 30.0
    assert r.energy_imported_wh == pytest.approx(1_234_500.0)
    assert r.energy_exported_wh == pytest.approx(67_250.0)
    # The reading carries the time it was taken, on the caller's clock.
    assert time.monotonic() - 1.0 <= r.timestamp <= time.monotonic()
    model.power, model.export_kwh = -5000.0, 70.0  # the EV now feeds back
    poll_until(backend, lambda: meter.reading().current < 0)
    assert meter.reading().energy_exported_wh == pytest.approx(70_000.0)


def test_meter_exception_response_is_a_fault_and_the_value_ages_out(
        meter_rig: tuple[Sdm630Model, ModbusMeterBackend]) -> None:
    model, backend = meter_rig
    meter = backend.meter
    poll_until(backend, lambda: meter._reading is not None)
    first = meter.reading()
    model.faults.exception = ExcCodes.DEVICE_FAILURE
    poll_until(backend, lambda: backend.fault is not None)
    assert "refused" in (backend.fault or "") and "exception_code=4" in (backend.fault or "")
    # Within max_age the last good value is still reported, with its own (old) time...
    assert meter.reading().timestamp == first.timestamp or meter.reading().timestamp > 0
    # ...and never once it is older than that.
    poll_until(backend, lambda: "no fresh reading" in (backend.fault or ""))
    with pytest.raises(StaleReading, match="old"):
        meter.reading()
    model.faults.exception = None  # the device recovers: fresh values, fault cleared
    poll_until(backend, lambda: backend.fault is None)
    assert meter.reading().timestamp > first.timestamp


def test_meter_silent_device_times_out(
        meter_rig: tuple[Sdm630Model, ModbusMeterBackend]) -> None:
    model, backend = meter_rig
    poll_until(backend, lambda: backend.meter._reading is not None)
    model.faults.silent = True
    poll_until(backend, lambda: "No response" in (backend.fault or ""))
    poll_until(backend, lambda: "no fresh reading" in (backend.fault or ""))
    with pytest.raises(StaleReading):
        backend.meter.reading()


def test_meter_garbage_registers_are_a_fault(
        meter_rig: tuple[Sdm630Model, ModbusMeterBackend]) -> None:
    model, backend = meter_rig
    model.raw[Sdm630.IMPORT_KWH] = float32_registers(math.nan)
    poll_until(backend, lambda: "not a number" in (backend.fault or ""))
    with pytest.raises(StaleReading):
        backend.meter.reading()  # no value ever decoded: none reported


def test_meter_poll_never_waits_on_the_device() -> None:
    """The event loop's poll returns at once even while the device is silent (the I/O is
    on the worker thread)."""
    model = Sdm630Model()
    model.faults.silent = True
    server = ModbusDeviceServer(model, transport="tcp")
    backend = ModbusMeterBackend(**server.client_options, interval=0.05, timeout=0.5)
    try:
        worst = 0.0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            t0 = time.perf_counter()
            backend.poll(time.monotonic())
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.01)
        assert worst < 0.1  # vs 0.5 s per blocked transaction
        assert backend.fault is not None
    finally:
        backend.close()
        server.close()


def test_meter_without_a_server_is_a_fault_not_a_reading() -> None:
    backend = ModbusMeterBackend(transport="tcp", host="127.0.0.1", port=9, interval=0.05,
                                 timeout=0.2)
    try:
        poll_until(backend, lambda: backend.fault is not None)
        with pytest.raises(StaleReading):
            backend.meter.reading()
    finally:
        backend.close()


# ---- the insulation monitor against a server ----------------------------------------------


@pytest.fixture(params=TRANSPORTS)
def imd_rig(request: pytest.FixtureRequest) -> Iterator[tuple[ImdModel, ModbusImdBackend]]:
    model = ImdModel()
    server = ModbusDeviceServer(model, transport=request.param, unit=2)
    backend = ModbusImdBackend(**server.client_options, unit=2, interval=0.05, timeout=0.3,
                               max_age=1.0)
    try:
        yield model, backend
    finally:
        backend.close()
        server.close()


def test_imd_start_measure_stop(imd_rig: tuple[ImdModel, ModbusImdBackend]) -> None:
    model, backend = imd_rig
    imd = backend.isolation_monitor
    poll_until(backend, lambda: backend.worker.latest is not None)
    # The device still shows a value from before: not ours until we start and it measures.
    assert imd.reading() is None and not imd.measuring
    counter_before = model.counter
    imd.start()
    assert imd.measuring and imd.reading() is None
    poll_until(backend, lambda: imd.reading() is not None)
    assert model.commands[0] == 1 and model.counter >= counter_before + 2
    r = imd.reading()
    assert r is not None and r.resistance_ohm == 2e6 and not imd.alarm
    model.resistance_ohm = 50e3  # an insulation fault: reported, judged by control
    poll_until(backend, lambda: (imd.reading() or r).resistance_ohm == 50e3)
    assert imd.alarm and backend.fault is None
    imd.stop()
    assert imd.reading() is None
    poll_until(backend, lambda: not model.measuring)


def test_imd_self_test(imd_rig: tuple[ImdModel, ModbusImdBackend]) -> None:
    model, backend = imd_rig
    imd = backend.isolation_monitor
    imd.start_self_test()
    assert imd.self_test_passed is None
    poll_until(backend, lambda: imd.self_test_passed is not None)
    assert imd.self_test_passed is True
    model.fail_self_test = True
    imd.start_self_test()
    assert imd.self_test_passed is None  # the last result is not this test's
    poll_until(backend, lambda: imd.self_test_passed is not None)
    assert imd.self_test_passed is False


def test_imd_failures_are_faults_and_old_values_are_dropped(
        imd_rig: tuple[ImdModel, ModbusImdBackend]) -> None:
    model, backend = imd_rig
    imd = backend.isolation_monitor
    imd.start()
    poll_until(backend, lambda: imd.reading() is not None)
    model.device_fault_code = 17
    poll_until(backend, lambda: "device fault (code 17)" in (backend.fault or ""))
    model.device_fault_code = 0
    model.faults.exception = ExcCodes.ILLEGAL_ADDRESS
    poll_until(backend, lambda: "exception_code=2" in (backend.fault or ""))
    model.faults.exception = None
    model.faults.silent = True
    poll_until(backend, lambda: imd.reading() is None)  # aged out: never reported as fresh
    assert backend.fault is not None


def test_imd_command_sent_while_the_device_is_silent_goes_out_when_it_answers(
        imd_rig: tuple[ImdModel, ModbusImdBackend]) -> None:
    model, backend = imd_rig
    imd = backend.isolation_monitor
    poll_until(backend, lambda: backend.worker.latest is not None)
    model.faults.silent = True
    imd.start()  # the write times out: it stays queued, never dropped
    poll_until(backend, lambda: "No response" in (backend.fault or ""))
    assert model.commands == []
    model.faults.silent = False
    poll_until(backend, lambda: imd.reading() is not None)
    assert model.commands == [1]


def test_imd_refused_command_is_a_latched_fault(
        imd_rig: tuple[ImdModel, ModbusImdBackend]) -> None:
    model, backend = imd_rig
    imd = backend.isolation_monitor
    model.faults.refuse_writes = ExcCodes.ILLEGAL_VALUE
    imd.start()
    poll_until(backend, lambda: "IMD refused START" in (backend.fault or ""))
    time.sleep(0.3)  # reads keep succeeding meanwhile...
    backend.poll(time.monotonic())
    assert "IMD refused START" in (backend.fault or "")  # ...the refusal stays reported
    assert imd.reading() is None and model.commands == []
    model.faults.refuse_writes = None
    imd.stop()
    imd.start()
    poll_until(backend, lambda: imd.reading() is not None)
    assert backend.fault is None


def test_imd_counter_that_does_not_move_is_no_new_measurement() -> None:
    """A device that acknowledges START but never completes a measurement keeps its old,
    VALUE_VALID register: that old value is never reported."""
    model = ImdModel()
    server = ModbusDeviceServer(model, transport="tcp")
    backend = ModbusImdBackend(**server.client_options, interval=0.05, timeout=0.3)
    try:
        model.written = lambda address, value: model.commands.append(value)  # type: ignore[method-assign]
        backend.isolation_monitor.start()
        poll_until(backend, lambda: bool(model.commands))
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            backend.poll(time.monotonic())
            assert backend.isolation_monitor.reading() is None
            time.sleep(0.02)
    finally:
        backend.close()
        server.close()


# ---- composition --------------------------------------------------------------------------


def test_a_real_meter_and_imd_composed_with_sim_power() -> None:
    meter_model, imd_model = Sdm630Model(), ImdModel()
    meter_server = ModbusDeviceServer(meter_model, transport="tcp", unit=1)
    imd_server = ModbusDeviceServer(imd_model, transport="rtu", unit=2)
    try:
        backend = compose(
            board="sim", power_supply="sim",
            insulation_monitor={"backend": "modbus-imd", "unit": 2, "interval": 0.05,
                                **imd_server.client_options},
            meter={"backend": "modbus-meter", "unit": 1, "interval": 0.05,
                   **meter_server.client_options},
        )
        try:
            assert [(i.part, i.simulated) for i in backend.describe()] == [
                ("board", True), ("power_supply", True), ("isolation_monitor", False),
                ("meter", False)]
            backend.isolation_monitor.start()
            poll_until(backend, lambda: backend.isolation_monitor.reading() is not None)
            assert backend.meter.reading().energy_imported_wh == pytest.approx(1_234_500.0)
        finally:
            backend.close()
    finally:
        meter_server.close()
        imd_server.close()
