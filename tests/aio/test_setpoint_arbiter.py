"""Setpoint arbitration (evse.aio.setpoint_arbiter): caps and the grid outage."""

from __future__ import annotations

from evse.aio.setpoint_arbiter import Caps, capped_limits
from evse.protocol.limits import EvseLimits

RATED = EvseLimits(max_charge_power=50_000.0, max_charge_current=125.0, max_voltage=500.0,
                   min_voltage=150.0, max_discharge_power=20_000.0,
                   max_discharge_current=50.0, min_charge_power=1_000.0)


def test_caps_lower_but_never_raise_the_rated_limits() -> None:
    lim = capped_limits(RATED, Caps(max_charge_power_w=7_000.0, max_discharge_power_w=1e9),
                        outage=False)
    assert lim.max_charge_power == 7_000.0
    assert lim.max_discharge_power == 20_000.0  # a cap above the rating changes nothing
    assert lim.max_charge_current == 125.0
    assert capped_limits(RATED, Caps(), outage=False) == RATED


def test_no_charging_during_an_outage_and_minimums_follow_the_maximums() -> None:
    lim = capped_limits(RATED, Caps(), outage=True)
    assert lim.max_charge_power == lim.max_charge_current == 0.0
    assert lim.min_charge_power == 0.0
    assert lim.max_discharge_power == 20_000.0  # the EV may still supply the house
    low = capped_limits(RATED, Caps(max_charge_power_w=500.0), outage=False)
    assert low.min_charge_power == 500.0 <= low.max_charge_power
