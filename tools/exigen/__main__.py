"""`python -m tools.exigen [--schemas DIR] [--out DIR]`: regenerate exi_codec/schemas/*.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .emit import SharedTypes, write_module, write_shared
from .xsd import SchemaSet

# Generated module -> (root XSDs relative to the schemas folder, description).
SCHEMA_SETS: dict[str, tuple[list[str], str]] = {
    "sap": (["iso15118-20/V2G_CI_AppProtocol.xsd"], "supportedAppProtocol (V2G_CI_AppProtocol)"),
    "iso20": (["iso15118-20/V2G_CI_CommonMessages.xsd"], "ISO 15118-20 CommonMessages"),
    "iso20_dc": (["iso15118-20/V2G_CI_DC.xsd"], "ISO 15118-20 DC"),
    "iso20_ac": (["iso15118-20/V2G_CI_AC.xsd"], "ISO 15118-20 AC"),
    "iso20_wpt": (["iso15118-20/V2G_CI_WPT.xsd"], "ISO 15118-20 WPT"),
    "iso20_acdp": (["iso15118-20/V2G_CI_ACDP.xsd"], "ISO 15118-20 ACDP"),
    "iso2": (["iso15118-2/V2G_CI_MsgDef.xsd"], "ISO 15118-2"),
    "din": (["din70121/V2G_CI_MsgDef.xsd"], "DIN SPEC 70121"),
}
# Shared module -> (the schema sets sharing their CommonTypes and xmldsig types, description).
# -2 and DIN are separate standards and keep their own classes.
SHARED: dict[str, tuple[list[str], str]] = {
    "iso20_common": (["iso20", "iso20_dc", "iso20_ac", "iso20_wpt", "iso20_acdp"],
                     "ISO 15118-20 CommonTypes and xmldsig types"),
}
DEFAULT_SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "schemas"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "exi_codec" / "schemas"


def generate(schemas: Path, out: Path, only: list[str] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    sets = {name: SchemaSet([schemas / r for r in roots])
            for name, (roots, _) in SCHEMA_SETS.items()}
    shared_of: dict[str, SharedTypes] = {}
    written = []
    for shared_name, (members, description) in SHARED.items():
        if only and not set(only) & {shared_name, *members}:
            continue
        shared = SharedTypes(shared_name, description, {m: sets[m] for m in members})
        written.append(write_shared(shared, out))
        shared_of.update(dict.fromkeys(members, shared))
    for name, (_, description) in SCHEMA_SETS.items():
        if only and name not in only:
            continue
        written.append(write_module(sets[name], name, description, out, shared_of.get(name)))
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.exigen", description=__doc__)
    ap.add_argument("--schemas", type=Path, default=DEFAULT_SCHEMAS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("only", nargs="*", help="schema sets to write (default: all; a -20 set "
                    "also writes the shared module)")
    args = ap.parse_args(argv)
    for p in generate(args.schemas, args.out, args.only or None):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
