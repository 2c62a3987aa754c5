"""Command line: decode EXI to the project's JSON form and encode JSON back to EXI.

    python -m exi_codec decode --schema iso20_dc 8034041ea6...      # JSON (pretty; --compact)
    python -m exi_codec encode --schema iso20_dc @msg.json          # lower-case hex
    python -m exi_codec decode --v2gtp 01fe8004000000...            # schema from the payload type
    python -m exi_codec decode --fragment --grammar xmldsig --schema iso20 HEX

HEX and JSON may be `-` (read stdin); JSON may also be `@file`. Every error is one line on stderr
(with the element path, and the bit offset for decode errors) and exit code 2.

This module parses the V2GTP header itself: exi_codec imports nothing from evse.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import exi_codec

from .errors import ExiError

V2GTP_HEADER_LEN = 8
V2GTP_VERSION = 0x01
# Payload type by schema (ISO 15118-20 Table 16; -2 and DIN share 0x8001 with SAP).
PAYLOAD_TYPE = {
    "sap": 0x8001, "iso2": 0x8001, "din": 0x8001,
    "iso20": 0x8002, "iso20_ac": 0x8003, "iso20_dc": 0x8004,
    "iso20_acdp": 0x8005, "iso20_wpt": 0x8006,
}
_SCHEMAS_OF_PAYLOAD: dict[int, tuple[str, ...]] = {}
for _schema, _pt in PAYLOAD_TYPE.items():
    _SCHEMAS_OF_PAYLOAD[_pt] = (*_SCHEMAS_OF_PAYLOAD.get(_pt, ()), _schema)


class CliError(Exception):
    """An input problem reported as one line (bad hex, bad JSON, bad header, unknown schema)."""


def v2gtp_header(payload_type: int, length: int) -> bytes:
    return bytes((V2GTP_VERSION, V2GTP_VERSION ^ 0xFF)) + payload_type.to_bytes(2, "big") + \
        length.to_bytes(4, "big")


def parse_v2gtp(data: bytes, schema: str | None) -> tuple[str, bytes]:
    """Check the 8-byte V2GTP header -> (schema, EXI payload)."""
    if len(data) < V2GTP_HEADER_LEN:
        raise CliError(f"V2GTP header: need {V2GTP_HEADER_LEN} bytes, got {len(data)}")
    version, inverse = data[0], data[1]
    if version != V2GTP_VERSION or inverse != version ^ 0xFF:
        raise CliError(f"V2GTP header: protocol version {version:#04x} / inverse {inverse:#04x}, "
                       f"expected 0x01 / 0xfe")
    payload_type = int.from_bytes(data[2:4], "big")
    length = int.from_bytes(data[4:8], "big")
    payload = data[V2GTP_HEADER_LEN:]
    if length != len(payload):
        raise CliError(f"V2GTP header: length field {length} but {len(payload)} payload bytes "
                       f"follow the header")
    candidates = _SCHEMAS_OF_PAYLOAD.get(payload_type)
    if candidates is None:
        raise CliError(f"V2GTP header: payload type {payload_type:#06x} does not carry an EXI "
                       f"message of a known schema")
    if schema is None:
        if len(candidates) > 1:
            raise CliError(f"V2GTP header: payload type {payload_type:#06x} is ambiguous "
                           f"({', '.join(candidates)}): give --schema")
        schema = candidates[0]
    elif schema not in candidates:
        raise CliError(f"V2GTP header: payload type {payload_type:#06x} is "
                       f"{' / '.join(candidates)}, not --schema {schema}")
    return schema, payload


def _read_arg(arg: str, stdin: Any) -> str:
    return stdin.read() if arg == "-" else arg


def _parse_hex(text: str) -> bytes:
    compact = "".join(text.split())
    if compact[:2] in ("0x", "0X"):
        compact = compact[2:]
    try:
        return bytes.fromhex(compact)
    except ValueError as e:
        raise CliError(f"input: bad hex: {e}") from None


def _parse_json(arg: str, stdin: Any) -> Any:
    if arg.startswith("@"):
        try:
            with open(arg[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise CliError(f"input: cannot read {arg[1:]!r}: {e.strerror or e}") from None
    else:
        text = _read_arg(arg, stdin)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"input: bad JSON: {e}") from None


def _check_schema(schema: str | None) -> None:
    if schema is not None and schema not in exi_codec.SCHEMAS:
        raise CliError(f"unknown schema {schema!r}; one of {', '.join(exi_codec.SCHEMAS)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m exi_codec",
        description="Decode EXI (ISO 15118-20/-2, DIN 70121, supportedAppProtocol) to JSON and "
                    "encode JSON to EXI. Errors: one line on stderr, exit code 2.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{decode,encode}")
    schemas = ", ".join(exi_codec.SCHEMAS)
    for name, helptext, inp, inp_help in (
        ("decode", "EXI hex -> JSON", "hex",
         "EXI as hex (whitespace ignored), or - to read it from stdin"),
        ("encode", "JSON -> EXI hex (lower case)", "json",
         "the message as JSON, - to read stdin, or @FILE"),
    ):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument(inp, metavar=inp.upper(), help=inp_help)
        p.add_argument("--schema", metavar="SCHEMA",
                       help=f"one of {schemas} (decode --v2gtp: taken from the payload type "
                            f"unless it is 0x8001)")
        p.add_argument("--v2gtp", action="store_true",
                       help="the EXI is preceded by the 8-byte V2GTP header (01 FE, payload "
                            "type, length)" if name == "decode" else
                            "prepend the V2GTP header (payload type from the schema)")
        p.add_argument("--fragment", action="store_true",
                       help="an EXI fragment (XML signature content) instead of a document")
        p.add_argument("--grammar", choices=exi_codec.FRAGMENT_GRAMMARS,
                       help="fragment grammar (with --fragment; default schema): xmldsig for "
                            "-20 SignedInfo")
        p.add_argument("--strict", action=argparse.BooleanOptionalAction, default=None,
                       help="enforce length facets (default: decode lenient, encode strict)")
        if name == "decode":
            p.add_argument("--compact", action="store_true", help="JSON on one line")
        p.set_defaults(subparser=p)
    return parser


def _run(args: argparse.Namespace, stdin: Any, stdout: Any) -> None:
    sub: argparse.ArgumentParser = args.subparser
    if args.grammar is not None and not args.fragment:
        sub.error("--grammar needs --fragment")
    if args.fragment and args.v2gtp:
        sub.error("--fragment and --v2gtp exclude each other (a fragment is not a V2GTP payload)")
    _check_schema(args.schema)
    if args.schema is None and not (args.command == "decode" and args.v2gtp):
        sub.error("--schema is required" + (" (unless --v2gtp)" if args.command == "decode"
                                            else ""))
    strict: dict[str, bool] = {} if args.strict is None else {"strict": args.strict}
    grammar = args.grammar or "schema"

    if args.command == "decode":
        data = _parse_hex(_read_arg(args.hex, stdin))
        schema = args.schema
        if args.v2gtp:
            schema, data = parse_v2gtp(data, schema)
        if args.fragment:
            name, value = exi_codec.decode_fragment(data, schema, grammar, **strict)
            obj = exi_codec.fragment_to_json(name, value)
        else:
            obj = exi_codec.to_json(exi_codec.decode(data, schema, **strict))
        if args.compact:
            stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        else:
            stdout.write(json.dumps(obj, indent=2) + "\n")
        return

    obj = _parse_json(args.json, stdin)
    if args.fragment:
        mod, table = exi_codec._fragment_table(args.schema, grammar)
        name, value = exi_codec.fragment_from_json(obj, mod, table)
        out = exi_codec.encode_fragment(name, value, args.schema, grammar, **strict)
    else:
        out = exi_codec.encode(exi_codec.from_json(obj, args.schema), **strict)
        if args.v2gtp:
            out = v2gtp_header(PAYLOAD_TYPE[args.schema], len(out)) + out
    stdout.write(out.hex() + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 error or usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _run(args, sys.stdin, sys.stdout)
    except SystemExit as e:  # argparse: usage errors (2) and --help (0)
        return e.code if isinstance(e.code, int) else 2
    except ExiError as e:
        kind = "decode" if isinstance(e, exi_codec.ExiDecodeError) else "encode"
        _fail(f"{kind} error: {e}")
        return 2
    except CliError as e:
        _fail(str(e))
        return 2
    return 0


def _fail(message: str) -> None:
    sys.stderr.write("error: " + " ".join(message.split()) + "\n")
