"""A Plan as ISO 15118-20 ScheduleExchange content."""

from __future__ import annotations

import pytest

from evse.energy.exchange import (
    PRICE_ALGORITHM_POWER,
    dynamic_content,
    price_level_schedule,
    scheduled_content,
    to_protocol_schedules,
)
from evse.energy.optimizer import Plan, PowerLimits, plan, setpoint_at
from tests.energy.conftest import DAY, HOUR, day_ahead


def evening(**kw: object) -> Plan:
    args: dict[str, object] = dict(now=DAY + 17 * HOUR + 7 * 60 + 0.4,
                                   departure=DAY + 31 * HOUR, soc=40.0, target_soc=80.0,
                                   reserve_soc=20.0, capacity_kwh=60.0,
                                   ev_limits=PowerLimits(11000.0, 11000.0),
                                   degradation_cost=0.05)
    args.update(kw)
    return plan(day_ahead(), **args)  # type: ignore[arg-type]


def expand(entries: tuple, attr: str) -> list[float]:  # type: ignore[type-arg]
    """Per-second values of a schedule (for comparing with the plan)."""
    out: list[float] = []
    for e in entries:
        out.extend([getattr(e, attr)] * e.duration_s)
    return out


def test_scheduled_content_follows_the_plan() -> None:
    p = evening()
    content = scheduled_content(p)
    total = round(p.departure) - round(p.start)
    ch, dis = content.charging, content.discharging
    assert dis is not None and content.schedule_tuple_id == 1
    assert ch.power_schedule.time_anchor == round(p.start)
    assert sum(e.duration_s for e in ch.power_schedule.entries) == total
    assert sum(e.duration_s for e in dis.power_schedule.entries) == total
    assert all(e.power_w >= 0 for e in ch.power_schedule.entries)
    assert all(e.power_w >= 0 for e in dis.power_schedule.entries)  # magnitudes
    assert all(e.duration_s > 0 for e in ch.power_schedule.entries)
    # Equal neighbours are merged: few entries for a plan of 57 slots.
    assert len(ch.power_schedule.entries) < len(p.slots)
    # Same energy as the plan (whole seconds: the first slot lost 0.4 s).
    energy = sum(e.power_w * e.duration_s for e in ch.power_schedule.entries)
    energy -= sum(e.power_w * e.duration_s for e in dis.power_schedule.entries)
    assert energy / 3.6e6 == pytest.approx(sum(s.energy_kwh for s in p.slots), abs=1e-3)
    # Price schedules: buy prices with the charging, sell prices with the discharging.
    buy, sell = ch.price_schedule, dis.price_schedule
    assert buy is not None and sell is not None
    assert buy.currency == "EUR" and buy.price_algorithm == PRICE_ALGORITHM_POWER
    assert (buy.price_schedule_id, sell.price_schedule_id) == (1, 2)
    assert [e.energy_fee for e in buy.entries] == [0.45, 0.25, 0.10, 0.25]
    assert [e.energy_fee for e in sell.entries] == [0.40, 0.05, 0.02, 0.05]
    assert sum(e.duration_s for e in buy.entries) == total
    assert buy.entries[0].duration_s == round(DAY + 21 * HOUR) - round(p.start)


def test_no_discharging_schedule_without_discharge() -> None:
    p = evening(allow_discharge=False)
    assert scheduled_content(p).discharging is None
    assert scheduled_content(p, discharging=True).discharging is not None
    assert scheduled_content(p, with_prices=False).charging.price_schedule is None


def test_max_entries_merges_and_keeps_the_energy() -> None:
    p = plan(day_ahead(), now=DAY, departure=DAY + 24 * HOUR, soc=10, target_soc=100,
             capacity_kwh=1000, ev_limits=PowerLimits(11000.0), slot_s=900)
    full = scheduled_content(p)
    short = scheduled_content(p, max_entries=12)
    for sched in (full.charging.power_schedule, short.charging.power_schedule):
        assert sum(e.duration_s for e in sched.entries) == 24 * 3600
    assert len(short.charging.power_schedule.entries) <= 12
    e_full = sum(e.power_w * e.duration_s for e in full.charging.power_schedule.entries)
    e_short = sum(e.power_w * e.duration_s for e in short.charging.power_schedule.entries)
    assert e_short == pytest.approx(e_full)
    with pytest.raises(ValueError, match="max_entries"):
        scheduled_content(p, max_entries=11)


def test_dynamic_content() -> None:
    p = evening()
    d = dynamic_content(p, now=p.start)
    assert d.departure_time_s == round(p.departure - p.start)
    assert (d.minimum_soc, d.target_soc) == (20, 80)
    assert d.price_schedule is not None and d.price_schedule.entries[0].energy_fee == 0.45
    later = dynamic_content(p, now=p.start + 3600, minimum_soc=0, with_prices=False)
    assert later.departure_time_s == round(p.departure - p.start) - 3600
    assert later.minimum_soc is None and later.price_schedule is None


def test_price_levels() -> None:
    p = evening()
    levels = price_level_schedule(p, levels=3)
    assert levels.number_of_price_levels == 3
    assert [e.price_level for e in levels.entries] == [2, 1, 0, 1]
    assert sum(e.duration_s for e in levels.entries) == round(p.departure) - round(p.start)


def test_protocol_schedules_follow_the_plan() -> None:
    p = evening()
    sched = to_protocol_schedules(p, bpt=True)
    assert sched.start == p.start
    assert sum(e.duration for e in sched.charging) == round(p.departure) - round(p.start)
    assert all(e.power >= 0 for e in sched.charging + sched.discharging)
    for s in p.slots:  # the protocol core's own reading agrees with the plan
        mid = (s.start + s.end) / 2
        assert sched.setpoint_at(mid) == pytest.approx(setpoint_at(p, mid))
    assert sched.price is not None
    assert [r.energy_fee for r in sched.price.rules] == [0.45, 0.25, 0.10, 0.25]
    assert sched.price.rules[0].start == 0
    assert sched.price.rules[1].start == round(DAY + 21 * HOUR) - round(p.start)
    with pytest.raises(ValueError, match="not bidirectional"):
        to_protocol_schedules(p, bpt=False)
    smart = to_protocol_schedules(evening(allow_discharge=False), bpt=False)
    assert smart.discharging == ()
