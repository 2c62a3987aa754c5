"""The MQTT bridge against a real mosquitto broker (see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from evse._mqtt_api import Topics
from evse.aio.mqtt_bridge import MqttBridge
from tests.mqtt.conftest import Broker
from tests.mqtt.fakes import FakeStation
from tests.mqtt.helpers import Inbox, aggregator, bridge_config

ROOT = Path(__file__).resolve().parents[2]
STATION = "st1"
T = Topics(STATION)


@pytest.fixture
def station() -> FakeStation:
    return FakeStation(("1", "2"))


@pytest.fixture
async def bridge(broker: Broker, station: FakeStation) -> AsyncIterator[MqttBridge]:
    b = MqttBridge(station, bridge_config(broker.host, broker.port), STATION,
                   client_id="bridge-under-test")
    b.start()
    await asyncio.wait_for(b.connected.wait(), 5)
    yield b
    await b.stop()


@pytest.fixture
async def agg(broker: Broker, bridge: MqttBridge) -> AsyncIterator[Inbox]:
    async with aggregator(broker.host, broker.port, f"{T.base}/#") as inbox:
        await inbox.wait_for(T.availability, lambda r: r.payload == b"online")
        yield inbox


async def test_setpoints_arrive_in_order_and_are_acknowledged(
        agg: Inbox, station: FakeStation) -> None:
    topic = T.command("1", "setpoint")
    for rid, kw in (("a", 7.0), ("b", -5.5), ("c", 3.2)):
        await agg.send(topic, {"request_id": rid, "power_kw": kw})
    replies = [await agg.wait_for(T.reply("1", "setpoint"),
                                  lambda r, rid=rid: r.json()["request_id"] == rid)
               for rid in ("a", "b", "c")]
    assert [r.json() for r in replies] == [
        {"request_id": rid, "ok": True, "error": None} for rid in ("a", "b", "c")]
    assert station.calls == [("setpoint", "1", 7000.0), ("setpoint", "1", -5500.0),
                             ("setpoint", "1", 3200.0)]
    # The state follows (retained) with the new setpoint.
    state = await agg.wait_for(T.state("1"), lambda r: r.json()["setpoint_kw"] == 3.2)
    assert state.json()["control_mode"] == "Dynamic"


async def test_eim_authorization(agg: Inbox, station: FakeStation) -> None:
    ok = await agg.request(T.command("2", "authorize"),
                           {"request_id": 1, "id_token": "DE-ABC-123", "granted": True})
    assert ok == {"request_id": 1, "ok": True, "error": None}
    deny = await agg.request(T.command("2", "authorize"),
                             {"request_id": 2, "id_token": "DE-ABC-999", "granted": False})
    assert deny["ok"] is True
    assert station.calls == [("authorize", "2", "DE-ABC-123", True),
                             ("authorize", "2", "DE-ABC-999", False)]


@pytest.mark.parametrize(("name", "payload", "expected"), [
    ("setpoint", b"{not json", "payload: not valid JSON"),
    ("setpoint", b"[1, 2]", "payload: must be a JSON object"),
    ("dance", {"request_id": "x"}, "unknown command 'dance'"),
    ("setpoint", {"request_id": "x", "power_kw": 50}, "power_kw: 50 out of range [-11, 11]"),
    ("setpoint", {"request_id": "x", "power_kw": -12}, "power_kw: -12 out of range"),
    ("setpoint", {"request_id": "x", "power_kw": "7"}, "power_kw: must be a number"),
    ("setpoint", {"request_id": "x"}, "power_kw: missing"),
    ("setpoint", {"request_id": "x", "power_kw": 1, "speed": 2}, "speed: unexpected field"),
    ("setpoint", {"power_kw": 1}, "request_id: missing"),
    ("authorize", {"request_id": "x", "id_token": "t", "granted": "yes"},
     "granted: must be true or false"),
    ("limits", {"request_id": "x", "max_charge_power_kw": 22}, "above the rated 11 kW"),
    ("prices", {"request_id": "x", "buy": 0.3}, "sell: missing"),
    # hostile input (issue 11): clear errors, never "internal error"
    ("prices", {"request_id": "x", "buy": 1e150, "sell": 1e150}, "buy: 1e+150 out of range"),
    ("setpoint", b'{"power_kw": ' + b"9" * 5000 + b"}", "payload: a number has too many digits"),
    ("setpoint", b"[" * 100_000 + b"]" * 100_000, "payload: nested too deeply"),
    ("setpoint", b" " * (1024 * 1024), "payload: too large (1048576 bytes"),
])
async def test_bad_commands_get_an_error_reply_and_change_nothing(
        agg: Inbox, station: FakeStation, name: str, payload: object, expected: str) -> None:
    topic = T.command("1", name)
    start = len(agg.messages)
    await agg.send(topic, payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    reply = (await agg.wait_for(T.reply("1", name), start=start)).json()
    assert reply["ok"] is False
    assert expected in reply["error"] and "internal error" not in reply["error"]
    if isinstance(payload, dict) and "request_id" in payload:
        assert reply["request_id"] == payload["request_id"]
    else:
        assert reply["request_id"] is None
    assert station.calls == []
    assert station.states["1"].setpoint_w is None


async def test_unknown_connector_and_rejection_by_the_charger(
        agg: Inbox, station: FakeStation) -> None:
    reply = await agg.request(T.command("9", "stop"), {"request_id": "s"})
    assert reply["ok"] is False and "connector '9': unknown" in reply["error"]
    station.reject = "no session"
    reply = await agg.request(T.command("1", "pause"), {"request_id": "p"})
    assert reply == {"request_id": "p", "ok": False, "error": "pause: rejected: no session"}
    assert station.calls == []
    reply = await agg.request(T.command("1", "stop"), {"request_id": "s2"})
    assert reply["ok"] is True and station.calls == [("stop", "1")]


async def test_state_telemetry_events_are_published(
        broker: Broker, bridge: MqttBridge, station: FakeStation) -> None:
    async with aggregator(broker.host, broker.port, f"{T.base}/#") as inbox:
        state = await inbox.wait_for(T.state("1"))
        assert state.retain  # a late subscriber gets the last state at once
        body = state.json()
        assert body["session_state"] == "charging" and body["soc_percent"] == 50.0
        assert body["power_kw"] == 4.0 and body["limits"]["max_discharge_power_kw"] == 11.0
        telemetry = await inbox.wait_for(T.telemetry("2"))
        assert telemetry.json()["voltage_v"] == 400.0
        bridge.post_event("1", "session_stopped", {"session_id": "s1", "reason": "EV"})
        event = await inbox.wait_for(T.events("1"))
        assert event.json()["event"] == "session_stopped" and event.json()["reason"] == "EV"
        station.update("1", soc=51.5)
        bridge.notify_state()
        await inbox.wait_for(T.state("1"), lambda r: r.json()["soc_percent"] == 51.5,
                             timeout=1.0)


async def test_broker_restart_mid_session(broker: Broker, bridge: MqttBridge,
                                          station: FakeStation) -> None:
    async with aggregator(broker.host, broker.port, f"{T.base}/#") as inbox:
        assert (await inbox.request(T.command("1", "setpoint"),
                                    {"request_id": 1, "power_kw": 5}))["ok"]
    connects = bridge.connect_count
    broker.stop()
    await asyncio.sleep(0.3)
    assert not bridge.connected.is_set()
    # The charger goes on while the broker is away; the bridge must not block it.
    t0 = time.perf_counter()
    station.update("1", soc=63.0, session_state="discharging", power=-7000.0)
    bridge.notify_state()
    assert time.perf_counter() - t0 < 0.01
    broker.start()  # same port, no persistence: every retained message is gone
    await asyncio.wait_for(bridge.connected.wait(), 5)
    assert bridge.connect_count == connects + 1
    async with aggregator(broker.host, broker.port, f"{T.base}/#") as inbox:
        online = await inbox.wait_for(T.availability)
        assert online.payload == b"online" and online.retain
        state = await inbox.wait_for(T.state("1"), lambda r: r.retain)
        assert state.json()["soc_percent"] == 63.0
        assert state.json()["session_state"] == "discharging"
        assert (await inbox.request(T.command("1", "setpoint"),
                                    {"request_id": 2, "power_kw": -4}))["ok"]
    assert station.calls == [("setpoint", "1", 5000.0), ("setpoint", "1", -4000.0)]


async def test_events_posted_while_offline_are_sent_after_reconnect(
        broker: Broker, station: FakeStation) -> None:
    broker.stop()
    b = MqttBridge(station, bridge_config(broker.host, broker.port, reconnect_min_s=30,
                                          reconnect_max_s=30), STATION)
    b.start()
    try:
        await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        for i in range(300):  # more than the queue holds: the oldest are dropped
            b.post_event("1", "fault", {"n": i})
        assert time.perf_counter() - t0 < 0.1
        assert b.dropped_events == 300 - 256
        broker.start()
        async with aggregator(broker.host, broker.port, T.events("1")) as inbox:
            b.reconnect_now()  # instead of waiting out the 30 s backoff
            await asyncio.wait_for(b.connected.wait(), 5)
            last = await inbox.wait_for(T.events("1"), lambda r: r.json()["n"] == 299)
            numbers = [m.json()["n"] for m in inbox.messages]
            assert numbers == list(range(44, 300)) and last.json()["event"] == "fault"
    finally:
        await b.stop()


async def test_clean_stop_publishes_offline(broker: Broker, bridge: MqttBridge) -> None:
    async with aggregator(broker.host, broker.port, T.availability) as inbox:
        await inbox.wait_for(T.availability, lambda r: r.payload == b"online")
        await bridge.stop()
        await inbox.wait_for(T.availability, lambda r: r.payload == b"offline")


async def test_last_will_marks_offline_when_the_connection_dies(broker: Broker) -> None:
    station = "willtest"
    topics = Topics(station)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "tests.mqtt.bridge_proc", broker.host,
                             str(broker.port), station], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE)
    try:
        async with aggregator(broker.host, broker.port, topics.availability) as inbox:
            await inbox.wait_for(topics.availability, lambda r: r.payload == b"online",
                                 timeout=10)
            proc.kill()  # no DISCONNECT packet: the broker must send the will
            proc.wait(5)
            offline = await inbox.wait_for(topics.availability,
                                           lambda r: r.payload == b"offline", timeout=5)
            assert not offline.retain  # delivered live ...
        async with aggregator(broker.host, broker.port, topics.availability) as inbox:
            late = await inbox.wait_for(topics.availability)
            assert late.payload == b"offline" and late.retain  # ... and retained for later
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


async def test_no_broker_at_all_never_blocks(station: FakeStation) -> None:
    from tests.mqtt.conftest import _free_port

    b = MqttBridge(station, bridge_config("127.0.0.1", _free_port()), STATION)
    b.start()
    try:
        await asyncio.sleep(0.3)  # a few failed attempts
        assert not b.connected.is_set() and b.last_error
        t0 = time.perf_counter()
        b.notify_state()
        b.post_event("1", "session_started")
        assert time.perf_counter() - t0 < 0.01
    finally:
        await b.stop()
