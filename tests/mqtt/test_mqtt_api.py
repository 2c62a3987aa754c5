"""The sans-IO MQTT API: topics, payloads, command validation (no broker needed)."""

from __future__ import annotations

import json
import math

import pytest

from evse._mqtt_api import (
    MAX_PAYLOAD,
    ConnectorState,
    LimitsUpdate,
    Topics,
    event_payload,
    handle_command,
    state_payload,
    telemetry_payload,
)
from evse.energy.prices import PriceCurve
from tests.mqtt.fakes import RATED, FakeStation

T = Topics("DE*ABC*E1")


def send(port: FakeStation, name: str, body: object, connector: str = "1") -> dict:  # type: ignore[type-arg]
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = handle_command(T, port, T.command(connector, name), payload)
    assert reply is not None and reply.topic == T.reply(connector, name)
    return json.loads(reply.payload())  # type: ignore[no-any-return]


def test_topics() -> None:
    assert T.state("1") == "evse/v1/DE*ABC*E1/1/state"
    assert T.availability == "evse/v1/DE*ABC*E1/availability"
    assert T.command_filter == "evse/v1/DE*ABC*E1/+/cmd/+"
    assert T.parse_command("evse/v1/DE*ABC*E1/2/cmd/stop") == ("2", "stop")
    for other in ("evse/v1/DE*ABC*E1/2/reply/stop", "evse/v1/X/2/cmd/stop",
                  "evse/v1/DE*ABC*E1/2/cmd/stop/x", "evse/v1/DE*ABC*E1/2/cmd/"):
        assert T.parse_command(other) is None
    assert handle_command(T, FakeStation(), "evse/v1/other/1/cmd/stop", b"{}") is None
    with pytest.raises(ValueError, match="topic level"):
        Topics("a/b")
    with pytest.raises(ValueError, match="topic level"):
        Topics("st", prefix="evse/+")


def test_state_and_telemetry_payloads() -> None:
    st = ConnectorState("discharging", RATED, protocol="ISO15118-20 DC_BPT",
                        control_mode="Dynamic", soc=55.5, voltage=390.0, current=-20.0,
                        power=-7800.0, energy_in_kwh=3.2, energy_out_kwh=1.1,
                        setpoint_w=-7800.0)
    body = json.loads(state_payload(st, 1000.0))
    assert body["power_kw"] == -7.8 and body["current_a"] == -20.0  # signed flows
    assert body["limits"] == body["rated"] == {
        "max_charge_power_kw": 11.0, "max_discharge_power_kw": 11.0,
        "max_charge_current_a": 32.0, "max_discharge_current_a": 32.0}
    assert body["setpoint_kw"] == -7.8 and body["ts"] == 1000.0
    assert {"session_state", "protocol", "soc_percent", "voltage_v", "energy_in_kwh",
            "energy_out_kwh", "control_mode", "fault", "session_id"} <= body.keys()
    tele = json.loads(telemetry_payload(st, 1001.0))
    assert tele == {"ts": 1001.0, "soc_percent": 55.5, "voltage_v": 390.0, "current_a": -20.0,
                    "power_kw": -7.8, "energy_in_kwh": 3.2, "energy_out_kwh": 1.1}
    # A NaN measurement must not produce invalid JSON.
    assert json.loads(telemetry_payload(ConnectorState("idle", RATED, voltage=math.nan),
                                        0))["voltage_v"] is None
    ev = json.loads(event_payload("fault", 5.0, {"code": "isolation", "event": "x"}))
    assert ev == {"ts": 5.0, "event": "fault", "code": "isolation"}


def test_valid_commands_reach_the_port() -> None:
    port = FakeStation()
    assert send(port, "authorize", {"request_id": "r1", "id_token": "tok", "granted": True}) \
        == {"request_id": "r1", "ok": True, "error": None}
    assert send(port, "setpoint", {"request_id": 2, "power_kw": -11})["ok"]
    assert send(port, "limits", {"request_id": 3, "max_discharge_power_kw": 5,
                                 "max_charge_current_a": 16})["ok"]
    assert send(port, "prices", {"request_id": 4, "buy": 0.3, "sell": 0.1,
                                 "currency": "eur"})["ok"]
    slots = [{"start": 0, "end": 900, "buy": 0.2, "sell": 0.1},
             {"start": 900, "end": 1800, "buy": 0.4, "sell": 0.3}]
    assert send(port, "prices", {"request_id": 5, "slots": slots})["ok"]
    assert send(port, "stop", {"request_id": 6})["ok"]
    assert send(port, "pause", {"request_id": 7})["ok"]
    assert port.calls == [
        ("authorize", "1", "tok", True),
        ("setpoint", "1", -11000.0),
        ("limits", "1", LimitsUpdate(max_discharge_power_w=5000.0, max_charge_current_a=16.0)),
        ("prices", "1", PriceCurve.flat(0.3, 0.1, currency="EUR")),
        ("prices", "1", PriceCurve.day_ahead(0, 900, [0.2, 0.4], [0.1, 0.3])),
        ("stop", "1"),
        ("pause", "1"),
    ]


@pytest.mark.parametrize(("name", "body", "expected"), [
    ("setpoint", b"\xff\xfe", "payload: not valid JSON"),
    ("setpoint", b"", "payload: not valid JSON"),
    ("setpoint", b"42", "payload: must be a JSON object, got a number"),
    ("setpoint", b"x" * (MAX_PAYLOAD + 1), "payload: too large"),
    ("setpoint", b'{"request_id": "a", "power_kw": NaN}', "power_kw: must be a finite"),
    ("setpoint", {"request_id": True, "power_kw": 1}, "request_id: must be a string"),
    ("setpoint", {"request_id": "", "power_kw": 1}, "request_id: must be a string"),
    ("setpoint", {"request_id": "a", "power_kw": None}, "power_kw: must be a number, got null"),
    ("setpoint", {"request_id": "a", "power_kw": 11.001}, "power_kw: 11.001 out of range"),
    ("reboot", {"request_id": "a"}, "unknown command 'reboot' (known: authorize, limits"),
    ("authorize", {"request_id": "a", "granted": True}, "id_token: missing"),
    ("authorize", {"request_id": "a", "id_token": "", "granted": True}, "id_token: must have"),
    ("authorize", {"request_id": "a", "id_token": 5, "granted": True},
     "id_token: must be a string, got a number"),
    ("authorize", {"request_id": "a", "id_token": "t"}, "granted: missing"),
    ("limits", {"request_id": "a"}, "limits: give at least one of"),
    ("limits", {"request_id": "a", "max_charge_power_kw": -1}, "max_charge_power_kw: must be >= 0"),
    ("limits", {"request_id": "a", "max_discharge_current_a": 33},
     "max_discharge_current_a: 33 above the rated 32 A"),
    ("limits", {"request_id": "a", "max_power": 3}, "max_power: unexpected field"),
    ("prices", {"request_id": "a", "buy": 0.1, "sell": 0.1, "currency": "EURO"},
     "currency: must be a 3-letter code"),
    ("prices", {"request_id": "a", "slots": []}, "slots: must be a non-empty array"),
    ("prices", {"request_id": "a", "slots": [{"start": 0, "end": 10, "buy": 1}]},
     "slots[0].sell: missing"),
    ("prices", {"request_id": "a", "slots": [{"start": 10, "end": 0, "buy": 1, "sell": 1}]},
     "slots[0].end: must be after start"),
    ("prices", {"request_id": "a", "slots": [{"start": 0, "end": 900, "buy": 1, "sell": 1},
                                             {"start": 1800, "end": 2700, "buy": 1,
                                              "sell": 1}]},
     "gap or overlap"),
    ("prices", {"request_id": "a", "slots": [{"start": 0, "end": 1, "buy": 1, "sell": 1,
                                              "tax": 1}]}, "slots[0].tax: unexpected field"),
    ("prices", {"request_id": "a", "buy": 1, "sell": 1, "slots": []}, "not both"),
    ("stop", {"request_id": "a", "force": True}, "force: unexpected field (none allowed)"),
])
def test_invalid_commands_change_nothing(name: str, body: object, expected: str) -> None:
    port = FakeStation()
    before = dict(port.states)
    reply = send(port, name, body)
    assert reply["ok"] is False
    assert expected in reply["error"], reply["error"]
    assert port.calls == [] and port.states == before


def test_setpoint_bounds_follow_the_current_limits_and_mode() -> None:
    port = FakeStation()
    port.update("1", limits=dataclass_limits(7400.0, 0.0))
    reply = send(port, "setpoint", {"request_id": "a", "power_kw": -1})
    assert reply["error"] == ("power_kw: -1 out of range [0, 7.4] kW (current limits; "
                              "negative = discharge)")
    assert send(port, "setpoint", {"request_id": "b", "power_kw": 7.4})["ok"]
    scheduled = FakeStation(control_mode="Scheduled")
    reply = send(scheduled, "setpoint", {"request_id": "c", "power_kw": 1})
    assert reply["error"] == "setpoint: only honoured in Dynamic control mode (now: Scheduled)"
    idle = FakeStation(control_mode=None)
    assert "(now: no session)" in send(idle, "setpoint", {"request_id": "d", "power_kw": 1})[
        "error"]
    assert scheduled.calls == [] and idle.calls == []


def dataclass_limits(charge: float, discharge: float):  # type: ignore[no-untyped-def]
    from evse._mqtt_api import ConnectorLimits
    return ConnectorLimits(charge, discharge)


def test_port_failures_become_error_replies() -> None:
    port = FakeStation()
    port.reject = "EV not ready"
    assert send(port, "stop", {"request_id": 1})["error"] == "stop: rejected: EV not ready"

    class Broken(FakeStation):
        def pause(self, connector: str) -> None:
            raise RuntimeError("bug")

    reply = send(Broken(), "pause", {"request_id": 2})
    assert reply == {"request_id": 2, "ok": False, "error": "pause: internal error (RuntimeError)"}
    assert "connector 'x': unknown (known: 1)" in send(FakeStation(), "stop",
                                                       {"request_id": 3}, connector="x")["error"]


def test_payloads_never_fail_to_encode() -> None:
    st = ConnectorState("charging", RATED, energy_in_kwh=math.inf, power=math.nan)
    body = json.loads(state_payload(st, 0.0))
    assert body["energy_in_kwh"] is None and body["power_kw"] is None
    ev = json.loads(event_payload("fault", 0.0, {"when": object, "x": [math.nan, 1.0]}))
    assert ev["x"] == [None, 1.0] and "class 'object'" in ev["when"]


# -- hostile input: sane ranges, bounded cost, clear errors (issue 11 item 4) ---------------

NOW = 1_700_000_000.0


def send_at(port: FakeStation, name: str, payload: bytes, now: float | None = NOW) -> dict:  # type: ignore[type-arg]
    reply = handle_command(T, port, T.command("1", name), payload, now=now)
    assert reply is not None
    return json.loads(reply.payload())  # type: ignore[no-any-return]


def _slot(start: float, end: float, buy: object = 0.2, sell: object = 0.1) -> dict:  # type: ignore[type-arg]
    return {"start": start, "end": end, "buy": buy, "sell": sell}


@pytest.mark.parametrize(("body", "expected"), [
    ({"buy": 1e150, "sell": 0.1}, "buy: 1e+150 out of range [-10, 10] per kWh"),
    ({"buy": 0.3, "sell": -1e150}, "sell: -1e+150 out of range [-10, 10] per kWh"),
    ({"buy": 10.5, "sell": 0.1}, "buy: 10.5 out of range [-10, 10] per kWh"),
    ({"buy": 10**400, "sell": 0.1}, "buy: too large (an integer of 401 digits)"),
    ({"slots": [_slot(NOW, NOW + 900), _slot(NOW + 900, NOW + 1800, sell=1e150)]},
     "slots[1].sell: 1e+150 out of range [-10, 10] per kWh"),
    ({"slots": [_slot(NOW - 2 * 86400, NOW)]}, "slots[0].start: 1699827200 outside"),
    ({"slots": [_slot(NOW, NOW + 30 * 86400)]}, "slots[0].end: 1702592000 outside"),
    ({"slots": [_slot(NOW, 1e300)]}, "slots[0].end: 1e+300 outside"),
    ({"slots": [_slot(NOW, NOW + 60)]}, "slots[0]: 60 s long, at least 300 s"),
])
def test_prices_outside_sane_ranges_are_refused(body: dict, expected: str) -> None:  # type: ignore[type-arg]
    port = FakeStation()
    reply = send_at(port, "prices", json.dumps({"request_id": "p", **body}).encode())
    assert reply["ok"] is False and expected in reply["error"], reply
    assert port.calls == []


def test_prices_within_the_horizon_are_accepted() -> None:
    port = FakeStation()
    slots = [_slot(NOW - 3600 + i * 900, NOW - 2700 + i * 900, -10, 10) for i in range(8)]
    assert send_at(port, "prices", json.dumps({"request_id": 1, "slots": slots}).encode())["ok"]
    assert send_at(port, "prices", b'{"request_id": 2, "buy": 10, "sell": -10}')["ok"]
    assert [c[0] for c in port.calls] == ["prices", "prices"]


def test_current_limits_have_a_physical_bound_without_a_rating() -> None:
    port = FakeStation()
    port.update("1", rated=dataclass_limits(11000.0, 11000.0))  # no rated currents
    reply = send(port, "limits", {"request_id": "a", "max_charge_current_a": 1e12})
    assert reply["error"] == "max_charge_current_a: 1e+12 above the rated 3000 A"
    assert send(port, "limits", {"request_id": "b", "max_charge_current_a": 16})["ok"]


@pytest.mark.parametrize(("payload", "expected"), [
    (b'{"request_id": "a", "power_kw": ' + b"9" * 5000 + b"}",
     "payload: a number has too many digits"),
    (b'{"request_id": "a", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
     "payload: nested too deeply"),
    (b'{"request_id": "a", "x": ' + b'{"a":' * 20_000 + b"1" + b"}" * 20_001,
     "payload: nested too deeply"),
    (b'{"request_id": "a", "power_kw": ' + b"1" * 400 + b"}", "power_kw: too large"),
    (b'{"request_id": "a", "power_kw": 1e999}', "power_kw: must be a finite number"),
    (b'{"request_id": "a", "power_kw": -Infinity}', "power_kw: must be a finite number"),
    (b'{"request_id": ' + b"7" * 300 + b', "power_kw": 1}', "request_id: must be a string"),
    (b" " * (MAX_PAYLOAD + 1), "payload: too large (262145 bytes, at most 262144)"),
])
def test_hostile_payloads_get_clear_errors(payload: bytes, expected: str) -> None:
    port = FakeStation()
    reply = send_at(port, "setpoint", payload)
    assert reply["ok"] is False and reply["error"].startswith(expected), reply
    assert "internal error" not in reply["error"] and port.calls == []
