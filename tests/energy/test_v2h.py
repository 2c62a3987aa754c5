"""V2H: the EV feeds the house through an outage and stops at the reserve."""

from __future__ import annotations

import math

import pytest

from evse.energy.v2h import V2hController, V2hSettings, v2h_setpoint

CAP = 40.0  # kWh


def house_load(t: float) -> float:
    """A house in a winter evening outage: base load, a kettle, the heat pump cycling."""
    load = 600.0
    if 600 <= t < 780:
        load += 2200.0  # kettle
    if (t // 1800) % 2 == 1:
        load += 3500.0  # heat pump on every other half hour
    if 3 * 3600 <= t < 3 * 3600 + 300:
        load += 9000.0  # oven + sauna: more than the EV may give
    return load


def simulate(settings: V2hSettings, soc: float, hours: float, dt: float,
             pass_dt: bool = True) -> list[tuple[float, float, float, object]]:
    """Step the controller and integrate the EV's SOC; returns (t, load, soc, setpoint)."""
    ctl = V2hController(settings)
    out = []
    t = 0.0
    while t < hours * 3600:
        load = house_load(t)
        sp = ctl.step(load, soc, dt if pass_dt else None)
        out.append((t, load, soc, sp))
        cells_kwh = -sp.power_w * dt / 3.6e6 / settings.discharge_efficiency
        soc = max(0.0, soc - 100 * cells_kwh / CAP)
        t += dt
    return out


def test_outage_follows_the_load_and_stops_exactly_at_the_reserve() -> None:
    s = V2hSettings(reserve_soc=30.0, max_discharge_w=7000.0, capacity_kwh=CAP,
                    discharge_efficiency=0.92)
    run = simulate(s, soc=60.0, hours=10, dt=10.0)
    stopped_at = None
    for t, load, soc, sp in run:
        assert -7000.0 <= sp.power_w <= 0.0
        assert soc >= 30.0 - 1e-9  # never below the reserve, not even by one step
        if stopped_at is None and sp.reserve_reached:
            stopped_at = t
        if stopped_at is not None:  # once stopped it stays stopped (SOC does not rise)
            assert sp.power_w == 0.0 and sp.reserve_reached and sp.unmet_load_w == load
        elif sp.power_w != 0:
            assert -sp.power_w == pytest.approx(min(load, 7000.0)) or soc < 30.5
            assert sp.unmet_load_w == pytest.approx(load + sp.power_w)
    assert stopped_at is not None, "12 kWh above the reserve must run out within 10 h"
    assert run[-1][2] == pytest.approx(30.0, abs=1e-6)
    # The sauna hour asked for more than 7 kW: the rest was unmet, not over-drawn.
    sauna = [r for r in run if 3 * 3600 <= r[0] < 3 * 3600 + 300 and r[0] < stopped_at]
    assert sauna and all(r[3].power_w == -7000.0 and r[3].unmet_load_w > 0 for r in sauna)


def test_without_capacity_the_overshoot_is_at_most_one_step() -> None:
    s = V2hSettings(reserve_soc=30.0, max_discharge_w=7000.0)
    run = simulate(s, soc=35.0, hours=4, dt=1.0, pass_dt=False)
    worst = min(r[2] for r in run)
    assert 30.0 - 100 * 7000 * 1.0 / 3.6e6 / CAP <= worst <= 30.0
    assert run[-1][3].reserve_reached and run[-1][3].power_w == 0.0


def test_reserve_latch_and_hysteresis() -> None:
    s = V2hSettings(reserve_soc=20.0, max_discharge_w=5000.0, resume_hysteresis_soc=2.0)
    ctl = V2hController(s)
    assert ctl.step(1000.0, 20.0).reserve_reached
    assert ctl.step(1000.0, 21.5).power_w == 0.0  # charged a little: not yet
    resumed = ctl.step(1000.0, 22.0)
    assert resumed.power_w == -1000.0 and not resumed.reserve_reached
    ctl.step(1000.0, 19.0)
    ctl.reset()
    assert not ctl.reserve_reached


def test_edge_cases() -> None:
    s = V2hSettings(reserve_soc=20.0, max_discharge_w=5000.0, min_discharge_w=500.0)
    assert v2h_setpoint(300.0, 50.0, s).power_w == 0.0  # below the converter's minimum
    assert not v2h_setpoint(300.0, 50.0, s).reserve_reached
    assert v2h_setpoint(-2000.0, 50.0, s).power_w == 0.0  # solar surplus: nothing to do
    assert v2h_setpoint(800.0, 50.0, s).power_w == -800.0
    with pytest.raises(ValueError, match="soc"):
        v2h_setpoint(100.0, 120.0, s)
    with pytest.raises(ValueError, match="home_load_w"):
        v2h_setpoint(math.nan, 50.0, s)
    with pytest.raises(ValueError, match="min_discharge_w"):
        V2hSettings(reserve_soc=20.0, max_discharge_w=100.0, min_discharge_w=200.0)
    with pytest.raises(ValueError, match="reserve_soc"):
        V2hSettings(reserve_soc=120.0, max_discharge_w=100.0)
