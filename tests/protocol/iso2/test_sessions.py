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


def test_pause_before_charge_parameters_is_a_plain_stop() -> None:
    """Nothing to resume yet: answered OK, power safe, but not kept in the store."""
    from evse.protocol.v2gtp import PayloadType
    from exi_codec.schemas import iso2
    from tests.protocol.iso2.test_robustness import _payload, _res
    from tests.protocol.iso2.test_states import machine_in

    m = machine_in(State.AUTHORIZATION)
    pause = iso2.SessionStopReqType(charging_session=iso2.chargingSessionType.Pause)
    effects = m.receive_payload(PayloadType.SAP, _payload("SessionStopReq", pause), 1.0)
    assert str(_res(effects).body.session_stop_res.response_code) == "OK"
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]
    assert [e for e in effects if isinstance(e, sev.SessionEnded)][0].paused is False
    assert m.session.session_id not in m._store


def test_a_paused_session_resumes_only_for_its_own_evccid() -> None:
    from evse.protocol.secc import SeccConnection
    from evse.protocol.session import SessionStore
    from exi_codec.schemas import iso2
    from tests.protocol.iso2.test_robustness import _payload, _res
    from tests.protocol.iso2.test_states import _sap

    store = SessionStore()
    run = back_to_back(ISO2_SCENARIOS["iso2_dc"], store=store)
    record = run.connections[0].session
    assert record is not None and record.service is not None
    store.pause(record)  # as if it had paused
    for evcc_id, resumed in ((bytes.fromhex("FFFFFFFFFFFF"), False),
                             (bytes.fromhex(record.evcc_id), True)):
        conn = SeccConnection(config(), tls=False, now=0.0, session_store=store)
        conn.receive_data(_sap(), 0.1)
        setup = iso2.SessionSetupReqType(evccid=evcc_id)
        effects = conn.receive_data(
            _frame(_payload("SessionSetupReq", setup, record.session_id)), 0.2)
        code = _res(effects).body.session_setup_res.response_code
        assert (code == "OK_OldSessionJoined") is resumed
        started = [e for e in effects if isinstance(e, sev.SessionStarted)][0]
        assert started.resumed is resumed
        assert (started.session_id == record.session_id) is resumed
    assert record.session_id not in store  # taken by its own EV's resume


def _frame(payload: bytes) -> bytes:
    from evse.protocol.v2gtp import PayloadType, encode_frame

    return encode_frame(PayloadType.SAP, payload)


def test_schedule_provider_not_ready_gives_ongoing_then_the_schedule() -> None:
    from evse.protocol.schedules import PowerEntry, Schedules

    class Slow:
        calls = 0

        def schedules(self, now: float, departure: int | None, ev: object, limits: object,
                      bpt: bool) -> Schedules | None:
            Slow.calls += 1
            if Slow.calls < 4:
                return None
            return Schedules(start=now, charging=(PowerEntry(3600, 20_000.0),))

    run = back_to_back(ISO2_SCENARIOS["iso2_dc"], config(schedule_provider=Slow()))
    assert run.done.success, run.done
    assert [n for n, _ in run.done.log].count("ChargeParameterDiscoveryReq") == 4
    assert all(t.power <= 20_000.0 + 1e-6 for t in run.of(sev.SetPowerTarget))


def test_failing_schedule_provider_gives_the_default_and_a_warning() -> None:
    class Broken:
        def schedules(self, *args: object) -> None:
            raise RuntimeError("planner down")

    run = back_to_back(ISO2_SCENARIOS["iso2_ac"], config(schedule_provider=Broken()))
    assert run.done.success, run.done
    warnings = run.of(sev.ReportWarning)
    assert warnings and warnings[0].code == "energy_policy"
