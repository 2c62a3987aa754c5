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
    files = sorted(PROTOCOL.rglob("*.py"))  # the common core and every standard's package
    assert {p.parent.name for p in files} >= {"protocol", "iso20", "iso2", "din", "handlers"}
    for path in files:
        roots = imported_roots(path)
        assert not roots & FORBIDDEN, f"{path.name} imports {roots & FORBIDDEN}"
        foreign = {r for r in roots if r not in sys.stdlib_module_names}
        assert foreign <= {"evse", "exi_codec", "__future__"}, f"{path.name}: {foreign}"


STANDARD_PACKAGES = ("iso20", "iso2", "din")
# Common modules that still reach into -20 (its Timeouts in SeccConfig, its State in Session;
# standards.py registers the -20 machine). Nothing else of the common core may.
COMMON_USING_ISO20 = {"config.py", "session.py", "standards.py"}


def imported_modules(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_standards_stay_apart_and_the_core_stays_common() -> None:
    for path in sorted(PROTOCOL.rglob("*.py")):
        rel = path.relative_to(PROTOCOL)
        own = rel.parts[0] if len(rel.parts) > 1 else None
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[:2] != ["evse", "protocol"] or len(parts) < 3:
                continue
            target = parts[2]
            if target not in STANDARD_PACKAGES or target == own:
                continue
            assert own is None, f"{rel} (package {own}) imports another standard: {module}"
            if rel.name == "standards.py" and parts[3:] == ["machine"]:
                continue  # the registry builds every standard's machine
            assert target == "iso20" and rel.name in COMMON_USING_ISO20, f"{rel} imports {module}"


def test_every_standard_package_is_real_and_describes_its_shape() -> None:
    import importlib

    for name in STANDARD_PACKAGES:
        package = importlib.import_module(f"evse.protocol.{name}")
        doc = package.__doc__ or ""
        for part in ("states.py", "handlers/", "timeouts.py", "machine.py"):
            assert part in doc, f"evse.protocol.{name} does not describe {part}"
