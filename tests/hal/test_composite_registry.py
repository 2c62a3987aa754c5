"""Built-in serial/can names, spec strings, config tables and the composite backend."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hal_rigs import unique_channel

from hal.backends.can import CanBackend
from hal.backends.serial import SerialBackend
from hal.backends.sim import SimBackend
from hal.interfaces import EmergencyStopActive, PowerSupplyMode
from hal.parts import describe
from hal.registry import (
    CompositeBackend,
    available_backends,
    create_backend_from_config,
    create_backend_from_entries,
    create_backend_from_spec,
    parse_backend_spec,
    resolve_backend,
    target_options,
)
from hal.supervisor import SafetySupervisor
from simulators.mcu import PtyPair

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"


def test_serial_and_can_are_built_in() -> None:
    assert {"sim", "serial", "can"} <= set(available_backends())
    assert resolve_backend("serial") is SerialBackend
    assert resolve_backend("can") is CanBackend


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("sim", [("sim", {})]),
        ("serial:/dev/ttyS1", [("serial", {"port": "/dev/ttyS1"})]),
        ("can:virtual", [("can", {"interface": "virtual"})]),
        ("can:can0", [("can", {"interface": "socketcan", "channel": "can0"})]),
        ("can:virtual:bench", [("can", {"interface": "virtual", "channel": "bench"})]),
        (
            "serial:/dev/ttyX, can:socketcan:can0",
            [
                ("serial", {"port": "/dev/ttyX"}),
                ("can", {"interface": "socketcan", "channel": "can0"}),
            ],
        ),
        (
            "can:udp_multicast:ff01::1:2",
            [("can", {"interface": "udp_multicast", "channel": "ff01::1:2"})],
        ),
        ("serial:rfc2217://host:4000", [("serial", {"port": "rfc2217://host:4000"})]),
    ],
)
def test_parse_spec(spec: str, parsed: list[tuple[str, dict[str, Any]]]) -> None:
    assert parse_backend_spec(spec) == parsed


@pytest.mark.parametrize("bad", ["", "serial:/a,,can", "can,can", "serial:"])
def test_bad_specs(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_backend_spec(bad)


def test_other_backends_get_their_target_as_an_option() -> None:
    assert target_options("myplugin", "bus7") == {"target": "bus7"}
    assert target_options("sim", None) == {}


def test_single_item_spec_is_that_backend() -> None:
    backend = create_backend_from_spec("sim", {"sim": {"meter_id": "M-7"}})
    assert isinstance(backend, SimBackend) and backend.meter.meter_id == "M-7"


def test_serial_plus_can_spec_builds_a_composite() -> None:
    channel = unique_channel()
    with PtyPair() as pty:
        backend = create_backend_from_spec(
            f"serial:{pty.port},can:virtual:{channel},sim",
            {"can": {"module_addresses": [4, 5]}, "sim": {"meter_id": "M-9"}},
            allow_simulated_parts=True,
        )
        assert isinstance(backend, CompositeBackend)
        serial, can_backend, sim = (backend.sources[p] for p in ("board", "power_supply", "meter"))
        assert isinstance(serial, SerialBackend) and isinstance(can_backend, CanBackend)
        assert isinstance(sim, SimBackend)
        assert backend.board is serial.board
        assert backend.power_supply is can_backend.power_supply
        assert backend.isolation_monitor is sim.isolation_monitor
        assert backend.meter.meter_id == "M-9"
        assert serial.base is None and can_backend.base is None  # nothing hidden inside
        assert backend.backends == [serial, can_backend, sim]  # each polled once
        assert [str(i) for i in backend.describe()] == [
            f"board: serial {pty.port} (real)",
            f"power_supply: can virtual:{channel} (real)",
            "isolation_monitor: sim (SIMULATED)",
            "meter: sim (SIMULATED)",
        ]
        assert sorted(can_backend.power_supply.modules) == [4, 5]
        backend.poll(1.0)
        assert backend.meter.reading().timestamp == 1.0
        # The board's e-stop interlocks the CAN supply.
        backend.board.emergency_stop()
        with pytest.raises(EmergencyStopActive):
            backend.power_supply.set_mode(PowerSupplyMode.EXPORT)
        backend.close()


def test_entries_as_a_config_loader_gives_them() -> None:
    channel = unique_channel()
    backend = create_backend_from_entries(
        [
            ("can", f"virtual:{channel}", {"module_addresses": [1]}),
            ("sim", None, {"meter_id": "M-3"}),
        ],
        allow_simulated_parts=True,
    )
    assert isinstance(backend, CompositeBackend)
    assert isinstance(backend.sources["power_supply"], CanBackend)
    assert isinstance(backend.sources["board"], SimBackend)
    assert backend.meter.meter_id == "M-3"
    backend.close()


def test_config_errors() -> None:
    with pytest.raises(ValueError):
        create_backend_from_config({"backend": "sim"})  # the key is `backends`
    with pytest.raises(ValueError):
        create_backend_from_config({"backends": [{"target": "x"}]})
    with pytest.raises(ValueError):
        create_backend_from_config({"backends": [{"name": "sim", "bitrate": 5}]})
    with pytest.raises(ValueError):
        create_backend_from_entries([("sim", None, {}), ("sim", None, {})])


def test_config_supervisor_table_wraps_the_backend() -> None:
    backend = create_backend_from_config({"backends": "sim", "supervisor": {"open_timeout": 0.2}})
    assert isinstance(backend, SafetySupervisor)
    assert backend.open_timeout == 0.2 and isinstance(backend.backend, SimBackend)


def _load(name: str) -> dict[str, Any]:
    with open(EXAMPLES / name, "rb") as f:
        hal = tomllib.load(f)["hal"]
    assert isinstance(hal, dict)
    return hal


@pytest.mark.parametrize(
    ("name", "simulated"),
    [
        ("sim.toml", ["board", "power_supply", "isolation_monitor", "meter"]),
        ("serial.toml", ["power_supply", "isolation_monitor", "meter"]),
        ("can.toml", ["board", "isolation_monitor", "meter"]),
        ("serial_can.toml", []),
    ],
)
def test_config_examples_build(name: str, simulated: list[str]) -> None:
    """Every example builds, with the device paths swapped for a pty, a virtual bus and a
    Modbus address nobody answers (which also checks that each documented option is a real
    one), and says which parts are simulated."""
    hal = _load(name)
    with PtyPair() as pty:
        for part in hal.get("parts", {}).values():
            if not isinstance(part, dict):
                continue
            if part["backend"] == "serial":
                part["target"] = pty.port
            elif part["backend"] == "can":
                part["target"] = f"virtual:{unique_channel()}"
                part.pop("bitrate", None)  # no bit rate on a virtual bus
            elif part["backend"].startswith("modbus-"):
                part["target"] = "tcp:127.0.0.1:9"  # discard port: nobody answers
        backend = SafetySupervisor(create_backend_from_config(hal))
        if name == "sim.toml":
            assert type(backend.backend) is SimBackend
        else:
            assert type(backend.backend) is CompositeBackend
        assert [i.part for i in describe(backend) if i.simulated] == simulated
        backend.poll(0.0)
        backend.close()


def test_serial_can_example_matches_its_short_form() -> None:
    hal = _load("serial_can.toml")
    text = (EXAMPLES / "serial_can.toml").read_text()
    short = ("serial:/dev/ttymxc2,can:socketcan:can0,isolation_monitor=modbus-imd:rtu:"
             "/dev/ttymxc3,meter=modbus-meter:rtu:/dev/ttymxc4")
    assert f'backends = "{short}"' in text
    parts = hal["parts"]
    assert [(p["backend"], p["target"]) for p in parts.values()] == [
        ("serial", "/dev/ttymxc2"), ("can", "socketcan:can0"),
        ("modbus-imd", "rtu:/dev/ttymxc3"), ("modbus-meter", "rtu:/dev/ttymxc4")]
    assert list(parts) == ["board", "power_supply", "isolation_monitor", "meter"]
