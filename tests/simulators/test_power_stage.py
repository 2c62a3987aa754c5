import pytest

from hal.interfaces import PowerSupplyCapabilities, PowerSupplyMode
from simulators.battery import EvBattery
from simulators.isolation import IsolationModel
from simulators.power_stage import Contactor, DcPowerStage

M = PowerSupplyMode
CAPS = PowerSupplyCapabilities(
    bidirectional=True,
    min_voltage=100.0,
    max_voltage=1000.0,
    max_charge_current=300.0,
    max_charge_power=200_000.0,
    max_discharge_current=200.0,
    max_discharge_power=100_000.0,
)
TABLE = ((0.0, 300.0), (1.0, 400.0))  # OCV 350 V at 50 %


class Clock:
    def __init__(self, *parts: object, t: float = 100.0) -> None:
        self.t = t
        self.parts = parts
        self.tick(0.0)

    def tick(self, seconds: float, dt: float = 0.01) -> None:
        end = self.t + seconds
        while True:
            for part in self.parts:
                part.step(self.t)  # type: ignore[attr-defined]
            if self.t >= end - 1e-9:
                return
            self.t = min(end, self.t + dt)


def make_stage(
    caps: PowerSupplyCapabilities = CAPS,
    *,
    voltage_ramp: float = 200.0,
    current_ramp: float = 100.0,
    precharge_current_limit: float = 2.0,
    discharge_rate: float = 500.0,
) -> DcPowerStage:
    b = EvBattery(capacity_kwh=350.0, soc=0.5, ocv_table=TABLE, internal_resistance_ohm=0.1)
    return DcPowerStage(
        caps,
        b,
        voltage_ramp=voltage_ramp,
        current_ramp=current_ramp,
        precharge_current_limit=precharge_current_limit,
        discharge_rate=discharge_rate,
    )


def connect(stage: DcPowerStage, clock: Clock) -> None:
    stage.contactor.command(True)
    stage.ev_contactor_closed = True
    clock.tick(0.1)
    assert stage.connected


def test_contactor_closes_after_switch_time_and_opens_again() -> None:
    c = Contactor(switch_time=0.05)
    c.step(0.0)
    c.command(True)
    c.step(0.04)
    assert not c.closed
    c.step(0.05)
    assert c.closed
    c.command(False)
    c.step(0.06)
    assert c.closed
    c.step(0.10)
    assert not c.closed


def test_a_quick_command_reversal_restarts_the_switching_time() -> None:
    c = Contactor(switch_time=0.05)
    c.step(0.0)
    c.command(True)
    c.step(0.04)
    c.command(False)
    c.command(True)
    c.step(0.08)
    assert not c.closed
    c.step(0.09)
    assert c.closed


def test_welded_contactor_never_opens() -> None:
    c = Contactor(switch_time=0.0)
    c.inject_weld()
    c.step(0.0)
    c.command(True)
    c.step(0.1)
    assert c.closed and c.welded
    c.command(False)
    c.step(10.0)
    assert c.closed and not c.commanded_closed


def test_clock_must_not_run_backwards() -> None:
    stage = make_stage()
    stage.step(5.0)
    with pytest.raises(ValueError):
        stage.step(4.9)


def test_open_output_ramps_voltage_in_precharge() -> None:
    stage = make_stage(voltage_ramp=100.0)
    clock = Clock(stage)
    stage.command(M.PRECHARGE, 350.0, 2.0)
    clock.tick(1.0)
    assert stage.voltage == pytest.approx(100.0)
    assert stage.current == 0.0
    clock.tick(3.0)
    assert stage.voltage == pytest.approx(350.0)


def test_off_output_bleeds_down() -> None:
    stage = make_stage(voltage_ramp=1000.0, discharge_rate=100.0)
    clock = Clock(stage)
    stage.command(M.CABLECHECK, 500.0, 2.0)
    clock.tick(1.0)
    stage.command(M.OFF, 0.0, 0.0)
    clock.tick(2.0)
    assert stage.voltage == pytest.approx(300.0)
    clock.tick(5.0)
    assert stage.voltage == 0.0


def test_precharge_into_battery_is_current_limited() -> None:
    stage = make_stage(precharge_current_limit=2.0)
    clock = Clock(stage)
    connect(stage, clock)
    stage.command(M.PRECHARGE, 400.0, 10.0)
    clock.tick(1.0)
    assert stage.current == pytest.approx(2.0)
    stage.command(M.PRECHARGE, 352.0, 1.0)  # setpoint amps below the limit also bind
    clock.tick(1.0)
    assert stage.current == pytest.approx(1.0)


def test_export_ramps_current_and_follows_ohms_law() -> None:
    stage = make_stage(current_ramp=50.0)
    clock = Clock(stage)
    connect(stage, clock)
    stage.command(M.EXPORT, 500.0, 100.0)
    clock.tick(1.0)
    assert stage.current == pytest.approx(50.0)
    clock.tick(2.0)
    assert stage.current == pytest.approx(100.0)
    battery = stage.battery
    assert battery is not None
    assert stage.voltage == pytest.approx(battery.ocv + 100.0 * 0.1)
    assert battery.current == pytest.approx(100.0)


def test_export_stops_at_the_voltage_limit() -> None:
    stage = make_stage(current_ramp=1e6)
    clock = Clock(stage)
    connect(stage, clock)
    stage.command(M.EXPORT, 355.0, 200.0)
    clock.tick(0.1)
    assert stage.current == pytest.approx(50.0, rel=1e-3)  # (355 - 350) / 0.1
    assert stage.voltage == pytest.approx(355.0)


def test_export_power_is_capped() -> None:
    caps = PowerSupplyCapabilities(
        bidirectional=False,
        min_voltage=100.0,
        max_voltage=1000.0,
        max_charge_current=300.0,
        max_charge_power=20_000.0,
    )
    stage = make_stage(caps, current_ramp=1e6)
    clock = Clock(stage)
    connect(stage, clock)
    stage.command(M.EXPORT, 1000.0, 300.0)
    clock.tick(0.1)
    assert stage.voltage * stage.current == pytest.approx(20_000.0, rel=1e-6)


def test_current_reductions_are_immediate() -> None:
    stage = make_stage(current_ramp=10.0)
    clock = Clock(stage)
    connect(stage, clock)
    stage.command(M.EXPORT, 500.0, 20.0)
    clock.tick(3.0)
    stage.command(M.EXPORT, 500.0, 5.0)
    clock.tick(0.01)
    assert stage.current == pytest.approx(5.0)


def test_import_discharges_and_respects_the_voltage_floor() -> None:
    stage = make_stage(current_ramp=1e6)
    clock = Clock(stage)
    connect(stage, clock)
    stage.command(M.IMPORT, 300.0, -100.0)
    clock.tick(1.0)
    assert stage.current == pytest.approx(-100.0)
    assert stage.voltage == pytest.approx(340.0, abs=0.1)
    stage.command(M.IMPORT, 345.0, -100.0)
    clock.tick(0.01)
    assert stage.voltage == pytest.approx(345.0, abs=1e-6)
    assert -60.0 < stage.current < -40.0


def test_reversal_ramps_through_zero() -> None:
    stage = make_stage(current_ramp=100.0)
    clock = Clock(stage)
    connect(stage, clock)
    stage.command(M.EXPORT, 500.0, 50.0)
    clock.tick(1.0)
    stage.command(M.IMPORT, 200.0, -50.0)
    clock.tick(0.1)
    assert stage.current == pytest.approx(-10.0)


def test_energy_is_metered_in_both_directions() -> None:
    stage = make_stage(current_ramp=1e6)
    battery = stage.battery
    assert battery is not None
    clock = Clock(stage)
    connect(stage, clock)
    soc0 = battery.soc
    stage.command(M.EXPORT, 1000.0, 100.0)
    clock.tick(36.0, dt=0.1)
    # ~ 100 A at ~360 V for 36 s = 360 Wh (the battery barely moves: 350 kWh)
    assert stage.energy_imported_wh == pytest.approx(100 * 360.0 * 36 / 3600, rel=1e-3)
    assert stage.energy_exported_wh == 0.0
    assert battery.soc - soc0 == pytest.approx(100 * 36 / 3600 / battery.capacity_ah, rel=1e-2)
    imported = stage.energy_imported_wh
    stage.command(M.IMPORT, 100.0, -50.0)
    clock.tick(72.0, dt=0.1)
    assert stage.energy_imported_wh == pytest.approx(imported, rel=1e-3)
    assert stage.energy_exported_wh == pytest.approx(50 * 345.0 * 72 / 3600, rel=1e-3)


def test_nothing_flows_while_the_ev_contactor_is_open() -> None:
    stage = make_stage()
    clock = Clock(stage)
    stage.contactor.command(True)
    stage.command(M.EXPORT, 400.0, 100.0)
    clock.tick(3.0)
    assert not stage.connected
    assert stage.current == 0.0
    assert stage.voltage == pytest.approx(400.0)  # no load: runs into the voltage limit
    assert stage.energy_imported_wh == 0.0


def test_isolation_model_measures_after_its_cycle() -> None:
    imd = IsolationModel(1e6, measuring_time=1.0, self_test_time=2.0)
    clock = Clock(imd)
    imd.start()
    clock.tick(0.9)
    assert imd.reading is None
    clock.tick(0.2)
    assert imd.reading is not None and imd.reading[0] == 1e6
    imd.resistance_ohm = 1e4
    clock.tick(1.0)
    assert imd.reading is not None and imd.reading[0] == 1e4
    imd.start_self_test()
    clock.tick(1.5)
    assert imd.self_test_passed is None
    clock.tick(1.0)
    assert imd.self_test_passed is True
    imd.fail_self_test = True
    imd.start_self_test()
    clock.tick(3.0)
    assert imd.self_test_passed is False
