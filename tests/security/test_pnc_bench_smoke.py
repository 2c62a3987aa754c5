"""benchmarks/pnc_bench.py runs and prints its table (smoke test: no timing assertions)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_pnc_bench_quick_prints_table() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "pnc_bench.py"), "--quick"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("algorithm "))
    rows = [line.split() for line in lines[header + 2:]]
    assert len(rows) == 16  # 8 rows per algorithm: ..., the TLS handshake, secc_context at start
    assert {r[0] for r in rows} == {"secp521r1", "ed448"}
    assert all(float(r[-1]) >= float(r[-2]) > 0 for r in rows)  # p99 >= median > 0
