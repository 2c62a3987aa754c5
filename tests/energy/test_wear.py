"""Wear tables against BLAST-Lite, the shape of the wear model, rainflow against `rainflow`."""

from __future__ import annotations

import random

import pytest

from evse.energy.wear import CHEMISTRIES, WearModel, rainflow_cycles


@pytest.mark.parametrize("chemistry", CHEMISTRIES)
def test_tables_match_the_library(chemistry: str) -> None:
    """Regenerate a sample of the table with BLAST-Lite: on-grid values equal the library's
    (to the 4 digits stored), and an off-grid point interpolates within 25 % (linear
    interpolation of the models' square-root C-rate and DoD laws; the grid is coarse on purpose)."""
    pytest.importorskip("blast")
    from tools.weartables import derive

    table = WearModel.for_chemistry(chemistry, capacity_kwh=1.0).tables
    cls_name, _ = derive.MODELS[chemistry]
    assert cls_name == table.MODEL
    from importlib.metadata import version

    assert version("blast-lite") == table.BLAST_LITE_VERSION
    model = derive.aged(derive.model_class(cls_name))
    rng = random.Random(14)
    for _ in range(6):
        t = rng.randrange(len(derive.TEMPERATURES_C))
        c = rng.randrange(len(derive.CRATES))
        m = rng.randrange(len(derive.MEANS))
        d = rng.randrange(len(derive.DODS))
        lib = derive.cycle_fade(model, derive.TEMPERATURES_C[t], derive.CRATES[c],
                                derive.MEANS[m], derive.DODS[d])
        assert table.CYCLE[t][c][m][d] == pytest.approx(lib, rel=1e-3, abs=1e-12)
    s = 2
    lib = derive.calendar_fade(model, derive.TEMPERATURES_C[2], derive.CAL_SOCS[s])
    assert table.CALENDAR[2][s] == pytest.approx(lib, rel=1e-3)
    wear = WearModel.for_chemistry(chemistry, capacity_kwh=1.0, temperature_c=20.0)
    lib = derive.cycle_fade(model, 20.0, 0.18, 0.55, 0.3)
    assert wear.cycle_fade(0.3, 0.55, 0.18) == pytest.approx(lib, rel=0.25)


@pytest.mark.parametrize("chemistry", CHEMISTRIES)
def test_deeper_cycles_cost_more(chemistry: str) -> None:
    wear = WearModel.for_chemistry(chemistry, capacity_kwh=60.0)
    depths = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7]
    per_cycle = [wear.cycle_cost(d, 0.5, 0.2) for d in depths]
    per_kwh = [wear.cost_per_kwh(d, 0.5, 0.2) for d in depths]
    assert all(a < b for a, b in zip(per_cycle, per_cycle[1:], strict=False))
    assert all(a < b for a, b in zip(per_kwh, per_kwh[1:], strict=False))
    # the same energy in one deep cycle costs more than in shallow ones
    assert wear.cycle_cost(0.6, 0.5, 0.2) > 6 * wear.cycle_cost(0.1, 0.5, 0.2)


@pytest.mark.parametrize("chemistry", CHEMISTRIES)
def test_higher_c_rate_costs_more(chemistry: str) -> None:
    wear = WearModel.for_chemistry(chemistry, capacity_kwh=60.0)
    costs = [wear.cost_per_kwh(0.3, 0.5, c) for c in (0.1, 0.25, 0.5, 1.0)]
    assert all(a < b for a, b in zip(costs, costs[1:], strict=False))


def test_trajectory_counts_cycles_and_calendar() -> None:
    wear = WearModel.for_chemistry("lfp", capacity_kwh=50.0, replacement_cost_per_kwh=100.0)
    h = 3600.0
    flat = wear.trajectory_cost([0.0, 24 * h], [50.0, 50.0])
    assert flat.cycle_cost == 0 and flat.calendar_cost == pytest.approx(
        wear.calendar_fade_per_day(0.5) * 50 * 100)
    cyc = wear.trajectory_cost([0.0, 2 * h, 4 * h, 24 * h], [50.0, 30.0, 50.0, 50.0])
    assert [(round(c.depth, 9), c.count) for c in cyc.cycles] == [(0.2, 0.5), (0.2, 0.5)]
    assert cyc.crate == pytest.approx(0.1)
    assert cyc.cycle_cost == pytest.approx(wear.cycle_cost(0.2, 0.4, 0.1))


def test_rainflow_matches_the_rainflow_package() -> None:
    rainflow = pytest.importorskip("rainflow")
    rng = random.Random(7)
    checked = 0
    for _ in range(400):
        xs = [round(rng.random(), 1) for _ in range(rng.randint(0, 30))]
        ref = sorted((round(r, 9), round(m, 9), n, i, j)
                     for r, m, n, i, j in rainflow.extract_cycles(xs) if r > 0)
        if not ref:
            continue
        ours = sorted((round(c.depth, 9), round(c.mean, 9), c.count, c.start, c.end)
                      for c in rainflow_cycles(xs) if c.depth > 0)
        assert ours == ref, xs
        checked += 1
    assert checked > 300


def test_committed_tables_are_current() -> None:
    pytest.importorskip("blast")
    from tools.weartables.__main__ import main

    assert main(["--check"]) == 0
