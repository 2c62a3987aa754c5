"""Each named scenario against the scripted SECC: flow, setpoints, BPT, pause/resume, stops."""

from __future__ import annotations

from typing import Any

import pytest

from exi_codec.schemas import iso20_dc
from simulators.battery import EvBattery
from simulators.ev import (
    SCENARIOS,
    BatteryLink,
    ControlMode,
    EnergyService,
    Evcc,
    Failed,
    Finished,
    Reconnect,
    get_scenario,
    scenario_names,
)
from simulators.ev.messages import rational, value_of
from tests.simulators.scripted_secc import SESSION_ID, ScriptedSecc, drive


def of(secc: ScriptedSecc, name: str) -> list[Any]:
    return [r for r in secc.requests if type(r).__name__ == name]


def test_registry() -> None:
    assert set(scenario_names()) >= {
        "dc", "dc_bpt_scheduled", "dc_bpt_dynamic", "ac", "ac_bpt", "pause_resume", "ev_stop",
        "emergency_stop",
    }
    assert get_scenario("dc_bpt_dynamic").service is EnergyService.DC_BPT
    assert get_scenario("dc_bpt_dynamic").control_mode is ControlMode.DYNAMIC
    assert get_scenario("ac_bpt").service == 5 and get_scenario("ac").service == 1
    assert get_scenario("dc").service == 2 and get_scenario("dc_bpt_scheduled").service == 6
    assert get_scenario("dc", max_loops=3).max_loops == 3
    assert SCENARIOS["dc"].max_loops == 20  # overrides do not leak
    with pytest.raises(ValueError, match="unknown scenario"):
        get_scenario("nope")
    with pytest.raises(ValueError):
        get_scenario("dc", target_soc=120)
    with pytest.raises(ValueError, match="pause_after_loops"):
        get_scenario("pause_resume", max_loops=3)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_succeeds_against_a_cooperative_secc(name: str) -> None:
    secc = ScriptedSecc(terminate_at_loop=4 if name == "emergency_stop" else None)
    out = drive(Evcc(get_scenario(name, loop_sim_seconds=20.0)), secc)
    assert isinstance(out.effect, Finished), out.effect
    report = out.report
    assert report.success and report.scenario == name
    assert secc.names[0] == "supportedAppProtocolReq"
    assert secc.names[-1] == "SessionStopReq"
    assert of(secc, "SessionStopReq")[-1].charging_session == "Terminate"
    assert report.energy_charged_wh > 0
    dc = get_scenario(name).service.is_dc
    assert ("DC_WeldingDetectionReq" in secc.names) == dc
    assert ("DC_CableCheckReq" in secc.names) == dc
    assert all(n.startswith(("DC_", "AC_")) is False or n.startswith("DC_" if dc else "AC_")
               for n in secc.names)


# -- DC -----------------------------------------------------------------------------------------


def test_dc_charges_to_target_soc() -> None:
    secc = ScriptedSecc()
    scenario = get_scenario("dc", max_loops=None, target_soc=55.0, loop_sim_seconds=60.0)
    out = drive(Evcc(scenario), secc)
    assert out.report.reason == "target_soc"
    assert 55.0 <= out.report.final_soc < 57.0
    loops = of(secc, "DC_ChargeLoopReq")
    assert loops[-1].display_parameters.charging_complete is False
    # Energy at the terminals matches the SOC change of a 60 kWh pack (plus I*R losses).
    assert out.report.energy_charged_wh == pytest.approx(
        (out.report.final_soc - 50.0) / 100 * 60_000, rel=0.05)


def test_dc_bpt_scheduled_discharges_where_the_schedule_is_negative() -> None:
    # 10 simulated minutes charging at 30 kW, then discharging at 20 kW.
    secc = ScriptedSecc(schedule=((600, 30_000.0), (3000, -20_000.0)), discharge_schedule=None)
    scenario = get_scenario("dc_bpt_scheduled", max_loops=8, loop_sim_seconds=150.0,
                            schedule_time="sim")
    out = drive(Evcc(scenario), secc)
    assert isinstance(out.effect, Finished), out.effect
    targets = [value_of(r.bpt_scheduled_dc_cl_req_control_mode.ev_target_current)
               for r in of(secc, "DC_ChargeLoopReq")]
    assert all(t > 0 for t in targets[:4]) and all(t < 0 for t in targets[4:])
    assert targets[5] == pytest.approx(-20_000 / 375, rel=0.05)
    report = out.report
    assert report.energy_discharged_wh > 0 and report.extra["discharge_seen"]
    profile = of(secc, "PowerDeliveryReq")[0].ev_power_profile
    assert [value_of(e.power) for e in profile.ev_power_profile_entries.ev_power_profile_entry] \
        == [30_000.0, -20_000.0]
    assert of(secc, "PowerDeliveryReq")[0].bpt_channel_selection is None  # unified channel
    loop = of(secc, "DC_ChargeLoopReq")[0].bpt_scheduled_dc_cl_req_control_mode
    assert value_of(loop.ev_maximum_discharge_current) > 0


def test_separated_bpt_channel_is_reselected_when_the_direction_changes() -> None:
    secc = ScriptedSecc(bpt_channel=2, discharge_schedule=((3600, -10_000.0),))
    out = drive(Evcc(get_scenario("dc_bpt_scheduled", loop_sim_seconds=10.0)), secc)
    assert isinstance(out.effect, Finished), out.effect
    deliveries = [(r.charge_progress, r.bpt_channel_selection)
                  for r in of(secc, "PowerDeliveryReq")]
    assert deliveries == [("Start", "Charge"), ("Start", "Discharge"), ("Start", "Charge"),
                          ("Stop", None)]
    names = [n for n in secc.names if n in ("PowerDeliveryReq", "DC_ChargeLoopReq")]
    assert names[7] == "PowerDeliveryReq" and names[14] == "PowerDeliveryReq"
    assert out.report.loops == 16 and out.report.energy_discharged_wh > 0


def test_schedule_discharge_as_zero_charge_and_discharging_power() -> None:
    """Our SECC's convention: charging 0 W and discharging -P in an interval = discharge."""
    secc = ScriptedSecc(schedule=((300, 20_000.0), (300, 0.0), (3000, 20_000.0)),
                        discharge_schedule=((300, 0.0), (300, -15_000.0), (3000, 0.0)))
    scenario = get_scenario("dc_bpt_scheduled", max_loops=9, loop_sim_seconds=100.0,
                            schedule_time="sim", discharge_loops=None)
    out = drive(Evcc(scenario), secc)
    targets = [value_of(r.bpt_scheduled_dc_cl_req_control_mode.ev_target_current)
               for r in of(secc, "DC_ChargeLoopReq")]
    signs = [(t > 0) - (t < 0) for t in targets]
    assert signs == [1, 1, 1, -1, -1, -1, 1, 1, 1]
    profile = of(secc, "PowerDeliveryReq")[0].ev_power_profile.ev_power_profile_entries
    assert [(e.duration, value_of(e.power)) for e in profile.ev_power_profile_entry] == [
        (300, 20_000.0), (300, -15_000.0), (3000, 20_000.0)]
    assert out.report.success


def test_forced_discharge_needs_a_discharging_schedule() -> None:
    secc = ScriptedSecc(discharge_schedule=((3600, 0.0),))  # discharge not permitted
    out = drive(Evcc(get_scenario("dc_bpt_scheduled", loop_sim_seconds=10.0)), secc)
    targets = [value_of(r.bpt_scheduled_dc_cl_req_control_mode.ev_target_current)
               for r in of(secc, "DC_ChargeLoopReq")]
    assert all(t >= 0 for t in targets)
    assert isinstance(out.effect, Failed)  # expect_discharge: no V2G phase happened


def test_dc_bpt_scheduled_forced_discharge_window_is_capped_by_discharging_schedule() -> None:
    secc = ScriptedSecc(discharge_schedule=((3600, -10_000.0),))
    out = drive(Evcc(get_scenario("dc_bpt_scheduled", loop_sim_seconds=10.0)), secc)
    targets = [value_of(r.bpt_scheduled_dc_cl_req_control_mode.ev_target_current)
               for r in of(secc, "DC_ChargeLoopReq")]
    assert [t < 0 for t in targets] == [False] * 6 + [True] * 6 + [False] * 4
    assert min(targets) == pytest.approx(-10_000 / 375, rel=0.05)
    assert out.report.success


def test_bpt_expecting_discharge_fails_when_none_happens() -> None:
    secc = ScriptedSecc(discharge_schedule=None)
    secc.overrides["DC_ChargeLoopReq"] = lambda req, res: res.replace(
        evse_present_current=rational(iso20_dc, 10))  # the charger never discharges
    out = drive(Evcc(get_scenario("dc_bpt_scheduled", loop_sim_seconds=10.0)), secc)
    assert isinstance(out.effect, Failed)
    assert out.effect.reason == "no discharge happened (expected a V2G phase)"
    assert secc.names[-1] == "SessionStopReq"  # it still stopped cleanly


def test_dc_bpt_dynamic_follows_the_chargers_current() -> None:
    secc = ScriptedSecc(dynamic_current=lambda loop: 80.0 if loop <= 3 else -60.0)
    battery = EvBattery(soc=0.5)
    scenario = get_scenario("dc_bpt_dynamic", max_loops=6, loop_sim_seconds=60.0)
    out = drive(Evcc(scenario, battery=battery), secc)
    assert isinstance(out.effect, Finished)
    req = of(secc, "DC_ChargeLoopReq")[0].bpt_dynamic_dc_cl_req_control_mode
    assert req is not None
    # 150 A battery limit, cut to ~138 A by the 50 kW discharge power limit at ~375 V.
    assert value_of(req.ev_maximum_discharge_current) == pytest.approx(138.4, abs=0.1)
    assert value_of(req.ev_minimum_energy_request) < 0  # BPT: may give energy back
    assert value_of(req.ev_maximum_v2_x_energy_request) > 0
    report = out.report
    # 3 minutes at +80 A and 3 at -60 A, around 375 V.
    assert report.energy_charged_wh == pytest.approx(80 * 375 * 180 / 3600, rel=0.03)
    assert report.energy_discharged_wh == pytest.approx(60 * 375 * 180 / 3600, rel=0.03)
    assert battery.soc == pytest.approx(report.final_soc / 100)
    se = of(secc, "ScheduleExchangeReq")[0].dynamic_se_req_control_mode
    assert se.ev_maximum_v2_x_energy_request is not None


# -- AC -----------------------------------------------------------------------------------------


def test_ac_scheduled_uses_the_schedule_and_limits() -> None:
    secc = ScriptedSecc(schedule=((3600, 7_400.0),))
    out = drive(Evcc(get_scenario("ac", max_loops=3, loop_sim_seconds=60.0)), secc)
    assert isinstance(out.effect, Finished)
    cpd = of(secc, "AC_ChargeParameterDiscoveryReq")[0].ac_cpd_req_energy_transfer_mode
    assert value_of(cpd.ev_maximum_charge_power) == 11_000
    powers = [value_of(r.scheduled_ac_cl_req_control_mode.ev_present_active_power)
              for r in of(secc, "AC_ChargeLoopReq")]
    assert powers == [7_400.0] * 3
    assert out.report.energy_charged_wh == pytest.approx(7_400 * 180 / 3600)


def test_ac_bpt_follows_evse_target_and_discharges_in_the_window() -> None:
    secc = ScriptedSecc(schedule=((3600, 22_000.0),), discharge_schedule=((3600, -4_000.0),))
    out = drive(Evcc(get_scenario("ac_bpt", loop_sim_seconds=10.0)), secc)
    assert isinstance(out.effect, Finished), out.effect
    powers = [value_of(r.bpt_scheduled_ac_cl_req_control_mode.ev_present_active_power)
              for r in of(secc, "AC_ChargeLoopReq")]
    # Capped by the EV's 11 kW on-board charger; -4 kW from the DischargingSchedule.
    assert powers[:6] == [11_000.0] * 6
    assert powers[6:12] == [-4_000.0] * 6
    assert out.report.energy_discharged_wh == pytest.approx(4_000 * 60 / 3600)
    cpd = of(secc, "AC_ChargeParameterDiscoveryReq")[0]
    assert cpd.bpt_ac_cpd_req_energy_transfer_mode is not None


def test_ac_bpt_dynamic_follows_evse_target_active_power() -> None:
    targets = {1: 5_000.0, 2: -3_000.0, 3: -50_000.0, 4: 2_000.0}
    secc = ScriptedSecc(ac_target_power=lambda loop: targets.get(loop, 0.0))
    out = drive(Evcc(get_scenario("ac_bpt_dynamic", max_loops=5, loop_sim_seconds=60.0)), secc)
    assert isinstance(out.effect, Finished)
    reqs = of(secc, "AC_ChargeLoopReq")
    powers = [value_of(r.bpt_dynamic_ac_cl_req_control_mode.ev_present_active_power)
              for r in reqs]
    # First request before any setpoint: 0 W; then the previous response's target, clamped to
    # the EV's 11 kW (BPT: -11 kW; the SECC's -11 kW limit arrives negative, like a real one).
    assert powers == [0.0, 5_000.0, -3_000.0, -11_000.0, 2_000.0]
    assert out.report.energy_discharged_wh == pytest.approx(14_000 / 60)


# -- pause / resume, stops ------------------------------------------------------------------------


def test_pause_resume_rejoins_the_old_session() -> None:
    secc = ScriptedSecc()
    ev = Evcc(get_scenario("pause_resume", loop_sim_seconds=10.0))
    out = drive(ev, secc)
    assert isinstance(out.effect, Finished), out.effect
    assert any(isinstance(e, Reconnect) for e in out.effects)
    names = secc.names
    stop1 = names.index("SessionStopReq")
    assert secc.requests[stop1].charging_session == "Pause"
    assert names[stop1 + 1: stop1 + 4] == [
        "supportedAppProtocolReq", "SessionSetupReq", "DC_ChargeParameterDiscoveryReq"
    ]
    assert secc.requests[stop1 + 2].header.session_id == SESSION_ID
    assert names[stop1 + 4:stop1 + 6] == ["ScheduleExchangeReq", "DC_CableCheckReq"]
    report = out.report
    assert report.connections == 2 and report.loops == 8
    assert len(of(secc, "DC_ChargeLoopReq")) == 8
    assert "Paused" in report.states
    assert {m.connection for m in report.messages} == {1, 2}


def test_pause_resume_can_reauthorize() -> None:
    secc = ScriptedSecc()
    scenario = get_scenario("pause_resume", loop_sim_seconds=10.0, resume_via_authorization=True)
    drive(Evcc(scenario), secc)
    names = secc.names
    stop1 = names.index("SessionStopReq")
    assert names[stop1 + 3: stop1 + 6] == [
        "AuthorizationSetupReq", "AuthorizationReq", "DC_ChargeParameterDiscoveryReq"
    ]


def test_pause_resume_fails_when_the_secc_forgot_the_session() -> None:
    secc = ScriptedSecc()
    secc.overrides["SessionStopReq"] = lambda req, res: (secc.paused_sessions.clear(), res)[1]
    out = drive(Evcc(get_scenario("pause_resume", loop_sim_seconds=10.0)), secc)
    assert isinstance(out.effect, Failed)
    assert "expected OK_OldSessionJoined, got OK_NewSessionEstablished" in out.effect.reason


def test_ev_stop_sends_termination_reason() -> None:
    secc = ScriptedSecc()
    out = drive(Evcc(get_scenario("ev_stop", loop_sim_seconds=10.0)), secc)
    assert out.report.reason == "ev_stop" and out.report.loops == 3
    stop = of(secc, "SessionStopReq")[0]
    assert (stop.charging_session, stop.ev_termination_code) == ("Terminate", "UserStop")
    assert out.report.final_soc < get_scenario("ev_stop").target_soc


def test_emergency_stop_on_evse_terminate() -> None:
    secc = ScriptedSecc(terminate_at_loop=3)
    out = drive(Evcc(get_scenario("emergency_stop", loop_sim_seconds=10.0)), secc)
    assert isinstance(out.effect, Finished)
    assert out.report.reason == "evse_terminate" and out.report.loops == 3
    assert out.report.evse_notifications == ("DC_ChargeLoopRes:Terminate",)
    assert secc.names[-4:] == [
        "PowerDeliveryReq", "DC_WeldingDetectionReq", "DC_WeldingDetectionReq", "SessionStopReq"
    ]


def test_emergency_stop_fails_without_terminate() -> None:
    secc = ScriptedSecc()
    scenario = get_scenario("emergency_stop", max_loops=5, loop_sim_seconds=10.0)
    out = drive(Evcc(scenario), secc)
    assert isinstance(out.effect, Failed)
    assert out.effect.reason == "the charger never signalled EVSENotification=Terminate"


def test_emergency_stop_accepts_failed_with_terminate() -> None:
    secc = ScriptedSecc(terminate_at_loop=2)
    secc.overrides["DC_ChargeLoopReq"] = lambda req, res: (
        res.replace(response_code="FAILED") if res.evse_status is not None else res)
    out = drive(Evcc(get_scenario("emergency_stop", loop_sim_seconds=10.0)), secc)
    assert isinstance(out.effect, Finished)
    assert secc.names[-1] == "DC_ChargeLoopReq"  # a FAILED response ends the exchange
    assert any("FAILED" in w for w in out.report.warnings)


def test_terminate_in_a_normal_scenario_also_stops_cleanly() -> None:
    secc = ScriptedSecc(terminate_at_loop=2)
    out = drive(Evcc(get_scenario("dc", loop_sim_seconds=10.0)), secc)
    assert isinstance(out.effect, Finished) and out.report.reason == "evse_terminate"


# -- the battery link ------------------------------------------------------------------------------


def test_battery_link_counts_energy_and_steps_only_when_not_shared() -> None:
    b = EvBattery(soc=0.5)
    link = BatteryLink(b)
    link.apply_current(100.0, 3600.0, 400.0)
    assert link.energy_charged_wh == pytest.approx(40_000.0)
    assert b.soc > 0.5
    link.apply_current(-50.0, 360.0, 400.0)
    assert link.energy_discharged_wh == pytest.approx(2_000.0)

    shared = EvBattery(soc=0.5)
    seen: list[bool] = []
    link = BatteryLink(shared, shared=True, on_contactors=seen.append)
    link.apply_current(100.0, 3600.0, 400.0)
    assert shared.soc == 0.5 and link.energy_charged_wh == pytest.approx(40_000.0)
    link.set_contactors(True)
    link.set_contactors(False)
    assert seen == [True, False]


def test_evcc_closes_and_opens_the_ev_contactors() -> None:
    seen: list[bool] = []
    link = BatteryLink(EvBattery(), on_contactors=seen.append)
    drive(Evcc(get_scenario("dc", max_loops=2, loop_sim_seconds=1.0), battery=link),
          ScriptedSecc())
    assert seen == [True, False]
