"""Shared set-up for the SeccServer tests: a station on the sim HAL, fast EV scenarios, an
EV driver that stops before a chosen charge-loop request (to inject faults there), and the
safe-state assertions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from evse.aio.app import supply_limits
from evse.aio.secc_server import SeccServer, Station
from evse.control import check_safe_sequence
from evse.energy.schedule import DefaultScheduleProvider
from evse.protocol.config import SeccConfig, ServiceId
from evse.protocol.iso20.timeouts import Timeouts
from hal.backends.sim import SimBackend
from simulators.ev import BatteryLink, Evcc, EvTimeouts, Failed, Finished, SendData, get_scenario

HOST = "127.0.0.1"
SPEEDUP = 10.0  # the sim HAL runs 10x: cable check, precharge, welding in a fraction of a second
SLACK = EvTimeouts().scaled(4.0)  # a loaded CI machine must not time the EV out
TEST_TIMEOUTS = Timeouts(close_after_session_stop=0.3, charge_loop_sequence=1.0)


def secc_config(**changes: Any) -> SeccConfig:
    base: dict[str, Any] = dict(
        evse_id="DE*EVS*E0000001",
        services=(ServiceId.DC, ServiceId.DC_BPT, ServiceId.AC, ServiceId.AC_BPT),
        limits=supply_limits(SimBackend()),
        allow_plain_tcp_iso20=True,
        auto_authorize=True,
        schedule_provider=DefaultScheduleProvider(discharge_window=(1, 2)),
        timeouts=TEST_TIMEOUTS,
    )
    base.update(changes)
    return SeccConfig(**base)


def fast_scenario(name: str, **changes: Any) -> Any:
    """The scenario with quick pacing; BPT schedules run 2 s of charge loop so that the
    SECC's discharge window (1-2 s after ScheduleExchange) falls inside it."""
    base = get_scenario(name)
    kw: dict[str, Any] = dict(loop_interval=0.02, ongoing_interval=0.01,
                              precharge_interval=0.01, timeouts=SLACK, speedup=SPEEDUP,
                              pause_duration=0.05)
    if base.service.is_bpt:
        kw.update(loop_interval=0.05, max_loops=44)
    kw.update(changes)
    return base.replace(**kw)


class Rig:
    """A running SeccServer on loopback with `n` sim connectors (battery shared per EV)."""

    def __init__(self, server: SeccServer, station: Station) -> None:
        self.server = server
        self.station = station

    @property
    def port(self) -> int:
        port = self.server.port if self.server.port is not None else self.server.tls_port
        assert port is not None
        return port

    def connector(self, i: int = 0) -> Any:
        return self.station.connectors[i]

    def link(self, i: int = 0, *, dc: bool = True) -> BatteryLink:
        """The EV's view of connector i's battery: shared for DC (the power stage moves it),
        stepped by the EV itself for AC (the on-board charger is the EV's)."""
        backend = self.connector(i).backend
        if not dc:
            return BatteryLink(backend.ev_battery, shared=False)
        return BatteryLink(backend.ev_battery, shared=True,
                           on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                                closed))

    async def wait_safe(self, i: int = 0, timeout: float = 3.0) -> None:
        """Until connector i's power stage is in the safe state and free again."""
        c = self.connector(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if c.controller.safe_state_reached and not c.busy:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"connector {c.id} not safe/free: {c.controller.status()}, "
                             f"busy={c.busy}, actions={list(c.controller.actions)[-8:]}")


@contextlib.asynccontextmanager
async def running(n: int = 1, *, tls: Any = None, plain: bool = True, speedup: float = SPEEDUP,
                  authorize: Any = None, **config: Any) -> AsyncIterator[Rig]:
    station = Station.from_backends([SimBackend() for _ in range(n)], speedup=speedup)
    server = SeccServer(secc_config(**config), station, address=HOST,
                        port=0 if plain else None, tls=tls, tls_port=0, poll_interval=0.01,
                        authorize=authorize)
    await server.start()
    try:
        yield Rig(server, station)
    finally:
        await server.close()


def assert_safe_sequence(rig: Rig, i: int = 0) -> None:
    """Current zero before every contactor opening, and the stage is safe now."""
    ctl = rig.connector(i).controller
    actions = list(ctl.actions)
    problem = check_safe_sequence(actions)
    assert problem is None, (problem, actions)
    assert ctl.safe_state_reached, ctl.status()
    names = [a.name for a in actions]
    if "contactors_close" in names:
        last_close = len(names) - 1 - names[::-1].index("contactors_close")
        after = names[last_close:]
        openings = [k for k, name in enumerate(after) if name.startswith("contactors_open")]
        assert openings, after
        opening = openings[0]
        zero = [k for k, name in enumerate(after) if name in ("current_zero", "supply_off")]
        assert zero and zero[0] < opening, after


async def ev_until_loop(rig: Rig, scenario: Any, loops: int, link: Any
                        ) -> tuple[Evcc, asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Run the EV over TCP until its charge-loop request number `loops + 1` is due; return
    that request's bytes unsent (the caller injects a fault instead)."""
    loop = asyncio.get_running_loop()
    evcc = Evcc(scenario, battery=link, epoch_offset=time.time() - loop.time())
    reader, writer = await asyncio.open_connection(HOST, rig.port)
    writer.write(evcc.start(loop.time()))
    while True:
        deadline = evcc.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            data = await asyncio.wait_for(reader.read(65536), timeout)
        except TimeoutError:
            effects = evcc.handle_timeout(loop.time())
        else:
            assert data, f"the SECC closed the connection in {evcc.state}"
            effects = evcc.receive_data(data, loop.time())
        for e in effects:
            if isinstance(e, SendData):
                if e.message.endswith("ChargeLoopReq") and evcc.loops >= loops:
                    return evcc, reader, writer, e.data
                writer.write(e.data)
            elif isinstance(e, (Finished, Failed)):
                raise AssertionError(f"EV ended early: {e}")


async def read_until_eof(reader: asyncio.StreamReader, timeout: float = 3.0) -> bytes:
    """Everything the SECC still sends until it closes the connection."""
    out = bytearray()
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                out += chunk
    return bytes(out)
