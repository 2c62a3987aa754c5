"""The session event bus (evse.events): ordering, back-pressure, drop notices, overflow."""

from __future__ import annotations

import asyncio

import pytest

from evse.aio.session_records import SessionSummary
from evse.events import (
    ConsumerOverflow,
    EventBus,
    EventsDropped,
    Measurement,
    SessionEnded,
    SessionEvent,
    SessionStarted,
)


def started(n: int, connector: str = "1") -> SessionStarted:
    return SessionStarted(connector, float(n), f"S{n}", "urn:test", "EV")


def ended(session_id: str, at: float) -> SessionEnded:
    summary = SessionSummary("1", session_id, "EV", "urn:test", False, False, "peer", 0.0)
    return SessionEnded("1", at, session_id, "done", False, False, summary)


def measurement(at: float, connector: str = "1", power: float = 1.0) -> Measurement:
    return Measurement(connector, at, "S", 400.0, power / 400.0, power)


def drain(bus_sub: object) -> list[SessionEvent]:
    out = []
    while (e := bus_sub.get_nowait()) is not None:  # type: ignore[attr-defined]
        out.append(e)
    return out


def test_publish_order_kept_across_both_queues() -> None:
    bus = EventBus(measurement_interval=0.0, clock=lambda: 99.0)
    sub = bus.subscribe()
    bus.publish(started(1))
    bus.publish(measurement(2.0))
    bus.publish(ended("S1", 3.0))
    got = drain(sub)
    assert [type(e) for e in got] == [SessionStarted, Measurement, SessionEnded]


def test_measurements_rate_limited_per_connector() -> None:
    bus = EventBus(measurement_interval=1.0)
    sub = bus.subscribe(measurements_max=64)
    for i in range(20):  # 10 s of readings every 0.5 s on two connectors
        bus.publish(measurement(i * 0.5, "1"))
        bus.publish(measurement(i * 0.5, "2"))
    got = drain(sub)
    assert len([e for e in got if e.connector_id == "1"]) == 10
    assert len([e for e in got if e.connector_id == "2"]) == 10


def test_slow_consumer_drops_measurements_only_and_is_told() -> None:
    bus = EventBus(measurement_interval=0.0, clock=lambda: 1234.0)
    slow = bus.subscribe(measurements_max=4)
    fast = bus.subscribe(measurements_max=4)
    seen_fast: list[SessionEvent] = []
    bus.publish(started(0))
    for i in range(100):
        bus.publish(measurement(float(i), power=float(i)))
        seen_fast += drain(fast)
    bus.publish(ended("S0", 200.0))
    seen_fast += drain(fast)
    assert len([e for e in seen_fast if isinstance(e, Measurement)]) == 100
    got = drain(slow)
    drops = [e for e in got if isinstance(e, EventsDropped)]
    assert drops == [EventsDropped("1", 1234.0, 96)]
    assert got[0] == drops[0]  # told first, before what is left
    kept = [e.power_w for e in got if isinstance(e, Measurement)]
    assert kept == [96.0, 97.0, 98.0, 99.0]  # the freshest readings are kept
    # lifecycle events are never dropped
    assert [type(e) for e in got if not isinstance(e, (Measurement, EventsDropped))] == [
        SessionStarted, SessionEnded]
    assert slow.dropped_total == 96


def test_lifecycle_overflow_disconnects_with_notice() -> None:
    bus = EventBus(clock=lambda: 5.0)
    sub = bus.subscribe(lifecycle_max=3)
    for i in range(10):
        bus.publish(started(i))
    got = drain(sub)
    assert bus.subscribers == 0
    assert [e.session_id for e in got[:3]] == ["S0", "S1", "S2"]  # type: ignore[union-attr]
    assert got[3:] == [ConsumerOverflow("", 5.0, 7)]
    assert sub.closed


def test_connector_filter() -> None:
    bus = EventBus()
    sub = bus.subscribe("2")
    bus.publish(started(1, "1"))
    bus.publish(started(2, "2"))
    assert [e.connector_id for e in drain(sub)] == ["2"]


def test_publish_without_subscribers_is_free() -> None:
    bus = EventBus()
    assert not bus.wants_measurement("1", 0.0)
    bus.publish(started(1))
    assert bus.published == 0


def test_async_iteration_and_close() -> None:
    async def main() -> list[SessionEvent]:
        bus = EventBus(measurement_interval=0.0)
        got: list[SessionEvent] = []

        async def consume() -> None:
            async with bus.subscribe() as stream:
                async for event in stream:
                    got.append(event)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        bus.publish(started(1))
        await asyncio.sleep(0)
        bus.publish(measurement(1.0))
        bus.close()
        await asyncio.wait_for(task, 5.0)
        return got

    got = asyncio.run(main())
    assert [type(e) for e in got] == [SessionStarted, Measurement]


def test_callbacks_sync_and_async_and_a_failing_one() -> None:
    async def main() -> tuple[list[str], list[str]]:
        bus = EventBus()
        plain: list[str] = []
        coro: list[str] = []

        def on_plain(event: SessionEvent) -> None:
            if isinstance(event, SessionStarted) and event.session_id == "S1":
                raise RuntimeError("consumer bug")
            plain.append(str(getattr(event, "session_id", "")))

        async def on_coro(event: SessionEvent) -> None:
            await asyncio.sleep(0)
            coro.append(str(getattr(event, "session_id", "")))

        h1, h2 = bus.on_event(on_plain), bus.on_event(on_coro)
        for i in range(3):
            bus.publish(started(i))
        bus.close()
        await asyncio.wait_for(asyncio.gather(h1.task, h2.task), 5.0)
        return plain, coro

    plain, coro = asyncio.run(main())
    assert plain == ["S0", "S2"]
    assert coro == ["S0", "S1", "S2"]


@pytest.mark.parametrize("size", [0, -1])
def test_bad_queue_sizes(size: int) -> None:
    with pytest.raises(ValueError):
        EventBus().subscribe(measurements_max=size)
