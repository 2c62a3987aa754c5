"""DESIGN.md import rule 2: evse/protocol is sans-IO (stdlib + exi_codec, no I/O, no clock)."""

import ast
import sys
from pathlib import Path

PROTOCOL = Path(__file__).resolve().parents[2] / "evse" / "protocol"
FORBIDDEN = {"asyncio", "socket", "ssl", "selectors", "threading", "time", "subprocess"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_protocol_modules_import_only_pure_stdlib_and_exi_codec() -> None:
    files = sorted(PROTOCOL.glob("*.py"))
    assert files
    for path in files:
        roots = imported_roots(path)
        assert not roots & FORBIDDEN, f"{path.name} imports {roots & FORBIDDEN}"
        foreign = {r for r in roots if r not in sys.stdlib_module_names}
        assert foreign <= {"evse", "exi_codec", "__future__"}, f"{path.name}: {foreign}"
