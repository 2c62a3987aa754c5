"""A DC session whose isolation monitor and meter are the Modbus parts (pymodbus servers:
the meter over TCP, the IMD over RTU on a pty pair), board and power supply simulated:
the cable check waits for a fresh IMD measurement started for it, and the EV's MeterInfo
carries the meter's registers."""

from __future__ import annotations

import asyncio
import dataclasses

from evse.aio.app import SeccOptions, build_station
from evse.aio.secc_server import SeccServer
from evse.protocol.iso20.timeouts import Timeouts
from hal.parts import describe
from simulators.ev.client import run_session
from simulators.modbus import ImdModel, ModbusDeviceServer, Sdm630Model
from tests.aio.helpers import fast_scenario

HOST = "127.0.0.1"


async def test_dc_session_with_a_modbus_meter_and_imd() -> None:
    meter_model, imd_model = Sdm630Model(import_kwh=4321.5), ImdModel()
    meter = ModbusDeviceServer(meter_model, transport="tcp", unit=1)
    imd = ModbusDeviceServer(imd_model, transport="rtu", unit=2)
    try:
        assert imd.bridge is not None
        spec = (f"sim,isolation_monitor=modbus-imd:rtu:{imd.bridge.client_port},"
                f"meter=modbus-meter:tcp:{HOST}:{meter.port}")
        options = SeccOptions(
            address=HOST, hal=spec, allow_plain_tcp_iso20=True, port=0,
            hal_options={"modbus-imd": {"unit": 2, "baudrate": 115200, "interval": 0.05},
                         "modbus-meter": {"interval": 0.05, "meter_id": "SDM630-T"}})
        station, config = build_station(options)
        backend = station.connectors[0].backend
        assert [(i.part, i.simulated) for i in describe(backend)] == [
            ("board", True), ("power_supply", True), ("isolation_monitor", False),
            ("meter", False)]
        config = dataclasses.replace(config, timeouts=Timeouts(close_after_session_stop=0.2))
        server = SeccServer(config, station, address=HOST, port=0, poll_interval=0.01)
        await server.start()
        try:
            assert server.port is not None
            report = await asyncio.wait_for(
                run_session(fast_scenario("dc", speedup=1.0, max_loops=6), host=HOST,
                            port=server.port), 30.0)
        finally:
            await server.close()
        assert report.success, report.summary()
        assert report.energy_charged_wh > 0
        assert 1 in imd_model.commands  # the cable check started a measurement (START)
        assert report.extra["meter_charged_wh"] == 4_321_500  # MeterInfo from the registers
    finally:
        meter.close()
        imd.close()
