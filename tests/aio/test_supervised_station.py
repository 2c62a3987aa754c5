"""`evse secc` wraps each HAL backend in the safety supervisor: on by default for real
hardware, optional for sim, configurable from the command line and [hal.supervisor]."""

from __future__ import annotations

from typing import Any

import pytest

from evse.aio.app import SeccOptions, SetupError, build_station
from evse.aio.supervised import supervision_default
from evse.config import ConfigError, SupervisorConfig, loads_config
from evse.control import ChargerController
from evse.control.supervision import SupervisedController
from hal.backends.sim import SimBackend
from hal.parts import describe
from hal.registry import CompositeBackend
from hal.supervisor import SafetySupervisor
from simulators.hw import SimulatedHardware

CONFIG = """
[station]
id = "ST1"

[[connectors]]
id = 1
type = "DC"
services = ["DC", "DC_BPT"]

[limits]
max_voltage = 500
max_charge_current = 80
max_charge_power = 40000
max_discharge_current = 60
max_discharge_power = 30000

[tls]
allow_plain_tcp_iso20 = true

[network]
interface = "eth1"

[hal]
backends = "sim"
"""


def _close(station: Any) -> None:
    for c in station.connectors:
        c.backend.close()


def test_default_is_on_for_hardware_and_off_for_sim() -> None:
    assert not supervision_default("sim")
    assert supervision_default("serial:/dev/ttyS1,can:can0")
    assert supervision_default("sim, can:virtual+sim")


def test_sim_runs_unsupervised_unless_asked() -> None:
    station, _ = build_station(SeccOptions(address="::1", hal="sim"))
    c = station.connectors[0]
    assert isinstance(c.backend, SimBackend) and type(c.controller) is ChargerController
    _close(station)
    station, config = build_station(SeccOptions(address="::1", hal="sim", supervise=True,
                                                supervisor_options={"open_timeout": 0.2}))
    c = station.connectors[0]
    assert isinstance(c.backend, SafetySupervisor) and c.backend.open_timeout == 0.2
    assert isinstance(c.controller, SupervisedController)
    assert c.controller.hal is c.backend
    assert c.backend.limits is not None
    assert c.backend.limits.max_charge_current == config.limits.max_charge_current
    _close(station)


def test_serial_and_can_are_supervised_by_default_and_can_opt_out() -> None:
    with SimulatedHardware(can=None) as hw:
        spec = f"serial:{hw.pty.port},can:virtual+sim:station-1,sim"
        station, config = build_station(SeccOptions(address="::1", hal=spec,
                                                    allow_simulated_parts=True))
        c = station.connectors[0]
        assert isinstance(c.backend, SafetySupervisor)
        assert isinstance(c.backend.backend, CompositeBackend)
        assert isinstance(c.controller, SupervisedController)
        assert [s.name for s in config.services] == ["DC", "DC_BPT"]
        _close(station)
        spec = f"serial:{hw.pty.port},can:virtual+sim:station-2,sim"
        station, _ = build_station(SeccOptions(address="::1", hal=spec, supervise=False,
                                               allow_simulated_parts=True))
        assert isinstance(station.connectors[0].backend, CompositeBackend)
        _close(station)


def test_bad_supervisor_options_are_a_setup_error() -> None:
    with pytest.raises(SetupError):
        build_station(SeccOptions(address="::1", hal="sim", supervise=True,
                                  supervisor_options={"stale_afterr": 1.0}))


def test_config_table() -> None:
    cfg = loads_config(CONFIG + """
[hal.supervisor]
enabled = true
stale_after = 0.8
open_timeout = 0.3
reset_emergency_stop = false
""")
    sup = cfg.hal.supervisor
    assert sup.enabled is True and dict(sup.options) == {"stale_after": 0.8, "open_timeout": 0.3}
    assert not sup.reset_emergency_stop and sup.reset_on_new_session
    station, _ = build_station(SeccOptions(address="::1"), cfg)
    c = station.connectors[0]
    assert isinstance(c.backend, SafetySupervisor)
    assert c.backend.stale_after == 0.8 and c.backend.open_timeout == 0.3
    assert isinstance(c.controller, SupervisedController)
    assert not c.controller.policy.reset_emergency_stop
    assert c.backend.limits is not None and c.backend.limits.max_charge_current == 80.0
    _close(station)
    # the command line wins
    station, _ = build_station(SeccOptions(address="::1", supervise=False), cfg)
    assert isinstance(station.connectors[0].backend, SimBackend)
    _close(station)
    assert loads_config(CONFIG).hal.supervisor == SupervisorConfig()


@pytest.mark.parametrize(("table", "error"), [
    ("stale_after = 0", "hal.supervisor.stale_after: must be > 0"),
    ("enabled = 1", "hal.supervisor.enabled: must be true or false"),
    ("stale_afer = 1.0", "hal.supervisor.stale_afer: unknown key (did you mean 'stale_after'?)"),
])
def test_config_errors(table: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(CONFIG + "\n[hal.supervisor]\n" + table + "\n")
    assert any(e.startswith(error) for e in info.value.errors), info.value.errors


def test_the_bench_config_example_builds() -> None:
    """config/examples/bench_sim_hw.toml (docs/hardware.md), with its pty link and
    multicast bus swapped for this test's pty and an in-process bus."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "config" / "examples" / "bench_sim_hw.toml"
    text = path.read_text()
    assert "/tmp/evse-mcu" in text and "udp_multicast:[ff01::4556:5345]:43113" in text
    with SimulatedHardware(can=None) as hw:
        text = text.replace("/tmp/evse-mcu", hw.pty.port).replace(
            "udp_multicast:[ff01::4556:5345]:43113", "virtual+sim:bench-example")
        cfg = loads_config(text)
        station, config = build_station(SeccOptions(), cfg)
        c = station.connectors[0]
        assert isinstance(c.backend, SafetySupervisor) and c.backend.stale_after == 1.0
        assert isinstance(c.backend.backend, CompositeBackend)
        assert config.limits.max_charge_current == 100.0  # two 50 A modules
        assert [s.name for s in config.services] == ["DC", "DC_BPT"]
        _close(station)


def test_a_real_board_beside_a_simulated_imd_is_refused_unless_allowed(
        caplog: pytest.LogCaptureFixture) -> None:
    with SimulatedHardware(can=None) as hw:
        spec = f"serial:{hw.pty.port},can:virtual+sim:station-3,sim"
        with pytest.raises(SetupError, match="SIMULATED isolation monitor"):
            build_station(SeccOptions(address="::1", hal=spec))
        # Without `sim` nothing fills the isolation monitor and the meter in.
        with pytest.raises(SetupError, match="no backend for isolation_monitor, meter"):
            build_station(SeccOptions(address="::1", hal=spec.removesuffix(",sim"),
                                      allow_simulated_parts=True))
        with caplog.at_level("INFO", logger="evse.secc"):
            station, _ = build_station(SeccOptions(address="::1", hal=spec,
                                                   allow_simulated_parts=True))
        _close(station)
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "evse.secc"]
    assert ("INFO", f"HAL board: serial {hw.pty.port} (real)") in logged
    assert ("WARNING", "HAL isolation_monitor: sim (SIMULATED)") in logged
    assert ("WARNING", "HAL meter: sim (SIMULATED)") in logged


def test_hal_parts_table_and_its_allow_key() -> None:
    with SimulatedHardware(can=None) as hw:
        parts = f"""
[hal.parts.board]
backend = "serial"
target = "{hw.pty.port}"
[hal.parts.power_supply]
backend = "can"
target = "virtual+sim:station-4"
[hal.parts]
insulation_monitor = "sim"
meter = {{ backend = "sim", meter_id = "M-42" }}
"""
        base = CONFIG.replace('[hal]\nbackends = "sim"\n', "")
        with pytest.raises(SetupError, match="SIMULATED isolation monitor"):
            build_station(SeccOptions(address="::1"), loads_config(base + parts))
        cfg = loads_config(base + "\n[hal]\nallow_simulated_parts = true\n" + parts)
        assert [p.part for p in cfg.hal.parts] == [
            "board", "power_supply", "isolation_monitor", "meter"]
        station, _ = build_station(SeccOptions(address="::1"), cfg)
        c = station.connectors[0]
        assert isinstance(c.backend, SafetySupervisor)  # real hardware: supervised
        assert c.backend.meter.meter_id == "M-42"
        assert [str(i) for i in describe(c.backend)][2:] == [
            "isolation_monitor: sim (SIMULATED)", "meter: sim (SIMULATED)"]
        _close(station)


def test_hal_parts_config_errors() -> None:
    errors = errors_of_hal('[hal.parts]\nboard = "sim"\nmeter = "sim"\n')
    assert any("missing: power_supply, isolation_monitor" in e for e in errors), errors
    errors = errors_of_hal('[hal.parts]\nboard = "sim"\nwheel = "sim"\n')
    assert any("hal.parts.wheel: not a HAL part" in e for e in errors), errors


def errors_of_hal(table: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loads_config(CONFIG.replace('[hal]\nbackends = "sim"\n', "") + "\n" + table)
    return info.value.errors
