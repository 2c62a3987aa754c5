"""benchmarks/session_bench.py --quick runs and prints its table (no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "session_bench.py"


def test_session_bench_quick_prints_its_table() -> None:
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True,
                       text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("metric"))
    body = "\n".join(lines[header:])
    for row in ("SECC turnaround, DC charge loop, p50", "SECC turnaround, DC charge loop, p99",
                "SECC turnaround, DIN CurrentDemand, p99", "DIN SIL session",
                "20 EVs at once: EV-seen response time p99",
                "20 EVs at once: EV-seen response time max", "SECC process RSS after",
                "evse --help wall time"):
        assert row in body, p.stdout
