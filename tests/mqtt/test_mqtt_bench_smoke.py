"""benchmarks/mqtt_bench.py runs and prints its table (a smoke test: no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.mqtt.conftest import _find_mosquitto


def test_mqtt_bench_quick() -> None:
    binary = _find_mosquitto()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto not found: install it (apt-get install -y mosquitto)")
        pytest.skip("mosquitto not found")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mqtt_bench.py"), "--quick",
                          "--mosquitto", binary], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    for row in ("command round trip, sequential", "commands pipelined",
                "state change -> subscriber", "post_event + notify_state, broker down",
                "broker restart -> bridge online again",
                "DC_BPT: publish -> SetPowerTarget with the DC_ChargeLoopRes",
                "AC_BPT: publish -> EVSETargetActivePower at the EV",
                "publish -> charger has the setpoint"):
        assert row in out.stdout, out.stdout
