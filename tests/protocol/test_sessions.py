"""Whole sessions driven through SeccConnection.receive_data with encoded EV requests."""

from __future__ import annotations

from typing import Any

import pytest

from evse.energy.schedule import DefaultScheduleProvider
from evse.protocol import events as ev
from evse.protocol.config import ISO20_AC, ISO20_DC, ControlMode, ServiceId
from evse.protocol.iso20.states import State
from evse.protocol.session import SessionStore
from exi_codec.schemas import iso20
from tests.protocol.evcc import AC_LIMITS, Ev, assert_safe_end, config, dc_to_loop, kinds, of

SCHEDULED, DYNAMIC = ControlMode.SCHEDULED, ControlMode.DYNAMIC


def control_mode(res: Any) -> Any:
    """The one control-mode branch (substitution group member) set in a response."""
    (branch,) = [
        getattr(res, n)
        for n in type(res)._py_names()
        if n.endswith("_control_mode") and getattr(res, n) is not None
    ]
    return branch


def dc_finish(x: Ev) -> list[Any]:
    assert x.power_delivery("Stop").response_code == "OK"
    assert x.welding().response_code == "OK"
    res, effects = x.session_stop()
    assert res.response_code == "OK"
    return effects


def test_dc_scheduled_session() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, SCHEDULED)
    x.event(ev.MeasurementsUpdated(400.0, 99.5, imported_wh=1234))
    res, effects = x.dc_loop(SCHEDULED, False, current=100, meter=True)
    assert res.response_code == "OK" and res.evse_status is None
    assert res.meter_info.charged_energy_reading_wh == 1234
    assert res.evse_present_current.value * 10**res.evse_present_current.exponent == 99.5
    assert of(effects, ev.SetPowerTarget) == [ev.SetPowerTarget(400.0, 100.0, 40_000.0)]
    res, effects = x.dc_loop(SCHEDULED, False, current=300)  # above the charger's 125 A
    assert res.evse_current_limit_achieved and of(effects, ev.SetPowerTarget)[0].current == 125
    end = dc_finish(x)
    assert kinds(end) == [
        "StopPower",
        "OpenContactors",
        "SendData",
        "SessionEnded",
        "CloseConnection",
    ]
    assert of(end, ev.SessionEnded)[0] == ev.SessionEnded("EV terminated the session", False)
    assert of(end, ev.CloseConnection)[0].after_s == 5.0
    names = kinds(x.effects)
    order = [
        "SessionStarted",
        "EnergyServiceSelected",
        "EvLimitsReported",
        "StartCableCheck",
        "StartPreCharge",
        "CloseContactors",
        "SetPowerTarget",
        "StopPower",
        "SessionEnded",
    ]
    firsts = [names.index(n) for n in order]  # first occurrence of each effect kind
    assert firsts == sorted(firsts), names
    assert of(x.effects, ev.StartCableCheck) == [ev.StartCableCheck(voltage=450.0)]
    assert of(x.effects, ev.StartPreCharge) == [ev.StartPreCharge(400.0, 2.0)]
    assert x.conn.closed and x.conn.next_deadline() is None


def test_dc_bpt_scheduled_discharges_in_the_window() -> None:
    provider = DefaultScheduleProvider(discharge_window=(10, 20), energy_fee=0.25)
    x = Ev.connect(config(schedule_provider=provider, pricing=True))
    dc_to_loop(x, ServiceId.DC_BPT, SCHEDULED)
    x.event(ev.MeasurementsUpdated(400.0, 0.0))
    start = x.conn.session.schedules.start
    targets = []
    while x.now < start + 25:
        wanted = -30.0 if start + 10 <= x.now + 0.3 < start + 20 else 50.0
        res, effects = x.dc_loop(SCHEDULED, True, current=wanted, dt=0.3)
        assert res.response_code == "OK" and res.bpt_scheduled_dc_cl_res_control_mode
        targets.append((x.now - start, of(effects, ev.SetPowerTarget)[0].current))
    charging = [i for t, i in targets if t < 10 or t >= 20]
    discharging = [i for t, i in targets if 10 <= t < 20]
    assert charging and all(i == 50.0 for i in charging)
    assert discharging and all(i == -30.0 for i in discharging)  # negative = EV discharges
    dc_finish(x)


def test_dc_bpt_scheduled_schedule_and_clamping() -> None:
    provider = DefaultScheduleProvider(discharge_window=(0, 3600), energy_fee=0.25)
    x = Ev.connect(config(schedule_provider=provider, pricing=True))
    x.sap(), x.setup(), x.authorize(), x.select(ServiceId.DC_BPT, SCHEDULED), x.dc_cpd(True)
    res = x.schedule_exchange(SCHEDULED, departure=7200)
    (tuple_,) = res.scheduled_se_res_control_mode.schedule_tuple
    discharge = tuple_.discharging_schedule.power_schedule.power_schedule_entries
    assert discharge.power_schedule_entry[0].power.value < 0  # 15 kW (EV limit), negative
    price = tuple_.charging_schedule.absolute_price_schedule
    assert price.currency == "EUR" and price.price_rule_stacks.price_rule_stack[0].price_rule[0]
    charge = tuple_.charging_schedule.power_schedule.power_schedule_entries.power_schedule_entry
    assert [e.duration for e in charge] == [3600, 3600] and charge[0].power.value == 0


def test_dc_bpt_dynamic_session_follows_the_setpoint() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC_BPT, DYNAMIC)
    x.event(ev.MeasurementsUpdated(400.0, 0.0))
    res, effects = x.dc_loop(DYNAMIC, True)
    mode = res.bpt_dynamic_dc_cl_res_control_mode
    assert mode.evse_maximum_discharge_power is not None and mode.departure_time <= 7200
    assert mode.minimum_soc == 20 and mode.target_soc == 80
    assert of(effects, ev.SetPowerTarget)[0].current == 125.0  # full power, current-limited
    x.event(ev.SetpointUpdated(power_w=-8000.0))
    _, effects = x.dc_loop(DYNAMIC, True)
    assert of(effects, ev.SetPowerTarget)[0] == ev.SetPowerTarget(450.0, -20.0, -8000.0)
    x.event(ev.SetpointUpdated(power_w=-100_000.0))  # beyond the EV's 15 kW / 40 A
    res, effects = x.dc_loop(DYNAMIC, True)
    assert of(effects, ev.SetPowerTarget)[0].current == -37.5
    dc_finish(x)


def test_dc_plain_dynamic_never_discharges() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, DYNAMIC)
    x.event(ev.SetpointUpdated(power_w=-8000.0))
    res, effects = x.dc_loop(DYNAMIC, False)
    assert res.dynamic_dc_cl_res_control_mode and of(effects, ev.SetPowerTarget)[0].current == 0


@pytest.mark.parametrize("mode", [SCHEDULED, DYNAMIC])
@pytest.mark.parametrize("service", [ServiceId.AC, ServiceId.AC_BPT])
def test_ac_sessions(service: ServiceId, mode: ControlMode) -> None:
    bpt = service == ServiceId.AC_BPT
    x = Ev.connect(config(limits=AC_LIMITS))
    assert x.sap(ISO20_AC).schema_id == 1
    x.setup(), x.authorize()
    assert x.select(service, mode).response_code == "OK"
    res = x.ac_cpd(bpt)
    assert (res.bpt_ac_cpd_res_energy_transfer_mode is not None) == bpt
    assert x.schedule_exchange(mode).response_code == "OK"
    x.power_delivery("Start")
    assert of(x.effects, ev.CloseContactors)
    x.event(ev.MeasurementsUpdated(230.0, 15.0, present_power=10_350.0))
    res, effects = x.ac_loop(mode, bpt, meter=True)
    control = control_mode(res)
    assert (
        control.evse_present_active_power.value * 10**control.evse_present_active_power.exponent
        == 10_350
    )
    target = of(effects, ev.SetPowerTarget)[0]
    assert target.power == 11_000 and target.voltage == 230
    if bpt and mode == DYNAMIC:
        x.event(ev.SetpointUpdated(-5_000.0))
        res, effects = x.ac_loop(mode, bpt)
        assert of(effects, ev.SetPowerTarget)[0].power == -5_000
        p = res.bpt_dynamic_ac_cl_res_control_mode.evse_target_active_power
        assert p.value * 10**p.exponent == -5_000
    x.power_delivery("Stop")
    res, effects = x.session_stop()
    assert of(effects, ev.SessionEnded) == [ev.SessionEnded("EV terminated the session", False)]


def test_pause_and_resume_goes_straight_to_charge_parameter_discovery() -> None:
    store = SessionStore()
    x = Ev.connect(store=store)
    dc_to_loop(x, ServiceId.DC_BPT, SCHEDULED)
    x.dc_loop(SCHEDULED, True)
    x.power_delivery("Stop")
    res, effects = x.session_stop("Pause")
    assert of(effects, ev.SessionEnded) == [ev.SessionEnded("EV paused the session", False, True)]
    old_id = x.session_id
    assert old_id in store
    y = Ev.connect(store=store, now=100.0)
    y.session_id = old_id
    y.sap()
    res = y.setup()
    assert res.response_code == "OK_OldSessionJoined" and bytes(res.header.session_id) == old_id
    assert of(y.effects, ev.SessionStarted)[0].resumed and old_id not in store
    assert of(y.effects, ev.EnergyServiceSelected) == [ev.EnergyServiceSelected(6, 1, True)]
    assert y.conn.state == State.DC_CHARGE_PARAMETER_DISCOVERY
    assert y.dc_cpd(True).response_code == "OK"  # the BPT service is remembered
    assert y.schedule_exchange(SCHEDULED).response_code == "OK"


def test_resume_needs_the_same_evcc_id_and_the_old_session_cannot_rediscover() -> None:
    store = SessionStore()
    x = Ev.connect(store=store)
    dc_to_loop(x, ServiceId.DC, SCHEDULED)
    x.power_delivery("Stop")
    x.session_stop("Pause")
    other = Ev.connect(store=store)
    other.session_id = x.session_id
    other.sap()
    assert other.setup(evcc_id="SOMEONE-ELSE").response_code == "OK_NewSessionEstablished"
    y = Ev.connect(store=store)
    y.session_id = x.session_id
    y.sap(), y.setup()
    res, effects = y.send(iso20.ServiceDiscoveryReq(header=y.header()))
    assert res.response_code == "FAILED_SequenceError"
    assert_safe_end(effects)


def test_authorization_waits_for_the_charger() -> None:
    x = Ev.connect(config(auto_authorize=False))
    x.sap(), x.setup()
    res = x.authorize()
    assert res.evse_processing == "Ongoing_WaitingForCustomerInteraction"
    assert of(x.effects, ev.RequestAuthorization) == [
        ev.RequestAuthorization(method="EIM", evcc_id="WMIV1234567890ABCDEX")
    ]
    assert x.conn.next_deadline() == pytest.approx(x.now + 55.0)
    assert x.authorization().evse_processing == "Ongoing_WaitingForCustomerInteraction"
    x.event(ev.AuthorizationGranted())
    res = x.authorization()
    assert res.response_code == "OK" and res.evse_processing == "Finished"
    assert len(of(x.effects, ev.RequestAuthorization)) == 1
    assert x.conn.state == State.SERVICE_DISCOVERY


def test_authorization_denied_then_ev_stops() -> None:
    x = Ev.connect(config(auto_authorize=False))
    x.sap(), x.setup(), x.authorize()
    x.event(ev.AuthorizationDenied("unknown card"))
    assert x.authorization().response_code == "WARNING_EIMAuthorizationFailure"
    assert x.conn.state == State.AUTHORIZATION_REFUSED
    res, effects = x.session_stop()
    assert res.response_code == "OK" and of(effects, ev.SessionEnded)[0].failed is False


def test_charger_stop_request_is_signalled_in_the_loop() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, SCHEDULED)
    x.event(ev.StopRequested("user pressed stop"))
    res, effects = x.dc_loop(SCHEDULED, False)
    assert res.response_code == "OK"
    assert res.evse_status.evse_notification == "Terminate"
    assert res.evse_status.notification_max_delay == 10
    assert of(effects, ev.SetPowerTarget)[0].current == 0  # ramp down at once
    end = dc_finish(x)
    assert of(end, ev.SessionEnded)[0].failed is False


def test_charger_stop_ignored_by_the_ev_fails_the_session() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, SCHEDULED)
    x.event(ev.StopRequested())
    notified = x.now + 0.1
    while x.now < notified + 10:
        x.dc_loop(SCHEDULED, False, dt=0.4)
    assert x.conn.closed
    assert_safe_end(x.effects[-4:])
    assert "Terminate" in of(x.effects, ev.SessionEnded)[0].reason


def test_emergency_stop_mid_loop() -> None:
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC_BPT, SCHEDULED)
    x.dc_loop(SCHEDULED, True)
    now_effects = x.event(ev.EmergencyStop("e-stop button"))
    assert kinds(now_effects) == ["StopPower", "OpenContactors"]  # at once, before any message
    res, effects = x.dc_loop(SCHEDULED, True)
    assert res.response_code == "FAILED"
    assert res.evse_status.evse_notification == "Terminate"
    assert_safe_end(effects)
    assert "e-stop button" in of(effects, ev.SessionEnded)[0].reason
    assert not of(effects, ev.SetPowerTarget)


def test_charger_stop_before_energy_fails_the_next_request() -> None:
    x = Ev.connect()
    x.sap(), x.setup()
    x.event(ev.StopRequested("maintenance"))
    x.authorize()  # AuthorizationSetup is answered FAILED
    assert x.conn.closed and of(x.effects, ev.SessionEnded)[0].failed


def test_sap_picks_the_evs_priority_and_dc_namespace() -> None:
    x = Ev.connect()
    res = x.sap("urn:din:70121:2012:MsgDef", ISO20_AC, ISO20_DC)
    assert res.response_code == "OK_SuccessfulNegotiation" and res.schema_id == 2
    assert x.conn.protocol == ISO20_AC
