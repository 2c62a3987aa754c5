"""`evse demo` end to end in a subprocess: SECC (sim HAL) + simulated EV over loopback, one
shared battery; the default DC_BPT scenario charges and discharges, exit code 0."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _demo(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evse", "demo", *args], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          timeout=timeout)


def _kwh(out: str, label: str) -> float:
    m = re.search(rf"^\s*{label}\s+([0-9.]+) kWh", out, re.MULTILINE)
    assert m, out
    return float(m[1])


def test_default_demo_charges_and_discharges(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    p = _demo("--speedup", "120", "--loops", "50", "--json", str(summary))
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "Summary" in out and "result" in out and "OK" in out
    assert _kwh(out, "energy charged") > 0
    assert _kwh(out, "energy discharged") > 0
    assert "SECC turnaround p50/p99" in out
    # live progress lines, with negative current while the EV discharges
    loop_lines = [line for line in out.splitlines() if "DC_ChargeLoop" in line]
    currents = [float(line.split()[-2]) for line in loop_lines]
    assert min(currents) < 0 < max(currents), loop_lines
    data = json.loads(summary.read_text())
    assert data["success"] and data["energy_discharged_wh"] > 0
    assert data["sessions"][0]["energy_out_wh"] > 0


@pytest.mark.parametrize("args", [["--tls", "--scenario", "dc", "--no-progress"],
                                  ["--pnc", "--algorithm", "ed448", "--no-progress"]])
def test_demo_over_tls(args: list[str]) -> None:
    p = _demo(*args, "--speedup", "120")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "TLS 1.3 over loopback" in p.stdout
    assert _kwh(p.stdout, "energy charged") > 0
    if "--pnc" in args:
        assert "Plug & Charge, eMAID DEEVSC00000001X" in p.stdout
