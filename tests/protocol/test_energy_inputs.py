"""The protocol core's seams for the energy manager, back to back with the simulated EV (sans
IO): PauseRequested -> EVSENotification=Pause, ScheduleRequest for `schedules_for`
providers, and the EV's DisplayParameters / energy request kept on the session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evse.protocol import events as sev
from evse.protocol.schedules import PowerEntry, ScheduleRequest, Schedules
from simulators.ev import get_scenario
from tests.simulators.test_ev_vs_secc_sansio import EPOCH, back_to_back, config


@dataclass
class Recorder:
    requests: list[ScheduleRequest] = field(default_factory=list)

    def schedules_for(self, req: ScheduleRequest) -> Schedules:
        self.requests.append(req)
        return Schedules(start=req.now, charging=(PowerEntry(3600, 11_000.0),),
                         discharging=(PowerEntry(3600, 0.0),) if req.bpt else ())

    def schedules(self, *args: Any) -> Schedules:  # pragma: no cover - never used
        raise AssertionError("schedules_for must be preferred")


def test_pause_requested_makes_the_ev_pause_the_session() -> None:
    scenario = get_scenario("dc_bpt_dynamic").replace(max_loops=50)
    run = back_to_back(scenario, at_loop={3: sev.PauseRequested("energy manager")})
    assert run.report.reason == "evse_pause", run.report.reason
    assert any(n.endswith(":Pause") for n in run.report.evse_notifications)
    assert run.ended and run.ended[-1].paused and not run.ended[-1].failed
    # the current went to zero after the notification
    targets = [e for e in run.secc_effects if isinstance(e, sev.SetPowerTarget)]
    assert targets[-1].current == 0.0


def test_schedule_request_carries_what_the_ev_said() -> None:
    for name, dynamic in (("dc_bpt_scheduled", False), ("dc_bpt_dynamic", True)):
        provider = Recorder()
        scenario = get_scenario(name).replace(max_loops=3, discharge_loops=None,
                                              expect_discharge=False, departure_time=5000)
        run = back_to_back(scenario, config(schedule_provider=provider))
        assert run.report.success, run.report.reason
        (req,) = provider.requests
        assert req.dynamic is dynamic and req.bpt
        assert req.departure_time == 5000 and req.evcc_id == scenario.evcc_id
        assert abs(req.timestamp - (req.now + EPOCH)) <= 1.0  # Unix seconds
        assert req.target_soc == 80 and req.ev_limits is not None
        assert req.ev_target_energy_wh == 18_000.0  # 50 % -> 80 % of 60 kWh
        assert req.ev_maximum_energy_wh == 30_000.0
        assert (req.minimum_soc == 20) is dynamic
        assert (req.max_supporting_points == 1024) is not dynamic
