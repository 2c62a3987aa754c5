"""The test-bench forms of the can backend's target: `can:virtual+sim` (simulated modules on
the process-local bus, stepped in the backend's poll) and a udp_multicast port."""

from __future__ import annotations

import pytest

from hal.backends.can import CanBackend
from hal.backends.serial import SerialBackend
from hal.interfaces import PowerSupplyMode
from hal.registry import CompositeBackend, create_backend_from_spec, target_options
from hal.supervisor import SafetySupervisor
from simulators.hw import PowerTrace, SimulatedHardware, parse_can_target

M = PowerSupplyMode


@pytest.mark.parametrize(
    ("target", "options"),
    [
        ("virtual+sim", {"interface": "virtual", "simulated_modules": True}),
        ("virtual+sim:bench", {"interface": "virtual", "simulated_modules": True,
                               "channel": "bench"}),
        ("udp_multicast:[ff01::4556:5345]:43114",
         {"interface": "udp_multicast", "channel": "ff01::4556:5345",
          "bus_options": {"port": 43114}}),
        ("udp_multicast:[ff01::1]", {"interface": "udp_multicast", "channel": "ff01::1"}),
        ("udp_multicast:ff01::1:2", {"interface": "udp_multicast", "channel": "ff01::1:2"}),
        ("udp_multicast:239.74.163.2:5000",
         {"interface": "udp_multicast", "channel": "239.74.163.2",
          "bus_options": {"port": 5000}}),
    ],
)
def test_targets(target: str, options: dict[str, object]) -> None:
    assert target_options("can", target) == options


@pytest.mark.parametrize("bad", ["udp_multicast:[ff01::1]x", "udp_multicast:[ff01::1]:0",
                                 "udp_multicast:[ff01::1]:http"])
def test_bad_multicast_targets(bad: str) -> None:
    with pytest.raises(ValueError):
        target_options("can", bad)


def test_simulated_modules_only_on_the_virtual_bus() -> None:
    with pytest.raises(ValueError):
        CanBackend(interface="socketcan", channel="can0", simulated_modules=True)


def test_virtual_sim_charges_and_discharges_through_the_sim_boards_contactors() -> None:
    backend = create_backend_from_spec("can:virtual+sim:vsim-1,sim")
    assert isinstance(backend, CompositeBackend)
    can_backend = backend.sources["power_supply"]
    assert isinstance(can_backend, CanBackend) and can_backend.rack is not None
    assert backend.simulated_parts == ("board", "power_supply", "isolation_monitor", "meter")
    sup = SafetySupervisor(backend)
    try:
        t = 0.0

        def run(seconds: float) -> None:
            nonlocal t
            end = t + seconds
            while t < end:
                t += 0.02
                sup.poll(t)

        run(0.3)
        psu = sup.power_supply
        psu.set_mode(M.EXPORT)
        psu.set_voltage_current(420.0, 40.0)
        run(0.5)
        assert abs(psu.measurement().current) < 0.5  # contactors open: no current
        sup.board.close_contactors()
        run(0.5)
        assert psu.measurement().current == pytest.approx(40.0, abs=0.5)
        psu.set_mode(M.IMPORT)
        psu.set_voltage_current(300.0, -30.0)
        run(0.5)
        assert psu.measurement().current == pytest.approx(-30.0, abs=0.5)
        assert not sup.trips
    finally:
        sup.close()


def test_serial_plus_virtual_sim_spec_follows_the_mcus_contacts() -> None:
    with SimulatedHardware(can=None) as hw:
        assert hw.hal_spec == f"serial:{hw.pty.port},can:virtual+sim,sim"
        backend = create_backend_from_spec(
            hw.hal_spec.replace("virtual+sim", "virtual+sim:vsim-2"), allow_simulated_parts=True)
        assert isinstance(backend, CompositeBackend)
        serial, can_backend = backend.sources["board"], backend.sources["power_supply"]
        assert isinstance(serial, SerialBackend) and isinstance(can_backend, CanBackend)
        # the composite bound the MCU's board: the modules' output follows its feedback
        assert can_backend._simulated_output_connected() is False
        backend.close()


def test_parse_can_target_for_the_rack_side() -> None:
    assert parse_can_target("virtual:x") == {"interface": "virtual", "channel": "x"}
    assert parse_can_target("udp_multicast:[ff01::9]:4000") == {
        "interface": "udp_multicast", "channel": "ff01::9", "port": 4000}
    with pytest.raises(ValueError):
        parse_can_target("virtual+sim")


def test_power_trace_records_openings_under_load() -> None:
    trace = PowerTrace(sample_interval=0.0)
    trace.observe(0.0, 0.0, True)
    trace.observe(0.1, 50.0, True)
    trace.observe(0.2, 0.0, True)
    trace.observe(0.3, 0.0, False)  # opened at 0 A: fine
    trace.observe(0.4, 0.0, True)
    trace.observe(0.5, -30.0, False)  # opened under 30 A discharge
    assert [b.current for b in trace.breaks] == [0.0, -30.0]
    assert [b.current for b in trace.breaks_under_load()] == [-30.0]
    assert trace.max_current == 50.0 and trace.min_current == 0.0
