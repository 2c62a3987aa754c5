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
    # the fleet followed both directions (24 simulated minutes = 24 s real)
    t = report["tracking"]
    assert t["intervals_after_settle"] >= 12 and t["mean_error"] < 0.1, t
    assert sum(o["energy_out_kwh"] for o in owners) > 0.5
    assert sum(o["energy_in_kwh"] for o in owners) > 0.5
