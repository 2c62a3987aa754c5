"""An aggregator-side MQTT client for the tests: collects every message it sees."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt

from evse.config import MqttConfig

_ids = itertools.count()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Inbox:
    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[Received] = []
        self._changed = asyncio.Event()

    async def pump(self) -> None:
        async for m in self.client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            self.messages.append(Received(m.topic.value, payload, bool(m.retain)))
            self._changed.set()

    async def wait_for(self, topic: str, pred: Callable[[Received], bool] = lambda r: True,
                       *, timeout: float = 5.0, start: int = 0) -> Received:
        """The first message on `topic` (from index `start`) satisfying `pred`."""
        async def scan() -> Received:
            i = start
            while True:
                while i < len(self.messages):
                    r = self.messages[i]
                    i += 1
                    if r.topic == topic and pred(r):
                        return r
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(scan(), timeout)

    async def send(self, topic: str, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.client.publish(topic, data, qos=1)

    async def request(self, topic: str, payload: dict[str, Any], *,
                      timeout: float = 5.0) -> dict[str, Any]:
        """Send a command and wait for the reply with its request_id."""
        reply_topic = topic.replace("/cmd/", "/reply/")
        start = len(self.messages)
        await self.send(topic, payload)
        r = await self.wait_for(reply_topic,
                                lambda r: r.json().get("request_id") == payload["request_id"],
                                timeout=timeout, start=start)
        return r.json()  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def aggregator(host: str, port: int, *subscriptions: str) -> AsyncIterator[Inbox]:
    client = aiomqtt.Client(host, port, identifier=f"aggregator-{next(_ids)}", timeout=3)
    async with client:
        for s in subscriptions:
            await client.subscribe(s, qos=1)
        inbox = Inbox(client)
        task = asyncio.create_task(inbox.pump())
        try:
            yield inbox
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


def bridge_config(host: str, port: int, **overrides: Any) -> MqttConfig:
    values: dict[str, Any] = dict(host=host, port=port, keepalive=5, reconnect_min_s=0.05,
                                  reconnect_max_s=0.4, telemetry_interval_s=0.2,
                                  state_interval_s=0.05)
    values.update(overrides)
    return MqttConfig(**values)
