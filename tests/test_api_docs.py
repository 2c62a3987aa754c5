"""The API reference is generated from the docstrings (`make docs`, pdoc): it builds, and
the public event and hook types appear with their documentation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_the_api_reference_builds_from_the_docstrings(tmp_path: Path) -> None:
    pytest.importorskip("pdoc", reason="pdoc is in the test extra; `make setup` installs it")
    out = subprocess.run([sys.executable, "-m", "pdoc", "-o", str(tmp_path), "evse.events",
                          "evse.hooks"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Error" not in out.stderr, out.stderr
    events = (tmp_path / "evse" / "events.html").read_text(encoding="utf-8")
    hooks = (tmp_path / "evse" / "hooks.html").read_text(encoding="utf-8")
    for name in ("SessionStarted", "Measurement", "EventsDropped", "ConsumerOverflow",
                 "EventBus", "Subscription"):
        assert f'id="{name}"' in events, name
    assert "never blocks" in events  # the docstrings, not a hand-written page
    for name in ("Authorizer", "SchedulePolicy", "CertificateSource", "MeterSource", "Hooks"):
        assert f'id="{name}"' in hooks, name
