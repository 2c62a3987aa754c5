"""EIM authorization over MQTT, bad commands, limits and pause against the real charger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.mqtt.helpers import aggregator
from tests.mqtt.station_rig import TOPICS, dynamic_scenario, station_rig, until


def _auth_requests(evcc: Any) -> list[Any]:
    return [m for m in evcc.messages if m.request == "AuthorizationReq"]


async def test_eim_authorization_waits_for_the_mqtt_command(broker: Any,
                                                             tmp_path: Path) -> None:
    async with station_rig(broker, tmp_path=tmp_path, mqtt_authorization=True) as rig, aggregator(
            broker.host, broker.port, f"{TOPICS.base}/#") as agg:
        reply = await agg.request(TOPICS.command("1", "authorize"),
                                  {"request_id": "early", "id_token": "T1", "granted": True})
        assert not reply["ok"] and "no session is waiting for authorization" in reply["error"]
        evcc, ev_task = rig.start_ev(**dynamic_scenario(max_loops=5))
        started = await agg.wait_for(TOPICS.events("1"),
                                     lambda r: r.json()["event"] == "session_started")
        asked = await agg.wait_for(TOPICS.events("1"),
                                   lambda r: r.json()["event"] == "authorization_requested")
        assert asked.json()["method"] == "EIM"
        assert asked.json()["session_id"] == started.json()["session_id"]
        assert agg.messages.index(started) < agg.messages.index(asked)
        # the session waits (EVSEProcessing Ongoing, the EV asks again and again) ...
        await until(lambda: len(_auth_requests(evcc)) >= 10, 5, "repeated AuthorizationReqs")
        assert str(rig.conn().state) == "Authorization"
        await agg.wait_for(TOPICS.state("1"),
                           lambda r: r.json()["session_state"] == "authorizing")
        assert not evcc.loop_log
        # ... until the aggregator grants it
        reply = await agg.request(TOPICS.command("1", "authorize"),
                                  {"request_id": "a1", "id_token": "DE-ABC-123", "granted": True})
        assert reply["ok"], reply
        report = await ev_task
        assert report.success, report.reason
        assert report.loops == 5
        auth = _auth_requests(evcc)
        assert all(m.response_code == "OK" for m in auth)
        await until(lambda: bool(rig.server.sessions), 2, "session record")
        paths = await rig.port.flush_reports()
        assert rig.port.last_record.metadata["id_token"] == "DE-ABC-123"
        assert paths


async def test_eim_authorization_denied(broker: Any) -> None:
    async with station_rig(broker, mqtt_authorization=True) as rig, aggregator(
            broker.host, broker.port, f"{TOPICS.base}/#") as agg:
        evcc, ev_task = rig.start_ev(**dynamic_scenario(max_loops=5))
        await agg.wait_for(TOPICS.events("1"),
                           lambda r: r.json()["event"] == "authorization_requested")
        reply = await agg.request(TOPICS.command("1", "authorize"),
                                  {"request_id": "d", "id_token": "DE-BAD", "granted": False})
        assert reply["ok"], reply
        report = await ev_task
        assert not evcc.loop_log  # no energy
        assert _auth_requests(evcc)[-1].response_code == "WARNING_EIMAuthorizationFailure"
        assert report.energy_charged_wh == 0


async def test_bad_commands_get_an_error_naming_the_problem_and_change_nothing(
        broker: Any) -> None:
    async with station_rig(broker) as rig, aggregator(
            broker.host, broker.port, f"{TOPICS.base}/#") as agg:
        cmd = TOPICS.command
        # no session yet: commands that need one are refused by the charger
        reply = await agg.request(cmd("1", "stop"), {"request_id": "n1"})
        assert reply["error"] == "stop: rejected: no session on connector 1"
        evcc, ev_task = rig.start_ev(**dynamic_scenario())
        await agg.wait_for(TOPICS.state("1"), lambda r: r.json()["session_state"] in (
            "charging", "suspended"), timeout=10)
        reply = await agg.request(cmd("1", "setpoint"), {"request_id": "ok", "power_kw": 5})
        assert reply["ok"], reply
        await until(lambda: rig.conn().charger.setpoint_w == 5000.0, 2, "setpoint 5 kW")
        conn = rig.conn()
        limits_before = conn.charger.limits
        bad: list[tuple[str, Any, str]] = [
            ("setpoint", b"{not json", "payload: not valid JSON"),
            ("setpoint", b"[1, 2]", "payload: must be a JSON object, got an array"),
            ("setpoint", {"request_id": "b1", "power_kw": "5"},
             "power_kw: must be a number, got a string"),
            ("setpoint", {"request_id": "b2", "power_kw": -51},
             "power_kw: -51 out of range [-50, 150] kW"),
            ("setpoint", {"request_id": "b3", "power_kw": 200},
             "power_kw: 200 out of range [-50, 150] kW"),
            ("setpoint", {"request_id": "b4", "power_kw": 5, "ramp": 1},
             "ramp: unexpected field"),
            ("setpoint", {"power_kw": 5}, "request_id: missing"),
            ("reboot", {"request_id": "b5"}, "unknown command 'reboot'"),
            ("limits", {"request_id": "b6", "max_discharge_power_kw": 60},
             "max_discharge_power_kw: 60 above the rated 50 kW"),
            ("prices", {"request_id": "b7", "buy": "cheap", "sell": 0},
             "buy: must be a number, got a string"),
            ("outage", {"request_id": "b8", "active": "yes"}, "active: must be true or false"),
            ("outage", {"request_id": "b9", "active": True, "home_load_kw": -1},
             "home_load_kw: -1 out of range"),
            ("pause", {"request_id": "b10", "now": True}, "now: unexpected field"),
            ("authorize", {"request_id": "b11", "id_token": "X", "granted": True},
             "authorize: rejected: no session is waiting for authorization"),
        ]
        for name, body, expected in bad:
            start = len(agg.messages)
            payload = body if isinstance(body, bytes) else body
            await agg.send(cmd("1", name), payload)
            r = await agg.wait_for(TOPICS.reply("1", name), start=start)
            assert r.json()["ok"] is False, (name, body)
            assert expected in r.json()["error"], (expected, r.json()["error"])
        reply = await agg.request(cmd("9", "setpoint"), {"request_id": "c9", "power_kw": 1})
        assert "connector '9': unknown" in reply["error"]
        # nothing changed: setpoint, limits, no pause, no outage, the session goes on
        assert conn.charger.setpoint_w == 5000.0 and conn.charger.limits == limits_before
        assert conn.charger.pause_reason is None and not rig.port.v2h.active
        assert rig.conn() is conn and not ev_task.done()
        # a limit cuts into a running setpoint: the charger clamps, the aggregator sees it
        reply = await agg.request(cmd("1", "limits"), {"request_id": "l1",
                                                       "max_charge_power_kw": 3})
        assert reply["ok"], reply
        await until(lambda: conn.charger.limits.max_charge_power == 3000.0, 2, "limit")
        mark = len(evcc.loop_log)
        await until(lambda: len(evcc.loop_log) > mark + 3 and all(
            i * v <= 3000.0 * 1.05 for _, i, v in evcc.loop_log[-2:]), 3, "3 kW cap")
        reply = await agg.request(cmd("1", "setpoint"), {"request_id": "b12", "power_kw": 4})
        assert reply["error"] == ("power_kw: 4 out of range [-50, 3] kW (current "
                                  "limits; negative = discharge)")
        # pause: EVSENotification=Pause, the EV pauses the session (resumable)
        reply = await agg.request(cmd("1", "pause"), {"request_id": "p"})
        assert reply["ok"], reply
        report = await ev_task
        assert report.reason == "evse_pause", report.reason
        assert any(n.endswith(":Pause") for n in report.evse_notifications)
        await until(lambda: bool(rig.server.sessions), 2, "session record")
        assert rig.server.sessions[-1].paused and not rig.server.sessions[-1].failed
        await agg.wait_for(TOPICS.state("1"), lambda r: r.json()["session_state"] == "paused")
        # the cap survives the session: the next connection starts with it
        assert rig.port.config_for("1").limits.max_charge_power == 3000.0


async def test_session_report_written_with_money(broker: Any, tmp_path: Path) -> None:
    async with station_rig(broker, tmp_path=tmp_path) as rig, aggregator(
            broker.host, broker.port, f"{TOPICS.base}/#") as agg:
        reply = await agg.request(TOPICS.command("1", "prices"), {
            "request_id": "pr", "currency": "EUR", "buy": 0.40, "sell": 0.25})
        assert reply["ok"], reply
        evcc, ev_task = rig.start_ev(**dynamic_scenario(max_loops=30))
        await until(lambda: len(evcc.loop_log) > 5, 10, "charge loop")
        await agg.request(TOPICS.command("1", "setpoint"), {"request_id": "d", "power_kw": -20})
        report = await ev_task
        assert report.success
        await until(lambda: bool(rig.server.sessions), 2, "session record")
        paths = await rig.port.flush_reports()
        record = rig.port.last_record
        m = record.money
        assert m.currency == "EUR"
        assert m.cost_bought == 0.40 * m.energy_bought_kwh or abs(
            m.cost_bought - 0.40 * m.energy_bought_kwh) < 1e-9
        assert abs(m.revenue_sold - 0.25 * m.energy_sold_kwh) < 1e-9
        assert m.energy_sold_kwh > 0
        # wear: the NMC tables over the SOC seen, the same in the money and the value
        assert m.degradation > 0 and record.value is not None
        assert m.degradation == record.value.wear_cost
        assert record.metadata["wear"]["model"] == "Nmc622_Gr_DENSO50Ah_Battery"
        import json

        data = json.loads(paths[-1].json.read_text())
        assert data["money"]["net"] == m.net
        assert any(x is not None for x in data["samples"]["soc"])
        assert paths[-1].svg is not None and "<svg" in paths[-1].svg.read_text()
        # the owner's statements follow the report, with this session's value in them
        day = json.loads((tmp_path / "statement_day.json").read_text())
        assert day["total"]["net_benefit"] == data["value"]["net_benefit"]
        assert (tmp_path / "statement_month.svg").exists()
