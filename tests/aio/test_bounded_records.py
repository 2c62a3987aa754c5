"""What the SECC server keeps in memory stays bounded by count, however many sessions run
(a charger runs for months; the reports on disk keep the detail)."""

from __future__ import annotations

import asyncio
import random

import pytest

from evse.aio.latency import LatencyHistogram
from evse.aio.secc_server import MAX_SAMPLES, SeccServer, SessionSummary, Station, TurnaroundStats
from evse.protocol.session import Session, SessionStore
from hal.backends.sim import SimBackend
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, fast_scenario, running, secc_config


def _summary(i: int) -> SessionSummary:
    s = SessionSummary(connector="1", session_id=f"{i:016X}", evcc_id="WEV", protocol="-20",
                       resumed=False, tls=False, peer="[::1]:1", started_at=float(i))
    for k in range(200):
        s.turnaround_hist.add(1_000_000 + 1000 * k)
        s.add_sample((float(i) + k, 400.0, 10.0, 4000.0))
    return s


def test_a_thousand_sessions_keep_a_bounded_number_of_small_summaries() -> None:
    server = SeccServer(secc_config(), Station.from_backends([SimBackend()]), address=HOST)
    seen: list[int] = []
    server.on_session_end = lambda s: seen.append(len(s.samples))  # the report sees it all
    for i in range(1000):
        server.record_session(_summary(i))
    assert server.sessions_total == 1000 and seen == [200] * 1000
    assert len(server.sessions) == 100
    detailed = [s for s in server.sessions if not s.compacted]
    assert detailed == list(server.sessions)[-4:]
    assert all(s.samples == [] and s.metering_confirmations == []
               for s in list(server.sessions)[:-4])
    assert all(len(s.turnaround_hist.counts) < 64 for s in server.sessions)
    assert server.sessions[0].to_dict()["turnaround_p99_ms"] == pytest.approx(1.2, rel=0.04)


def test_samples_of_a_long_session_are_decimated_not_cut_off() -> None:
    s = SessionSummary(connector="1", session_id="00", evcc_id="", protocol="-20",
                       resumed=False, tls=False, peer="?", started_at=0.0)
    for t in range(10 * MAX_SAMPLES):  # one sample a second, ten times the cap
        if t % round(s.sample_interval) == 0:
            s.add_sample((float(t), 400.0, 1.0, 400.0))
    assert MAX_SAMPLES // 2 <= len(s.samples) <= MAX_SAMPLES
    assert s.samples[0][0] == 0.0 and s.samples[-1][0] > 9 * MAX_SAMPLES  # start to end
    gaps = {b[0] - a[0] for a, b in zip(s.samples, s.samples[1:], strict=False)}
    assert gaps <= {8.0, 16.0}, gaps  # evenly spread, coarser than at the start


def test_turnaround_stats_keep_a_window_and_count_everything() -> None:
    stats = TurnaroundStats(maxlen=1000)
    for ns in range(100_000):
        stats.add(ns, charge_loop=ns % 2 == 0)
    assert len(stats) == 100_000
    assert len(stats.all) == len(stats.loop) == 1000
    assert stats.percentile(50) == pytest.approx(99_500e-9, rel=1e-3)


def test_latency_histogram_is_close_and_bounded() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(14, 1.0)) for _ in range(50_000)]  # ~1 ms, long tail
    hist = LatencyHistogram()
    for v in values:
        hist.add(v)
    ordered = sorted(values)
    for p in (50, 90, 99, 100):
        exact = ordered[max(1, -(-p * len(ordered) // 100)) - 1] / 1e9
        got = hist.percentile(p)
        assert got is not None and exact <= got <= exact * 1.032, (p, exact, got)
    assert len(hist.counts) < 400 and hist.count == 50_000
    assert LatencyHistogram().percentile(50) is None


async def test_real_sessions_compact_all_but_the_latest() -> None:
    async with running(1) as rig:
        rig.server.detailed_sessions_kept = 1
        for i in range(3):
            scenario = fast_scenario("dc", max_loops=3, evcc_id=f"WEVSESTACKSIM000{i}")
            report = await asyncio.wait_for(
                run_session(scenario, host=HOST, port=rig.port, battery=rig.link(0)), 30)
            assert report.success, report.summary()
            await rig.wait_safe(0)
        first, second, last = rig.server.sessions
        assert first.compacted and second.compacted and not last.compacted
        assert last.samples and last.turnaround(99) is not None
        assert first.to_dict()["turnaround_p50_ms"] > 0 and first.requests > 5


# -- paused sessions expire ---------------------------------------------------------------------


def _paused(sid: bytes) -> Session:
    return Session(protocol="urn:iso:std:iso:15118:-20:DC", session_id=sid)


def test_paused_sessions_expire_on_the_callers_clock() -> None:
    store = SessionStore(max_age=60.0)
    store.pause(_paused(b"A" * 8))
    assert store.expire(100.0) == []  # first seen now
    store.pause(_paused(b"B" * 8))
    assert store.expire(130.0) == []
    assert store.expire(160.5) == [b"A" * 8]
    assert b"A" * 8 not in store and b"B" * 8 in store
    assert store.take(b"B" * 8) is not None
    store.pause(_paused(b"B" * 8))  # resumed and paused again: a fresh age
    assert store.expire(200.0) == [] and b"B" * 8 in store
    assert len(store._seen) == 1  # nothing kept for sessions no longer paused


async def test_the_server_expires_paused_sessions() -> None:
    station = Station.from_backends([SimBackend()])
    server = SeccServer(secc_config(), station, address=HOST, paused_session_max_age=0.2,
                        poll_interval=0.01)
    async with server:
        server.store.pause(_paused(b"C" * 8))
        async with asyncio.timeout(10):  # the poll loop looks once a second
            while b"C" * 8 in server.store:
                await asyncio.sleep(0.05)
