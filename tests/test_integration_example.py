"""docs/integration.md's example runs and charges the simulated EV (issue 12 item 8)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "integration_example.py"
GUIDE = ROOT / "docs" / "integration.md"


def test_the_guide_shows_the_example_verbatim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks


def test_the_example_charges_the_simulated_ev() -> None:
    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    ended = re.search(r"session ended: .*, ([0-9.]+) Wh to the EV", out.stdout)
    assert ended is not None, out.stdout
    assert float(ended[1]) > 0
    assert "authorization granted" in out.stdout
    assert "scenario dc: OK" in out.stdout
