"""The quality gates of DESIGN.md section 8 run with the suite: ruff (explicit rule list in
pyproject.toml) over the tree and mypy --strict over evse, exi_codec and hal."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    if shutil.which(name) is None and not (Path(sys.executable).parent / name).exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' brings it)")
    return [sys.executable, "-m", name]


def test_ruff_is_clean() -> None:
    run = subprocess.run([*_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_strict_is_clean() -> None:
    run = subprocess.run(_tool("mypy"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr


def test_ruff_enforces_a_complexity_limit() -> None:
    """Issue 12: ruff checks McCabe complexity (C90) at 12 at most; per-file exemptions are a
    ratchet of files still to split and never grow past the ones listed when it started."""
    import tomllib

    lint = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"][
        "lint"]
    assert "C90" in lint["select"]
    assert lint["mccabe"]["max-complexity"] <= 12
    exempt = {f for f, rules in lint.get("per-file-ignores", {}).items() if "C901" in rules}
    # The engine twin and tests/**: no module of the shipped stack is exempt any more.
    assert len(exempt) <= 2, sorted(exempt)
    # No way around the ratchet: no per-function exemption in the shipped code either.
    noqa = [f"{path.relative_to(ROOT)}:{n}"
            for top in ("evse", "exi_codec", "hal", "simulators")
            for path in sorted((ROOT / top).rglob("*.py"))
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(r"noqa:[^#]*\bC901\b", line)]
    assert not noqa, noqa
