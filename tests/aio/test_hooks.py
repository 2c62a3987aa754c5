"""The integration hooks (evse.hooks) awaited by the asyncio layer, in real sessions: a
simulated EV over TCP against SeccServer on the sim HAL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from evse import events as se
from evse.aio.secc_server import SeccServer, Station
from evse.hooks import (
    AuthorizationRequest,
    Authorizer,
    Decision,
    Hooks,
    MeterReading,
    MeterSource,
    SchedulePolicy,
)
from evse.protocol.schedules import ScheduleRequest, Schedules, flat_schedules
from hal.backends.sim import SimBackend
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, SPEEDUP, Rig, fast_scenario, running, secc_config


async def _session(rig: Rig, name: str = "dc", **changes: Any) -> Any:
    scenario = fast_scenario(name, **changes)
    return await asyncio.wait_for(run_session(scenario, host=HOST, port=rig.port,
                                              battery=rig.link(0)), 30)


class SlowBackend:
    """Grants vehicles it knows, after a backend round trip."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.requests: list[AuthorizationRequest] = []

    async def authorize(self, request: AuthorizationRequest) -> Decision:
        self.requests.append(request)
        await asyncio.sleep(0.2)
        if request.evcc_id in self.allowed:
            return Decision(True, id_token="TOKEN-1")
        return Decision(False, reason="unknown vehicle")


async def test_authorizer_protocol_grants_later_or_denies_with_its_reason() -> None:
    backend = SlowBackend({"WEVSESTACKSIM0001"})
    assert isinstance(backend, Authorizer)
    async with running(auto_authorize=False) as rig:
        rig.server.hooks = Hooks(authorizer=backend)
        stream = rig.station.events()
        report = await _session(rig)
        assert report.success, report.summary()
        assert report.request_sequence.count("AuthorizationReq") >= 2  # Ongoing first
        request = backend.requests[0]
        assert request.method == "EIM" and request.connector_id == "1"
        assert request.session_id == rig.server.sessions[-1].session_id
        backend.allowed.clear()
        report = await _session(rig)
        assert not report.success and "authorization refused" in report.reason
        await asyncio.sleep(0.05)
        got = []
        while (e := stream.get_nowait()) is not None:
            got.append(e)
    decisions = [e for e in got if isinstance(e, se.AuthorizationDecided)]
    assert [d.granted for d in decisions] == [True, False]
    assert decisions[1].reason == "unknown vehicle"


async def test_a_failing_authorizer_denies() -> None:
    class Broken:
        async def authorize(self, request: AuthorizationRequest) -> Decision:
            raise RuntimeError("backend down")

    async with running(auto_authorize=False) as rig:
        rig.server.hooks = Hooks(authorizer=Broken())
        report = await _session(rig)
        assert not report.success
        assert rig.server.errors == 0


class SlowPolicy:
    """Half the EVSE's power, answered after a planning delay."""

    def __init__(self) -> None:
        self.requests: list[ScheduleRequest] = []

    async def schedules(self, connector_id: str, request: ScheduleRequest
                        ) -> Schedules | None:
        assert connector_id == "1"
        self.requests.append(request)
        await asyncio.sleep(0.1)
        return flat_schedules(request.now, request.departure_time, request.ev_limits,
                              request.evse_limits, request.bpt)


async def test_schedule_policy_is_awaited_while_the_ev_hears_ongoing() -> None:
    policy = SlowPolicy()
    assert isinstance(policy, SchedulePolicy)
    async with running() as rig:
        rig.server.hooks = Hooks(schedules=policy)
        report = await _session(rig, "dc")
        assert report.success, report.summary()
    assert report.request_sequence.count("ScheduleExchangeReq") >= 2  # Ongoing, then the plan
    assert len(policy.requests) == 1
    assert abs(policy.requests[0].timestamp - time.time()) < 60  # Unix seconds


class OffsetMeter:
    """A meter of one's own: 1 kWh more than the HAL's registers show (to be recognised)."""

    def __init__(self) -> None:
        self.station: Station | None = None
        self.reads = 0

    async def read(self, connector_id: str) -> MeterReading:
        assert self.station is not None
        self.reads += 1
        hal = self.station.connector(connector_id).backend.meter.reading()
        return MeterReading(hal.energy_imported_wh + 1000.0, hal.energy_exported_wh)


async def test_meter_source_feeds_the_secc_meter_info() -> None:
    meter = OffsetMeter()
    assert isinstance(meter, MeterSource)
    station = Station.from_backends([SimBackend()], speedup=SPEEDUP)
    meter.station = station
    server = SeccServer(secc_config(), station, address=HOST, port=0, poll_interval=0.01,
                        hooks=Hooks(meter=meter))
    seen: list[float] = []

    async def watch() -> None:
        while True:
            conn = server.connection("1")
            if conn is not None:
                seen.append(conn.charger.imported_wh)
            await asyncio.sleep(0.01)

    async with server:
        watcher = asyncio.create_task(watch())
        report = await _session(Rig(server, station), "dc")
        watcher.cancel()
    assert report.success
    assert meter.reads > 0
    assert seen and max(seen) >= 1000.0  # what MeterInfo carries: the source's registers
