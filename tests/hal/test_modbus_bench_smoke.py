"""benchmarks/modbus_bench.py --quick runs and prints its tables (a smoke test: no timing
assertions beyond "the silent device was noticed")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "modbus_bench.py"


def test_modbus_bench_quick_prints_its_tables() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert any("median ms" in line for line in lines)
    rows = [line.split() for line in lines if line.startswith(("TCP loopback", "RTU pty"))]
    assert len(rows) == 4
    for row in rows[2:]:  # fault and refusal times: positive numbers
        assert float(row[-1]) > 0 and float(row[-2]) > 0
