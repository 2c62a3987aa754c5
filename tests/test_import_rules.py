"""The layer import rules of DESIGN.md section 2, checked on the source with ast.

1. exi_codec imports nothing from evse, hal, simulators.
2. evse/protocol imports only exi_codec, evse.protocol and pure standard-library modules: no
   asyncio, socket, ssl, selectors, threading, time (the clock enters as `now`), no hal,
   simulators, evse.aio or evse.control, and no third-party package.
3. hal never imports exi_codec or evse.protocol: it never sees an ISO message.
4. evse/link (pilot, SLAC) imports only evse.link and pure standard-library modules; so does
   evse/ocpp (the OCPP mapping: the WebSocket and the ocpp package live in evse/aio).
5. Production code (hal, evse) never imports simulators or certs: a simulated part is
   chosen by name (`sim`, in hal) and never filled in behind the configuration's back.
   The demo, the PnC demo, the EV client and sim-hw live in simulators and reach the `evse`
   CLI through the `evse.commands` entry points; simulators may import anything.

Every import counts, including those inside functions, under TYPE_CHECKING, relative ones, and
importlib.import_module("...") / __import__("...") with a constant name. Cython sources (.pyx)
and the generated schema modules are checked line by line. Packages or files that do not exist
yet are skipped.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Modules that do I/O, threads or read the clock: not "pure" standard library.
IMPURE_STDLIB = {
    "asyncio", "socket", "ssl", "selectors", "threading", "time", "_thread", "multiprocessing",
    "concurrent", "subprocess", "signal", "socketserver", "asyncore", "asynchat",
}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    else:
        parts.pop()  # the module itself: relative imports resolve against its package
    return ".".join(parts)


def _resolve(package: str, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    base = package.split(".")
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


_PYX_IMPORT = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+c?import\b|c?import\s+([\w., ]+))")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in a source file."""
    package = _package_of(path)
    text = path.read_text(encoding="utf-8")
    # Cython is not Python syntax, and the generated schema modules (megabytes of tables) have
    # line-shaped imports at the top: both are scanned line by line, the rest parsed with ast.
    if path.suffix == ".pyx" or path.parent == ROOT / "exi_codec" / "schemas":
        for lineno, line in enumerate(text.splitlines(), 1):
            m = _PYX_IMPORT.match(line)
            if not m:
                continue
            if m[1] is not None:
                level = len(m[1]) - len(m[1].lstrip("."))
                yield lineno, _resolve(package, m[1].lstrip(".") or None, level)
            else:
                for name in m[2].split(","):
                    yield lineno, name.split(" as ")[0].strip()
        return
    tree = ast.parse(text, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node.module, node.level)
            yield node.lineno, base
            for alias in node.names:  # `from evse import control` imports evse.control
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}" if base else alias.name
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) \
                    and isinstance(arg.value, str):
                yield node.lineno, _resolve(package, arg.value.lstrip(".") or None,
                                            len(arg.value) - len(arg.value.lstrip(".")))


def sources(*parts: str) -> list[Path]:
    top = ROOT.joinpath(*parts)
    if not top.exists():
        return []
    if top.is_file():
        return [top]
    return sorted(p for p in top.rglob("*") if p.suffix in (".py", ".pyx") and p.is_file())


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(files: list[Path], allowed: object) -> list[str]:
    out = []
    for path in files:
        for lineno, module in imports(path):
            why = allowed(module)  # type: ignore[operator]
            if why:
                out.append(f"{path.relative_to(ROOT)}:{lineno}: {module} ({why})")
    return out


def _skip_if_empty(files: list[Path], what: str) -> None:
    if not files:
        pytest.skip(f"{what} does not exist yet")


# -- the rules ------------------------------------------------------------------------------------
def rule_exi_codec(module: str) -> str | None:
    for layer in ("evse", "hal", "simulators"):
        if _within(module, layer):
            return f"exi_codec must not depend on {layer}"
    return None


def rule_protocol(module: str) -> str | None:
    if _within(module, "exi_codec") or _within(module, "evse.protocol"):
        return None
    top = module.split(".")[0]
    if top in IMPURE_STDLIB:
        return "evse/protocol is sans-IO: no I/O, threads or clock"
    if top == "evse":
        if module == "evse":  # `from evse import protocol` names the package itself
            return None
        return "evse/protocol may only use evse.protocol"
    if top in ("hal", "simulators"):
        return f"evse/protocol must not depend on {top}"
    if top not in STDLIB:
        return "evse/protocol imports only exi_codec and the standard library"
    return None


def rule_link(module: str) -> str | None:
    """evse/link (pilot lifecycle, SLAC) is sans-IO like evse/protocol, and sees no hal."""
    if _within(module, "evse.link"):
        return None
    top = module.split(".")[0]
    if top in IMPURE_STDLIB:
        return "evse/link is sans-IO: no I/O, threads or clock"
    if top == "evse":
        return None if module == "evse" else "evse/link may only use evse.link"
    if top in ("hal", "simulators"):
        return f"evse/link must not depend on {top}"
    if top not in STDLIB:
        return "evse/link imports only the standard library"
    return None


def rule_ocpp(module: str) -> str | None:
    """evse/ocpp (the OCPP mapping and its durable queue) is sans-IO: no network, no clock."""
    if _within(module, "evse.ocpp"):
        return None
    top = module.split(".")[0]
    if top in IMPURE_STDLIB:
        return "evse/ocpp is sans-IO: no I/O, threads or clock"
    if top == "evse":
        # besides itself, only the pure certificate-chain validation (one implementation of
        # path building and checks for PnC chains and renewed station certificates)
        return None if module == "evse" or _within(module, "evse.security.chains") else \
            "evse/ocpp may only use evse.ocpp and evse.security.chains"
    if top in ("hal", "simulators"):
        return f"evse/ocpp must not depend on {top}"
    if top not in STDLIB and top != "cryptography":  # certificate hashes for Authorize
        return "evse/ocpp imports only the standard library and cryptography (the ocpp " \
               "package is evse/aio's)"
    return None


def rule_hal(module: str) -> str | None:
    if _within(module, "exi_codec") or _within(module, "evse.protocol"):
        return "hal never sees an ISO message"
    return None


def rule_production(module: str) -> str | None:
    for layer in ("simulators", "certs"):
        if _within(module, layer):
            return f"production code must not depend on {layer}"
    return None


# No evse module may import simulators or certs (issue 12 moved the demo wiring out): kept as
# a named, empty exception list so that a new exception is a visible diff.
EVSE_SIMULATOR_USERS: set[str] = set()


def test_hal_never_imports_simulators_or_certs() -> None:
    files = sources("hal")
    _skip_if_empty(files, "hal")
    assert not _violations(files, rule_production)


def test_evse_never_imports_simulators_or_certs() -> None:
    files = [p for p in sources("evse")
             if str(p.relative_to(ROOT)) not in EVSE_SIMULATOR_USERS]
    _skip_if_empty(files, "evse")
    assert not _violations(files, rule_production)


def test_exi_codec_never_imports_simulators_or_certs() -> None:
    files = sources("exi_codec")
    _skip_if_empty(files, "exi_codec")
    assert not _violations(files, rule_production)


def test_simulator_commands_are_entry_points_not_imports() -> None:
    """The simulators' CLI commands reach `evse` only through the entry point group."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    commands = project["project"]["entry-points"]["evse.commands"]
    assert {"demo", "ev", "sim-hw"} <= set(commands)
    assert all(target.startswith("simulators.") for target in commands.values())


def test_exi_codec_imports_no_application_layer() -> None:
    files = sources("exi_codec")
    _skip_if_empty(files, "exi_codec")
    assert not _violations(files, rule_exi_codec)


def test_protocol_is_sans_io() -> None:
    files = sources("evse", "protocol")
    _skip_if_empty(files, "evse/protocol")
    assert not _violations(files, rule_protocol)


def test_link_is_sans_io() -> None:
    files = sources("evse", "link")
    _skip_if_empty(files, "evse/link")
    assert not _violations(files, rule_link)


def test_ocpp_is_sans_io() -> None:
    files = sources("evse", "ocpp")
    _skip_if_empty(files, "evse/ocpp")
    assert not _violations(files, rule_ocpp)


def test_hal_does_not_see_iso_messages() -> None:
    files = sources("hal")
    _skip_if_empty(files, "hal")
    assert not _violations(files, rule_hal)


# -- the checker itself ---------------------------------------------------------------------------
def test_checker_finds_every_kind_of_import(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.test_import_rules as me

    monkeypatch.setattr(me, "ROOT", tmp_path)
    pkg = tmp_path / "evse" / "protocol" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    bad = pkg / "bad.py"
    bad.write_text(
        "from __future__ import annotations\n"
        "import struct, asyncio\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from hal.interfaces import Meter\n"
        "from ... import control\n"
        "from ..session import Session\n"
        "def f():\n"
        "    import time\n"
        "    import importlib\n"
        "    return importlib.import_module('simulators.battery')\n"
        "import exi_codec.schemas.iso20\n"
        "import cryptography\n"
        "from evse import aio\n"
    )
    found = me._violations([bad], me.rule_protocol)
    names = sorted(v.split(": ")[1].split(" ")[0] for v in found)
    assert names == ["asyncio", "cryptography", "evse.aio", "evse.control", "hal.interfaces",
                     "hal.interfaces.Meter", "simulators.battery", "time"], found
    pyx = tmp_path / "exi_codec" / "_x.pyx"
    pyx.parent.mkdir()
    pyx.write_text("from libc.stdint cimport uint64_t\nfrom .errors import E\nimport evse.cli\n")
    assert [m for _l, m in me.imports(pyx)] == ["libc.stdint", "exi_codec.errors", "evse.cli"]
    assert len(me._violations([pyx], me.rule_exi_codec)) == 1
    hal = tmp_path / "hal" / "backends"
    hal.mkdir(parents=True)
    lazy = hal / "lazy.py"
    lazy.write_text("def f():\n    from simulators.battery import EvBattery\n"
                    "    import certs.make_pki\n")
    assert len(me._violations([lazy], me.rule_production)) == 3
