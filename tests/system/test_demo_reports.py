"""`evse demo --reports DIR` writes the session report (JSON + SVG with the money summary)
and prints where."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_demo_prints_where_the_report_is(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "evse", "demo", "--speedup", "120", "--loops",
                        "30", "--no-progress", "--reports", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"session report: (\S+\.json) \(\+ (\S+\.svg)\)", p.stdout)
    assert m, p.stdout
    path = Path(m[1])
    assert path.parent == tmp_path and (tmp_path / m[2]).exists()
    data = json.loads(path.read_text())
    money = data["money"]
    assert money["energy_bought_kwh"] > 0 and money["energy_sold_kwh"] > 0
    assert money["net"] == money["cost_bought"] - money["revenue_sold"] + money["degradation"]
    assert re.search(r"money \(EUR\): bought [0-9.]+, sold [0-9.]+, degradation [0-9.]+, "
                     r"net -?[0-9.]+", p.stdout), p.stdout


def test_plain_demo_never_sells_below_the_wear_it_caused(tmp_path: Path) -> None:
    """No tariff configured: the demo prices its discharge at the bundled day's evening peak
    (never at zero), and what it earns covers the wear the discharge added (the session's
    wear beyond that of charging the same energy at full power on arrival)."""
    p = subprocess.run([sys.executable, "-m", "evse", "demo", "--speedup", "120", "--loops",
                        "30", "--no-progress", "--reports", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "bundled day's evening peak" in p.stdout
    data = json.loads(next(tmp_path.glob("DE-*.json")).read_text())
    value = data["value"]
    assert value["energy_sold_kwh"] > 0 and value["revenue_sold"] > 0
    caused = value["wear_cost"] - value["baseline_wear_cost"]
    assert value["revenue_sold"] >= caused, value
    assert data["money"]["revenue_sold"] == value["revenue_sold"]
    assert re.search(r"value \(EUR\): wear [0-9.]+ .* of revenue; net benefit [-+][0-9.]+",
                     p.stdout), p.stdout
