"""benchmarks/load_bench.py --quick runs and prints its table (no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "load_bench.py"


def test_load_bench_quick_prints_its_table() -> None:
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True,
                       text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       timeout=180)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("phase"))
    rows = {line.split()[0]: line.split() for line in lines[header + 1:header + 4]}
    assert set(rows) == {"before", "during", "after"}, p.stdout
    assert all(int(r[3]) > 0 for r in rows.values()), p.stdout  # the car charged throughout
    assert "charger closes by reason" in p.stdout and "evicted" in p.stdout, p.stdout
