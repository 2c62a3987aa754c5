"""`evse demo --day`: the bundled Belgian day, compressed, through the SECC and the simulated
EV (DC_BPT Dynamic); exit 0 with a positive net benefit against charging at full power on
arrival, the target met, the outage handed to V2H. The pure day (run_day) is checked too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_demo_day_pays_against_the_baseline(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "evse", "demo", "--day", "--day-seconds", "15",
                        "--reports", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    m = re.search(r"net benefit\s+([-+][0-9.]+) EUR against the baseline", out)
    assert m and float(m[1]) > 0, out
    assert "target 80 %: met" in out
    # it discharges into the evening peak, with its margin, and charges in the night
    assert re.search(r"^\s+(19|20|21):\d\d .* -\d+\.\d kW .*discharge: .*margin \+", out,
                     re.MULTILINE), out
    assert re.search(r"^\s+0[3-6]:\d\d .* \+\d+\.\d kW .*charge:", out, re.MULTILINE), out
    assert "grid DOWN: V2H supplies the house" in out and "grid back" in out
    assert re.search(r"EV: OK \(\w+\), \d+ charge loops", out), out  # the ISO 15118 session
    report = json.loads(next(tmp_path.glob("DEMO-DAY_*.json")).read_text())
    value = report["value"]
    assert value["net_benefit"] == float(m[1]) or abs(value["net_benefit"] - float(m[1])) < 0.01
    assert value["energy_sold_kwh"] > 0 and value["wear_cost"] > 0
    assert value["baseline_cost"] > value["cost_bought"] - value["revenue_sold"]
    statement = json.loads((tmp_path / "statement_day.json").read_text())
    assert statement["total"]["net_benefit"] == value["net_benefit"]
    assert (tmp_path / "statement_day.svg").exists()


def test_day_on_the_battery_model_alone(tmp_path: Path) -> None:
    import asyncio
    import io

    from simulators.demo.day import DayOptions, run_day

    out = io.StringIO()
    code = asyncio.run(run_day(DayOptions(seconds=0.5, quiet=True, reports=tmp_path), out))
    assert code == 0, out.getvalue()
    value = json.loads(next(tmp_path.glob("DEMO-DAY_*.json")).read_text())["value"]
    assert value["net_benefit"] > 0 and value["energy_sold_kwh"] > 0
