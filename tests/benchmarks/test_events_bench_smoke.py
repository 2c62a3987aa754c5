"""benchmarks/events_bench.py --quick runs and prints its tables (no timing assertions)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "events_bench.py"


def test_events_bench_quick_prints_its_tables() -> None:
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True,
                       text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for row in ("no consumer", "fast consumer", "never reads", "10 never read"):
        assert re.search(rf"^{row}\s+\d", out, re.M), out
    never = re.search(r"^never reads .*dropped (\d+), queued (\d+)", out, re.M)
    assert never is not None, out
    # bounded: at most 16 measurements plus the session's few lifecycle events
    assert int(never[2]) <= 32
