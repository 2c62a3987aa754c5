"""SupervisedController over a SafetySupervisor around the sim backend, on a fake clock:
limits from the EVSE and the EV, trips reported with their reason and kept per session,
reset for the next session only when the cause has gone, derating -> LimitsUpdated."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from evse.control import check_safe_sequence
from evse.control.supervision import (
    SupervisedController,
    SupervisionPolicy,
    derated_limits,
    session_limits,
)
from evse.protocol import events as ev
from evse.protocol.limits import EvLimits, EvseLimits
from hal.backends.sim import SimBackend
from hal.interfaces import PowerSupplyMode
from hal.supervisor import SafetySupervisor, TripReason
from tests.control.fake_clock import ClockedController

M = PowerSupplyMode
DC_BPT = "urn:iso:std:iso:15118:-20:DC"
EVSE = EvseLimits(max_charge_power=150e3, max_charge_current=200.0, max_voltage=920.0,
                  min_voltage=150.0, max_discharge_power=50e3, max_discharge_current=100.0)
EV = EvLimits(max_charge_power=100e3, max_charge_current=150.0, max_voltage=420.0,
              min_voltage=300.0, max_discharge_power=40e3, max_discharge_current=80.0)


class Rig(ClockedController):
    def __init__(self, policy: SupervisionPolicy | None = None, **sup: Any) -> None:
        self.sim = SimBackend(ev_contactor_closed=True)
        self.sup = SafetySupervisor(self.sim, **sup)
        self.t = 100.0
        self.ctl = SupervisedController(self.sup, evse_limits=EVSE, policy=policy, now=self.t)
        self.start()

    def charging(self, amps: float = 100.0) -> None:
        self.ctl.begin_session(self.t)
        self.effect(ev.SessionStarted(b"\x01" * 8, "EVCC", DC_BPT))
        self.effect(ev.EnergyServiceSelected(6, 1, True))
        self.effect(ev.EvLimitsReported(EV))
        self.effect(ev.StartCableCheck(420.0))
        self.run(10.0, until=lambda: any(isinstance(e, ev.CableCheckFinished)
                                         for e in self.events))
        self.effect(ev.StartPreCharge(375.0, 2.0))
        self.run(3.0)
        self.effect(ev.CloseContactors())
        self.run(0.1)
        self.effect(ev.SetPowerTarget(420.0, amps, 420.0 * amps))
        self.run(2.0)
        assert abs(self.sup.power_supply.measurement().current - amps) < 1.0


def test_limits_follow_the_evse_then_the_ev_then_the_evse_again() -> None:
    rig = Rig()
    assert rig.sup.limits is not None
    assert (rig.sup.limits.max_voltage, rig.sup.limits.max_charge_current,
            rig.sup.limits.max_discharge_current) == (920.0, 200.0, 100.0)
    rig.ctl.begin_session(rig.t)
    rig.effect(ev.EvLimitsReported(EV))
    assert (rig.sup.limits.max_voltage, rig.sup.limits.max_charge_current,
            rig.sup.limits.max_discharge_current) == (420.0, 150.0, 80.0)
    rig.ctl.begin_session(rig.t)
    assert rig.sup.limits.max_voltage == 920.0
    assert session_limits(EVSE, EvLimits(max_charge_power=1.0)) == (920.0, 200.0, 100.0)


def test_a_trip_reaches_the_secc_with_its_reason_and_stays_in_the_session_record() -> None:
    rig = Rig()
    rig.charging(100.0)
    record = rig.ctl.session_trips
    rig.sup.set_limits(420.0, 50.0, 80.0)  # the EV lowered its limit under the flowing 100 A
    out = rig.run(1.0)
    stops = [e for e in out if isinstance(e, ev.EmergencyStop)]
    assert len(stops) == 1
    assert "over_current" in stops[0].reason and "100.0 A > 50.0 A" in stops[0].reason
    assert [t.reason for t in record] == ["over_current"] and record[0].emergency
    assert "safety_trip" in rig.ctl.action_names()
    # the supervisor's safe state: power off, contacts open only at ~0 A
    actions = [a.action for a in rig.sup.actions]
    assert actions[:2] == ["power_off", "open_contactors"], rig.sup.actions
    assert abs(rig.sup.actions[1].current) <= rig.sup.zero_current
    assert check_safe_sequence(rig.ctl.actions) is None
    assert rig.sim.power_supply.mode is M.OFF and not rig.sim.board.contactors_closed
    # the next session starts with a new list; the old one is the last session's record
    rig.ctl.begin_session(rig.t)
    assert rig.ctl.session_trips is not record and rig.ctl.session_trips == []
    assert not rig.sup.tripped  # the cause has gone: the trip was cleared
    assert rig.run(0.2) == []


def test_a_trip_whose_cause_stays_fails_the_next_session_at_once() -> None:
    rig = Rig()
    rig.charging(50.0)
    rig.sim.board.press_emergency_stop_button()
    out = rig.run(0.5)
    assert any(isinstance(e, ev.EmergencyStop) for e in out)
    assert TripReason.EMERGENCY_STOP in {t.reason for t in rig.sup.trips}
    rig.ctl.begin_session(rig.t)  # still pressed
    assert rig.sup.tripped
    assert rig.ctl.session_trips and rig.ctl.session_trips[0].before_session
    assert any(isinstance(e, ev.EmergencyStop) for e in rig.run(0.05))
    rig.sim.board.release_emergency_stop_button()
    rig.ctl.begin_session(rig.t)  # released: unlatched and reset
    assert not rig.sup.tripped and not rig.sim.board.emergency_stop_active
    assert "emergency_stop_reset" in rig.ctl.action_names()
    assert rig.run(0.1) == []


def test_no_automatic_reset_when_the_policy_says_so() -> None:
    rig = Rig(SupervisionPolicy(reset_on_new_session=False))
    rig.sup.trip(TripReason.REQUESTED, "operator")
    rig.run(0.6)
    rig.ctl.begin_session(rig.t)
    assert rig.sup.tripped
    assert rig.ctl.session_trips[0].reason == "requested"


def test_a_smaller_supply_derates_the_secc_limits_and_back() -> None:
    rig = Rig()
    rig.ctl.begin_session(rig.t)
    assert rig.run(0.05) == []  # full capability: nothing to say
    caps = rig.sim.stage.capabilities
    rig.sim.stage.capabilities = dataclasses.replace(
        caps, max_charge_current=100.0, max_discharge_current=50.0, max_discharge_power=20e3)
    out = [e for e in rig.run(0.05) if isinstance(e, ev.LimitsUpdated)]
    assert len(out) == 1
    limits = out[0].limits
    assert (limits.max_charge_current, limits.max_discharge_current,
            limits.max_discharge_power, limits.max_charge_power) == (100.0, 50.0, 20e3, 150e3)
    assert rig.run(0.05) == []  # said once
    rig.sim.stage.capabilities = caps
    back = [e for e in rig.run(0.05) if isinstance(e, ev.LimitsUpdated)]
    assert back == [ev.LimitsUpdated(EVSE)]
    assert "derated" in rig.ctl.action_names() and "derating_lifted" in rig.ctl.action_names()


def test_derated_limits_keep_minimums_below_maximums() -> None:
    limits = dataclasses.replace(EVSE, min_charge_current=20.0, min_discharge_current=10.0)
    caps = SimBackend().power_supply.capabilities
    small = derated_limits(limits, dataclasses.replace(caps, max_charge_current=10.0,
                                                       max_discharge_current=5.0))
    assert small.max_charge_current == 10.0 and small.min_charge_current == 10.0
    assert small.max_discharge_current == 5.0 and small.min_discharge_current == 5.0


def test_it_needs_a_supervisor() -> None:
    with pytest.raises(TypeError):
        SupervisedController(SimBackend(), evse_limits=EVSE)
