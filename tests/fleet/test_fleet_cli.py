"""`evse fleet-sim N` end to end: its own mosquitto, stations in worker processes, the
example aggregator, the report with tracking, owners, CPU and memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.fleet.broker import find_mosquitto
from tests.conftest import ROOT


def test_fleet_sim_command(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto not found")
        pytest.skip("mosquitto not found")
    out = tmp_path / "fleet.json"
    manifest = tmp_path / "cars.json"
    p = subprocess.run(
        [sys.executable, "-m", "evse", "fleet-sim", "4", "--processes", "2", "--speedup", "60",
         "--profile=-20:12@0.30,20:12@0.05", "--settle", "6", "--json", str(out),
         "--manifest", str(manifest)],
        capture_output=True, text=True, cwd=ROOT, timeout=180,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Fleet tracking" in p.stdout and "Owners" in p.stdout and "of a core" in p.stdout
    report = json.loads(out.read_text())
    fleet = report["fleet"]
    assert fleet["processes"] == 2 and fleet["stations"] == 4
    assert fleet["sessions"] >= 4 and fleet["failed_sessions"] == 0, fleet
    assert fleet["cpu_s"] > 0 and fleet["rss_mib_per_station"] > 0
    assert fleet["broker_cpu_s"] is not None
    cars = json.loads(manifest.read_text())["cars"]
    owners = report["owners"]
    assert owners and all(o["evcc_id"] in cars for o in owners)
    # both directions (24 simulated minutes = 24 s real). Four cars, some leaving within
    # minutes, cannot deliver 20 kW while keeping their departure promises (the report says
    # so: feasible_kw); absorbing 20 kW they can, and the fleet follows within 5 %
    samples = report["samples"]
    assert any(s["feasible_kw"] > s["request_kw"] for s in samples if s["request_kw"] < 0)
    absorb = [s for s in samples if s["minute"] >= 13.5]
    assert len(absorb) >= 6
    assert sum(s["error"] < 0.05 for s in absorb) >= 0.8 * len(absorb), absorb
    assert sum(o["energy_out_kwh"] for o in owners) > 0.5
    assert sum(o["energy_in_kwh"] for o in owners) > 0.5
