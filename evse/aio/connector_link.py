"""The pilot lifecycle and SLAC wired into a connector of the SECC (docs/link.md, "Wiring").

    wiring = ConnectorWiring(connector, server, LinkSpec(interface="plc0", modem="qca7000"))
    await wiring.start()            # raw socket on plc0, SlacLink, ConnectorLink, event loop
    ...
    await wiring.close()

Per connector: a frame transport on the connector's modem interface (an AF_PACKET raw socket,
or a given transport such as an in-process port), the modem (a QCA7000-class modem needs
nothing here; a simulated one is loaded by name from the `evse.plc_modems` entry points, so
the charger never imports `simulators`), `SlacLink` and `ConnectorLink` on the connector's
board. The lifecycle's effects go to the connector:

- `SessionAllowed("hlc")`: a V2G connection on this connector's link may take it
  (`session_allowed`, asked by `evse.aio.listeners.connector_for_listener`);
- `EnergyAllowed(False)` (the car went back to B): current to zero first, then the
  contactors (the controller's safe state), and the session is asked to stop;
  `controller.energy_permitted` keeps any current at zero outside C/D;
- `EndSession` (unplug, pilot fault): the V2G connection ends now (safe state first);
- `SafeState`: the controller's safe state;
- `LinkEvent`: a log line "connector N: pilot ..." and `events` (bounded) for status/MQTT.

`times` (plugged_at, slac_matched_at, unplugged_at) goes into the session summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from evse import events as se
from evse.aio.slac_link import ConnectorLink, FrameTransport, RawSocketTransport, SlacLink
from evse.aio.tasks import cancel_task
from evse.link import pilot as pl
from evse.link.slac import SlacConfig

if TYPE_CHECKING:
    from evse.aio.secc_server import Connector, SeccServer

log = logging.getLogger("evse.link")

MODEM_ENTRY_POINTS = "evse.plc_modems"
MODEMS = ("qca7000", "simulated")
EVENTS_KEPT = 64

# name -> wrap(host transport) -> transport with the modem in between
ModemFactory = Callable[[FrameTransport], FrameTransport]
_modems: dict[str, ModemFactory] = {}


def register_modem(name: str, factory: ModemFactory) -> None:
    """A charger-side modem simulation by name (tests, the demo); else the entry points."""
    _modems[name] = factory


def modem_factory(name: str) -> ModemFactory | None:
    """None for a real modem (qca7000: the frames go straight to the NIC)."""
    if name == "qca7000":
        return None
    if name in _modems:
        return _modems[name]
    for ep in entry_points(group=MODEM_ENTRY_POINTS):
        if ep.name == name:
            factory: ModemFactory = ep.load()
            return factory
    raise ValueError(f"no PLC modem {name!r} (known: qca7000, and the '{MODEM_ENTRY_POINTS}' "
                     "entry points)")


@dataclass(frozen=True, slots=True)
class LinkSpec:
    interface: str | None = None  # the modem's NIC; None: `transport` must be given
    modem: str = "qca7000"
    pilot: pl.PilotConfig = pl.PilotConfig()
    slac: dict[str, Any] | None = None  # SlacConfig overrides (timings for loaded test rigs)
    poll_interval: float = 0.05


class ConnectorWiring:
    """One connector's link: pilot + SLAC -> controller and V2G session."""

    def __init__(self, connector: Connector, server: SeccServer, spec: LinkSpec, *,
                 transport: FrameTransport | None = None) -> None:
        self.connector = connector
        self.server = server
        self.spec = spec
        self._transport = transport
        self.slac: SlacLink | None = None
        self.link: ConnectorLink | None = None
        self.events: deque[pl.LinkEvent] = deque(maxlen=EVENTS_KEPT)
        self._task: asyncio.Task[None] | None = None
        self.in_service = True  # set_in_service
        connector.interface = spec.interface
        connector.link = self

    # -- what the server and the controller ask ---------------------------------------------
    @property
    def session_allowed(self) -> bool:
        """A V2G connection may take the connector: SLAC matched on this link (and the car
        is still plugged in, no pilot fault)."""
        return self.link is not None and self.link.pilot.phase is pl.Phase.MATCHED

    @property
    def times(self) -> pl.PlugTimes:
        return self.link.pilot.times if self.link is not None else pl.PlugTimes()

    def energy_permitted(self) -> bool:
        return self.link is not None and self.link.pilot.energy

    def set_current_limit(self, amps: float) -> None:
        """The energy policy's AC limit (basic charging: the nominal duty follows it)."""
        if self.link is not None:
            self.link.set_current_limit(amps)

    def set_in_service(self, in_service: bool) -> None:
        """Out of service: a car plugging in gets no PWM and no SLAC (evse/link/pilot.py)."""
        self.in_service = in_service
        if self.link is not None:
            self.link.set_in_service(in_service)

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        transport = self._transport
        if self.spec.pilot.digital_communication:
            if transport is None:
                if self.spec.interface is None:
                    raise ValueError("a link needs its modem interface or a transport")
                transport = RawSocketTransport(self.spec.interface)
            wrap = modem_factory(self.spec.modem)
            host = wrap(transport) if wrap is not None else transport
            config = SlacConfig(evse_mac=host.mac, **(self.spec.slac or {}))
            self.slac = SlacLink(host, config)
            await self.slac.__aenter__()
        self.link = ConnectorLink(self.connector.backend.board, self.slac, self.spec.pilot,
                                  poll_interval=self.spec.poll_interval)
        self.link.pilot.in_service = self.in_service  # before the first pilot reading
        await self.link.__aenter__()
        self.connector.controller.energy_permitted = self.energy_permitted
        self._task = asyncio.create_task(self._run(), name=f"link-{self.connector.id}")
        log.info("connector %s: pilot and %s on %s (modem %s)", self.connector.id,
                 "SLAC" if self.slac is not None else "basic charging only",
                 self.spec.interface or "an in-process link", self.spec.modem)

    async def close(self) -> None:
        await cancel_task(self._task)
        self._task = None
        if self.link is not None:
            await self.link.__aexit__(None, None, None)
        if self.slac is not None:
            await self.slac.aclose()
        self.connector.controller.energy_permitted = None

    async def _run(self) -> None:
        assert self.link is not None
        while True:
            effect = await self.link.events.get()
            try:
                self.apply(effect)
            except Exception:  # the link must outlive a failing effect: safe state, go on
                log.exception("connector %s: link effect %r failed", self.connector.id, effect)
                self._safe_state(f"link effect failed: {effect!r}")

    # -- effects ----------------------------------------------------------------------------
    def apply(self, effect: pl.PilotEffect) -> None:
        cid = self.connector.id
        if isinstance(effect, pl.LinkEvent):
            self.events.append(effect)
            log.info("connector %s: pilot %s%s", cid, effect.name,
                     f" ({effect.detail})" if effect.detail else "")
            # the integrators' session event stream (evse.events) gets plug and unplug
            if effect.name == "plugged":
                self.server.station.bus.publish(se.Plugged(cid, time.time()))
            elif effect.name == "unplugged":
                self.server.station.bus.publish(se.Unplugged(cid, time.time()))
        elif isinstance(effect, pl.SessionAllowed):
            log.info("connector %s: %s session allowed", cid,
                     "V2G" if effect.mode == "hlc" else "basic charging")
        elif isinstance(effect, pl.EnergyAllowed):
            if not effect.allowed:  # current to zero first, then the contactors
                self._safe_state(effect.reason)
                self.server.stop_session(cid, f"pilot: {effect.reason}")
        elif isinstance(effect, pl.EndSession):
            handler = self.connector.handler
            if handler is not None:
                summary = handler.summary
                if summary is not None:  # the unplug time is the session's end
                    summary.unplugged_at = self.times.unplugged_at
                self._safe_state(effect.reason)
                handler.shutdown(f"pilot: {effect.reason}")
            else:  # the session ended before the unplug: its summary gets the unplug time
                self._stamp_unplug()
        elif isinstance(effect, pl.SafeState):
            self._safe_state(effect.reason)

    def _stamp_unplug(self) -> None:
        times = self.times
        if times.unplugged_at is None or times.plugged_at is None:
            return
        for summary in reversed(self.server.sessions):
            if summary.connector != self.connector.id:
                continue
            if summary.unplugged_at is None and summary.plugged_at == times.plugged_at:
                summary.unplugged_at = times.unplugged_at
            return

    def _safe_state(self, reason: str) -> None:
        loop_now = asyncio.get_running_loop().time()
        self.connector.controller.safe_state(f"pilot: {reason}",
                                             self.server.station.hal_time(loop_now))


def notify_current_limit(server: SeccServer, connector_id: str, amps: float) -> None:
    """The energy policy changed a connector's charge current limit: in basic AC charging the
    pilot's nominal duty follows it (a connector without a link: nothing to do)."""
    wiring = server.station.connector(connector_id).link
    if isinstance(wiring, ConnectorWiring):
        wiring.set_current_limit(amps)


# -- `evse secc`: which connectors get a link --------------------------------------------------


def link_specs(station: Any, station_cfg: Any, interface: str | None) -> list[LinkSpec | None]:
    """Per connector, its link (None: none, the V2G session is not gated by the pilot).

    A `[[connectors]]` entry with `interface` gets a link on it (`modem`, pilot options from
    the entry; `plugged = true` plugs the sim board's car in). Without one, a sim board
    started with a car plugged in (`--hal sim:plugged`) gets a link on `interface` with a
    simulated modem, so a car on that link pairs by SLAC before its session. Sets
    `Connector.interface` (the server opens listeners and SDP per interface)."""
    entries = {c.id: c for c in station_cfg.connectors} if station_cfg is not None else {}
    out: list[LinkSpec | None] = []
    for connector in station.connectors:
        entry = entries.get(connector.id)
        board = connector.backend.board
        if entry is not None and entry.plugged:
            plug = getattr(board, "plug_car", None)
            if plug is None:
                raise ValueError(f"connector {connector.id}: plugged = true needs the sim board")
            plug()
        spec: LinkSpec | None = None
        if entry is not None and entry.interface is not None:
            spec = LinkSpec(entry.interface, entry.modem, pl.PilotConfig(
                digital_communication=entry.digital_communication,
                basic_charging_fallback=entry.basic_charging_fallback))
        elif getattr(board, "car_plugged", False) and interface is not None:
            if len(station.connectors) > 1:
                raise ValueError("sim:plugged without [[connectors]] interface: one connector "
                                 "only (each link needs its own interface)")
            spec = LinkSpec(interface, "simulated")
        if spec is not None:
            connector.interface = spec.interface
        out.append(spec)
    return out


async def start_links(server: SeccServer, specs: list[LinkSpec | None]) -> list[ConnectorWiring]:
    wirings: list[ConnectorWiring] = []
    try:
        for connector, spec in zip(server.station.connectors, specs, strict=True):
            if spec is None:
                continue
            wiring = ConnectorWiring(connector, server, spec)
            await wiring.start()
            wirings.append(wiring)
    except BaseException:
        await close_links(wirings)
        raise
    return wirings


async def close_links(wirings: list[ConnectorWiring]) -> None:
    for wiring in wirings:
        with contextlib.suppress(Exception):
            await wiring.close()


def describe_links(wirings: list[ConnectorWiring]) -> str:
    return "; ".join(f"connector {w.connector.id} on {w.spec.interface} (modem {w.spec.modem}, "
                     f"{'SLAC' if w.spec.pilot.digital_communication else 'basic charging'})"
                     for w in wirings)
