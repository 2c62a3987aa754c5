"""EXI codec benchmark: decode/encode time per engine against json.loads/json.dumps, import time
and the memory of the loaded schema tables. Prints a plain-text table.

    python benchmarks/exi_bench.py                  # full run (about 15 s)
    python benchmarks/exi_bench.py --quick          # smoke run: few, short repeats
    python benchmarks/exi_bench.py --vectors PATH   # another vectors.json
    EXI_CODEC_PURE=1 python benchmarks/exi_bench.py # pure engine only (Cython columns n/a)

The messages come from ../shared/vectors/vectors.json (read at run time); a message that no vector
has is built here with the generated message classes and marked with * in the table.
Times go through the public API (exi_codec.decode / exi_codec.encode) with the engine swapped, so
they include what every caller pays (schema lookup, argument handling).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import exi_codec  # noqa: E402
from exi_codec import _engine_py  # noqa: E402

DEFAULT_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "vectors.json"


class Case:
    def __init__(self, label: str, schema: str, msg: Any, origin: str, built: bool) -> None:
        self.label = label
        self.schema = schema
        self.msg = msg
        self.origin = origin
        self.built = built
        self.data = exi_codec.encode(msg)
        if exi_codec.decode(self.data, schema) != msg:
            raise SystemExit(f"{label}: decode(encode(msg)) != msg")
        self.obj = exi_codec.to_json(msg)
        self.text = json.dumps(self.obj)


# ---------------------------------------------------------------- the messages


def _find(vectors: list[dict[str, Any]], standard: str, message: str,
          pred: Callable[[dict[str, Any]], bool] = lambda v: True) -> dict[str, Any] | None:
    for v in vectors:
        if v["standard"] == standard and v["message"] == message and \
                not v.get("exi_fragment") and pred(v):
            return v
    return None


def _from_vector(label: str, v: dict[str, Any]) -> Case:
    msg = exi_codec.decode(bytes.fromhex(v["hex"]), v["standard"])
    return Case(label, v["standard"], msg, v["id"], built=False)


def _build_dc_charge_loop_res_bpt_dynamic() -> Any:
    """DC_ChargeLoopRes, BPT dynamic mode, every field of the control mode, and MeterInfo."""
    dc = exi_codec.schema_module("iso20_dc")
    rn = dc.RationalNumberType
    return dc.DC_ChargeLoopRes(
        header=dc.MessageHeaderType(session_id=bytes.fromhex("A1B2C3D4E5F60718"),
                                    time_stamp=1767225600),
        response_code=dc.responseCodeType.OK,
        evse_status=dc.EVSEStatusType(notification_max_delay=0,
                                      evse_notification=dc.evseNotificationType("Terminate")),
        meter_info=dc.MeterInfoType(
            meter_id="EVSE-METER-0001",
            charged_energy_reading_wh=1_234_567,
            bpt_discharged_energy_reading_wh=345_678,
            capacitive_energy_reading_va_rh=12_345,
            bpt_inductive_energy_reading_va_rh=6_789,
            meter_signature=bytes(range(64)),
            meter_status=1,
            meter_timestamp=1767225600,
        ),
        evse_present_current=rn(exponent=-1, value=-1250),   # discharging: negative
        evse_present_voltage=rn(exponent=-1, value=4012),
        evse_power_limit_achieved=False,
        evse_current_limit_achieved=False,
        evse_voltage_limit_achieved=False,
        bpt_dynamic_dc_cl_res_control_mode=dc.BPT_Dynamic_DC_CLResControlModeType(
            departure_time=7200,
            minimum_soc=20,
            target_soc=80,
            ack_max_delay=30,
            evse_maximum_charge_power=rn(exponent=3, value=150),
            evse_minimum_charge_power=rn(exponent=0, value=500),
            evse_maximum_charge_current=rn(exponent=0, value=350),
            evse_maximum_voltage=rn(exponent=0, value=920),
            evse_maximum_discharge_power=rn(exponent=3, value=50),
            evse_minimum_discharge_power=rn(exponent=0, value=500),
            evse_maximum_discharge_current=rn(exponent=0, value=125),
            evse_minimum_voltage=rn(exponent=0, value=150),
        ),
    )


def _build_sap_req_3_offers() -> Any:
    sap = exi_codec.schema_module("sap")
    offers = (
        ("urn:iso:std:iso:15118:-20:DC", 1, 0, 1, 1),
        ("urn:iso:15118:2:2013:MsgDef", 2, 0, 2, 2),
        ("urn:din:70121:2012:MsgDef", 2, 0, 3, 3),
    )
    return sap.supportedAppProtocolReq(app_protocol=tuple(
        sap.AppProtocolType(protocol_namespace=ns, version_number_major=major,
                            version_number_minor=minor, schema_id=sid, priority=prio)
        for ns, major, minor, sid, prio in offers))


def _has(key: str) -> Callable[[dict[str, Any]], bool]:
    return lambda v: key in json.dumps(v["decoded"])


def load_cases(vectors: list[dict[str, Any]]) -> list[Case]:
    cases: list[Case] = []
    v = _find(vectors, "iso20_dc", "DC_ChargeLoopReq", _has('"Scheduled_DC_CLReqControlMode"'))
    if v is None:
        raise SystemExit("no -20 DC_ChargeLoopReq vector in Scheduled mode")
    cases.append(_from_vector("DC_ChargeLoopReq (-20 DC, Scheduled)", v))

    label = "DC_ChargeLoopRes (-20 DC, BPT Dynamic + MeterInfo)"
    v = _find(vectors, "iso20_dc", "DC_ChargeLoopRes",
              lambda v: _has('"BPT_Dynamic_DC_CLResControlMode"')(v) and _has('"MeterInfo"')(v))
    if v is not None:
        cases.append(_from_vector(label, v))
    else:
        cases.append(Case(label, "iso20_dc", _build_dc_charge_loop_res_bpt_dynamic(),
                          "built: no vector has BPT_Dynamic_DC_CLResControlMode with MeterInfo",
                          built=True))

    v = _find(vectors, "iso20", "SessionSetupReq")
    if v is None:
        raise SystemExit("no -20 SessionSetupReq vector")
    cases.append(_from_vector("SessionSetupReq (-20)", v))

    label = "supportedAppProtocolReq (3 offers)"
    v = _find(vectors, "sap", "supportedAppProtocolReq",
              lambda v: len(v["decoded"]["supportedAppProtocolReq"]["AppProtocol"]) == 3)
    if v is not None:
        cases.append(_from_vector(label, v))
    else:
        cases.append(Case(label, "sap", _build_sap_req_3_offers(),
                          "built: no vector has 3 AppProtocol offers", built=True))

    v = _find(vectors, "iso2", "CurrentDemandReq")
    if v is None:
        raise SystemExit("no -2 CurrentDemandReq vector")
    cases.append(_from_vector("CurrentDemandReq (-2)", v))
    return cases


# ---------------------------------------------------------------- timing


def median_us(func: Callable[[], Any], min_run: float, repeat: int) -> float:
    """Median time per call in microseconds: `repeat` runs of `number` calls each, `number`
    chosen so that one run lasts at least `min_run` seconds."""
    timer = timeit.Timer(func)
    number = 1
    while True:
        t = timer.timeit(number)
        if t >= min_run:
            break
        # aim a little above min_run, at most x10 per step
        number = max(number + 1, min(number * 10, int(number * min_run * 1.2 / max(t, 1e-9))))
    runs = timer.repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e6


def load_engines() -> tuple[dict[str, ModuleType | None], str]:
    """Both engines; the Cython one is None (with the reason) when not importable or when
    EXI_CODEC_PURE forces the pure one."""
    if os.environ.get("EXI_CODEC_PURE"):
        return {"cython": None, "pure": _engine_py}, "EXI_CODEC_PURE is set"
    try:
        from exi_codec import _engine_c  # type: ignore[attr-defined]
    except ImportError as e:
        return {"cython": None, "pure": _engine_py}, f"not importable ({e})"
    return {"cython": _engine_c, "pure": _engine_py}, ""


def time_cases(cases: list[Case], engines: dict[str, ModuleType | None], min_run: float,
               repeat: int) -> list[dict[str, float | None]]:
    saved = exi_codec._engine
    rows: list[dict[str, float | None]] = []
    try:
        for case in cases:
            row: dict[str, float | None] = {}
            for name, engine in engines.items():
                if engine is None:
                    row[f"dec_{name}"] = row[f"enc_{name}"] = None
                    continue
                exi_codec._engine = engine
                if exi_codec.decode(case.data, case.schema) != case.msg or \
                        exi_codec.encode(case.msg) != case.data:
                    raise SystemExit(f"{case.label}: the {name} engine disagrees")
                row[f"dec_{name}"] = median_us(
                    functools.partial(exi_codec.decode, case.data, case.schema), min_run, repeat)
                row[f"enc_{name}"] = median_us(
                    functools.partial(exi_codec.encode, case.msg), min_run, repeat)
            row["loads"] = median_us(functools.partial(json.loads, case.text), min_run, repeat)
            row["dumps"] = median_us(functools.partial(json.dumps, case.obj), min_run, repeat)
            rows.append(row)
    finally:
        exi_codec._engine = saved
    return rows


# ---------------------------------------------------------------- fresh-process measurements

_IMPORT_CHILD = """
import json, time
t0 = time.perf_counter()
import exi_codec
for s in exi_codec.SCHEMAS:
    exi_codec.schema_module(s)
t1 = time.perf_counter()
print(json.dumps({"seconds": t1 - t0, "engine": exi_codec.ENGINE}))
"""

_MEMORY_CHILD = """
import json, os, sys
TRACE = sys.argv[1] == "trace"

def rss():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None

import base64, binascii, enum, importlib, operator  # stdlib the codec uses: not counted
if TRACE:
    import tracemalloc
    tracemalloc.start()
    def mem():
        return tracemalloc.get_traced_memory()[0]
else:
    mem = rss
m0 = mem()
import exi_codec
m1 = mem()
for s in exi_codec.SCHEMAS:
    exi_codec.schema_module(s)
m2 = mem()
peak = tracemalloc.get_traced_memory()[1] if TRACE else None
ok = None not in (m0, m1, m2)
print(json.dumps({"runtime": m1 - m0 if ok else None, "tables": m2 - m1 if ok else None,
                  "total": m2 - m0 if ok else None, "peak": peak, "engine": exi_codec.ENGINE}))
"""


def _child(code: str, *args: str, pycache: str | None = None) -> dict[str, Any]:
    """Run `code` in a fresh interpreter with the bytecode cache in `pycache` (a private
    PYTHONPYCACHEPREFIX: the repository tree is not touched and the PYTHONDONTWRITEBYTECODE of
    the caller does not matter), or with no bytecode cache at all (pycache=None: every module
    compiled from source, nothing written)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as empty:
        if pycache is None:
            env["PYTHONPYCACHEPREFIX"] = empty
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env["PYTHONPYCACHEPREFIX"] = pycache
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                           env=env, cwd=REPO, timeout=300, check=False)
    if p.returncode != 0:
        raise SystemExit(f"child process failed:\n{p.stderr}")
    return json.loads(p.stdout)  # type: ignore[no-any-return]


def import_time(runs: int, pycache: str) -> tuple[float, str]:
    """Median import time (ms) with a warm bytecode cache, and the engine the child used."""
    _child(_IMPORT_CHILD, pycache=pycache)  # warm-up: writes the bytecode cache, not counted
    results = [_child(_IMPORT_CHILD, pycache=pycache) for _ in range(runs)]
    return statistics.median(r["seconds"] for r in results) * 1e3, results[0]["engine"]


def print_process_costs(import_runs: int) -> None:
    with tempfile.TemporaryDirectory() as pycache:
        ms, engine = import_time(import_runs, pycache)
        cold_ms = _child(_IMPORT_CHILD)["seconds"] * 1e3
        print(f"import exi_codec + all {len(exi_codec.SCHEMAS)} schema modules (fresh process, "
              f"engine {engine}): {ms:.1f} ms (median of {import_runs}, bytecode cached); "
              f"{cold_ms:.0f} ms compiling from source (no bytecode cache)")
        _child(_IMPORT_CHILD, pycache=pycache)  # refresh, should the schemas have changed
        traced = _child(_MEMORY_CHILD, "trace", pycache=pycache)
        rss = _child(_MEMORY_CHILD, "rss", pycache=pycache)
    rss_cold = _child(_MEMORY_CHILD, "rss")
    print(f"memory of the loaded tables (fresh process, engine {traced['engine']}):")
    print(render_table(
        ["", "exi_codec runtime", "schema tables", "total"],
        [[label, _kib(m["runtime"]), _kib(m["tables"]), _kib(m["total"])]
         for label, m in (("tracemalloc, current", traced),
                          ("RSS delta (/proc/self/statm)", rss),
                          ("RSS delta, no bytecode cache", rss_cold))]))
    print(f"tracemalloc peak while importing: {_kib(traced['peak'])}")


# ---------------------------------------------------------------- output


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}"


def _kib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1024:,.0f} KiB"


def render_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


HEADER = ["message", "bytes", "decode us (cython)", "encode us (cython)", "decode us (pure)",
          "encode us (pure)", "json.loads us", "json.dumps us", "decode/json.loads (cython)",
          "encode/json.dumps (cython)"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--vectors", type=Path, default=DEFAULT_VECTORS,
                    help=f"vectors.json (default {DEFAULT_VECTORS})")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: short runs, 3 repeats, 1 import run (numbers are rough)")
    args = ap.parse_args(argv)

    if not args.vectors.exists():
        print(f"error: {args.vectors} not found (use --vectors)", file=sys.stderr)
        return 2
    vectors = json.loads(args.vectors.read_text())
    min_run, repeat, import_runs = (0.002, 3, 1) if args.quick else (0.02, 7, 5)

    engines, why_no_cython = load_engines()
    cases = load_cases(vectors)
    timings = time_cases(cases, engines, min_run, repeat)

    print(f"exi_codec benchmark - Python {platform.python_version()} "
          f"({platform.python_implementation()}), {platform.machine()}, "
          f"default engine: {exi_codec.ENGINE}" + (" [--quick: rough numbers]" if args.quick
                                                    else ""))
    print(f"median of {repeat} runs of >= {min_run * 1e3:g} ms each (timeit), microseconds "
          f"per call; public API: exi_codec.decode(data, schema) / exi_codec.encode(msg)")
    print()
    rows = []
    for case, t in zip(cases, timings, strict=True):
        rows.append([case.label + (" *" if case.built else ""), str(len(case.data)),
                     _fmt(t["dec_cython"]), _fmt(t["enc_cython"]), _fmt(t["dec_pure"]),
                     _fmt(t["enc_pure"]), _fmt(t["loads"]), _fmt(t["dumps"]),
                     _ratio(t["dec_cython"], t["loads"]), _ratio(t["enc_cython"], t["dumps"])])
    print(render_table(HEADER, rows))
    print()
    for case in cases:
        mark = "*" if case.built else "-"
        print(f"{mark} {case.label}: {case.origin}")
    if engines["cython"] is None:
        print(f"Cython engine (exi_codec._engine_c): {why_no_cython}; its columns are n/a "
              "(build it with `make setup` or `pip install -e .`).")
    print("json.loads/json.dumps work on the message's JSON form "
          "(json.dumps(exi_codec.to_json(msg))).")
    lookup = median_us(functools.partial(exi_codec.schema_module, cases[0].schema), min_run,
                       repeat)
    print(f"exi_codec.schema_module() lookup inside every decode: {lookup:.2f} us per call")
    print()

    print_process_costs(import_runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
