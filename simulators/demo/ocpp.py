"""`evse demo --ocpp`: the demo's charger talks OCPP 2.1 to the CSMS simulator over a loopback
WebSocket (boot, status, Authorize, TransactionEvents from the session event stream, the
charging profiles as the schedules bound); the summary lists the OCPP messages exchanged."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from evse.aio.ocpp_auth import OcppAuthorizer
from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_energy import OcppSchedulePolicy
from evse.aio.ocpp_events import OcppEventBridge
from evse.config import OcppConfig
from evse.hooks import Hooks
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation

__all__ = ["OcppDemo"]

STATION_ID = "EVSE-DEMO-1"


class OcppDemo:
    def __init__(self) -> None:
        from simulators.csms import CsmsSimulator

        self.csms = CsmsSimulator(accept_all_tokens=True)
        self.sent: Counter[str] = Counter()  # CALLs station -> CSMS, by action
        self.received: Counter[str] = Counter()  # CALLs CSMS -> station
        self._dir = tempfile.TemporaryDirectory(prefix="evse-demo-ocpp-")
        self.client: OcppClient | None = None
        self.bridge: OcppEventBridge | None = None

    def _log(self, direction: str, action: str, payload: dict[str, Any]) -> None:
        try:
            frame = json.loads(payload["raw"])
        except ValueError:
            return
        if isinstance(frame, list) and frame and frame[0] == 2:
            (self.sent if direction == "station->csms" else self.received)[action] += 1

    async def start(self, server: Any, station: Any) -> None:
        await self.csms.start()
        cfg = OcppConfig(url=self.csms.url, station_id=STATION_ID, password="demo" * 4,
                         sampled_interval_s=1.0, reconnect_min_s=0.1, reconnect_max_s=1.0)
        st = OcppStation(vendor="EvseStack", model="demo")
        evse_ids = {c.id: i + 1 for i, c in enumerate(station.connectors)}
        for evse_id in evse_ids.values():
            st.add_connector(evse_id, 1)
        self.client = OcppClient(cfg, st, queue=DurableQueue(Path(self._dir.name) / "q.db"),
                                 message_log=self._log)
        self.bridge = OcppEventBridge(self.client, station.events, evse_ids)
        server.hooks = Hooks(authorizer=OcppAuthorizer(self.client),
                             schedules=OcppSchedulePolicy(self.client, evse_ids))
        self.bridge.start()
        self.client.start()
        import asyncio

        await asyncio.wait_for(self.client.accepted.wait(), 10)

    async def stop(self) -> None:
        import asyncio

        if self.client is not None:  # let the last TransactionEvents go out
            for _ in range(100):
                if not len(self.client.queue):
                    break
                await asyncio.sleep(0.02)
        if self.bridge is not None:
            await self.bridge.stop()
        if self.client is not None:
            await self.client.stop()
            self.client.queue.close()
        await self.csms.stop()
        self._dir.cleanup()

    def summary_rows(self) -> list[tuple[str, str]]:
        tx = self.csms.calls(STATION_ID, "TransactionEvent")
        return [
            ("OCPP 2.1 station -> CSMS", ", ".join(f"{a} {n}" for a, n in self.sent.items())
             or "-"),
            ("OCPP 2.1 CSMS -> station", ", ".join(f"{a} {n}" for a, n in
                                                   self.received.items()) or "-"),
            ("OCPP transaction", " > ".join(
                f"{e['event_type']}({e['trigger_reason']})#{e['seq_no']}"
                for e in tx if e["trigger_reason"] != "MeterValuePeriodic")
             + f"; {sum(1 for e in tx if e['trigger_reason'] == 'MeterValuePeriodic')} "
               "periodic meter values"),
        ]
