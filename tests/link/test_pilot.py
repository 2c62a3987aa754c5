"""The pilot lifecycle on a fake clock: every state, every timeout, the duty/current map."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evse.link import timing
from evse.link.pilot import (
    EndSession,
    EnergyAllowed,
    LinkEvent,
    Phase,
    Pilot,
    PilotConfig,
    PilotEffect,
    PilotLifecycle,
    SafeState,
    SessionAllowed,
    SetDuty,
    StartSlac,
    StopSlac,
    duty_for_current,
    parse_pilot,
)


def kinds(effects: list[PilotEffect]) -> list[str]:
    return [type(e).__name__ for e in effects if not isinstance(e, LinkEvent)]


def events(effects: list[PilotEffect]) -> list[str]:
    return [e.name for e in effects if isinstance(e, LinkEvent)]


def duties(effects: list[PilotEffect]) -> list[float]:
    return [e.percent for e in effects if isinstance(e, SetDuty)]


@pytest.mark.parametrize(("amps", "duty"), [
    (6.0, 10.0), (10.0, 16.7), (16.0, 26.7), (32.0, 53.3), (51.0, 85.0),
    (52.5, 85.0), (63.0, 89.2), (80.0, 96.0), (100.0, 96.0),
])
def test_duty_encodes_the_allowed_current(amps: float, duty: float) -> None:
    assert duty_for_current(amps) == duty


@pytest.mark.parametrize("amps", [5.9, 0.0, -3.0, math.nan])
def test_below_six_amps_there_is_no_pwm(amps: float) -> None:
    assert duty_for_current(amps) == 100.0


def test_readings_are_parsed_strictly() -> None:
    assert parse_pilot("c") == Pilot.C
    assert parse_pilot(" B ") == Pilot.B
    for bad in ("G", "", None, 7, "AB", "invalid"):
        assert parse_pilot(bad) == Pilot.INVALID


def plugged(config: PilotConfig | None = None, now: float = 100.0) -> PilotLifecycle:
    pilot = PilotLifecycle(config or PilotConfig())
    out = pilot.pilot_measured("B", now)
    assert kinds(out) == ["SetDuty", "StartSlac"] and duties(out) == [5.0]
    assert events(out) == ["plugged"] and pilot.times.plugged_at == now
    return pilot


def test_plug_in_gives_five_percent_and_slac_then_a_match_allows_the_session() -> None:
    pilot = plugged()
    assert pilot.next_deadline() == 100.0 + timing.TT_EVSE_SLAC_INIT
    assert events(pilot.slac_started(101.0)) == ["slac_started"]
    assert pilot.next_deadline() is None
    out = pilot.slac_matched(102.5)
    assert SessionAllowed("hlc") in out and pilot.phase == Phase.MATCHED
    assert pilot.times.slac_matched_at == 102.5 and pilot.times.slac_started_at == 101.0
    out = pilot.pilot_measured("C", 110.0)
    assert out[0] == EnergyAllowed(True, "car ready (C)")
    # B while charging: the energy goes first
    out = pilot.pilot_measured("B", 120.0)
    assert kinds(out) == ["EnergyAllowed"] and out[0] == EnergyAllowed(False, "car in B (was C)")
    assert pilot.pilot_measured("B", 121.0) == []  # a repeated reading is no event


def test_unplug_ends_the_session_in_a_safe_state_and_resets() -> None:
    pilot = plugged()
    pilot.slac_started(101.0)
    pilot.slac_matched(102.0)
    pilot.pilot_measured("C", 103.0)
    out = pilot.pilot_measured("A", 200.0)
    assert kinds(out) == ["EnergyAllowed", "StopSlac", "EndSession", "SafeState", "SetDuty"]
    assert duties(out) == [100.0] and EndSession("unplugged") in out
    assert pilot.phase == Phase.IDLE and pilot.times.unplugged_at == 200.0
    assert pilot.times.plugged_at == 100.0  # the report still reads this plug session
    again = pilot.pilot_measured("B", 300.0)
    assert duties(again) == [5.0] and pilot.times.plugged_at == 300.0
    assert pilot.times.unplugged_at is None


def test_no_slac_within_the_init_time_steps_through_ef_then_basic_charging() -> None:
    pilot = plugged(PilotConfig(max_current=16.0))
    deadline = 100.0 + timing.TT_EVSE_SLAC_INIT
    assert pilot.handle_timeout(deadline - 0.001) == []
    out = pilot.handle_timeout(deadline)
    assert events(out) == ["slac_init_timeout", "ef_step"]
    assert kinds(out) == ["StopSlac", "SetDuty"] and duties(out) == [0.0]
    # our own E/F step reads back as F: no fault
    assert pilot.pilot_measured("F", deadline + 0.1) == []
    assert pilot.next_deadline() == deadline + timing.T_STEP_EF
    out = pilot.handle_timeout(deadline + timing.T_STEP_EF)
    assert kinds(out) == ["SetDuty", "StartSlac"] and duties(out) == [5.0]
    assert pilot.pilot_measured("B", deadline + 4.2) == []
    second = deadline + timing.T_STEP_EF + timing.TT_EVSE_SLAC_INIT
    assert pilot.next_deadline() == second
    out = pilot.handle_timeout(second)
    assert events(out) == ["slac_init_timeout", "basic_charging"]
    assert duties(out) == [26.7] and SessionAllowed("basic") in out
    # the car without digital communication goes to C: energy; the limit changes: the duty
    assert pilot.pilot_measured("C", second + 1)[0] == EnergyAllowed(True, "car ready (C)")
    assert pilot.set_current_limit(32.0, second + 2) == [SetDuty(53.3)]
    assert pilot.set_current_limit(32.0, second + 3) == []
    assert pilot.set_current_limit(4.0, second + 4) == [SetDuty(100.0)]


def test_failed_attempts_are_retried_by_the_car_then_the_charger_falls_back() -> None:
    pilot = plugged(PilotConfig(ef_restarts=0, slac_attempts=3))
    for i in range(2):
        pilot.slac_started(101.0 + i)
        out = pilot.slac_attempt_failed(102.0 + i, "no CM_ATTEN_CHAR.RSP")
        assert events(out) == ["slac_attempt_failed"] and pilot.phase == Phase.WAIT_SLAC
        assert pilot.next_deadline() == 102.0 + i + timing.TT_EVSE_SLAC_INIT
    pilot.slac_started(110.0)
    out = pilot.slac_attempt_failed(111.0, "timeout")
    assert events(out) == ["slac_attempt_failed", "basic_charging"]
    assert pilot.phase == Phase.BASIC and duties(out) == [53.3]


def test_without_basic_charging_a_failed_slac_leaves_no_pwm() -> None:
    pilot = plugged(PilotConfig(ef_restarts=0, basic_charging_fallback=False))
    out = pilot.handle_timeout(100.0 + timing.TT_EVSE_SLAC_INIT)
    assert events(out) == ["slac_init_timeout", "no_link"] and duties(out) == [100.0]
    assert pilot.phase == Phase.NO_LINK
    assert pilot.pilot_measured("C", 200.0) == []  # no energy without a session


def test_basic_charging_only_station() -> None:
    pilot = PilotLifecycle(PilotConfig(digital_communication=False, max_current=10.0))
    out = pilot.pilot_measured("B", 1.0)
    assert kinds(out) == ["SetDuty", "SessionAllowed"] and duties(out) == [16.7]
    assert StartSlac() not in out and pilot.next_deadline() is None


def test_a_car_plugged_directly_ready_waits_for_the_match() -> None:
    pilot = PilotLifecycle()
    out = pilot.pilot_measured("C", 1.0)
    assert duties(out) == [5.0] and not any(isinstance(e, EnergyAllowed) for e in out)
    pilot.slac_started(2.0)
    out = pilot.slac_matched(3.0)
    assert EnergyAllowed(True, "car ready (C)") in out


def test_state_d_is_refused_without_ventilation_and_allowed_with_it() -> None:
    pilot = plugged()
    pilot.slac_started(1.0)
    pilot.slac_matched(2.0)
    pilot.pilot_measured("C", 3.0)
    out = pilot.pilot_measured("D", 4.0)
    assert kinds(out) == ["EnergyAllowed", "SafeState"] and not out[0].allowed  # type: ignore[union-attr]
    vent = plugged(PilotConfig(ventilation_available=True))
    vent.slac_started(1.0)
    vent.slac_matched(2.0)
    assert vent.pilot_measured("D", 3.0)[0] == EnergyAllowed(True, "car ready (D)")


@pytest.mark.parametrize("reading", ["E", "F", "X", None])
def test_fault_readings_give_the_safe_state(reading: object) -> None:
    pilot = plugged()
    pilot.slac_started(1.0)
    pilot.slac_matched(2.0)
    pilot.pilot_measured("C", 3.0)
    out = pilot.pilot_measured(reading, 4.0)
    assert kinds(out) == ["EnergyAllowed", "SafeState", "StopSlac", "EndSession", "SetDuty"]
    assert pilot.phase == Phase.FAULT and duties(out) == [100.0]
    assert pilot.pilot_measured(reading, 5.0) == []  # latched, not repeated
    assert EndSession("unplugged") in pilot.pilot_measured("A", 6.0)
    assert pilot.phase == Phase.IDLE


def test_fault_with_no_car_is_still_a_safe_state() -> None:
    pilot = PilotLifecycle()
    out = pilot.pilot_measured("E", 1.0)
    assert kinds(out) == ["SafeState"] and SafeState("pilot E") in out
    assert StopSlac() not in out
    # the fault clears and a car is there: a plug-in
    assert duties(pilot.pilot_measured("B", 2.0)) == [5.0]


def test_a_fault_without_a_car_clears_on_a_without_an_unplug() -> None:
    """A serial board reads F until it generates its first duty: then A, no car. Nothing
    was plugged in, so there is no unplug (no EndSession, no "unplugged" event)."""
    pilot = PilotLifecycle()
    pilot.pilot_measured("F", 1.0)
    out = pilot.pilot_measured("A", 2.0)
    assert out == [LinkEvent("fault_cleared", 2.0)] and pilot.phase == Phase.IDLE
    assert pilot.times.unplugged_at is None
    # with a car at the fault, A is its unplug
    car = plugged()
    car.pilot_measured("E", 3.0)
    assert EndSession("unplugged") in car.pilot_measured("A", 4.0)


# -- invariants over any sequence of inputs (h2 test_state_machines style) --------------------

INPUTS = st.lists(st.one_of(
    st.tuples(st.just("read"), st.sampled_from(["A", "B", "C", "D", "E", "F", "X"])),
    st.tuples(st.just("started"), st.none()),
    st.tuples(st.just("matched"), st.none()),
    st.tuples(st.just("failed"), st.none()),
    st.tuples(st.just("limit"), st.sampled_from([0.0, 6.0, 16.0, 63.0, 90.0])),
    st.tuples(st.just("wait"), st.sampled_from([0.05, 1.0, 5.0, 25.0])),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(INPUTS, st.booleans(), st.booleans(), st.booleans())
def test_safety_invariants_hold_for_any_sequence(
        steps: list[tuple[str, object]], digital: bool, fallback: bool, vent: bool) -> None:
    pilot = PilotLifecycle(PilotConfig(digital_communication=digital,
                                       basic_charging_fallback=fallback,
                                       ventilation_available=vent))
    now = 0.0
    for kind, arg in steps:
        now += 0.01
        if kind == "read":
            before = pilot.phase
            carless_fault = before == Phase.FAULT and not pilot._car_at_fault
            out = pilot.pilot_measured(arg, now)
            if arg == "A":
                assert pilot.phase == Phase.IDLE and pilot.duty == 100.0 and not pilot.energy
                if before != Phase.IDLE and not carless_fault:
                    assert EndSession("unplugged") in out and SafeState("unplugged") in out
                if carless_fault:  # nothing was plugged: nothing to end
                    assert not any(isinstance(e, EndSession) for e in out)
            elif arg in ("X", "E") or (arg == "F" and before != Phase.EF_STEP):
                assert not pilot.energy and pilot.duty == 100.0
                assert pilot.phase == Phase.FAULT or before == Phase.EF_STEP
                if before not in (Phase.FAULT, Phase.EF_STEP):
                    assert any(isinstance(e, SafeState) for e in out)
            elif arg == "D" and not vent:
                assert not pilot.energy
        elif kind == "started":
            out = pilot.slac_started(now)
        elif kind == "matched":
            out = pilot.slac_matched(now)
        elif kind == "failed":
            out = pilot.slac_attempt_failed(now, "test")
        elif kind == "limit":
            out = pilot.set_current_limit(float(arg), now)  # type: ignore[arg-type]
        else:
            now += float(arg)  # type: ignore[arg-type]
            deadline = pilot.next_deadline()
            out = pilot.handle_timeout(now)
            assert deadline is None or deadline > now or pilot.next_deadline() != deadline
        # energy only with a session basis and a ready car that is allowed to be ready
        if pilot.energy:
            assert pilot.phase in (Phase.MATCHED, Phase.BASIC)
            assert pilot.car == Pilot.C or (pilot.car == Pilot.D and vent)
        # the duty says what the phase is
        if pilot.phase in (Phase.WAIT_SLAC, Phase.SLAC, Phase.MATCHED):
            assert pilot.duty == 5.0
        if pilot.phase == Phase.BASIC:
            assert pilot.duty == duty_for_current(pilot.current_limit)
        if pilot.phase == Phase.EF_STEP:
            assert pilot.duty == 0.0
        if not digital:
            assert StartSlac() not in out
