"""The value against the baseline, against a day computed by hand; the owner statement."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from evse._report import SessionRecord, write_report
from evse._statement import load_reports, render_statement_svg, statement, update_statements
from evse.energy.value import SessionValue, baseline_charge, session_value
from evse.energy.wear import WearModel

H = 3600.0
# hour 0: buy 0.30 sell 0.20; hour 1: buy 0.10 sell 0.05; hour 2: buy 0.20 sell 0.10
PRICES = [(0.30, 0.20), (0.10, 0.05), (0.20, 0.10)]


def lookup(t: float) -> tuple[float, float]:
    return PRICES[min(2, max(0, int(t // H)))]


def _day(replacement: float) -> tuple[SessionValue, WearModel]:
    wear = WearModel.for_chemistry("lfp", capacity_kwh=10.0,
                                   replacement_cost_per_kwh=replacement)
    # 2 kW out for an hour (50 % -> 30 %), 4 kW in for an hour (-> 70 %), then idle
    v = session_value(currency="EUR", prices=lookup,
                      samples=[(0.0, -2000.0), (H, 4000.0), (2 * H, 0.0)],
                      soc_log=[(0.0, 50.0), (H, 30.0), (2 * H, 70.0), (3 * H, 70.0)],
                      start=0.0, end=3 * H, energy_in_kwh=4.0, energy_out_kwh=2.0,
                      wear=wear, max_charge_w=4000.0, crate=0.3)
    return v, wear


def test_money_against_a_hand_computed_day() -> None:
    v, _ = _day(replacement=0.0)
    assert v.revenue_sold == pytest.approx(2 * 0.20)  # 2 kWh sold in hour 0
    assert v.cost_bought == pytest.approx(4 * 0.10)  # 4 kWh bought in hour 1
    assert v.wear_cost == 0 and v.baseline_wear_cost == 0
    # baseline: the same +20 % (2 kWh) at 4 kW from arrival: half an hour at 0.30
    assert v.baseline_energy_kwh == pytest.approx(2.0)
    assert v.baseline_cost == pytest.approx(0.60)
    assert v.net_cost == pytest.approx(0.0)
    assert v.net_benefit == pytest.approx(0.60)


def test_wear_on_both_sides_uses_the_same_model() -> None:
    v, wear = _day(replacement=100.0)
    k = 10.0 * 100.0  # money per capacity fraction
    cal = sum(wear.calendar_fade_per_day(s) / 24 for s in (0.4, 0.5, 0.7)) * k
    cycles = 0.5 * wear.cycle_cost(0.2, 0.4, 0.3) + 0.5 * wear.cycle_cost(0.4, 0.5, 0.3)
    assert v.wear_cost == pytest.approx(cycles + cal)
    base_cal = (wear.calendar_fade_per_day(0.6) / 48 + wear.calendar_fade_per_day(0.7) * 2.5
                / 24) * k
    assert v.baseline_wear_cost == pytest.approx(
        0.5 * wear.cycle_cost(0.2, 0.6, 0.4) + base_cal, rel=1e-6)
    assert v.net_benefit == pytest.approx(0.60 + v.baseline_wear_cost - v.wear_cost)
    assert v.wear_cost > v.baseline_wear_cost  # the V2G cycle wears the battery more


def test_baseline_charges_on_arrival_at_full_power() -> None:
    energy, cost, times, socs, profile = baseline_charge(
        lookup, start=0.0, end=3 * H, soc_start=20.0, soc_end=80.0, capacity_kwh=10.0,
        max_charge_w=4000.0, charge_efficiency=0.9)
    assert energy == pytest.approx(6.0 / 0.9)
    # 6.67 kWh at 4 kW = 1.667 h: the first hour at 0.30, the rest at 0.10
    assert cost == pytest.approx(4 * 0.30 + (energy - 4) * 0.10)
    assert socs[-1] == pytest.approx(80.0) and times[-1] == 3 * H
    assert profile == [(0.0, 4000.0), (pytest.approx(energy / 4 * H), 0.0)]


def test_owner_statement_sums_days_and_months() -> None:
    v, _ = _day(replacement=100.0)
    day = 86400.0
    t0 = 1718316000.0  # 2024-06-13T22:00Z = 2024-06-14 00:00 CEST
    records = [SessionRecord(f"s{i}", "st", "1", t0 + off, t0 + off + 3 * H, (), 4.0, 2.0,
                             value=v) for i, off in enumerate((0.0, 5 * H, day))]
    cest = timezone(timedelta(hours=2))  # the days are the owner's local days
    by_day = statement(records, period="day", tz=cest)
    assert [r["sessions"] for r in by_day["rows"]] == [2, 1]
    assert by_day["rows"][0]["net_benefit"] == pytest.approx(2 * v.net_benefit)
    assert by_day["total"]["net_benefit"] == pytest.approx(3 * v.net_benefit)
    assert by_day["total"]["baseline_cost"] == pytest.approx(3 * 0.60)
    assert [r["period"] for r in by_day["rows"]] == ["2024-06-14", "2024-06-15"]
    by_month = statement(records, period="month", tz=cest)
    assert len(by_month["rows"]) == 1 and by_month["rows"][0]["period"] == "2024-06"
    svg = render_statement_svg(by_day)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and "Net benefit" in svg
    assert len([e for e in root.iter() if e.tag.endswith("rect")]) == 1 + 2  # background, bars
    with pytest.raises(ValueError):
        statement(records, period="week")


def test_statements_follow_the_reports_in_a_directory(tmp_path: Path) -> None:
    v, _ = _day(replacement=100.0)
    t0 = 1718316000.0
    for i in range(3):
        write_report(SessionRecord(f"s{i}", "st", "1", t0 + i * 86400.0, t0 + i * 86400.0 + H,
                                   (), 4.0, 2.0, value=v), tmp_path, svg=False)
    (tmp_path / "junk.json").write_text("{not json")
    assert len(load_reports(tmp_path)) == 3
    paths = update_statements(tmp_path, tz=timezone(timedelta(hours=2)))
    import json

    day = json.loads(paths[0].json.read_text())
    assert len(day["rows"]) == 3 and day["total"]["net_benefit"] == pytest.approx(
        3 * v.net_benefit)
    assert paths[1].svg.exists()
