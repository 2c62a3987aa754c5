"""DESIGN.md import rule 3: hal speaks volts and amps; it never reaches into evse or exi_codec."""

import ast
from pathlib import Path

HAL = Path(__file__).resolve().parents[2] / "hal"


def test_hal_never_imports_the_protocol_stack() -> None:
    files = sorted(HAL.rglob("*.py"))
    assert files
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"evse", "exi_codec"}, f"{path}: {name}"
