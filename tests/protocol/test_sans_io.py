"""DESIGN.md import rule 2 for every module of evse/protocol (sub-packages included)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PROTOCOL = Path(__file__).resolve().parents[2] / "evse" / "protocol"
FORBIDDEN = {
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "threading",
    "time",
    "subprocess",
    "hal",
    "simulators",
    "logging",
}


def test_protocol_package_is_sans_io() -> None:
    files = sorted(PROTOCOL.rglob("*.py"))
    assert any(p.parent.name == "handlers" for p in files)
    assert {"iso20", "iso2", "din"} <= {p.parent.name for p in files}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                assert root not in FORBIDDEN, f"{path.name} imports {name}"
                assert root in sys.stdlib_module_names or root in {
                    "evse",
                    "exi_codec",
                    "__future__",
                }, name
                assert not name.startswith(("evse.energy", "evse.aio", "evse.control")), name


def test_modules_stay_small() -> None:
    for path in PROTOCOL.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 330, path.name
