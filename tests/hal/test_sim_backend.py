"""The sim backend through the HAL interfaces, on a fake clock (no sleeps)."""

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hal.backends.sim import SimBackend, sim_meter_payload
from hal.interfaces import (
    EmergencyStopActive,
    HalBackend,
    HalError,
    PilotState,
    PowerSupplyMode,
)
from hal.registry import available_backends, create_backend
from simulators.battery import EvBattery

M = PowerSupplyMode


class FakeClock:
    def __init__(self, backend: HalBackend, t: float = 1000.0) -> None:
        self.backend = backend
        self.t = t
        backend.poll(t)

    def run(
        self, seconds: float, dt: float = 0.05, until: Callable[[], bool] | None = None
    ) -> float:
        """Poll every dt for up to `seconds`; stop early once `until()` holds."""
        start, end = self.t, self.t + seconds
        while self.t < end - 1e-9:
            self.t = min(end, self.t + dt)
            self.backend.poll(self.t)
            if until is not None and until():
                break
        return self.t - start


@pytest.fixture
def sim() -> SimBackend:
    battery = EvBattery(capacity_kwh=60.0, soc=0.3)
    return SimBackend(battery=battery, voltage_ramp=200.0, current_ramp=100.0)


def test_dc_session_with_bidirectional_power(sim: SimBackend) -> None:
    clock = FakeClock(sim)
    psu, board, imd, meter = sim.power_supply, sim.board, sim.isolation_monitor, sim.meter

    # Plug-in, 5 % PWM for high-level communication, EV ready.
    sim.board.set_ev_pilot_state(PilotState.B)
    board.set_pwm_duty(5.0)
    sim.board.set_ev_pilot_state(PilotState.C)
    assert board.pilot_state is PilotState.C

    # Cable check: contactors closed, 500 V on the open cable, IMD measures.
    imd.start_self_test()
    clock.run(2.5)
    assert imd.self_test_passed is True
    board.close_contactors()
    clock.run(0.1)
    assert board.contactors_closed
    psu.set_mode(M.CABLECHECK)
    psu.set_voltage_current(500.0, 2.0)
    imd.start()
    clock.run(3.0)
    assert psu.measurement().voltage == pytest.approx(500.0)
    reading = imd.reading()
    assert reading is not None and reading.resistance_ohm == 5e6
    assert reading.timestamp <= clock.t
    imd.stop()

    # Pre-charge to the EV's voltage (its contactors still open), then the EV closes them.
    target = sim.ev_battery.terminal_voltage
    psu.set_mode(M.PRECHARGE)
    psu.set_voltage_current(target, 2.0)
    clock.run(5.0)
    assert abs(psu.measurement().voltage - target) < 1.0
    sim.ev_contactor_closed = True
    clock.run(0.5)
    assert sim.stage.connected
    assert 0.0 <= psu.measurement().current <= 2.0

    # Charge at 100 A for a minute.
    psu.set_mode(M.EXPORT)
    psu.set_voltage_current(450.0, 100.0)
    soc = sim.ev_battery.soc
    clock.run(61.0, dt=0.25)
    m = psu.measurement()
    assert m.current == pytest.approx(100.0)
    assert m.voltage == pytest.approx(sim.ev_battery.ocv + 100.0 * 0.1, abs=0.01)
    assert m.timestamp == clock.t
    assert sim.ev_battery.soc > soc
    imported = meter.reading().energy_imported_wh
    assert imported == pytest.approx(100 * m.voltage * 60 / 3600, rel=0.02)

    # V2G: give 50 A back for a minute.
    psu.set_mode(M.IMPORT)
    psu.set_voltage_current(300.0, -50.0)
    clock.run(61.0, dt=0.25)
    m = psu.measurement()
    assert m.current == pytest.approx(-50.0)
    r = meter.reading()
    assert r.energy_imported_wh == pytest.approx(imported, rel=1e-3)
    assert r.energy_exported_wh == pytest.approx(50 * m.voltage * 60 / 3600, rel=0.02)
    assert r.current == m.current

    # Stop: power off, contactors open, output bleeds down.
    psu.set_mode(M.OFF)
    clock.run(0.1)
    assert psu.measurement().current == 0.0
    board.open_contactors()
    sim.ev_contactor_closed = False
    clock.run(2.0)
    assert not board.contactors_closed
    assert psu.measurement().voltage < 60.0


def test_power_ramps_at_the_configured_rate(sim: SimBackend) -> None:
    clock = FakeClock(sim)
    sim.ev_contactor_closed = True
    sim.board.close_contactors()
    clock.run(0.1)
    sim.power_supply.set_mode(M.EXPORT)
    sim.power_supply.set_voltage_current(450.0, 200.0)
    clock.run(1.0)
    assert sim.power_supply.measurement().current == pytest.approx(100.0)


def test_welded_contactor_is_visible_in_the_feedback(sim: SimBackend) -> None:
    clock = FakeClock(sim)
    sim.contactor.inject_weld()
    sim.board.close_contactors()
    clock.run(0.1)
    sim.board.open_contactors()
    clock.run(1.0)
    assert not sim.board.contactors_commanded_closed
    assert sim.board.contactors_closed  # welded


def test_welded_contactor_keeps_the_battery_on_the_output(sim: SimBackend) -> None:
    clock = FakeClock(sim)
    sim.ev_contactor_closed = True
    sim.contactor.inject_weld()
    sim.board.close_contactors()
    clock.run(0.1)
    sim.board.open_contactors()
    clock.run(2.0)
    assert sim.power_supply.measurement().voltage == pytest.approx(sim.ev_battery.ocv)


def test_emergency_stop_cuts_power_and_latches(sim: SimBackend) -> None:
    clock = FakeClock(sim)
    sim.ev_contactor_closed = True
    sim.board.close_contactors()
    clock.run(0.1)
    sim.power_supply.set_mode(M.EXPORT)
    sim.power_supply.set_voltage_current(450.0, 50.0)
    clock.run(1.0)
    assert sim.power_supply.measurement().current == pytest.approx(50.0)

    sim.board.press_emergency_stop_button()
    clock.run(0.05)
    assert sim.power_supply.measurement().current == 0.0
    assert sim.power_supply.mode is M.OFF
    clock.run(0.1)
    assert not sim.board.contactors_closed
    with pytest.raises(EmergencyStopActive):
        sim.power_supply.set_mode(M.EXPORT)
    with pytest.raises(EmergencyStopActive):
        sim.board.close_contactors()
    assert not sim.board.reset_emergency_stop()  # button still pressed
    sim.board.release_emergency_stop_button()
    assert sim.board.reset_emergency_stop()
    sim.power_supply.set_mode(M.EXPORT)


def test_software_emergency_stop(sim: SimBackend) -> None:
    FakeClock(sim)
    sim.board.emergency_stop()
    assert sim.board.emergency_stop_active
    assert sim.board.reset_emergency_stop()


def test_power_supply_fault_injection(sim: SimBackend) -> None:
    clock = FakeClock(sim)
    sim.power_supply.set_mode(M.PRECHARGE)
    sim.power_supply.inject_fault("overtemperature")
    assert sim.power_supply.fault == "overtemperature"
    assert sim.power_supply.mode is M.OFF
    with pytest.raises(HalError):
        sim.power_supply.set_mode(M.EXPORT)
    sim.power_supply.clear_fault()
    sim.power_supply.set_mode(M.EXPORT)
    clock.run(0.1)


def test_isolation_faults(sim: SimBackend) -> None:
    clock = FakeClock(sim)
    imd = sim.isolation_monitor
    sim.isolation.resistance_ohm = 40_000.0  # insulation fault: control must judge it
    imd.start()
    assert imd.measuring
    assert imd.reading() is None
    clock.run(1.1)
    reading = imd.reading()
    assert reading is not None and reading.resistance_ohm == 40_000.0
    sim.isolation.device_fault = "IMD internal error"
    assert imd.fault == "IMD internal error"
    imd.start_self_test()
    clock.run(3.0)
    assert imd.self_test_passed is False


def test_pilot_state_f_at_zero_duty(sim: SimBackend) -> None:
    initial = sim.board.pilot_state
    assert initial is PilotState.A  # nothing plugged in yet
    sim.board.set_ev_pilot_state(PilotState.B)
    sim.board.set_pwm_duty(0.0)
    assert sim.board.pilot_state is PilotState.F
    with pytest.raises(ValueError):
        sim.board.set_ev_pilot_state(PilotState.F)


def test_signed_meter_readings_verify() -> None:
    key = Ed25519PrivateKey.generate()
    sim = SimBackend(meter_signing_key=key, meter_id="SIM-42", ev_contactor_closed=True)
    clock = FakeClock(sim)
    sim.board.close_contactors()
    clock.run(0.1)
    sim.power_supply.set_mode(M.EXPORT)
    sim.power_supply.set_voltage_current(450.0, 10.0)
    clock.run(10.0)
    reading = sim.meter.reading()
    assert reading.signature is not None and len(reading.signature) == 64
    key.public_key().verify(reading.signature, sim_meter_payload(reading))
    assert SimBackend().meter.reading().signature is None


def test_the_battery_can_be_shared_with_an_ev_simulator() -> None:
    battery = EvBattery(soc=0.8)
    sim = create_backend("sim", battery=battery)
    assert isinstance(sim, SimBackend)
    assert sim.ev_battery is battery


def test_invalid_options() -> None:
    with pytest.raises(ValueError):
        SimBackend(current_ramp=0.0)


@pytest.mark.parametrize("name", available_backends())
class TestBackendContract:
    """What every backend must do, whatever it drives (re-run for each registered one).

    `make_backend` (tests/hal/conftest.py) attaches simulated hardware to the backends
    that talk to a device (serial: an MCU on a pty; can: modules on a virtual bus).
    """

    def test_starts_safe(self, name: str, make_backend: Callable[[str], HalBackend]) -> None:
        backend = make_backend(name)
        backend.poll(0.0)
        assert backend.power_supply.mode is M.OFF
        assert not backend.board.contactors_commanded_closed
        assert not backend.board.contactors_closed

    def test_readings_carry_the_poll_time(
        self, name: str, make_backend: Callable[[str], HalBackend]
    ) -> None:
        backend = make_backend(name)
        backend.poll(12.5)
        assert backend.power_supply.measurement().timestamp == 12.5
        assert backend.meter.reading().timestamp == 12.5

    def test_close_leaves_it_safe(
        self, name: str, make_backend: Callable[[str], HalBackend]
    ) -> None:
        with make_backend(name) as backend:
            backend.poll(0.0)
            backend.board.close_contactors()
            backend.power_supply.set_mode(M.PRECHARGE)
        assert backend.power_supply.mode is M.OFF
        assert not backend.board.contactors_commanded_closed

    def test_emergency_stop_refuses_energising(
        self, name: str, make_backend: Callable[[str], HalBackend]
    ) -> None:
        backend = make_backend(name)
        backend.poll(0.0)
        backend.board.emergency_stop()
        backend.poll(0.05)
        assert backend.board.emergency_stop_active
        assert not backend.board.contactors_commanded_closed
        with pytest.raises(EmergencyStopActive):
            backend.board.close_contactors()
