"""A DC session that moves no energy is a failure in the simulated EV's report (issue 12)."""

from __future__ import annotations

import asyncio

import pytest

from hal.backends.sim import SimPowerSupply
from simulators.ev.client import run_session
from tests.aio.helpers import HOST, fast_scenario, running


async def test_a_dc_session_that_moves_no_energy_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # a converter that follows the voltage setpoint but never delivers current
    original = SimPowerSupply._apply_setpoint

    def no_current(self: SimPowerSupply, volts: float, amps: float) -> None:
        original(self, volts, 0.0)

    monkeypatch.setattr(SimPowerSupply, "_apply_setpoint", no_current)
    async with running() as rig:
        report = await asyncio.wait_for(run_session(
            fast_scenario("dc", max_loops=10), host=HOST, port=rig.port,
            battery=rig.link(0)), 30)
    assert report.loops == 10  # the EV went through its whole charge loop ...
    assert report.energy_charged_wh == 0.0
    assert not report.success  # ... and still the session failed: nothing moved
    assert "no energy moved" in report.reason


async def test_a_dc_session_that_moves_energy_succeeds() -> None:
    async with running() as rig:
        report = await asyncio.wait_for(run_session(
            fast_scenario("dc", max_loops=10), host=HOST, port=rig.port,
            battery=rig.link(0)), 30)
    assert report.success and report.energy_charged_wh > 0
