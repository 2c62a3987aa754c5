"""GuardedScheduleProvider: a failing energy policy gives the default schedule, never an
exception into ScheduleExchange (pure, no SECC)."""

from __future__ import annotations

import dataclasses

import pytest

from evse.energy.guard import GuardedScheduleProvider, ScheduleCheckError, check_schedules
from evse.energy.prices import PriceCurve
from evse.energy.provider import EnergyPolicy, PlanningScheduleProvider
from evse.protocol.limits import EvLimits, EvseLimits
from evse.protocol.schedules import (
    PowerEntry,
    PriceRule,
    PriceSchedule,
    ScheduleRequest,
    Schedules,
    flat_schedules,
)
from tests.energy.conftest import DAY, HOUR, day_ahead

EVSE = EvseLimits(max_charge_power=11000.0, max_charge_current=32.0, max_voltage=500.0,
                  max_discharge_power=7000.0, max_discharge_current=20.0)
EV = EvLimits(max_charge_power=9000.0, max_discharge_power=9000.0, target_soc=80)


def _req(bpt: bool = True) -> ScheduleRequest:
    return ScheduleRequest(now=50.0, timestamp=DAY + HOUR, departure_time=int(10 * HOUR),
                           ev_limits=EV, evse_limits=EVSE, bpt=bpt)


class _Fixed:
    def __init__(self, result: Schedules | None = None, exc: Exception | None = None) -> None:
        self.result, self.exc = result, exc

    def schedules_for(self, req: ScheduleRequest) -> Schedules | None:
        if self.exc is not None:
            raise self.exc
        return self.result


def _guard(inner: object) -> tuple[GuardedScheduleProvider, list[str]]:
    errors: list[str] = []
    return GuardedScheduleProvider(inner, on_error=errors.append), errors


def test_a_good_plan_passes_through_untouched() -> None:
    planner = PlanningScheduleProvider(day_ahead(), EnergyPolicy())
    guard, errors = _guard(planner)
    s = guard.schedules_for(_req())
    assert s is not None and s.discharging and errors == [] and guard.failures == 0
    assert s == planner.to_schedules(planner.plan_for(_req()), now=50.0, bpt=True)
    # None (not ready: EVSEProcessing Ongoing) is not a failure
    waiting, errors = _guard(_Fixed(None))
    assert waiting.schedules_for(_req()) is None and errors == [] and waiting.failures == 0


def test_a_raising_policy_gives_the_default_schedule_and_reports_why() -> None:
    broken = PlanningScheduleProvider(day_ahead(), EnergyPolicy(charge_efficiency=0.0))
    guard, errors = _guard(broken)
    s = guard.schedules_for(_req())
    assert s == flat_schedules(50.0, int(10 * HOUR), EV, EVSE, True)
    assert len(errors) == 1 and "charge_efficiency" in errors[0] and guard.failures == 1
    assert "default schedule" in errors[0] and guard.last_error == errors[0]
    # the plain ScheduleProvider call is guarded as well
    assert guard.schedules(50.0, 3600, None, EVSE, False) == flat_schedules(50.0, 3600, None,
                                                                            EVSE, False)
    assert guard.failures == 2


GOOD = Schedules(start=0.0, charging=(PowerEntry(3600, 11000.0),),
                 discharging=(PowerEntry(3600, 0.0),),
                 price=PriceSchedule((PriceRule(0, 0.3),)))


@pytest.mark.parametrize(("bad", "expected"), [
    (dataclasses.replace(GOOD, price=PriceSchedule((PriceRule(0, 1e150),))),
     "price.rules[0].energy_fee"),
    (dataclasses.replace(GOOD, discharge_price=PriceSchedule((PriceRule(0, float("nan")),))),
     "discharge_price.rules[0].energy_fee"),
    (dataclasses.replace(GOOD, charging=(PowerEntry(3600, 11001.0),)), "charging[0].power"),
    (dataclasses.replace(GOOD, discharging=(PowerEntry(3600, 7000.5),)), "discharging[0].power"),
    (dataclasses.replace(GOOD, charging=(PowerEntry(-5, 100.0),)), "charging[0].duration"),
    (dataclasses.replace(GOOD, charging=(PowerEntry(2**31, 1.0), PowerEntry(2**31, 1.0))),
     "charging: spans"),
    (dataclasses.replace(GOOD, start=float("inf")), "start"),
])
def test_schedules_the_ev_must_not_get_are_replaced(bad: Schedules, expected: str) -> None:
    check_schedules(GOOD, EVSE, True)
    with pytest.raises(ScheduleCheckError, match=expected.replace("[", r"\[")):
        check_schedules(bad, EVSE, True)
    guard, errors = _guard(_Fixed(bad))
    assert guard.schedules_for(_req()) == flat_schedules(50.0, int(10 * HOUR), EV, EVSE, True)
    assert len(errors) == 1 and expected in errors[0]


def test_discharging_without_bpt_is_replaced() -> None:
    with pytest.raises(ScheduleCheckError, match="without BPT"):
        check_schedules(dataclasses.replace(GOOD, discharging=(PowerEntry(60, 100.0),)), EVSE,
                        False)


def test_a_failing_reporter_does_not_fail_the_session() -> None:
    def explode(message: str) -> None:
        raise RuntimeError("reporter down")

    guard = GuardedScheduleProvider(_Fixed(exc=ZeroDivisionError()), on_error=explode)
    assert guard.schedules_for(_req(bpt=False)) == flat_schedules(50.0, int(10 * HOUR), EV,
                                                                   EVSE, False)
    assert guard.last_error is not None and "ZeroDivisionError" in guard.last_error


def test_absurd_prices_would_not_reach_the_ev() -> None:
    # what the MQTT API now refuses, were it to reach the planner: the guard catches it
    planner = PlanningScheduleProvider(PriceCurve.flat(1e150, 1e150), EnergyPolicy())
    guard, errors = _guard(planner)
    s = guard.schedules_for(_req())
    assert s is not None and s.price is not None and s.price.rules[0].energy_fee < 1e6
    assert errors and "energy_fee" in errors[0]
