"""benchmarks/hal_bench.py --quick runs and prints its tables (a smoke test: no timing
assertions)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "hal_bench.py"


def test_hal_bench_quick_prints_its_tables() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    out = p.stdout
    latency_header = next(line for line in out.splitlines() if line.startswith("latency "))
    for cell in ("n", "p50 ms", "p99 ms", "max ms"):
        assert cell in latency_header
    assert any(line.startswith("fault (supervisor") for line in out.splitlines())
    for row in (
        "serial command -> ACK",
        "CAN setpoint -> measurement",
        "e-stop pressed on the MCU",
        "MCU goes silent",
        "system: SECC + EV running",
        "module outputs stale",
    ):
        assert row in out, out
