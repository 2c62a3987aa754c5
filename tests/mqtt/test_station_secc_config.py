"""`evse secc --config FILE` end to end: [mqtt] (with MQTT authorization), [tariffs],
[energy] and [reports] from the file drive the running charger; the report is announced."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

from evse.aio.app import SeccOptions, run_secc
from evse.config import ConfigError, loads_config
from simulators.ev.client import run_session
from tests.aio.helpers import fast_scenario
from tests.mqtt.helpers import aggregator
from tests.mqtt.station_rig import until

STATION_ID = "DE*EVS*E0000042"
CONFIG = """
[station]
id = "{station}"

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

[mqtt]
host = "127.0.0.1"
port = {port}
keepalive = 5
reconnect_min_s = 0.05
reconnect_max_s = 0.4
telemetry_interval_s = 0.2
state_interval_s = 0.05
authorization = "mqtt"

[tariffs]
currency = "EUR"
buy = 0.35
sell = 0.20

[energy]
reserve_soc = 25
degradation_cost = 0.04

[reports]
dir = "{reports}"
"""


def test_config_errors_name_the_key() -> None:
    text = CONFIG.format(station=STATION_ID, port=1883, reports="r").replace(
        'authorization = "mqtt"', 'authorization = "always"').replace(
        "reserve_soc = 25", "reserve_soc = 250")
    try:
        loads_config(text)
    except ConfigError as exc:
        assert "mqtt.authorization: must be one of 'auto', 'mqtt', got 'always'" in exc.errors
        assert "energy.reserve_soc: must be <= 100, got 250" in exc.errors
    else:
        raise AssertionError("invalid config accepted")


async def test_evse_secc_with_a_config_file(broker: Any, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    path = tmp_path / "station.toml"
    path.write_text(CONFIG.format(station=STATION_ID, port=broker.port, reports=reports))
    options = SeccOptions(config=path, address="127.0.0.1", port=0, sdp=False,
                          sim_speedup=10.0, poll_interval=0.01)
    out = io.StringIO()
    ready, stop = asyncio.Event(), asyncio.Event()
    base = f"evse/v1/{STATION_ID}/1"
    with contextlib.redirect_stdout(out):
        task = asyncio.create_task(run_secc(options, ready=ready, stop=stop))
        await asyncio.wait_for(ready.wait(), 10)
        m = re.search(r"plain TCP on port (\d+)", out.getvalue())
        assert m, out.getvalue()
        try:
            async with aggregator(broker.host, broker.port, f"{base}/#") as agg:
                await agg.wait_for(f"{base}/state", timeout=5)
                scenario = fast_scenario("dc_bpt_dynamic", loop_interval=0.05, max_loops=40)
                ev = asyncio.create_task(run_session(scenario, host="127.0.0.1",
                                                     port=int(m[1])))
                await agg.wait_for(f"{base}/events", lambda r: r.json()["event"]
                                   == "authorization_requested", timeout=10)
                reply = await agg.request(f"{base}/cmd/authorize", {
                    "request_id": 1, "id_token": "TOKEN-1", "granted": True})
                assert reply["ok"], reply
                state = await agg.wait_for(f"{base}/state", lambda r: r.json()[
                    "session_state"] in ("charging", "suspended"), timeout=10)
                # [limits] from the file bound the setpoints
                assert state.json()["limits"]["max_discharge_power_kw"] == 20
                reply = await agg.request(f"{base}/cmd/setpoint",
                                          {"request_id": 2, "power_kw": -25})
                assert "out of range [-20, 40] kW" in reply["error"]
                reply = await agg.request(f"{base}/cmd/setpoint",
                                          {"request_id": 3, "power_kw": -15})
                assert reply["ok"], reply
                report = await asyncio.wait_for(ev, 30)
                assert report.success and report.energy_discharged_wh > 0, report.reason
                await agg.wait_for(f"{base}/events",
                                   lambda r: r.json()["event"] == "session_stopped")
                await until(lambda: "session report" in out.getvalue(), 5, "the report")
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 10) == 0
    text = out.getvalue()
    m = re.search(r"evse secc: session report (\S+\.json)", text)
    assert m, text
    data = json.loads(Path(m[1]).read_text())
    assert Path(m[1]).parent == reports
    assert data["station_id"] == STATION_ID and data["metadata"]["id_token"] == "TOKEN-1"
    money = data["money"]
    assert money["currency"] == "EUR" and money["energy_sold_kwh"] > 0
    assert abs(money["revenue_sold"] - 0.20 * money["energy_sold_kwh"]) < 1e-9
    assert abs(money["degradation"] - 0.04 * money["energy_sold_kwh"] / 0.95) < 1e-9
