"""benchmarks/exi_bench.py runs and prints its table (a smoke test: no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, VECTORS_FILE

SCRIPT = ROOT / "benchmarks" / "exi_bench.py"
pytestmark = pytest.mark.skipif(not VECTORS_FILE.exists(), reason="../shared/vectors not available")

HEADER_CELLS = ["message", "bytes", "decode us (cython)", "encode us (cython)",
                "decode us (pure)", "encode us (pure)", "json.loads us", "json.dumps us",
                "decode/json.loads (cython)", "encode/json.dumps (cython)"]


def _bench(**env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "EXI_CODEC_PURE"}
    full_env.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(SCRIPT), "--quick", "--vectors", str(VECTORS_FILE)],
                          capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=300)


def _check_output(out: str) -> list[str]:
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("message "))
    positions = [header.index(cell) for cell in HEADER_CELLS]
    assert positions == sorted(positions)
    rows = lines[lines.index(header) + 2:lines.index(header) + 7]
    for name in ("DC_ChargeLoopReq", "DC_ChargeLoopRes", "SessionSetupReq",
                 "supportedAppProtocolReq", "CurrentDemandReq"):
        assert any(r.startswith(name) for r in rows), (name, out)
    assert "import exi_codec + all 8 schema modules" in out
    assert "tracemalloc" in out and "RSS" in out
    return rows


def test_bench_quick_prints_table() -> None:
    p = _bench()
    assert p.returncode == 0, p.stderr
    _check_output(p.stdout)


def test_bench_quick_pure_only_prints_na() -> None:
    p = _bench(EXI_CODEC_PURE="1")
    assert p.returncode == 0, p.stderr
    rows = _check_output(p.stdout)
    assert all(r.split()[-1] == "n/a" for r in rows)
    assert "EXI_CODEC_PURE is set" in p.stdout


def test_bench_missing_vectors_exits_2(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--vectors",
                        str(tmp_path / "none.json")], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT, timeout=60)
    assert p.returncode == 2 and "not found" in p.stderr
