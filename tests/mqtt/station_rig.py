"""The real charger wired to a real broker, for the station tests: SeccServer (sim HAL) on
loopback + SeccStationPort + MqttBridge against the mosquitto of the `broker` fixture, the
simulated EV, and an aggregator client (tests/mqtt/helpers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evse._mqtt_api import Topics
from evse.aio.mqtt_bridge import MqttBridge
from evse.aio.secc_server import SeccServer, Station
from evse.aio.station_port import SeccStationPort
from evse.energy.prices import PriceCurve
from evse.energy.provider import EnergyPolicy
from hal.backends.sim import SimBackend
from simulators.battery import EvBattery
from simulators.ev import BatteryLink, Evcc, SessionReport
from simulators.ev.client import run_session
from simulators.ev.messages import value_of
from tests.aio.helpers import HOST, fast_scenario, secc_config
from tests.mqtt.helpers import bridge_config

STATION = "ST-1"
TOPICS = Topics(STATION)
SPEEDUP = 10.0


class RecordingEvcc(Evcc):
    """The simulated EV, recording what each DC_ChargeLoopRes said: (time, EVSEPresentCurrent,
    EVSEPresentVoltage) on the loop clock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop_log: list[tuple[float, float, float]] = []

    def _on_DC_ChargeLoopRes(self, msg: Any, now: float) -> None:  # noqa: N802
        self.loop_log.append((now, value_of(msg.evse_present_current),
                              value_of(msg.evse_present_voltage)))
        super()._on_DC_ChargeLoopRes(msg, now)


@dataclass
class StationRig:
    server: SeccServer
    station: Station
    port: SeccStationPort
    bridge: MqttBridge
    backend: SimBackend
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def tcp_port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def link(self) -> BatteryLink:
        backend = self.backend
        return BatteryLink(backend.ev_battery, shared=True,
                           on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                                closed))

    def start_ev(self, name: str = "dc_bpt_dynamic", **changes: Any
                 ) -> tuple[RecordingEvcc, asyncio.Task[SessionReport]]:
        scenario = fast_scenario(name, **changes)
        loop = asyncio.get_running_loop()
        evcc = RecordingEvcc(scenario, battery=self.link(),
                             epoch_offset=time.time() - loop.time())
        task = asyncio.create_task(run_session(scenario, host=HOST, port=self.tcp_port,
                                               evcc=evcc))
        self.tasks.append(task)
        return evcc, task

    def conn(self) -> Any:
        return self.server.connection("1")


async def until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await asyncio.sleep(0.01)


def dynamic_scenario(**changes: Any) -> dict[str, Any]:
    """dc_bpt_dynamic that keeps looping until the charger stops it."""
    base: dict[str, Any] = dict(loop_interval=0.05, max_loops=2000, target_soc=95.0,
                                min_soc=10.0)
    base.update(changes)
    return base


@contextlib.asynccontextmanager
async def station_rig(broker: Any, *, tmp_path: Path | None = None,
                      policy: EnergyPolicy | None = None, prices: PriceCurve | None = None,
                      mqtt_authorization: bool = False, battery: EvBattery | None = None,
                      speedup: float = SPEEDUP, **mqtt: Any) -> AsyncIterator[StationRig]:
    backend = SimBackend(battery=battery) if battery is not None else SimBackend()
    station = Station.from_backends([backend], speedup=speedup)
    server = SeccServer(secc_config(), station, address=HOST, port=0, poll_interval=0.01)
    port = SeccStationPort(server, station_id=STATION, policy=policy, prices=prices,
                           mqtt_authorization=mqtt_authorization, reports_dir=tmp_path,
                           control_interval=0.05)
    bridge = MqttBridge(port, bridge_config(broker.host, broker.port, **mqtt), STATION)
    port.bridge = bridge
    await server.start()
    port.start()
    bridge.start()
    rig = StationRig(server, station, port, bridge, backend)
    try:
        await asyncio.wait_for(bridge.connected.wait(), 5)
        yield rig
    finally:
        for task in rig.tasks:
            if not task.done():
                task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*rig.tasks, return_exceptions=True)
        await server.close()
        await port.close()
        await bridge.stop()
