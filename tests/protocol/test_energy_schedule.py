"""The default schedule provider (evse/energy/schedule.py) and the Schedules helpers."""

from __future__ import annotations

from evse.energy.schedule import DefaultScheduleProvider
from evse.protocol.limits import EvLimits
from evse.protocol.schedules import PowerEntry, Schedules, flat_schedules
from tests.protocol.evcc import DC_LIMITS

EV = EvLimits(max_charge_power=30_000, max_discharge_power=10_000)


def test_flat_charge_until_departure() -> None:
    s = DefaultScheduleProvider().schedules(5.0, 3600, EV, DC_LIMITS, bpt=False)
    assert s.start == 5.0 and s.charging == (PowerEntry(3600, 30_000),) and s.discharging == ()
    assert s.price is not None and s.price.rules[0].energy_fee == 0.30
    assert s.limits_at(5.0 + 4000) == (30_000, 0.0)  # the last value holds


def test_bpt_window_charges_then_discharges_then_charges() -> None:
    p = DefaultScheduleProvider(discharge_window=(600, 1200), discharge_power=8_000)
    s = p.schedules(0.0, 3600, EV, DC_LIMITS, bpt=True)
    assert [e.duration for e in s.charging] == [600, 600, 2400]
    assert [e.power for e in s.discharging] == [0.0, 8_000, 0.0]
    assert s.setpoint_at(100) == 30_000 and s.setpoint_at(700) == -8_000
    assert s.setpoint_at(1300) == 30_000
    assert s.limits_at(700) == (0.0, 8_000)


def test_window_is_clipped_and_ignored_without_bpt() -> None:
    p = DefaultScheduleProvider(discharge_window=(3000, 9000))
    s = p.schedules(0.0, 3600, EV, DC_LIMITS, bpt=True)
    assert [e.duration for e in s.discharging] == [3000, 600]
    assert s.discharging[1].power == 10_000  # EV limit below the charger's 20 kW
    assert p.schedules(0.0, 3600, EV, DC_LIMITS, bpt=False).discharging == ()


def test_default_departure_and_no_price() -> None:
    s = DefaultScheduleProvider(energy_fee=None).schedules(0.0, None, None, DC_LIMITS, bpt=False)
    assert s.charging == (PowerEntry(12 * 3600, 50_000),) and s.price is None
    assert flat_schedules(0.0, None, EV, DC_LIMITS).charging == (PowerEntry(43200, 30_000),)
    assert Schedules(start=0.0, charging=()).limits_at(10) == (0.0, 0.0)


def test_schedules_are_fitted_to_the_evs_supporting_points() -> None:
    from evse.protocol.iso20.handlers.schedule_exchange import fit

    entries = tuple(PowerEntry(10, float(p)) for p in (5, 4, 3, 2, 1, 6))
    assert fit(entries, 12) == entries
    fitted = fit(entries, 3)
    assert fitted == (PowerEntry(10, 5.0), PowerEntry(10, 4.0), PowerEntry(40, 1.0))
    assert sum(e.duration for e in fitted) == 60
