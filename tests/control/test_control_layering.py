"""evse/control is sans-IO like the protocol core (DESIGN.md section 2): no asyncio, sockets,
ssl, threads or clock; it reaches the hardware only through hal.interfaces (never a backend
or the simulators) and never the asyncio adapter. evse/cli.py imports nothing heavy at the
top (help must stay fast)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

FORBIDDEN_STDLIB = {"asyncio", "socket", "ssl", "selectors", "threading", "time",
                    "subprocess", "signal", "multiprocessing", "concurrent"}


def _imports(path: Path, top_level_only: bool = False) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: list[str] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def test_control_is_sans_io_and_hardware_agnostic() -> None:
    files = sorted((ROOT / "evse" / "control").rglob("*.py"))
    assert files
    bad = []
    for path in files:
        for module in _imports(path):
            top = module.split(".")[0]
            if top in FORBIDDEN_STDLIB:
                bad.append(f"{path.name}: {module} (no I/O or clock in control)")
            elif top in ("simulators", "exi_codec"):
                bad.append(f"{path.name}: {module}")
            elif top == "hal" and module != "hal.interfaces":
                bad.append(f"{path.name}: {module} (only hal.interfaces)")
            elif module.startswith("evse.") and not module.startswith(
                    ("evse.protocol", "evse.control")):
                bad.append(f"{path.name}: {module}")
    assert not bad, bad


def test_cli_imports_only_light_modules_at_the_top() -> None:
    # importlib.metadata: `evse --help` lists the plugged commands (entry points); typing:
    # the Command protocol. Both standard and light; the subcommands' imports stay inside.
    allowed = {"__future__", "argparse", "logging", "sys", "collections.abc", "pathlib",
               "importlib.metadata", "typing"}
    top = set(_imports(ROOT / "evse" / "cli.py", top_level_only=True))
    assert top <= allowed, top - allowed
