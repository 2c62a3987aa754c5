"""`evse secc --config FILE` with an [ocpp] section, end to end: the charger boots at the CSMS
simulator, the CSMS's Authorize decides the simulated EV's EIM session, and the session's
TransactionEvents reach the CSMS from the durable queue."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path

from evse.aio.app import SeccOptions, run_secc
from simulators.csms import CsmsSimulator
from simulators.ev.client import run_session
from tests.aio.helpers import fast_scenario

CONFIG = """
[station]
id = "CS-SECC-1"

[[connectors]]
id = 1
type = "DC"
services = ["DC", "DC_BPT"]

[limits]
max_voltage = 500
max_charge_current = 100
max_charge_power = 40000
max_discharge_current = 60
max_discharge_power = 20000

[tls]
allow_plain_tcp_iso20 = true

[network]
interface = "lo"

[ocpp]
url = "{url}"
password = "0123456789abcdef"
reconnect_min_s = 0.05
reconnect_max_s = 0.2
sampled_interval_s = 0.2
queue_file = "{queue}"
"""


async def test_evse_secc_with_ocpp(tmp_path: Path) -> None:
    csms = CsmsSimulator(passwords={"CS-SECC-1": "0123456789abcdef"},
                         accepted_tokens=["WEVSESTACKSIM0001"])
    await csms.start()
    path = tmp_path / "station.toml"
    path.write_text(CONFIG.format(url=csms.url, queue=tmp_path / "q.sqlite3"))
    options = SeccOptions(config=path, address="127.0.0.1", port=0, sdp=False,
                          sim_speedup=10.0, poll_interval=0.01)
    out = io.StringIO()
    ready, stop = asyncio.Event(), asyncio.Event()
    try:
        with contextlib.redirect_stdout(out):
            task = asyncio.create_task(run_secc(options, ready=ready, stop=stop))
            await asyncio.wait_for(ready.wait(), 20)
            m = re.search(r"plain TCP on port (\d+)", out.getvalue())
            assert m, out.getvalue()
            assert f"OCPP 2.1 to {csms.url} as CS-SECC-1, security profile 1" in out.getvalue()
            try:
                async with asyncio.timeout(30):
                    while not csms.calls("CS-SECC-1", "StatusNotification"):
                        await asyncio.sleep(0.05)
                scenario = fast_scenario("dc", max_loops=20)
                report = await asyncio.wait_for(
                    run_session(scenario, host="127.0.0.1", port=int(m[1])), 60)
                assert report.success, report.reason
                async with asyncio.timeout(30):
                    while not any(e["event_type"] == "Ended" for e in
                                  csms.calls("CS-SECC-1", "TransactionEvent")):
                        await asyncio.sleep(0.05)
            finally:
                stop.set()
                assert await asyncio.wait_for(task, 20) == 0
    finally:
        await csms.stop()
    assert csms.calls("CS-SECC-1", "Authorize") == [
        {"id_token": {"id_token": "WEVSESTACKSIM0001", "type": "MacAddress"}}]
    events = csms.calls("CS-SECC-1", "TransactionEvent")
    assert [e["seq_no"] for e in events] == list(range(len(events)))
    ended = events[-1]
    imported = [sv["value"] for sv in ended["meter_value"][0]["sampled_value"]
                if sv["measurand"] == "Energy.Active.Import.Register"]
    assert imported and imported[0] > 0
    assert (tmp_path / "q.sqlite3").exists()
