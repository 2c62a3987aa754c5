"""Energy management for `evse secc`: station port, MQTT bridge, reports, SIL grid outage.

    energy = EnergyRuntime.for_secc(server, station_cfg, options, reports_dir)  # before start
    await server.start()
    await energy.start()
    ...
    await energy.stop()          # bridge offline, control task ended, reports flushed
    await server.close()

- `[tariffs]` (a daily profile, anchored to local midnight) is every connector's price curve
  until an MQTT `prices` command replaces it; `[energy]` is the policy. With a config file
  (and no `--discharge-window`) ScheduleExchange is planned by the optimizer
  (evse.energy.provider); without one the charger keeps the simple DefaultScheduleProvider.
- `[mqtt]` starts the bridge; `mqtt.authorization = "mqtt"` makes EIM sessions wait for the
  `authorize` command.
- Reports (`--reports DIR` or `[reports]`): JSON + SVG per session with the money summary;
  each is announced on stdout ("evse secc: session report ...").
- `--grid-outage AFTER_S[:HOME_KW]` (SIL): the grid goes down AFTER_S seconds after start
  with a house load of HOME_KW (default 3 kW): Dynamic BPT sessions supply it (V2H).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from evse.aio.station_port import SeccStationPort
from evse.energy.prices import PriceCurve
from evse.energy.provider import EnergyPolicy

if TYPE_CHECKING:
    from evse.aio.app import SeccOptions
    from evse.aio.secc_server import SeccServer
    from evse.config import StationConfig

__all__ = ["EnergyRuntime", "local_midnight", "tariff_prices"]

log = logging.getLogger(__name__)

DEFAULT_HOME_LOAD_KW = 3.0


def local_midnight(t: float) -> float:
    """The Unix time of the local midnight starting the day of `t`."""
    tm = time.localtime(t)
    return time.mktime((tm.tm_year, tm.tm_mon, tm.tm_mday, 0, 0, 0, 0, 0, -1))


def tariff_prices(tariffs: Any) -> Any:
    """A price source for SeccStationPort from an `evse.config.TariffConfig`: the daily
    profile from yesterday's local midnight for three days (a departure after midnight
    still has prices), re-anchored at every new connection."""
    if len(tariffs.buy) == 1 and len(tariffs.sell) == 1:
        return PriceCurve.flat(tariffs.buy[0], tariffs.sell[0], currency=tariffs.currency)

    def source(now: float) -> PriceCurve:
        curve: PriceCurve = tariffs.curve(local_midnight(now) - 86400.0, days=3)
        return curve

    return source


class EnergyRuntime:
    def __init__(self, port: SeccStationPort, *, bridge: Any = None,
                 grid_outage: tuple[float, float] | None = None) -> None:
        self.port = port
        self.bridge = bridge
        self.grid_outage = grid_outage
        self._outage_handle: asyncio.TimerHandle | None = None
        if bridge is not None:
            port.bridge = bridge

    @classmethod
    def for_secc(cls, server: SeccServer, station_cfg: StationConfig | None,
                 options: SeccOptions, reports_dir: Path | str | None,
                 out: TextIO | None = None) -> EnergyRuntime:
        from evse.config import EnergyConfig, TariffConfig

        out = out or sys.stdout
        energy = station_cfg.energy if station_cfg is not None else EnergyConfig()
        tariffs = station_cfg.tariffs if station_cfg is not None else TariffConfig()
        mqtt = station_cfg.mqtt if station_cfg is not None else None
        plan = station_cfg is not None and options.discharge_window is None
        svg = station_cfg.reports.svg if station_cfg is not None else True

        def announce(paths: Any) -> None:
            extra = f" (+ {paths.svg.name})" if paths.svg is not None else ""
            print(f"evse secc: session report {paths.json}{extra}", file=out, flush=True)

        port = SeccStationPort(
            server, station_id=server.config.evse_id, policy=EnergyPolicy.from_config(energy),
            prices=tariff_prices(tariffs), plan_schedules=plan,
            mqtt_authorization=bool(mqtt is not None and mqtt.authorization == "mqtt"),
            reports_dir=reports_dir, report_svg=svg, on_report=announce)
        bridge = None
        if mqtt is not None and station_cfg is not None:  # [mqtt] comes from the file
            from evse.aio.mqtt_bridge import MqttBridge

            bridge = MqttBridge(port, mqtt, station_cfg.station_id)
        outage = options.extra.get("grid_outage")
        return cls(port, bridge=bridge, grid_outage=outage)

    async def start(self) -> None:
        self.port.start()
        if self.bridge is not None:
            self.bridge.start()
        if self.grid_outage is not None:
            after, kw = self.grid_outage
            loop = asyncio.get_running_loop()
            self._outage_handle = loop.call_later(after, self.port.set_outage, True, kw * 1000.0)
            log.info("SIL: grid outage in %.0f s (home load %.1f kW)", after, kw)

    async def stop(self) -> None:
        if self._outage_handle is not None:
            self._outage_handle.cancel()
        await self.port.close()  # reports of the sessions that just ended are written
        if self.bridge is not None:
            await self.bridge.flush(1.0)  # their session_stopped events
            await self.bridge.stop()
