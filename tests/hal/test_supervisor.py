"""The safety supervisor: each check trips, the safe state comes in order (current to zero,
then contactors open), the reason is recorded. First on the sim backend (fake clock,
exact), then end to end on the serial + CAN rigs with injected hardware faults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hal_rigs import Clocked, ComboRig

from hal.backends.sim import SimBackend
from hal.interfaces import HalBackend, PowerSupplyMode, SetpointOutOfRange
from hal.supervisor import SafetySupervisor, SafetyTripActive, TripReason
from simulators.battery import EvBattery

M = PowerSupplyMode


def actions(sup: SafetySupervisor) -> list[str]:
    return [a.action for a in sup.actions]


def assert_safe_sequence(sup: SafetySupervisor, forced: bool = False) -> None:
    """power_off first; contactors opened after it, with ~zero current unless forced."""
    names = actions(sup)
    assert names[0] == "power_off", names
    opened = [a for a in sup.actions if a.action.startswith("open_contactors")]
    assert opened, names
    first_open = opened[0]
    assert first_open.time >= sup.actions[0].time
    assert sup.actions.index(first_open) > 0
    if forced:
        assert first_open.action == "open_contactors_forced"
        assert first_open.time - sup.actions[0].time >= sup.open_timeout - 1e-9
    else:
        assert first_open.action == "open_contactors", names
        assert abs(first_open.current) <= sup.zero_current
    assert sup.safe_state_reached
    assert sup.power_supply.mode is M.OFF
    assert not sup.board.contactors_commanded_closed


# ---- on the sim backend --------------------------------------------------------------------


class FreezableSim(SimBackend):
    """A sim whose power-stage readings can stop updating (a hung measurement path)."""

    frozen = False

    def poll(self, now: float) -> None:
        if not self.frozen:
            super().poll(now)


@pytest.fixture
def sim() -> FreezableSim:
    return FreezableSim(battery=EvBattery(soc=0.5), current_ramp=1000.0)


@pytest.fixture
def sup(sim: FreezableSim) -> SafetySupervisor:
    return SafetySupervisor(sim)


def charging(sup: SafetySupervisor, amps: float = 100.0) -> Clocked:
    sim = sup.backend
    assert isinstance(sim, SimBackend)
    sim.ev_contactor_closed = True
    clock = Clocked(sup, t=100.0)
    clock.run(0.1)
    sup.board.close_contactors()
    clock.run(0.1)
    if amps >= 0:
        sup.power_supply.set_mode(M.EXPORT)
        sup.power_supply.set_voltage_current(500.0, amps)
    else:
        sup.power_supply.set_mode(M.IMPORT)
        sup.power_supply.set_voltage_current(300.0, amps)
    clock.run(0.5)
    assert sup.power_supply.measurement().current == pytest.approx(amps)
    assert not sup.tripped
    return clock


def test_a_normal_session_does_not_trip(sup: SafetySupervisor) -> None:
    sup.set_limits(500.0, 150.0, 80.0)
    clock = charging(sup, 120.0)
    clock.run(2.0)
    sup.power_supply.set_mode(M.IMPORT)
    sup.power_supply.set_voltage_current(300.0, -75.0)
    clock.run(2.0)
    sup.power_supply.set_mode(M.OFF)
    clock.run(0.1)
    sup.board.open_contactors()
    clock.run(1.0)
    assert not sup.tripped and sup.trips == [] and sup.actions == []


def test_over_current_trips_and_reaches_the_safe_state_in_order(sup: SafetySupervisor) -> None:
    clock = charging(sup, 100.0)
    sup.set_limits(500.0, 80.0, 50.0)  # the EV lowered its limit below what flows
    clock.run(0.02)
    assert sup.tripped
    trip = sup.trips[0]
    assert trip.reason is TripReason.OVER_CURRENT and trip.reason.emergency
    assert "100.0 A > 80.0 A" in trip.text
    assert trip.time == clock.t
    assert actions(sup) == ["power_off"]  # contactors wait for a zero-current reading
    assert sup.actions[0].current == pytest.approx(100.0)
    assert sup.board.contactors_commanded_closed
    clock.run(0.2)
    assert_safe_sequence(sup)
    assert sup.actions[1].time == pytest.approx(trip.time + 0.02)  # the next poll


def test_over_discharge_current(sup: SafetySupervisor) -> None:
    clock = charging(sup, -60.0)
    sup.set_limits(500.0, 100.0, 40.0)
    clock.run(0.2)
    assert sup.trips[0].reason is TripReason.OVER_DISCHARGE_CURRENT
    assert_safe_sequence(sup)


def test_over_voltage(sup: SafetySupervisor, sim: FreezableSim) -> None:
    clock = Clocked(sup)
    clock.run(0.1)
    sup.set_limits(400.0, 100.0, 50.0)
    sup.power_supply.set_mode(M.PRECHARGE)
    sup.power_supply.set_voltage_current(450.0, 2.0)
    clock.run(5.0, until=lambda: sup.tripped)
    assert sup.trips[0].reason is TripReason.OVER_VOLTAGE
    assert sim.stage.voltage > 410.0
    clock.run(0.2)
    assert_safe_sequence(sup)


def test_stale_measurement_forces_the_contactors_open_after_the_timeout(
    sup: SafetySupervisor, sim: FreezableSim
) -> None:
    clock = charging(sup, 50.0)
    sim.frozen = True
    t0 = clock.t
    clock.run(2.0, until=lambda: sup.tripped)
    assert sup.trips[0].reason is TripReason.STALE_MEASUREMENT
    assert clock.t - t0 == pytest.approx(1.0 + 0.02, abs=0.021)
    clock.run(1.0)
    assert_safe_sequence(sup, forced=True)
    assert "no zero-current reading" in sup.actions[1].detail


def test_welded_contactor(sup: SafetySupervisor, sim: FreezableSim) -> None:
    clock = charging(sup, 50.0)
    sim.contactor.inject_weld()
    sup.power_supply.set_mode(M.OFF)  # a normal stop: power off, then open
    clock.run(0.1)
    sup.board.open_contactors()
    clock.run(1.0, until=lambda: sup.tripped)
    trip = sup.trips[0]
    assert trip.reason is TripReason.CONTACTOR_MISMATCH and "welded" in trip.text
    clock.run(0.2)
    assert_safe_sequence(sup)
    assert sup.board.contactors_closed  # still welded: reported, cannot be fixed here
    assert not sup.reset(clock.t)


def test_contactor_that_does_not_close(sup: SafetySupervisor, sim: FreezableSim) -> None:
    clock = Clocked(sup)
    clock.run(0.1)
    sim.contactor.switch_time = 10.0  # stuck: never closes in time
    sup.board.close_contactors()
    clock.run(1.0, until=lambda: sup.tripped)
    assert sup.trips[0].reason is TripReason.CONTACTOR_MISMATCH
    assert "stuck" in sup.trips[0].text


def test_isolation_fault_while_measuring(sup: SafetySupervisor, sim: FreezableSim) -> None:
    clock = Clocked(sup)
    sup.set_limits(500.0, 100.0, 50.0)
    sup.board.close_contactors()
    sup.power_supply.set_mode(M.CABLECHECK)
    sup.power_supply.set_voltage_current(500.0, 2.0)
    sim.isolation.resistance_ohm = 40_000.0  # < 100 ohm/V x 500 V
    sup.isolation_monitor.start()
    clock.run(2.0, until=lambda: sup.tripped)
    trip = sup.trips[0]
    assert trip.reason is TripReason.ISOLATION_FAULT and "40000 ohm < 50000 ohm" in trip.text
    clock.run(0.2)
    assert_safe_sequence(sup)


def test_isolation_monitor_device_fault(sup: SafetySupervisor, sim: FreezableSim) -> None:
    clock = Clocked(sup)
    clock.run(0.1)
    sim.isolation.device_fault = "IMD self-test failed"
    clock.run(0.02)
    assert sup.trips[0].reason is TripReason.ISOLATION_FAULT


def test_emergency_stop_button(sup: SafetySupervisor, sim: FreezableSim) -> None:
    clock = charging(sup, 80.0)
    sim.board.press_emergency_stop_button()
    clock.run(0.2)
    assert sup.trips[0].reason is TripReason.EMERGENCY_STOP
    assert actions(sup)[0] == "power_off"
    assert sup.safe_state_reached


def test_software_emergency_stop_cuts_power_first(sup: SafetySupervisor) -> None:
    clock = charging(sup, 80.0)
    sup.board.emergency_stop()
    assert actions(sup) == ["power_off", "emergency_stop"]
    assert sup.trips[0].reason is TripReason.EMERGENCY_STOP
    assert sup.power_supply.mode is M.OFF
    clock.run(0.1)
    assert sup.board.emergency_stop_active and not sup.board.contactors_closed


def test_power_supply_fault(sup: SafetySupervisor, sim: FreezableSim) -> None:
    clock = charging(sup, 80.0)
    sim.power_supply.inject_fault("converter overtemperature")
    clock.run(0.2)
    assert sup.trips[0].reason is TripReason.POWER_SUPPLY_FAULT
    assert "overtemperature" in sup.trips[0].text
    assert_safe_sequence(sup)


def test_energising_is_refused_while_tripped_and_reset_clears(
    sup: SafetySupervisor, sim: FreezableSim
) -> None:
    clock = charging(sup, 80.0)
    sim.board.press_emergency_stop_button()
    clock.run(0.2)
    with pytest.raises(SafetyTripActive):
        sup.power_supply.set_mode(M.EXPORT)
    with pytest.raises(SafetyTripActive):
        sup.board.close_contactors()
    sup.power_supply.set_mode(M.OFF)  # making things safer is always allowed
    sup.board.open_contactors()
    sup.board.set_pwm_duty(100.0)
    assert not sup.reset(clock.t)  # the e-stop is still latched
    sim.board.release_emergency_stop_button()
    assert sup.board.reset_emergency_stop()
    clock.run(0.1)
    assert sup.reset(clock.t)
    assert not sup.tripped and len(sup.trips) == 1  # the history stays
    sup.board.close_contactors()
    sup.power_supply.set_mode(M.EXPORT)


def test_several_reasons_are_recorded_once_each(sup: SafetySupervisor, sim: FreezableSim) -> None:
    clock = charging(sup, 100.0)
    sup.set_limits(500.0, 50.0, 50.0)
    sim.isolation.device_fault = "IMD broken"
    clock.run(0.1)
    reasons = [t.reason for t in sup.active_trips]
    assert set(reasons) >= {TripReason.ISOLATION_FAULT, TripReason.OVER_CURRENT}
    assert len(reasons) == len(set(reasons))
    assert actions(sup).count("power_off") == 1


def test_manual_trip(sup: SafetySupervisor) -> None:
    clock = charging(sup, 30.0)
    sup.trip(TripReason.REQUESTED, "FAILED response sent", clock.t)
    clock.run(0.1)
    assert sup.trips[0].reason is TripReason.REQUESTED and not sup.trips[0].reason.emergency
    assert_safe_sequence(sup)


def test_a_raising_backend_is_a_trip_not_a_crash(sup: SafetySupervisor, sim: FreezableSim) -> None:
    clock = charging(sup, 30.0)

    def broken(now: float) -> None:
        raise RuntimeError("driver bug")

    sim.poll = broken  # type: ignore[method-assign]
    clock.run(0.02)
    assert sup.trips[0].reason is TripReason.BACKEND_ERROR
    assert "driver bug" in sup.trips[0].text


def test_limits_are_validated(sup: SafetySupervisor) -> None:
    with pytest.raises(SetpointOutOfRange):
        sup.set_limits(500.0, -1.0, 10.0)
    with pytest.raises(ValueError):
        SafetySupervisor(sup.backend, stale_after=0.0)


def test_backend_extras_stay_reachable(sup: SafetySupervisor, sim: FreezableSim) -> None:
    assert sup.board.set_ev_pilot_state == sim.board.set_ev_pilot_state  # type: ignore[attr-defined]
    assert sup.power_supply.inject_fault == sim.power_supply.inject_fault  # type: ignore[attr-defined]


# ---- end to end: safety MCU on a pty + power modules on a virtual CAN bus -------------------


class History(HalBackend):
    """Records the physical truth after every poll: (t, rack current, MCU contacts)."""

    name = "history"

    def __init__(self, rig: ComboRig) -> None:
        self.rig = rig
        self.samples: list[tuple[float, float, bool]] = []

    power_supply = property(lambda self: self.rig.power_supply)  # type: ignore[assignment]
    board = property(lambda self: self.rig.board)  # type: ignore[assignment]
    isolation_monitor = property(lambda self: self.rig.isolation_monitor)  # type: ignore[assignment]
    meter = property(lambda self: self.rig.meter)  # type: ignore[assignment]

    def poll(self, now: float) -> None:
        self.rig.poll(now)
        self.samples.append((now, self.rig.rack.total_current, self.rig.mcu.contactors_closed))

    def current_was_zero_before_the_contacts_opened(self) -> bool:
        for (_, current, closed), (_, _, closed_next) in zip(
            self.samples, self.samples[1:], strict=False
        ):
            if closed and not closed_next:
                return abs(current) <= 1.0
        raise AssertionError("the contactors never opened")


@pytest.fixture
def combo() -> Iterator[tuple[ComboRig, History, SafetySupervisor, Clocked]]:
    rig = ComboRig(addresses=(1, 2, 3))
    history = History(rig)
    sup = SafetySupervisor(history)
    clock = Clocked(sup)
    yield rig, history, sup, clock
    rig.close()


def energise(rig: ComboRig, sup: SafetySupervisor, clock: Clocked, amps: float) -> None:
    clock.run(1.0, until=lambda: rig.serial.link.up and not rig.serial.link.pending)
    sup.set_limits(500.0, 150.0, 150.0)
    sup.board.set_pwm_duty(5.0)
    sup.board.close_contactors()
    clock.run(0.2)
    assert sup.board.contactors_closed
    if amps >= 0:
        sup.power_supply.set_mode(M.EXPORT)
        sup.power_supply.set_voltage_current(500.0, amps)
    else:
        sup.power_supply.set_mode(M.IMPORT)
        sup.power_supply.set_voltage_current(300.0, amps)
    clock.run(1.0)
    # Shares go out in mA: 40 A / 3 = 13.333 A each.
    assert sup.power_supply.measurement().current == pytest.approx(amps, abs=0.01)
    assert rig.rack.total_current == pytest.approx(amps, abs=0.01)
    assert not sup.tripped, sup.trips


def test_e2e_mcu_goes_silent_mid_charge(combo) -> None:  # type: ignore[no-untyped-def]
    rig, history, sup, clock = combo
    energise(rig, sup, clock, 90.0)
    rig.mcu.silent = True
    clock.run(2.0, until=lambda: sup.safe_state_reached)
    assert sup.trips[0].reason is TripReason.LINK_LOST
    assert "silent" in sup.trips[0].text
    assert_safe_sequence(sup)
    clock.run(0.2)
    assert rig.rack.total_current == 0.0
    assert not rig.mcu.contactors_closed  # the MCU still hears the host
    assert history.current_was_zero_before_the_contacts_opened()


def test_e2e_crc_errors_and_garbage_do_not_trip(combo) -> None:  # type: ignore[no-untyped-def]
    rig, _, sup, clock = combo
    energise(rig, sup, clock, 60.0)
    for _ in range(5):
        rig.mcu.corrupt_crc(2)
        rig.mcu.send_garbage()
        rig.mcu.send_oversized()
        rig.mcu.send_unknown_type()
        clock.run(0.2)
    stats = rig.serial.link.stats
    assert stats.framing.crc_errors >= 5 and stats.framing.oversized_frames >= 5
    assert not sup.tripped, sup.trips
    assert rig.rack.total_current == pytest.approx(60.0)
    sup.board.set_pwm_duty(6.0)  # the link still carries commands
    clock.run(0.1)
    assert rig.mcu.pwm_output == 60


def test_e2e_module_drops_out_mid_discharge_then_all(combo) -> None:  # type: ignore[no-untyped-def]
    rig, history, sup, clock = combo
    energise(rig, sup, clock, -90.0)
    psu = sup.power_supply
    rig.rack.drop_out(2)
    clock.run(1.0)
    assert psu.degraded  # type: ignore[attr-defined]
    assert not sup.tripped, sup.trips  # one module less is not unsafe
    assert rig.rack.total_current == pytest.approx(-90.0)  # 45 A each from the other two
    assert psu.capabilities.max_discharge_current == 100.0
    rig.rack.drop_out(1)
    rig.rack.drop_out(3)
    clock.run(2.0, until=lambda: sup.safe_state_reached)
    assert sup.trips[0].reason is TripReason.POWER_SUPPLY_FAULT
    # No module answers: no zero-current reading can come, so the contactors open on the
    # timeout (the dropped modules' output is already dead).
    assert_safe_sequence(sup, forced=True)
    clock.run(0.2)
    assert not rig.mcu.contactors_closed
    assert history.current_was_zero_before_the_contacts_opened()


def test_e2e_contactor_welded(combo) -> None:  # type: ignore[no-untyped-def]
    rig, _, sup, clock = combo
    energise(rig, sup, clock, 50.0)
    rig.mcu.weld_contactor()
    sup.power_supply.set_mode(M.OFF)
    clock.run(0.1)
    sup.board.open_contactors()
    clock.run(1.0, until=lambda: sup.safe_state_reached)
    assert sup.trips[0].reason is TripReason.CONTACTOR_MISMATCH
    assert_safe_sequence(sup)
    assert rig.mcu.contactors_closed  # welded: reported, and the power stays off
    assert rig.rack.total_current == 0.0


def test_e2e_emergency_stop_on_the_mcu(combo) -> None:  # type: ignore[no-untyped-def]
    rig, history, sup, clock = combo
    energise(rig, sup, clock, 120.0)
    rig.mcu.press_emergency_stop()
    clock.run(1.0, until=lambda: sup.safe_state_reached and not rig.mcu.contactors_closed)
    assert sup.trips[0].reason is TripReason.EMERGENCY_STOP
    assert actions(sup)[0] == "power_off"
    assert history.current_was_zero_before_the_contacts_opened()
    assert rig.rack.total_current == 0.0
    with pytest.raises(SafetyTripActive):
        sup.power_supply.set_mode(M.EXPORT)


def test_e2e_stale_measurement_from_modules(combo) -> None:  # type: ignore[no-untyped-def]
    rig, history, sup, clock = combo
    energise(rig, sup, clock, 40.0)
    # The modules keep delivering but their measurement replies vanish (a CAN filter
    # misconfigured, say): the supervisor cannot see the current any more.
    rig.can.power_supply.module_timeout = 100.0
    real_step = rig.rack.step

    def deaf_step(now: float, wait: float = 0.0) -> None:
        real_step(now, wait)
        while rig.can.bus.recv(timeout=0) is not None:
            pass  # swallow every reply before the backend sees it

    rig.rack.step = deaf_step  # type: ignore[method-assign]
    clock.run(3.0, until=lambda: sup.safe_state_reached)
    assert sup.trips[0].reason is TripReason.STALE_MEASUREMENT
    assert_safe_sequence(sup, forced=True)
    rig.rack.step = real_step  # type: ignore[method-assign]
    clock.run(0.2)
    assert rig.rack.total_current == 0.0
    assert history.current_was_zero_before_the_contacts_opened()
