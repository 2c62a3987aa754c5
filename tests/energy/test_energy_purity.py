"""evse/energy decides, it does no I/O: no asyncio, sockets, threads or clock (DESIGN 2)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ENERGY = Path(__file__).resolve().parents[2] / "evse" / "energy"
MODULES = ["prices.py", "optimizer.py", "exchange.py", "v2h.py", "provider.py",
           "accounting.py"]
IMPURE = {"asyncio", "socket", "ssl", "selectors", "threading", "time", "subprocess",
          "multiprocessing", "concurrent", "signal", "random", "os"}


@pytest.mark.parametrize("name", MODULES)
def test_energy_modules_are_pure(name: str) -> None:
    tree = ast.parse((ENERGY / name).read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert not roots & IMPURE, roots & IMPURE
    foreign = {r for r in roots if r not in sys.stdlib_module_names}
    assert foreign <= {"evse", "__future__"}, foreign
