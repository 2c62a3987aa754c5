"""The ABCs enforce limits themselves, so every backend rejects the same commands."""

import math

import pytest

from hal.interfaces import (
    Board,
    EmergencyStopActive,
    Measurement,
    PilotState,
    PowerSupplyCapabilities,
    PowerSupplyDC,
    PowerSupplyMode,
    SetpointOutOfRange,
)

M = PowerSupplyMode


def caps(bidirectional: bool = True) -> PowerSupplyCapabilities:
    return PowerSupplyCapabilities(
        bidirectional=bidirectional,
        min_voltage=200.0,
        max_voltage=800.0,
        max_charge_current=100.0,
        max_charge_power=50_000.0,
        max_discharge_current=50.0 if bidirectional else 0.0,
        max_discharge_power=20_000.0 if bidirectional else 0.0,
    )


class RecordingSupply(PowerSupplyDC):
    def __init__(self, capabilities: PowerSupplyCapabilities) -> None:
        super().__init__()
        self._caps = capabilities
        self.applied: list[tuple[str, object]] = []

    @property
    def capabilities(self) -> PowerSupplyCapabilities:
        return self._caps

    def measurement(self) -> Measurement:
        return Measurement(0.0, 0.0, 0.0)

    @property
    def fault(self) -> str | None:
        return None

    def _apply_mode(self, mode: PowerSupplyMode) -> None:
        self.applied.append(("mode", mode))

    def _apply_setpoint(self, volts: float, amps: float) -> None:
        self.applied.append(("setpoint", (volts, amps)))


class RecordingBoard(Board):
    def __init__(self) -> None:
        super().__init__()
        self.estop = False
        self.applied: list[tuple[str, object]] = []

    @property
    def pilot_state(self) -> PilotState:
        return PilotState.B

    @property
    def contactors_closed(self) -> bool:
        return self.contactors_commanded_closed

    @property
    def emergency_stop_active(self) -> bool:
        return self.estop

    def _apply_pwm_duty(self, percent: float) -> None:
        self.applied.append(("pwm", percent))

    def _apply_contactors(self, closed: bool) -> None:
        self.applied.append(("contactors", closed))

    def _apply_emergency_stop(self) -> None:
        self.estop = True
        self.applied.append(("estop", True))

    def reset_emergency_stop(self) -> bool:
        self.estop = False
        return True


def test_capabilities_validation() -> None:
    with pytest.raises(ValueError):
        PowerSupplyCapabilities(False, 200.0, 800.0, 100.0, 50_000.0, max_discharge_current=10.0)
    with pytest.raises(ValueError):
        PowerSupplyCapabilities(True, 900.0, 800.0, 100.0, 50_000.0)
    with pytest.raises(ValueError):
        PowerSupplyCapabilities(True, 200.0, 800.0, -1.0, 50_000.0)
    with pytest.raises(ValueError):
        PowerSupplyCapabilities(True, 200.0, math.inf, 1.0, 50_000.0)


def test_mode_change_resets_the_setpoint() -> None:
    s = RecordingSupply(caps())
    s.set_mode(M.EXPORT)
    s.set_voltage_current(500.0, 80.0)
    assert s.setpoint == (500.0, 80.0)
    s.set_mode(M.IMPORT)
    assert s.setpoint == (0.0, 0.0)
    assert s.mode is M.IMPORT
    assert s.applied[-2:] == [("setpoint", (0.0, 0.0)), ("mode", M.IMPORT)]


@pytest.mark.parametrize(
    ("mode", "volts", "amps"),
    [
        (M.OFF, 400.0, 0.0),  # no setpoint without a mode
        (M.EXPORT, 199.0, 10.0),
        (M.EXPORT, 801.0, 10.0),
        (M.EXPORT, 400.0, -1.0),  # discharge sign in export
        (M.EXPORT, 400.0, 100.1),
        (M.IMPORT, 400.0, 1.0),  # charge sign in import
        (M.IMPORT, 400.0, -50.1),
        (M.PRECHARGE, 400.0, -2.0),
        (M.CABLECHECK, 900.0, 1.0),
        (M.EXPORT, math.nan, 1.0),
        (M.EXPORT, 400.0, math.inf),
    ],
)
def test_out_of_range_setpoints_are_rejected(
    mode: PowerSupplyMode, volts: float, amps: float
) -> None:
    s = RecordingSupply(caps())
    s.set_mode(mode)
    before = list(s.applied)
    with pytest.raises(SetpointOutOfRange):
        s.set_voltage_current(volts, amps)
    assert s.applied == before  # nothing reached the hardware


@pytest.mark.parametrize(
    ("mode", "volts", "amps"),
    [
        (M.OFF, 0.0, 0.0),
        (M.EXPORT, 800.0, 100.0),
        (M.IMPORT, 200.0, -50.0),
        (M.IMPORT, 400.0, 0.0),
        (M.PRECHARGE, 400.0, 2.0),
    ],
)
def test_valid_setpoints_reach_the_backend(
    mode: PowerSupplyMode, volts: float, amps: float
) -> None:
    s = RecordingSupply(caps())
    s.set_mode(mode)
    s.set_voltage_current(volts, amps)
    assert s.applied[-1] == ("setpoint", (volts, amps))


def test_unidirectional_supply_refuses_import() -> None:
    s = RecordingSupply(caps(bidirectional=False))
    with pytest.raises(SetpointOutOfRange):
        s.set_mode(M.IMPORT)
    assert s.mode is M.OFF


def test_pwm_duty_range() -> None:
    b = RecordingBoard()
    assert b.pwm_duty == 100.0
    b.set_pwm_duty(5.0)
    assert b.pwm_duty == 5.0
    for bad in (-0.1, 100.1, math.nan):
        with pytest.raises(SetpointOutOfRange):
            b.set_pwm_duty(bad)
    assert b.applied == [("pwm", 5.0)]


def test_contactors_refuse_to_close_during_emergency_stop() -> None:
    b = RecordingBoard()
    b.close_contactors()
    assert b.contactors_commanded_closed
    b.emergency_stop()
    assert not b.contactors_commanded_closed
    with pytest.raises(EmergencyStopActive):
        b.close_contactors()
    b.open_contactors()  # opening is always allowed
    assert b.reset_emergency_stop()
    b.close_contactors()
    assert b.contactors_commanded_closed
