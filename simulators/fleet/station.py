"""One simulated station of the fleet: a real charger and the cars that visit it.

The charger is the production stack: `SeccServer` (plain TCP on loopback, the sim HAL at
`speedup`), `SeccStationPort` and `MqttBridge` on the shared broker under the station's own
id. Its cars are the simulated EV (`dc_bpt_dynamic`: ISO 15118-20 DC_BPT in the Dynamic control
mode, the mode an aggregator can steer with `setpoint`), one after the other as the plan says;
between two cars the connector is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from evse.aio.mqtt_bridge import MqttBridge
from evse.aio.secc_server import SeccServer, Station
from evse.aio.station_port import SeccStationPort
from evse.config import MqttConfig
from evse.energy.schedule import DefaultScheduleProvider
from evse.protocol.config import SeccConfig, ServiceId
from evse.protocol.iso20.timeouts import Timeouts
from evse.protocol.limits import EvseLimits
from hal.backends.sim import SimBackend
from simulators.battery import EvBattery
from simulators.ev import BatteryLink, Evcc, get_scenario
from simulators.ev.client import run_session
from simulators.ev.scenarios import EvTimeouts
from simulators.fleet.cars import StationPlan, Visit

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class StationOptions:
    broker_host: str
    broker_port: int
    speedup: float = 10.0
    power_kw: float = 11.0  # the station's rating, both directions
    loop_interval: float = 0.25  # real seconds between the car's ChargeLoopReqs
    state_interval_s: float = 0.5  # how often the bridge checks the state for changes
    telemetry_interval_s: float = 10.0
    ev_timeout_scale: float = 3.0  # the EV's own timeouts, for a loaded machine
    # The charger's wait for the next ChargeLoopReq (ISO 15118-20: 0.5 s). A real charger has
    # its CPU to itself; here dozens share a core with other jobs, and a process descheduled
    # for half a second would end every session in it, so the bench allows 2 s by default.
    charge_loop_timeout: float = 2.0


class FleetEvcc(Evcc):
    """The simulated EV of a fleet car: it stays plugged in until its departure even when
    it reaches its target SOC (the aggregator may discharge it again), instead of ending the
    session there like the conformance scenarios do."""

    def _loop_stop_reason(self) -> str | None:
        reason = super()._loop_stop_reason()
        if reason != "target_soc":
            return reason
        cfg = self.scenario  # the checks the base class makes after the target's
        if cfg.max_duration is not None and self.sim_time >= cfg.max_duration:
            return "max_duration"
        return None


@dataclass
class StationStats:
    sessions: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def station_config(station_id: str, power_kw: float, charge_loop_timeout: float = 2.0
                   ) -> SeccConfig:
    w = power_kw * 1000.0
    return SeccConfig(
        evse_id=station_id,
        services=(ServiceId.DC, ServiceId.DC_BPT),
        limits=EvseLimits(max_charge_power=w, max_charge_current=w / 300.0, max_voltage=920.0,
                          min_voltage=150.0, max_discharge_power=w,
                          max_discharge_current=w / 300.0),
        allow_plain_tcp_iso20=True,  # loopback inside one machine: a bench, not a car park
        auto_authorize=True,
        schedule_provider=DefaultScheduleProvider(),
        timeouts=Timeouts(charge_loop_sequence=charge_loop_timeout),
    )


def plug(backend: SimBackend, battery: EvBattery) -> None:
    """A new car at the connector: the sim power stage now moves this car's battery."""
    backend.ev_battery = battery
    backend.stage.battery = battery


def visit_scenario(visit: Visit, options: StationOptions) -> Any:
    battery = get_scenario("dc_bpt_dynamic").battery
    from dataclasses import replace

    return get_scenario("dc_bpt_dynamic").replace(
        evcc_id=visit.evcc_id,
        battery=replace(battery, capacity_kwh=visit.capacity_kwh, soc=visit.soc / 100.0),
        target_soc=visit.target_soc, min_soc=visit.min_soc,
        max_loops=None, max_duration=visit.stay_s * options.speedup,
        departure_time=max(1, int(visit.stay_s)),  # real seconds: what the charger's clock sees
        loop_interval=options.loop_interval, speedup=options.speedup,
        timeouts=EvTimeouts().scaled(options.ev_timeout_scale), meter_info_every=0)


async def run_station(plan: StationPlan, options: StationOptions, *, t0: float,
                      stop: asyncio.Event) -> StationStats:
    """Run the station until its last car has left or `stop` is set; `t0` is the run's
    start on the wall clock (time.time())."""
    stats = StationStats()
    backend = SimBackend()
    station = Station.from_backends([backend], speedup=options.speedup)
    config = station_config(plan.station_id, options.power_kw, options.charge_loop_timeout)
    server = SeccServer(config, station,
                        address=HOST, port=0, poll_interval=0.05)
    port = SeccStationPort(server, station_id=plan.station_id, reports_dir=None,
                           control_interval=0.25)
    mqtt = MqttConfig(host=options.broker_host, port=options.broker_port, keepalive=30,
                      reconnect_min_s=0.2, reconnect_max_s=5.0,
                      telemetry_interval_s=options.telemetry_interval_s,
                      state_interval_s=options.state_interval_s)
    bridge = MqttBridge(port, mqtt, plan.station_id)
    port.bridge = bridge
    await server.start()
    port.start()
    bridge.start()
    try:
        for visit in plan.visits:
            delay = t0 + visit.arrive_s - time.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stop.wait()
            if stop.is_set():
                break
            await _one_visit(server, backend, visit, options, stats, stop)
        await bridge.flush(2.0)
    finally:
        await server.close()
        await port.close()
        await bridge.stop()
    return stats


async def _one_visit(server: SeccServer, backend: SimBackend, visit: Visit,
                     options: StationOptions, stats: StationStats, stop: asyncio.Event) -> None:
    scenario = visit_scenario(visit, options)
    battery = scenario.battery.make()
    plug(backend, battery)
    link = BatteryLink(battery, shared=True,
                       on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                            closed))
    loop = asyncio.get_running_loop()
    evcc = FleetEvcc(scenario, battery=link, epoch_offset=time.time() - loop.time())
    assert server.port is not None
    session = asyncio.create_task(run_session(scenario, host=HOST, port=server.port,
                                              evcc=evcc))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not session.done():
        session.cancel()
    stats.sessions += 1
    try:
        report = await session
        reason = report.reason if report.success else f"failed: {report.reason}"
        if not report.success:
            stats.failed += 1
            log.warning("%s: session of %s failed: %s", server.config.evse_id, visit.evcc_id,
                        report.reason)
    except asyncio.CancelledError:
        reason = "run stopped"
    except Exception as exc:  # one car's failure must not end the station
        stats.failed += 1
        reason = f"error: {type(exc).__name__}"
        log.warning("%s: session of %s: %r", server.config.evse_id, visit.evcc_id, exc)
    stats.reasons[reason] = stats.reasons.get(reason, 0) + 1
    for _ in range(100):  # let the charger record the end before the next car plugs in
        if not server.active:
            break
        await asyncio.sleep(0.05)
