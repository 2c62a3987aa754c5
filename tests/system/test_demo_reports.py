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
