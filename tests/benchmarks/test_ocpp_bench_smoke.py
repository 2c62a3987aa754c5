"""benchmarks/ocpp_bench.py --quick runs and prints its table (no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "ocpp_bench.py"


def test_ocpp_bench_quick_prints_its_table() -> None:
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True,
                       text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       timeout=300)
    assert p.returncode == 0, p.stderr
    for row in ("DC charge loop turnaround without OCPP", "DC charge loop turnaround with OCPP",
                "store 500 TransactionEvents", "replay 500 queued events"):
        assert row in p.stdout, p.stdout
    assert "all once, in order" in p.stdout, p.stdout
