"""`python -m exi_codec decode|encode`: in-process (main(argv) + capsys) and in a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

from exi_codec.cli import main
from tests.conftest import ROOT, load_vectors

VECTORS = load_vectors()
pytestmark = pytest.mark.skipif(not VECTORS, reason="../shared/vectors not available")


def _vector(standard: str, message: str) -> dict[str, Any]:
    return next(v for v in VECTORS if v["standard"] == standard and v["message"] == message)


def _header(payload_type: int, length: int) -> str:
    return (bytes((0x01, 0xFE)) + payload_type.to_bytes(2, "big") + length.to_bytes(4, "big")).hex()


def _v2gtp(v: dict[str, Any]) -> str:
    return _header(int(v["payload_type"], 16), len(v["hex"]) // 2) + v["hex"]


# (standard, message, extra CLI arguments)
CASES = [
    ("iso20_dc", "DC_ChargeLoopReq", []),
    ("iso20", "SessionSetupReq", []),
    ("sap", "supportedAppProtocolReq", []),
    ("iso2", "CurrentDemandReq", []),
    ("din", "SessionSetupRes", []),
    ("iso20", "SignedInfo", ["--fragment", "--grammar", "xmldsig"]),
    ("iso20", "PnC_AReqAuthorizationMode", ["--fragment"]),
]
CASE_IDS = [f"{s}-{m}" for s, m, _ in CASES]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- in-process, both engines


@pytest.mark.parametrize(("standard", "message", "extra"), CASES, ids=CASE_IDS)
def test_decode_equals_vector_json(codec: ModuleType, capsys: pytest.CaptureFixture[str],
                                   standard: str, message: str, extra: list[str]) -> None:
    v = _vector(standard, message)
    rc, out, err = _run(capsys, ["decode", "--schema", standard, *extra, v["hex"]])
    assert (rc, err) == (0, "")
    assert json.loads(out) == v["decoded"]
    assert out.count("\n") > 3  # pretty by default
    rc, out, _ = _run(capsys, ["decode", "--schema", standard, *extra, "--compact", v["hex"]])
    assert rc == 0
    assert out.count("\n") == 1 and out.endswith("\n")
    assert json.loads(out) == v["decoded"]


@pytest.mark.parametrize(("standard", "message", "extra"), CASES, ids=CASE_IDS)
def test_encode_equals_vector_hex(codec: ModuleType, capsys: pytest.CaptureFixture[str],
                                  standard: str, message: str, extra: list[str]) -> None:
    v = _vector(standard, message)
    rc, out, err = _run(capsys, ["encode", "--schema", standard, *extra, json.dumps(v["decoded"])])
    assert (rc, err) == (0, "")
    assert out == v["hex"] + "\n"
    assert out == out.lower()


def test_decode_v2gtp_picks_schema_from_payload_type(
        codec: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    for standard, message in (("iso20_dc", "DC_ChargeLoopReq"), ("iso20", "SessionSetupReq"),
                              ("iso20_ac", "AC_ChargeLoopReq")):
        v = _vector(standard, message)
        rc, out, err = _run(capsys, ["decode", "--v2gtp", _v2gtp(v)])
        assert (rc, err) == (0, ""), err
        assert json.loads(out) == v["decoded"]


@pytest.mark.parametrize("standard", ["sap", "iso2", "din"])
def test_decode_v2gtp_0x8001_needs_schema(codec: ModuleType, capsys: pytest.CaptureFixture[str],
                                          standard: str) -> None:
    v = next(x for x in VECTORS if x["standard"] == standard and not x.get("exi_fragment"))
    assert v["payload_type"] == "0x8001"
    rc, out, err = _run(capsys, ["decode", "--v2gtp", _v2gtp(v)])
    assert rc == 2 and out == ""
    assert "ambiguous" in _one_error_line(err) and "--schema" in err
    rc, out, err = _run(capsys, ["decode", "--v2gtp", "--schema", standard, _v2gtp(v)])
    assert (rc, err) == (0, "")
    assert json.loads(out) == v["decoded"]


@pytest.mark.parametrize(("standard", "message"), [("iso20_dc", "DC_ChargeLoopRes"),
                                                   ("iso20", "SessionStopReq"),
                                                   ("iso20_ac", "AC_ChargeLoopRes"),
                                                   ("sap", "supportedAppProtocolRes"),
                                                   ("iso2", "CurrentDemandRes"),
                                                   ("din", "CurrentDemandReq")])
def test_encode_v2gtp_prepends_header(codec: ModuleType, capsys: pytest.CaptureFixture[str],
                                      standard: str, message: str) -> None:
    v = _vector(standard, message)
    rc, out, err = _run(capsys, ["encode", "--v2gtp", "--schema", standard,
                                 json.dumps(v["decoded"])])
    assert (rc, err) == (0, "")
    assert out.strip() == _v2gtp(v)


_HDR = {"SessionID": "0102030405060708", "TimeStamp": 1700000000}


@pytest.mark.parametrize(("schema", "payload_type", "msg"), [
    ("iso20_acdp", 0x8005, {"ACDP_DisconnectReq": {
        "Header": _HDR, "EVElectricalChargingDeviceStatus": "State_A"}}),
    ("iso20_wpt", 0x8006, {"WPT_AlignmentCheckReq": {
        "Header": _HDR, "EVProcessing": "Finished", "TargetCoilCurrent": {"Exponent": 0,
                                                                          "Value": 10},
        "EVResultCode": "EVResultSuccess"}}),
], ids=["iso20_acdp", "iso20_wpt"])
def test_v2gtp_payload_types_without_vectors(codec: ModuleType,
                                             capsys: pytest.CaptureFixture[str], schema: str,
                                             payload_type: int, msg: dict[str, Any]) -> None:
    """ACDP and WPT have no vectors: round-trip a message built here through the CLI."""
    rc, out, err = _run(capsys, ["encode", "--v2gtp", "--schema", schema, json.dumps(msg)])
    assert (rc, err) == (0, "")
    frame = bytes.fromhex(out.strip())
    assert frame[:4] == bytes((1, 0xFE)) + payload_type.to_bytes(2, "big")
    assert int.from_bytes(frame[4:8], "big") == len(frame) - 8
    rc, out, err = _run(capsys, ["decode", "--v2gtp", out])
    assert (rc, err) == (0, "")
    assert json.loads(out) == msg


def test_stdin_hex_and_json(codec: ModuleType, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    v = _vector("iso20_dc", "DC_ChargeLoopReq")
    spaced = " ".join(v["hex"][i:i + 8] for i in range(0, len(v["hex"]), 8))
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"\n {spaced[:20]}\n\t{spaced[20:]}\n"))
    rc, out, _ = _run(capsys, ["decode", "--schema", "iso20_dc", "-"])
    assert rc == 0 and json.loads(out) == v["decoded"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(v["decoded"], indent=4)))
    rc, out, _ = _run(capsys, ["encode", "--schema", "iso20_dc", "-"])
    assert rc == 0 and out.strip() == v["hex"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(_v2gtp(v)))
    rc, out, _ = _run(capsys, ["decode", "--v2gtp", "--compact", "-"])
    assert rc == 0 and json.loads(out) == v["decoded"]


def test_json_from_file(codec: ModuleType, capsys: pytest.CaptureFixture[str],
                        tmp_path: Any) -> None:
    v = _vector("iso2", "CurrentDemandReq")
    path = tmp_path / "msg.json"
    path.write_text(json.dumps(v["decoded"]))
    rc, out, _ = _run(capsys, ["encode", "--schema", "iso2", f"@{path}"])
    assert rc == 0 and out.strip() == v["hex"]


def test_strict_flag(codec: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """A real -2 message exceeds a length facet: lenient decode, strict encode by default."""
    v = _vector("iso2", "CertificateUpdateRes")
    path = "/V2G_Message/Body/CertificateUpdateRes/eMAID"
    rc, out, _ = _run(capsys, ["decode", "--schema", "iso2", v["hex"]])
    assert rc == 0 and json.loads(out) == v["decoded"]
    rc, out, err = _run(capsys, ["decode", "--strict", "--schema", "iso2", v["hex"]])
    line = _one_error_line(err)
    assert rc == 2 and out == "" and path in line and "(bit " in line
    rc, out, err = _run(capsys, ["encode", "--schema", "iso2", json.dumps(v["decoded"])])
    assert rc == 2 and out == "" and path in _one_error_line(err)
    rc, out, _ = _run(capsys, ["encode", "--no-strict", "--schema", "iso2",
                               json.dumps(v["decoded"])])
    assert rc == 0 and out.strip() == v["hex"]


def _errors() -> list[Any]:
    req = _vector("iso20_dc", "DC_ChargeLoopReq")
    h, d = req["hex"], req["decoded"]
    wrong_type = json.loads(json.dumps(d))
    wrong_type["DC_ChargeLoopReq"]["EVPresentVoltage"]["Value"] = "400"
    long_id = json.loads(json.dumps(d))
    long_id["DC_ChargeLoopReq"]["Header"]["SessionID"] = "00" * 9
    unknown = json.loads(json.dumps(d))
    unknown["DC_ChargeLoopReq"]["Bogus"] = 1
    dc = ["--schema", "iso20_dc"]
    n = len(h) // 2
    cases = [
        # (id, argv, substrings of the one stderr line)
        ("decode-truncated", ["decode", *dc, h[:12]],
         ["decode error", "/DC_ChargeLoopReq/Header/SessionID", "(bit "]),
        ("decode-not-exi", ["decode", *dc, "00"], ["decode error", "(bit 0)"]),
        ("decode-empty", ["decode", *dc, ""], ["decode error", "(bit 0)"]),
        ("decode-wrong-schema", ["decode", "--schema", "sap", h], ["decode error", "(bit "]),
        ("decode-fragment-garbage", ["decode", "--fragment", "--schema", "iso20", "ffff"],
         ["decode error", "(bit "]),
        ("bad-hex", ["decode", *dc, h + "zz"], ["bad hex"]),
        ("odd-hex", ["decode", *dc, h + "0"], ["bad hex"]),
        ("bad-json", ["encode", *dc, '{"DC_ChargeLoopReq": '], ["bad JSON", "line 1"]),
        ("json-file-missing", ["encode", *dc, "@/nonexistent/msg.json"], ["cannot read"]),
        ("encode-wrong-type", ["encode", *dc, json.dumps(wrong_type)],
         ["encode error", "/DC_ChargeLoopReq/EVPresentVoltage/Value", "integer"]),
        ("encode-too-long", ["encode", *dc, json.dumps(long_id)],
         ["encode error", "/DC_ChargeLoopReq/Header/SessionID", "length 9"]),
        ("encode-unknown-element", ["encode", *dc, json.dumps(unknown)],
         ["encode error", "/DC_ChargeLoopReq", "Bogus"]),
        ("encode-unknown-root", ["encode", *dc, '{"Nope": {}}'],
         ["encode error", "'Nope'", "iso20_dc"]),
        ("encode-not-object", ["encode", *dc, "[1, 2]"], ["encode error", "root element"]),
        ("encode-fragment-unknown", ["encode", "--fragment", "--grammar", "xmldsig",
                                     "--schema", "iso20", json.dumps(d)],
         ["encode error", "DC_ChargeLoopReq"]),
        ("unknown-schema-decode", ["decode", "--schema", "iso21", h], ["unknown schema 'iso21'"]),
        ("unknown-schema-encode", ["encode", "--schema", "iso21", "{}"],
         ["unknown schema 'iso21'"]),
        ("v2gtp-short", ["decode", "--v2gtp", "01fe8004"], ["V2GTP header", "8 bytes"]),
        ("v2gtp-version", ["decode", "--v2gtp", "02fd" + _header(0x8004, n)[4:] + h],
         ["V2GTP header", "version 0x02"]),
        ("v2gtp-inverse", ["decode", "--v2gtp", "01ff" + _header(0x8004, n)[4:] + h],
         ["V2GTP header", "inverse 0xff"]),
        ("v2gtp-length-long", ["decode", "--v2gtp", _header(0x8004, n + 1) + h],
         ["V2GTP header", f"length field {n + 1}", f"{n} payload bytes"]),
        ("v2gtp-length-short", ["decode", "--v2gtp", _header(0x8004, n - 1) + h],
         ["V2GTP header", f"length field {n - 1}"]),
        ("v2gtp-sdp", ["decode", "--v2gtp", _header(0x9000, 2) + "1000"],
         ["V2GTP header", "0x9000"]),
        ("v2gtp-ambiguous", ["decode", "--v2gtp", _header(0x8001, n) + h],
         ["V2GTP header", "ambiguous", "--schema"]),
        ("v2gtp-schema-mismatch", ["decode", "--v2gtp", "--schema", "iso20",
                                   _header(0x8004, n) + h],
         ["V2GTP header", "0x8004", "iso20_dc", "iso20"]),
        ("v2gtp-exi-error", ["decode", "--v2gtp", _header(0x8004, 6) + h[:12]],
         ["decode error", "/DC_ChargeLoopReq/Header/SessionID", "(bit "]),
    ]
    return [pytest.param(a, s, id=i) for i, a, s in cases]


@pytest.mark.parametrize(("argv", "expected"), _errors())
def test_error_is_one_line_exit_2(codec: ModuleType, capsys: pytest.CaptureFixture[str],
                                  argv: list[str], expected: list[str]) -> None:
    rc, out, err = _run(capsys, argv)
    assert rc == 2
    assert out == ""
    line = _one_error_line(err)
    for s in expected:
        assert s in line, line


@pytest.mark.parametrize("argv", [
    [],
    ["decode"],
    ["transcode", "00"],
    ["decode", "00"],                                    # no --schema and no --v2gtp
    ["encode", "--v2gtp", "{}"],                         # encode always needs --schema
    ["decode", "--schema", "iso20", "--grammar", "xmldsig", "00"],
    ["decode", "--schema", "iso20", "--fragment", "--v2gtp", "00"],
    ["decode", "--schema", "iso20", "--fragment", "--grammar", "c14n", "00"],
    ["encode", "--schema", "iso20", "--compact", "{}"],
], ids=["no-command", "no-input", "bad-command", "no-schema", "encode-no-schema",
        "grammar-without-fragment", "fragment-v2gtp", "bad-grammar", "compact-on-encode"])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    rc, out, err = _run(capsys, argv)
    assert rc == 2 and out == ""
    assert "usage:" in err and "error:" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, ["decode", "--help"])
    assert rc == 0 and "--v2gtp" in out and "iso20_dc" in out


# ---------------------------------------------------------------- subprocess, both engines


@pytest.fixture(params=["pure", "cython"])
def cli_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment for `python -m exi_codec` with one engine forced."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("EXI_CODEC_PURE", None)
    if request.param == "pure":
        env["EXI_CODEC_PURE"] = "1"
    else:
        try:
            from exi_codec import _engine_c  # type: ignore[attr-defined]  # noqa: F401
        except ImportError:
            if os.environ.get("EXI_CODEC_NO_EXT"):
                pytest.skip("built without the Cython extension (EXI_CODEC_NO_EXT)")
            raise
    return env


def _cli(env: dict[str, str], *args: str, stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exi_codec", *args], input=stdin,
                          capture_output=True, text=True, env=env, cwd=ROOT.parent, timeout=60)


def test_subprocess_round_trip(cli_env: dict[str, str]) -> None:
    v = _vector("iso20_dc", "DC_ChargeLoopReq")
    p = _cli(cli_env, "decode", "--schema", "iso20_dc", v["hex"])
    assert (p.returncode, p.stderr) == (0, "")
    assert json.loads(p.stdout) == v["decoded"]
    p = _cli(cli_env, "encode", "--schema", "iso20_dc", "-", stdin=p.stdout)
    assert (p.returncode, p.stderr, p.stdout) == (0, "", v["hex"] + "\n")


def test_subprocess_v2gtp_and_stdin(cli_env: dict[str, str]) -> None:
    v = _vector("iso2", "CurrentDemandReq")
    p = _cli(cli_env, "encode", "--v2gtp", "--schema", "iso2", json.dumps(v["decoded"]))
    assert (p.returncode, p.stdout.strip()) == (0, _v2gtp(v))
    p = _cli(cli_env, "decode", "--v2gtp", "--schema", "iso2", "--compact", "-", stdin=p.stdout)
    assert p.returncode == 0 and p.stdout.count("\n") == 1
    assert json.loads(p.stdout) == v["decoded"]


def test_subprocess_fragment(cli_env: dict[str, str]) -> None:
    v = _vector("iso20", "SignedInfo")
    p = _cli(cli_env, "decode", "--fragment", "--grammar", "xmldsig", "--schema", "iso20",
             v["hex"])
    assert p.returncode == 0 and json.loads(p.stdout) == v["decoded"]
    p = _cli(cli_env, "encode", "--fragment", "--grammar", "xmldsig", "--schema", "iso20",
             p.stdout)
    assert (p.returncode, p.stdout.strip()) == (0, v["hex"])


def test_subprocess_errors_exit_2(cli_env: dict[str, str]) -> None:
    v = _vector("iso20_dc", "DC_ChargeLoopReq")
    p = _cli(cli_env, "decode", "--schema", "iso20_dc", v["hex"][:12])
    assert p.returncode == 2 and p.stdout == ""
    line = _one_error_line(p.stderr)
    assert "/DC_ChargeLoopReq/Header/SessionID (bit " in line
    p = _cli(cli_env, "decode", "--v2gtp", _header(0x8004, 99) + v["hex"])
    assert p.returncode == 2 and "length field 99" in _one_error_line(p.stderr)
    p = _cli(cli_env, "encode", "--schema", "nope", "{}")
    assert p.returncode == 2 and "unknown schema" in _one_error_line(p.stderr)
    p = _cli(cli_env, "decode")
    assert p.returncode == 2 and "usage:" in p.stderr
