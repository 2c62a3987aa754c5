"""The arbitration in one place (docs/ocpp.md "Arbitration"): ChargerState keeps the charger's
own limits and the local setpoint, and applies the outside bound (the CSMS's composite
limit, PowerBoundUpdated) to both; the bound never raises anything. Then -20 sessions under
it (sans-IO, fake clock): Scheduled ones are capped at once and asked to renegotiate,
Dynamic ones follow without."""

from __future__ import annotations

from evse.protocol import events as ev
from evse.protocol.config import ControlMode, ServiceId
from evse.protocol.events import LimitsUpdated, PowerBoundUpdated, SetpointUpdated
from evse.protocol.limits import EvseLimits
from evse.protocol.session import ChargerState
from tests.protocol.evcc import Ev, dc_to_loop, of

RATED = EvseLimits(max_charge_power=50_000.0, max_charge_current=125.0, max_voltage=500.0,
                   min_charge_power=2_000.0, max_discharge_power=20_000.0,
                   max_discharge_current=50.0, min_discharge_power=1_000.0)


def test_the_bound_caps_limits_and_local_setpoints_and_never_raises() -> None:
    c = ChargerState(limits=RATED)
    c.update(SetpointUpdated(30_000.0))
    assert c.setpoint_w == 30_000.0
    c.update(PowerBoundUpdated(max_charge_power=7_000.0, max_discharge_power=4_000.0))
    assert c.limits.max_charge_power == 7_000.0
    assert c.limits.max_discharge_power == 4_000.0
    assert c.limits.max_charge_current == 125.0 and c.limits.max_voltage == 500.0
    assert c.setpoint_w == 7_000.0  # the local setpoint, within the CSMS's limit
    c.update(SetpointUpdated(-15_000.0))  # a local (MQTT) discharge request beyond it
    assert c.setpoint_w == -4_000.0
    c.update(SetpointUpdated(3_000.0))
    assert c.setpoint_w == 3_000.0  # inside the bound: unchanged
    c.update(PowerBoundUpdated(max_charge_power=90_000.0))  # above the rating: no effect
    assert c.limits == RATED
    c.update(PowerBoundUpdated())
    assert c.limits == RATED and c.setpoint_w == 3_000.0


def test_derating_under_a_bound_and_bound_under_derating() -> None:
    c = ChargerState(limits=RATED)
    c.update(PowerBoundUpdated(max_charge_power=11_000.0))
    c.update(LimitsUpdated(EvseLimits(max_charge_power=8_000.0, max_charge_current=20.0,
                                      max_voltage=500.0)))  # the supply derates: lower wins
    assert c.limits.max_charge_power == 8_000.0
    c.update(LimitsUpdated(RATED))  # the derating ends: the bound is still there
    assert c.limits.max_charge_power == 11_000.0


def test_charging_only_and_idle_forbid_discharge_and_any_flow() -> None:
    c = ChargerState(limits=RATED)
    c.update(SetpointUpdated(-10_000.0))
    c.update(PowerBoundUpdated(max_charge_power=11_000.0, max_discharge_power=0.0))
    assert c.setpoint_w == 0.0 and c.limits.max_discharge_power == 0.0
    assert c.limits.min_discharge_power == 0.0  # the minimum follows the maximum down
    c.update(PowerBoundUpdated(max_charge_power=0.0, max_discharge_power=0.0))  # Idle
    c.update(SetpointUpdated(5_000.0))
    assert c.setpoint_w == 0.0
    assert c.limits.max_charge_power == c.limits.min_charge_power == 0.0


def test_a_central_setpoint_replaces_the_local_one_within_the_charger_limits() -> None:
    c = ChargerState(limits=RATED)
    c.update(SetpointUpdated(9_000.0))
    c.update(PowerBoundUpdated(max_discharge_power=30_000.0, setpoint_w=-25_000.0))
    assert c.setpoint_w == -20_000.0  # the CSMS's setpoint, but never beyond the rating
    c.update(SetpointUpdated(1_000.0))  # the local manager cannot override it
    assert c.setpoint_w == -20_000.0
    c.update(PowerBoundUpdated())  # withdrawn (dead-man): the local setpoint again
    assert c.setpoint_w == 1_000.0


def test_renegotiation_requests_are_counted() -> None:
    c = ChargerState(limits=RATED)
    c.update(PowerBoundUpdated(max_charge_power=7_000.0))
    assert c.bound_version == 0
    c.update(PowerBoundUpdated(max_charge_power=5_000.0, renegotiate=True))
    assert c.bound_version == 1


# -- ISO 15118-20 (SeccConnection with encoded EV requests, fake clock) ---------------------

def _w(r: object) -> float:
    return float(r.value) * 10 ** r.exponent  # type: ignore[attr-defined]


def test_iso20_scheduled_loop_is_capped_then_asks_schedule_renegotiation() -> None:

    scheduled = ControlMode.SCHEDULED
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC, scheduled)
    x.event(ev.MeasurementsUpdated(400.0, 0.0))
    res, _ = x.dc_loop(scheduled, False)
    assert res.evse_status is None
    assert _w(res.scheduled_dc_cl_res_control_mode.evse_maximum_charge_power) > 7000.0
    x.event(ev.PowerBoundUpdated(max_charge_power=7000.0, renegotiate=True))
    res, effects = x.dc_loop(scheduled, False)
    assert res.evse_status.evse_notification == "ScheduleRenegotiation"
    assert _w(res.scheduled_dc_cl_res_control_mode.evse_maximum_charge_power) == 7000.0
    (target,) = of(effects, ev.SetPowerTarget)
    assert 0 < target.power <= 7000.0 + 1e-6  # capped at once, not stopped
    assert x.power_delivery("ScheduleRenegotiation").response_code == "OK"
    res = x.schedule_exchange(scheduled)
    (tuple_,) = res.scheduled_se_res_control_mode.schedule_tuple
    entries = tuple_.charging_schedule.power_schedule.power_schedule_entries
    assert max(_w(e.power) for e in entries.power_schedule_entry) <= 7000.0
    assert x.power_delivery("Start").response_code == "OK"
    res, _ = x.dc_loop(scheduled, False)
    assert res.evse_status is None  # the new schedule knows the bound


def test_iso20_dynamic_session_needs_no_renegotiation() -> None:

    dynamic = ControlMode.DYNAMIC
    x = Ev.connect()
    dc_to_loop(x, ServiceId.DC_BPT, dynamic)
    x.event(ev.MeasurementsUpdated(400.0, 0.0))
    x.event(ev.SetpointUpdated(-15_000.0))  # the local energy manager
    x.event(ev.PowerBoundUpdated(max_charge_power=7000.0, max_discharge_power=4000.0,
                                 renegotiate=True))
    res, effects = x.dc_loop(dynamic, True)
    assert res.evse_status is None
    (target,) = of(effects, ev.SetPowerTarget)
    assert -4000.0 - 1e-6 <= target.power < 0  # discharging, within the CSMS's limit
