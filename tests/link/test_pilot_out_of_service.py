"""A connector out of service (OCPP ChangeAvailability Inoperative): a car plugging in gets no
PWM and no SLAC, nor energy; back in service, the car still there starts as a plug-in."""

from __future__ import annotations

from evse.link.pilot import (
    EnergyAllowed,
    LinkEvent,
    Phase,
    PilotConfig,
    PilotEffect,
    PilotLifecycle,
    SetDuty,
    StartSlac,
)


def names(effects: list[PilotEffect]) -> list[str]:
    return [e.name for e in effects if isinstance(e, LinkEvent)]


def test_out_of_service_connector_starts_no_pwm_and_no_slac() -> None:
    p = PilotLifecycle(PilotConfig())
    assert p.set_in_service(False, 0.0) == []
    out = p.pilot_measured("B", 1.0)
    assert names(out) == ["plugged", "out_of_service"]
    assert not any(isinstance(e, (SetDuty, StartSlac)) for e in out)
    assert p.phase == Phase.NO_LINK and p.duty == 100.0
    out = p.pilot_measured("C", 2.0)  # the car asks for energy: none
    assert not any(isinstance(e, EnergyAllowed) for e in out) and not p.energy
    assert p.handle_timeout(1e9) == []  # no timer runs
    # back in service: 5 % and SLAC now, for the car still plugged in
    out = p.set_in_service(True, 3.0)
    assert [e.percent for e in out if isinstance(e, SetDuty)] == [5.0]
    assert any(isinstance(e, StartSlac) for e in out)
    assert p.phase == Phase.WAIT_SLAC


def test_unplug_while_out_of_service_and_basic_charging() -> None:
    p = PilotLifecycle(PilotConfig(digital_communication=False))
    p.set_in_service(False, 0.0)
    p.pilot_measured("B", 1.0)
    out = p.pilot_measured("A", 2.0)
    assert "unplugged" in names(out) and p.phase == Phase.IDLE
    assert p.set_in_service(True, 3.0) == []  # no car: nothing starts
    out = p.pilot_measured("B", 4.0)
    assert p.phase == Phase.BASIC and any(isinstance(e, SetDuty) for e in out)
    # a running session is not touched by going out of service
    assert p.set_in_service(False, 5.0) == [] and p.phase == Phase.BASIC
