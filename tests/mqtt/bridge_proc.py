"""Runs an MQTT bridge in its own process, for the last-will test (which kills it hard).

usage: python bridge_proc.py HOST PORT STATION
"""

from __future__ import annotations

import asyncio
import sys

from evse.aio.mqtt_bridge import MqttBridge
from tests.mqtt.fakes import FakeStation
from tests.mqtt.helpers import bridge_config


async def main(host: str, port: int, station: str) -> None:
    bridge = MqttBridge(FakeStation(), bridge_config(host, port), station,
                        client_id=f"bridge-proc-{station}")
    bridge.start()
    await bridge.connected.wait()
    print("connected", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
