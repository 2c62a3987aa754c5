"""-2 under an outside bound (the CSMS's composite limit, `PowerBoundUpdated`), sans-IO on a
fake clock: the simulated -2 EV back to back with SeccConnection. The bound caps the charge
loop at once; one that asks for renegotiation makes the SECC send EVSENotification=
ReNegotiation in the loop, the EV renegotiates (PowerDelivery(Renegotiate), a new
ChargeParameterDiscovery) and its new PMaxSchedule is within the bound."""

from __future__ import annotations

import dataclasses

from evse.protocol import events as sev
from simulators.ev.iso2_evcc import ISO2_SCENARIOS
from tests.protocol.iso2.harness import Run, back_to_back

LOOP_REQUEST = 20  # well inside the charge loop of a 40-loop session


def _targets_after(run: Run, index: int) -> list[float]:
    return [e.power for e in run.of(sev.SetPowerTarget)][index:]


def test_dc_bound_with_renegotiation() -> None:
    scenario = dataclasses.replace(ISO2_SCENARIOS["iso2_dc"], loops=40)
    run = back_to_back(scenario, events={
        LOOP_REQUEST: sev.PowerBoundUpdated(max_charge_power=7000.0, renegotiate=True)})
    assert run.done.success, run.done
    ev = run.ev
    assert ev.notifications.count("ReNegotiation") == 1  # once: the new CPD knew the bound
    assert len(ev.pmax_w) == 2
    assert max(ev.pmax_w[0]) > 7000.0 and max(ev.pmax_w[1]) <= 7000.0
    names = [n for n, _ in run.done.log]
    i = names.index("ChargeParameterDiscoveryReq", names.index("CurrentDemandReq"))
    assert names[i - 1] == "PowerDeliveryReq" and names[i + 1] == "PowerDeliveryReq"
    before = [limit for limit, _ in ev.loop_log[:ev.pmax_at_loop[1]]]
    assert before[0] > 7000.0 and before[-1] <= 7000.0  # capped before the renegotiation
    assert all(limit <= 7000.0 for limit, _ in ev.loop_log[ev.pmax_at_loop[1]:])
    assert all(p <= 7000.0 + 1e-6 for p in _targets_after(run, -10))
    assert len(run.of(sev.CloseContactors)) == 1  # renegotiation keeps the contactors closed


def test_dc_bound_without_renegotiation_caps_the_loop_only() -> None:
    scenario = dataclasses.replace(ISO2_SCENARIOS["iso2_dc"], loops=40)
    run = back_to_back(scenario, events={
        LOOP_REQUEST: sev.PowerBoundUpdated(max_charge_power=5000.0)})
    assert run.done.success, run.done
    assert run.ev.notifications == [] and len(run.ev.pmax_w) == 1
    assert run.ev.loop_log[-1][0] == 5000.0
    assert max(_targets_after(run, -10)) <= 5000.0 + 1e-6


def test_ac_bound_with_renegotiation() -> None:
    scenario = dataclasses.replace(ISO2_SCENARIOS["iso2_ac"], loops=40)
    run = back_to_back(scenario, events={
        LOOP_REQUEST: sev.PowerBoundUpdated(max_charge_power=4000.0, renegotiate=True)})
    assert run.done.success, run.done
    assert run.ev.notifications == ["ReNegotiation"]
    assert len(run.ev.pmax_w) == 2 and max(run.ev.pmax_w[1]) <= 4000.0
    assert max(_targets_after(run, -10)) <= 4000.0 + 1e-6


def test_a_bound_before_the_session_needs_no_renegotiation() -> None:
    """The bound of a session's first CPD is in its schedule already."""
    scenario = dataclasses.replace(ISO2_SCENARIOS["iso2_dc"], loops=10)
    run = back_to_back(scenario, events={
        2: sev.PowerBoundUpdated(max_charge_power=6000.0, renegotiate=True)})
    assert run.done.success, run.done
    assert run.ev.notifications == [] and max(run.ev.pmax_w[0]) <= 6000.0
