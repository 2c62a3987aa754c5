"""A station process for the kill test (tests/aio/test_ocpp_restart.py): an OcppClient on a
durable queue. `run`: starts transaction tx-1 and then stores an Updated event every 20 ms,
printing each stored seqNo (after its commit). `recover`: ends what the queue has open and
sends the queue. Usage: python -m tests.aio.ocpp_station_proc URL QUEUE run|recover"""

from __future__ import annotations

import asyncio
import sys

from evse.aio.ocpp_client import OcppClient
from evse.config import OcppConfig
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from evse.ocpp.transactions import MeterSample


async def main(url: str, queue_file: str, mode: str) -> None:
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    cfg = OcppConfig(url=url, station_id="CS1", password="p" * 16, reconnect_min_s=0.05,
                     reconnect_max_s=0.2, call_timeout_s=5.0, sampled_interval_s=0.0)
    client = OcppClient(cfg, st, queue=DurableQueue(queue_file))
    if mode == "recover":
        for p in client.recover():
            print("ended", p["seqNo"], flush=True)
        client.start()
        await asyncio.Event().wait()
    client.start()
    await asyncio.wait_for(client.accepted.wait(), 30)
    p = client.transaction_started("tx-1", 1, 1, "EVDetected", MeterSample(0.0))
    print("stored", p["seqNo"], flush=True)
    i = 0
    while True:
        i += 1
        client.meter_sample("tx-1", MeterSample(10.0 * i, 1.0 * i, power_w=-1000.0))
        p = client.transaction_updated("tx-1", "MeterValuePeriodic", with_meter=True)
        print("stored", p["seqNo"], flush=True)
        await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
