"""evse/config.py: TOML config validated into frozen dataclasses, every error named."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import tomllib
from pathlib import Path

import pytest

from evse.config import (
    ConfigError,
    HalBackendConfig,
    StationConfig,
    check_config,
    load_config,
    loads_config,
    parse_config,
    parse_hal_spec,
)
from evse.energy.prices import PriceCurve

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "evse.example.toml"
DOC = ROOT / "docs" / "config.md"

MINIMAL = """
[station]
id = "ST1"

[[connectors]]
id = 1
type = "DC"

[limits]
max_voltage = 500
max_charge_current = 100
max_charge_power = 50000

[tls]
allow_plain_tcp_iso20 = true

[network]
interface = "eth1"
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loads_config(text)
    return info.value.errors


def test_the_example_validates(tmp_path: Path) -> None:
    assert check_config(EXAMPLE) == []
    cfg = load_config(EXAMPLE)
    assert cfg.station_id == "DE*ABC*E0000001"
    assert cfg.connectors[0].bidirectional and cfg.connectors[0].id == "1"
    assert cfg.tls.cert_chain == EXAMPLE.parent / "pki" / "secc_chain.pem"  # relative to file
    assert cfg.mqtt is not None and cfg.mqtt.topic_prefix == "evse/v1"
    assert cfg.mqtt_client_id == "evse-DE*ABC*E0000001"
    assert len(cfg.tariffs.buy) == 24 and cfg.tariffs.sell == (0.08,)
    limits = cfg.limits.to_evse_limits()
    assert limits.bidirectional and limits.max_charge_power == 150000.0
    # The example's PKI files do not exist here: only a file check notices.
    assert any("tls.cert_chain: file not found" in e
               for e in check_config(EXAMPLE, check_files=True))


def test_every_key_of_the_example_is_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))

    def keys(prefix: str, node: object) -> list[str]:
        if isinstance(node, dict):
            return [k for key, v in node.items() for k in keys(f"{prefix}{key}.", v)] or []
        if isinstance(node, list) and node and isinstance(node[0], dict):
            return [k for item in node for k in keys(prefix, item)]
        return [prefix.rstrip(".")]

    for key in keys("", data):
        section, _, name = key.rpartition(".")
        assert f"`{name}`" in doc, f"{key} is not in docs/config.md"
    for commented in re.findall(r"^# (\w+) = ", EXAMPLE.read_text(), re.M):
        assert f"`{commented}`" in doc


def test_minimal_config_gets_the_documented_defaults() -> None:
    cfg = loads_config(MINIMAL, base_dir="/etc/evse")
    assert isinstance(cfg, StationConfig)
    assert cfg.connectors[0].services == ("DC",)
    assert cfg.hal.backends == (HalBackendConfig("sim"),)
    assert cfg.limits.max_discharge_power == 0 and cfg.limits.min_voltage == 0
    assert (cfg.network.tls_port, cfg.network.tcp_port) == (64109, 64110)
    assert cfg.mqtt is None
    assert cfg.energy.reserve_soc == 20 and cfg.energy.target_soc == 80
    assert cfg.energy.degradation_cost is None and cfg.energy.v2g is True  # wear tables
    assert cfg.energy.chemistry == "nmc" and cfg.energy.replacement_cost == 110.0
    assert cfg.reports.dir == Path("/etc/evse/reports")
    assert cfg.tariffs.curve(0).at(123).buy == 0.30
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.station_id = "x"  # type: ignore[misc]


def test_all_errors_are_collected_and_named() -> None:
    text = """
[station]
id = "a/b"
[[connectors]]
id = 1
type = "XC"
[[connectors]]
id = 1
type = "AC"
services = ["AC_BPT"]
[limits]
max_voltage = 500
max_charge_current = -5
max_charge_curent = 5
min_voltage = 600
[network]
interface = "eth1"
tls_port = 70000
[mqtt]
keepalive = true
reconnect_min_s = 5
reconnect_max_s = 1
[energy]
reserve_soc = 90
slot_minutes = 7
[tariffs]
buy = [0.1, 0.2, "x"]
[hal]
backends = "serial:,Can:x"
[logging]
level = "debug"
"""
    errors = errors_of(text)
    expected = [
        "station.id: must be 1-255 characters without '/', '+', '#', got 'a/b'",
        "connectors[0].type: must be one of 'DC', 'AC', got 'XC'",
        "connectors: connector id '1' used more than once",
        "limits.max_charge_current: must be > 0, got -5",
        "limits.max_charge_power: required",
        "limits.min_voltage: must be < limits.max_voltage (500), got 600",
        "limits.max_charge_curent: unknown key (did you mean 'max_charge_current'?)",
        "connectors[1].services: AC_BPT needs limits.max_discharge_power > 0",
        "connectors[1].services: AC_BPT needs limits.max_discharge_current > 0",
        "hal.backends: entry 1 ('serial'): empty target after ':'",
        "hal.backends: entry 2: backend name must be lower-case letters, digits, '_' and '-', "
        "got 'Can'",
        "tls: required (ISO 15118-20 runs over TLS 1.3): give tls.cert_chain and "
        "tls.private_key, or set tls.allow_plain_tcp_iso20 = true on a test bench",
        "network.tls_port: must be <= 65535, got 70000",
        "mqtt.keepalive: must be an integer, got true",
        "mqtt.reconnect_max_s: must be >= mqtt.reconnect_min_s (5), got 1",
        "tariffs.buy[2]: must be a number (or a list of numbers), got 'x'",
        "energy.reserve_soc: must be <= energy.target_soc (80), got 90",
        "energy.slot_minutes: must divide a day (1, 5, 15, 30, 60, ...), got 7",
        "logging: unknown key",
    ]
    assert sorted(errors) == sorted(expected)


@pytest.mark.parametrize(("section", "values", "error"), [
    ("limits", {"max_charge_current": "200"},
     "limits.max_charge_current: must be a number, got '200'"),
    ("limits", {"max_charge_power": math.nan}, "limits.max_charge_power: must be a finite"),
    ("tls", {"cert_chain": "c.pem"}, "tls.private_key: required together with tls.cert_chain"),
    ("tls", {"require_vehicle_cert": True}, "tls.trust_roots: required when"),
    ("network", {"address": "192.168.0.1"}, "network.address: must be an IPv6 address"),
    ("network", {"tcp_port": 64109}, "network.tcp_port: must differ from network.tls_port"),
    ("network", {"tls_port": 1.5}, "network.tls_port: must be an integer, got 1.5"),
    ("mqtt", {"password": "x"}, "mqtt.username: required when a password is given"),
    ("mqtt", {"topic_prefix": "evse/#"}, "mqtt.topic_prefix: must be topic levels"),
    ("mqtt", {"topic_prefix": "/evse"}, "mqtt.topic_prefix: must be topic levels"),
    ("mqtt", {"ca_file": "ca.pem"}, "mqtt.ca_file: only used with mqtt.tls = true"),
    ("mqtt", {"tls": True, "cert_file": "c.pem"}, "mqtt.key_file: mqtt.cert_file and"),
    ("tariffs", {"buy": [0.1, 0.2], "sell": [0.1, 0.2, 0.3]}, "tariffs.sell: has 3 prices"),
    ("tariffs", {"buy": [0.1] * 7}, "tariffs.buy: a daily profile"),
    ("tariffs", {"buy": []}, "tariffs.buy: must not be empty"),
    ("tariffs", {"currency": "euro"}, "tariffs.currency: must be an ISO 4217 code"),
    ("energy", {"charge_efficiency": 1.5}, "energy.charge_efficiency: must be <= 1, got 1.5"),
    ("energy", {"target_soc": 95, "max_soc": 90}, "energy.target_soc: must be <= energy.max_soc"),
    ("energy", {"reserve_soc": -1}, "energy.reserve_soc: must be >= 0, got -1"),
    ("hal", {"backends": [{"name": "can", "target": "can0", "bitrate": 5}]},
     "hal.backends[0].bitrate: unknown key"),
    ("hal", {"backends": [{"target": "can0"}]}, "hal.backends[0].name: required"),
    ("hal", {"backends": 5}, "hal.backends: must be a string like"),
    ("connectors", {"id": 1}, "connectors: must be a non-empty array of tables"),
    ("connectors", [{"id": "a b", "type": "DC"}], "connectors[0].id: must be an integer"),
    ("connectors", [{"id": 1, "type": "DC", "services": ["DC", "DC"]}],
     "connectors[0].services: a service is listed twice"),
    ("reports", {"dir": 5}, "reports.dir: must be a string, got 5"),
    ("station", {"id": ""}, "station.id: must be 1-255 characters"),
    ("station", {"name": "x"}, "station.name: unknown key"),
    ("limits", 5, "limits: must be a table, got 5"),
    ("network", None, "network: required"),
])
def test_single_errors(section: str, values: object, error: str) -> None:
    data = tomllib.loads(MINIMAL)
    if values is None:
        del data[section]
    elif isinstance(values, dict) and isinstance(data.get(section), dict):
        data[section].update(values)
    else:
        data[section] = values
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert any(error in e for e in info.value.errors), info.value.errors


def test_energy_wear_and_owner_policy_keys() -> None:
    cfg = loads_config(MINIMAL + '\n[energy]\nchemistry = "lfp"\nreplacement_cost = 150\n'
                       "max_discharge_kwh_per_day = 12\noutage_reserve_soc = 45\n"
                       "outage_possible = true\nbattery_temperature_c = 30\n")
    e = cfg.energy
    assert (e.chemistry, e.replacement_cost, e.max_discharge_kwh_per_day) == ("lfp", 150, 12)
    assert e.outage_possible and e.outage_reserve_soc == 45 and e.degradation_cost is None
    from evse.energy.provider import EnergyPolicy

    policy = EnergyPolicy.from_config(e)
    wear = policy.wear_model()
    assert wear is not None and wear.chemistry == "lfp" and wear.temperature_c == 30
    assert policy.planning_reserve(20.0) == 45.0
    flat = loads_config(MINIMAL + "\n[energy]\ndegradation_cost = 0.04\n").energy
    assert EnergyPolicy.from_config(flat).wear_model() is None  # the deprecated override
    with pytest.raises(ConfigError) as info:
        loads_config(MINIMAL + '\n[energy]\nchemistry = "lead"\n')
    assert any("energy.chemistry: must be one of 'nmc', 'lfp'" in x for x in info.value.errors)


def test_hal_backends_forms() -> None:
    assert parse_hal_spec("serial:/dev/ttyUSB0, can:can0") == [("serial", "/dev/ttyUSB0"),
                                                               ("can", "can0")]
    cfg = loads_config(MINIMAL + '\n[hal]\nbackends = "serial:/dev/ttyUSB0,can:can0"\n')
    assert cfg.hal.backends == (HalBackendConfig("serial", "/dev/ttyUSB0"),
                                HalBackendConfig("can", "can0"))
    cfg = loads_config(MINIMAL + '\n[[hal.backends]]\nname = "can"\ntarget = "can0"\n'
                                 'options = { bitrate = 500000 }\n')
    assert cfg.hal.backends[0].options == {"bitrate": 500000}
    assert any("given more than once" in e
               for e in errors_of(MINIMAL + '\n[hal]\nbackends = "sim,sim"\n'))


def test_tariff_profile_becomes_a_price_curve() -> None:
    cfg = loads_config(MINIMAL + "\n[tariffs]\ncurrency = \"CHF\"\nbuy = [0.1, 0.3]\n"
                                 "sell = 0.05\n")
    curve = cfg.tariffs.curve(day_start=86400.0, days=2)
    assert isinstance(curve, PriceCurve) and curve.currency == "CHF"
    assert [s.buy for s in curve.slots] == [0.1, 0.3, 0.1, 0.3]
    assert curve.at(86400 + 13 * 3600).buy == 0.3 and curve.at(86400 + 13 * 3600).sell == 0.05


def test_mqtt_section(tmp_path: Path) -> None:
    cfg = loads_config(MINIMAL + '\n[mqtt]\nhost = "broker.local"\ntls = true\n'
                                 'username = "u"\npassword_file = "pw"\n', base_dir=tmp_path)
    assert cfg.mqtt is not None
    assert cfg.mqtt.port == 8883 and cfg.mqtt.password_file == tmp_path / "pw"
    assert loads_config(MINIMAL + "\n[mqtt]\nenabled = false\n").mqtt is None


def test_file_errors(tmp_path: Path) -> None:
    assert check_config(tmp_path / "missing.toml")[0].endswith(
        "cannot read: [Errno 2] No such file or directory: '"
        + str(tmp_path / "missing.toml") + "'")
    bad = tmp_path / "bad.toml"
    bad.write_text("[station\nid = 1\n")
    assert "TOML syntax error" in check_config(bad)[0]
    good = tmp_path / "good.toml"
    good.write_text(MINIMAL.replace('interface = "eth1"', 'interface = "eth1"\n'
                                    'address = "fe80::1%eth1"'))
    assert check_config(good) == []
    assert load_config(good).network.address == ipaddress.IPv6Address("fe80::1")


def test_station_protocols() -> None:
    assert loads_config(MINIMAL).protocols == ("iso20",)  # the default
    data = tomllib.loads(MINIMAL)
    data["station"]["protocols"] = ["iso20"]
    assert parse_config(data).protocols == ("iso20",)
    data["station"]["protocols"] = ["iso20", "iso2", "din"]  # all three are implemented
    assert parse_config(data).protocols == ("iso20", "iso2", "din")
    for value, error in [
        (["iso15118"], "station.protocols: unknown protocols ['iso15118']"),
        (["iso20", "iso20"], "station.protocols: protocols listed twice"),
        ([], "station.protocols: at least one protocol"),
        ("iso20", "station.protocols: must be a list of strings"),
    ]:
        data["station"]["protocols"] = value
        with pytest.raises(ConfigError) as info:
            parse_config(data)
        assert any(e.startswith(error) for e in info.value.errors), info.value.errors


def test_station_protocols_once_implemented_need_no_tls_for_din(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evse.protocol.standards import STANDARDS

    for name in ("iso2", "din"):  # as their machines will be registered
        monkeypatch.setitem(STANDARDS, name, dataclasses.replace(
            STANDARDS[name], factory=lambda ctx: ctx))
    data = tomllib.loads(MINIMAL)
    del data["tls"]
    data["station"]["protocols"] = ["din", "iso2", "iso20"]
    with pytest.raises(ConfigError) as info:  # -20 needs TLS 1.3 ...
        parse_config(data)
    assert any(e.startswith("tls: required") for e in info.value.errors)
    data["station"]["protocols"] = ["din", "iso2"]  # ... DIN and -2 run over plain TCP
    assert parse_config(data).protocols == ("din", "iso2")


def test_ocpp_section(tmp_path: Path) -> None:
    assert loads_config(MINIMAL).ocpp is None
    cfg = loads_config(MINIMAL + '\n[ocpp]\nurl = "ws://csms:9000/ocpp"\npassword = "pw"\n',
                       base_dir=tmp_path)
    assert cfg.ocpp is not None
    assert (cfg.ocpp.station_id, cfg.ocpp.version, cfg.ocpp.security_profile) == (
        "ST1", "2.1", 1)
    assert cfg.ocpp.queue_file == tmp_path / "ocpp_queue.sqlite3"
    p3 = loads_config(MINIMAL + '\n[ocpp]\nurl = "wss://csms/ocpp"\nsecurity_profile = 3\n'
                                'cert_file = "c.pem"\nkey_file = "c.key"\nca_file = "ca.pem"\n'
                                'version = "2.0.1"\n', base_dir=tmp_path)
    assert p3.ocpp is not None and p3.ocpp.cert_file == tmp_path / "c.pem"
    assert loads_config(MINIMAL + '\n[ocpp]\nenabled = false\nurl = "ws://x"\n'
                                  'password = "pw"\n').ocpp is None
    for body, error in [
        ('url = "wss://csms"\npassword = "pw"', "ocpp.url: security profile 1 needs a ws://"),
        ('url = "ws://csms"', "ocpp.password: security profile 1 needs a password"),
        ('url = "ws://csms"\nsecurity_profile = 2\npassword = "pw"',
         "ocpp.url: security profile 2 needs a wss://"),
        ('url = "wss://csms"\nsecurity_profile = 3\ncert_file = "c"',
         "ocpp.key_file: required with security profile 3"),
        ('url = "wss://csms"\nsecurity_profile = 3\ncert_file = "c"\nkey_file = "k"\n'
         'password = "pw"', "ocpp.password: not used with security profile 3"),
        ('url = "ws://csms"\npassword = "pw"\nca_file = "ca"',
         "ocpp.ca_file: only used with security profiles 2 and 3"),
        ('url = "ws://csms"\npassword = "pw"\nversion = "1.6"', "ocpp.version: must be one of"),
        ('url = "ws://csms"\npassword = "pw"\nsecurity_profile = 4', "ocpp.security_profile"),
        ('url = "ws://csms"\npassword = "pw"\nsampled_interval_s = -1',
         "ocpp.sampled_interval_s: must be >= 0"),
        ('url = "ws://csms"\npassword = "pw"\nreconnect_min_s = 5\nreconnect_max_s = 1',
         "ocpp.reconnect_max_s: must be >= ocpp.reconnect_min_s"),
        ('url = "ws://csms"\npassword = "pw"\nheartbeat = 5', "ocpp.heartbeat: unknown key"),
    ]:
        errors = errors_of(MINIMAL + "\n[ocpp]\n" + body + "\n")
        assert any(e.startswith(error) for e in errors), (body, errors)
