"""The quality gates of DESIGN.md section 8 run with the suite: ruff (explicit rule list in
pyproject.toml) over the tree and mypy --strict over evse, exi_codec and hal."""

from __future__ import annotations

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
