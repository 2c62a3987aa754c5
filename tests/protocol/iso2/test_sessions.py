"""-2 sessions of the simulated EV against the SECC, back to back (sans-IO, fake clock)."""

from __future__ import annotations

from evse.protocol import events as sev
from evse.protocol.config import SeccConfig
from evse.protocol.iso2.states import State
from evse.protocol.standards import ISO2
from simulators.ev.iso2_evcc import ISO2_SCENARIOS
from tests.protocol.iso2.harness import back_to_back, config


def test_dc_session_completes_with_the_common_effects() -> None:
    run = back_to_back(ISO2_SCENARIOS["iso2_dc"])
    assert run.done.success, run.done
    assert all(not code.startswith("FAILED") for _, code in run.done.log)
    started = run.of(sev.SessionStarted)
    assert len(started) == 1 and started[0].protocol == ISO2
    assert run.of(sev.EnergyServiceSelected) == [sev.EnergyServiceSelected(2, 1, False)]
    assert len(run.of(sev.StartCableCheck)) == 1
    assert run.of(sev.StartPreCharge)[0].target_voltage == 380.0
    assert run.of(sev.CloseContactors) == [sev.CloseContactors()]
    targets = run.of(sev.SetPowerTarget)
    assert len(targets) == 5 and all(t.current == 100.0 for t in targets)
    ended = run.of(sev.SessionEnded)
    assert ended == [sev.SessionEnded("EV terminated the session", failed=False)]
    assert [n for n, _ in run.done.log][-3:] == [
        "PowerDeliveryReq", "WeldingDetectionReq", "SessionStopReq"]


def test_ac_session_drives_the_ac_path() -> None:
    run = back_to_back(ISO2_SCENARIOS["iso2_ac"])
    assert run.done.success, run.done
    assert run.of(sev.EnergyServiceSelected) == [sev.EnergyServiceSelected(1, 1, False)]
    assert not run.of(sev.StartCableCheck)
    targets = run.of(sev.SetPowerTarget)
    # 16 A on three phases at 230 V: the EV's limit, below the charger's 50 kW
    assert targets and all(abs(t.power - 16 * 230 * 3) < 1e-6 for t in targets)
    assert all(abs(t.current - 16.0) < 1e-9 for t in targets)
    assert "ChargingStatusReq" in [n for n, _ in run.done.log]


def test_dc_renegotiation_keeps_contactors_closed() -> None:
    run = back_to_back(ISO2_SCENARIOS["iso2_dc_renegotiation"])
    assert run.done.success, run.done
    names = [n for n, _ in run.done.log]
    i = names.index("ChargeParameterDiscoveryReq", names.index("CurrentDemandReq"))
    assert names[i - 1] == "PowerDeliveryReq" and names[i + 1] == "PowerDeliveryReq"
    assert len(run.of(sev.CloseContactors)) == 1  # still closed when the loop resumes
    assert run.of(sev.StartCableCheck) and len(run.of(sev.StartCableCheck)) == 1


def test_ac_renegotiation() -> None:
    run = back_to_back(ISO2_SCENARIOS["iso2_ac_renegotiation"])
    assert run.done.success, run.done


def test_pause_and_resume_with_the_old_session_id() -> None:
    run = back_to_back(ISO2_SCENARIOS["iso2_dc_pause"])
    assert run.done.success, run.done
    assert len(run.connections) == 2
    started = run.of(sev.SessionStarted)
    assert [s.resumed for s in started] == [False, True]
    assert started[0].session_id == started[1].session_id
    assert ("SessionSetupReq", "OK_OldSessionJoined") in run.done.log
    ended = run.of(sev.SessionEnded)
    assert ended[0].paused and not ended[-1].paused


def test_real_car_quirks_empty_session_id_trailing_zero_minutes() -> None:
    run = back_to_back(ISO2_SCENARIOS["iso2_dc_quirks"])
    assert run.done.success, run.done
    s = run.connections[0].machine.iso2_session  # type: ignore[union-attr]
    assert s.remaining_time_to_full_s == 30 * 60.0  # "m" read as minutes


def test_all_protocols_enabled_the_ev_choosing_iso2() -> None:
    cfg = config(protocols=("iso20", "iso2"))
    run = back_to_back(ISO2_SCENARIOS["iso2_dc_all_protocols"], cfg)
    assert run.done.success, run.done
    assert run.connections[0].protocol == ISO2


def test_authorization_ongoing_until_granted_and_denied_fails_safely() -> None:
    run = back_to_back(ISO2_SCENARIOS["iso2_dc"], grant=False)
    assert not run.done.success
    assert ("AuthorizationReq", "FAILED") in run.done.log
    assert run.of(sev.StopPower) and run.of(sev.SessionEnded)[0].failed


def test_charger_stop_in_the_loop_notifies_and_ramps_down() -> None:
    # the 15th request is inside the CurrentDemand loop (SAP is the 1st)
    run = back_to_back(ISO2_SCENARIOS["iso2_dc"], events={15: sev.StopRequested("user")})
    targets = run.of(sev.SetPowerTarget)
    assert targets[-1].current == 0.0
    assert run.done.success  # the EV ends normally after its loops
    assert run.of(sev.SetPowerTarget)[0].current == 100.0


def test_schedule_provider_pmax_reaches_the_ev_and_caps_the_loop() -> None:
    from evse.protocol.schedules import PowerEntry, Schedules

    class Provider:
        def schedules(self, now: float, departure: int | None, ev: object, limits: object,
                      bpt: bool) -> Schedules:
            return Schedules(start=now, charging=(PowerEntry(3600, 11_000.0),))

    run = back_to_back(ISO2_SCENARIOS["iso2_dc"], config(schedule_provider=Provider()))
    assert run.done.success
    # 11 kW at 380 V is about 29 A: well below the EV's 100 A
    targets = run.of(sev.SetPowerTarget)
    assert targets and all(abs(t.power - 11_000.0) < 1e-6 for t in targets)
    assert all(t.current < 30.0 for t in targets)


def test_state_names_shared_with_iso20_loop_states() -> None:
    from evse.aio.secc_server import LOOP_STATES

    assert State.DC_CHARGE_LOOP in LOOP_STATES and State.AC_CHARGE_LOOP in LOOP_STATES


def test_iso2_no_longer_a_config_error() -> None:
    assert SeccConfig(protocols=("iso2",)).protocols == ("iso2",)
