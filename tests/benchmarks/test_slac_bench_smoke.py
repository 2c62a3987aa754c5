"""benchmarks/slac_bench.py runs and prints its table (a smoke test: no timing assertions)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_slac_bench_quick_prints_its_table() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "slac_bench.py"), "--quick"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[1].split() == ["measure", "median", "min", "max", "unit"]
    inproc = lines[2].split()
    assert inproc[:4] == ["B", "->", "match", "(in-process)"] and float(inproc[4]) > 0
    assert lines[4].startswith("core CPU per match") and lines[4].endswith("us")
    first = lines[5].split()  # plug-in to the first V2G exchange through the wired charger
    assert first[:6] == ["B", "->", "first", "V2G", "message", "(in-process)"]
    assert float(first[6]) > 0
