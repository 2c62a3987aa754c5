"""The server publishes the session event stream (evse.events) from a real session: a simulated
EV over TCP against SeccServer on the sim HAL."""

from __future__ import annotations

import asyncio
from typing import Any

from evse import events as se
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, Rig, fast_scenario, running


async def _session(rig: Rig, name: str, **changes: Any) -> Any:
    scenario = fast_scenario(name, **changes)
    link = rig.link(0, dc=scenario.service.is_dc)
    return await asyncio.wait_for(
        run_session(scenario, host=HOST, port=rig.port, battery=link), 30)


async def _collect(stream: se.Subscription, until: type, timeout: float = 10.0
                   ) -> list[se.SessionEvent]:
    got: list[se.SessionEvent] = []

    async def run() -> None:
        async for event in stream:
            got.append(event)
            if isinstance(event, until):
                return

    await asyncio.wait_for(run(), timeout)
    return got


async def test_a_dc_session_publishes_its_lifecycle_in_order() -> None:
    async with running(auto_authorize=False, authorize=lambda r, c: True) as rig:
        rig.station.bus.measurement_interval = 0.0  # every reading (a short session)
        stream = rig.station.events(measurements_max=100_000)  # read after the session
        report = await _session(rig, "dc", max_loops=20)
        assert report.success
        got = await _collect(stream, se.SessionEnded)
    kinds = [type(e) for e in got if not isinstance(e, (se.Measurement, se.EventsDropped))]
    assert kinds[:4] == [se.SessionStarted, se.AuthorizationRequested,
                         se.AuthorizationDecided, se.ServiceSelected], kinds
    assert kinds[-1] is se.SessionEnded
    assert kinds[4] is se.ScheduleSent  # ScheduleExchange follows the service selection
    sent = next(e for e in got if isinstance(e, se.ScheduleSent))
    assert sent.schedule is not None and sent.schedule.charging  # the Schedules handed over
    started = got[0]
    assert isinstance(started, se.SessionStarted)
    assert started.evcc_id == "WEVSESTACKSIM0001" and not started.resumed
    assert all(e.connector_id == "1" for e in got)
    assert all(getattr(e, "session_id", started.session_id) == started.session_id
               for e in got if not isinstance(e, se.EventsDropped))
    decided = next(e for e in got if isinstance(e, se.AuthorizationDecided))
    assert decided.granted
    measurements = [e for e in got if isinstance(e, se.Measurement)]
    assert measurements and max(e.power_w for e in measurements) > 0
    assert measurements[-1].energy_in_wh is not None and measurements[-1].energy_in_wh > 0
    ended = got[-1]
    assert isinstance(ended, se.SessionEnded) and not ended.failed
    assert ended.summary is rig.server.sessions[-1]
    assert ended.summary.energy_in_wh > 0
    ats = [e.at for e in got]
    assert ats == sorted(ats)


async def test_pause_and_resume_are_events() -> None:
    async with running() as rig:
        stream = rig.station.events("1")
        report = await _session(rig, "pause_resume")
        assert report.success
        got = await _collect(stream, se.SessionEnded)  # the paused one
        got += await _collect(stream, se.SessionEnded)  # the resumed one
    kinds = [type(e) for e in got]
    assert se.SessionPaused in kinds and se.SessionResumed in kinds
    assert kinds.index(se.SessionPaused) < kinds.index(se.SessionResumed)
    resumed = next(e for e in got if isinstance(e, se.SessionStarted) and e.resumed)
    first = next(e for e in got if isinstance(e, se.SessionStarted))
    assert resumed.session_id == first.session_id


async def test_denied_authorization_is_a_decision_and_a_fault() -> None:
    async with running(auto_authorize=False, authorize=lambda r, c: False) as rig:
        stream = rig.station.events()
        report = await _session(rig, "dc")
        assert not report.success
        got = await _collect(stream, se.SessionEnded)
    decided = next(e for e in got if isinstance(e, se.AuthorizationDecided))
    assert not decided.granted
    assert any(isinstance(e, se.Fault) for e in got)
    assert isinstance(got[-1], se.SessionEnded) and got[-1].failed


async def test_consumers_that_never_read_do_not_stop_the_session() -> None:
    async with running() as rig:
        rig.station.bus.measurement_interval = 0.0
        lagging = rig.station.events(measurements_max=2)  # loses measurements only
        overflowing = rig.station.events(measurements_max=2, lifecycle_max=2)
        report = await _session(rig, "dc", max_loops=30)
        assert report.success
        await asyncio.sleep(0.05)
        lagging.close()
        kept = [e async for e in lagging]
        cut = [e async for e in overflowing]  # what it got: then the overflow notice ends it
    drops = [e for e in kept if isinstance(e, se.EventsDropped)]
    assert drops and drops[0].count == lagging.dropped_total > 0
    assert [type(e) for e in kept if isinstance(e, (se.SessionStarted, se.SessionEnded))] == [
        se.SessionStarted, se.SessionEnded]  # every lifecycle event is still there
    lifecycle = [e for e in cut if not isinstance(e, (se.Measurement, se.EventsDropped))]
    assert len(lifecycle) == 3 and isinstance(lifecycle[-1], se.ConsumerOverflow)
    assert lifecycle[-1].lost > 0 and cut[-1] is lifecycle[-1]
    assert rig.server.errors == 0
