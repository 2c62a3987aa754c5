"""`evse secc` Plug & Charge options: --pnc-mo-roots, --vehicle-roots, --require-vehicle-cert,
the [tls] pnc_mo_roots key, and run_secc serving a PnC session with them over TLS 1.3."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from certs.pnc_pki import make_pnc_pki
from evse.aio.app import SeccOptions, SetupError, run_secc
from evse.cli import build_parser
from evse.config import ConfigError, check_config, loads_config
from simulators.ev.client import make_ssl_context, run_session
from simulators.ev.pnc import PncCredentials
from tests.aio.helpers import fast_scenario

STATION = """
[station]
id = "DE*EVS*E0000009"

[[connectors]]
id = 1
type = "DC"
services = ["DC"]

[limits]
max_voltage = 500
max_charge_current = 100
max_charge_power = 50000

[network]
interface = "lo"
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("pnc-secc")
    pki = make_pnc_pki("secp521r1")
    out: dict[str, Any] = dict(pki.write(directory))
    assert not (directory / "secc_chain.pem").exists()  # --pki takes the pnc_pki layout too
    out["dir"], out["pki"] = directory, pki
    (directory / "empty.pem").write_text("no certificates here\n")
    return out


# -- configuration and command line ------------------------------------------------------------


def test_toml_pnc_mo_roots(tmp_path: Path) -> None:
    text = STATION + ('[tls]\ncert_chain = "secc.pem"\nprivate_key = "secc.key"\n'
                      'pnc_mo_roots = "mo_roots.pem"\ntrust_roots = "oem.pem"\n')
    cfg = loads_config(text, base_dir=tmp_path)
    assert cfg.tls.pnc_mo_roots == tmp_path / "mo_roots.pem"
    path = tmp_path / "station.toml"
    path.write_text(text)
    errors = check_config(path, check_files=True)
    assert any(e.startswith("tls.pnc_mo_roots: file not found") for e in errors)


def test_toml_pnc_needs_tls() -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(STATION + '[tls]\nallow_plain_tcp_iso20 = true\npnc_mo_roots = "mo.pem"\n')
    assert any(e.startswith("tls.pnc_mo_roots: Plug & Charge runs over TLS only")
               for e in info.value.errors)


def test_the_config_doc_lists_pnc_mo_roots() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    assert "`pnc_mo_roots`" in doc and "CERT_OPTIONAL" in doc


def test_command_line_options() -> None:
    ns = build_parser("secc").parse_args(
        ["secc", "--address", "::1", "--pki", "p", "--pnc-mo-roots", "mo.pem",
         "--vehicle-roots", "oem.pem", "--require-vehicle-cert"])
    assert (ns.pnc_mo_roots, ns.vehicle_roots, ns.require_vehicle_cert) == (
        Path("mo.pem"), Path("oem.pem"), True)
    ns = build_parser("secc").parse_args(
        ["secc", "--address", "::1", "--pki", "p", "--pnc-mo-roots", "mo.pem",
         "--oem-roots", "oem.pem", "--cps-sim", "pkidir"])
    assert (ns.oem_roots, ns.cps_sim) == (Path("oem.pem"), Path("pkidir"))
    ns = build_parser("ev").parse_args(["ev", "--pnc-strict", "--contract-cert", "c.pem",
                                        "--contract-key", "c.key"])
    assert ns.pnc_strict and ns.metering_confirmation
    ns = build_parser("demo").parse_args(["demo", "--pnc", "--algorithm", "ed448"])
    assert ns.pnc and ns.algorithm == "ed448" and ns.scenario is None


# -- run_secc ----------------------------------------------------------------------------------


async def _serve(options: SeccOptions) -> tuple[asyncio.Task[int], asyncio.Event, int, str]:
    ready, stop = asyncio.Event(), asyncio.Event()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        task = asyncio.create_task(run_secc(options, ready=ready, stop=stop))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises the SetupError
    line = out.getvalue()
    m = re.search(r"TLS 1\.3 on port (\d+)", line)
    assert m, line
    return task, stop, int(m[1]), line


def _options(files: dict[str, Any], **kw: Any) -> SeccOptions:
    base: dict[str, Any] = dict(address="127.0.0.1", pki=files["dir"], tls_port=0, sdp=False,
                                sim_speedup=10.0, poll_interval=0.01)
    base.update(kw)
    return SeccOptions(**base)


def _ev(files: dict[str, Any]) -> Any:
    pki = files["pki"]
    creds = PncCredentials(contract_certificate=pki.contract.leaf_der,
                           contract_sub_certificates=pki.contract.sub_ders,
                           contract_key=pki.contract.key)
    return fast_scenario("dc_pnc", pnc=creds, pnc_fallback_to_eim=False, max_loops=4)


async def test_run_secc_with_pnc_mo_roots_and_vehicle_roots(files: dict[str, Any],
                                                            caplog: Any) -> None:
    options = _options(files, pnc_mo_roots=files["mo_root"], vehicle_roots=files["oem_root"])
    with caplog.at_level("INFO"):
        task, stop, port, line = await _serve(options)
        try:
            assert "Plug & Charge (TLS)" in line
            ctx = make_ssl_context(files["v2g_root"], cert_file=files["vehicle"],
                                   key_file=files["vehicle_key"])
            report = await asyncio.wait_for(
                run_session(_ev(files), host="127.0.0.1", port=port, ssl_context=ctx), 30)
            assert report.success, report.summary()
            assert report.extra["authorization"] == "PnC" and not report.warnings
            # --require-vehicle-cert is off: an EV without a vehicle certificate is served
            report = await asyncio.wait_for(run_session(
                _ev(files), host="127.0.0.1", port=port,
                ssl_context=make_ssl_context(files["v2g_root"])), 30)
            assert report.success, report.summary()
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 10) == 0
    text = caplog.text
    assert f"eMAID {files['pki'].emaid}" in text  # the adapter logs the granted contract
    assert "vehicle certificate WMIV1234567890ABCDEX" in text


async def test_run_secc_require_vehicle_cert(files: dict[str, Any]) -> None:
    options = _options(files, pnc_mo_roots=files["mo_root"], vehicle_roots=files["oem_root"],
                       require_vehicle_cert=True)
    task, stop, port, _ = await _serve(options)
    try:
        report = await asyncio.wait_for(run_session(
            _ev(files), host="127.0.0.1", port=port,
            ssl_context=make_ssl_context(files["v2g_root"])), 30)
        assert not report.success  # no vehicle certificate: the handshake fails
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


async def test_run_secc_pnc_from_the_config_file(files: dict[str, Any], tmp_path: Path) -> None:
    d = files["dir"]
    path = tmp_path / "station.toml"
    path.write_text(STATION + f'[tls]\ncert_chain = "{d / "secc.pem"}"\n'
                    f'private_key = "{d / "secc.key"}"\npnc_mo_roots = "{d / "mo_root.pem"}"\n'
                    f'trust_roots = "{d / "oem_root.pem"}"\n')
    task, stop, port, line = await _serve(_options(files, pki=None, config=path, hal="sim"))
    try:
        assert "Plug & Charge (TLS)" in line
        ctx = make_ssl_context(files["v2g_root"], cert_file=files["vehicle"],
                               key_file=files["vehicle_key"])
        report = await asyncio.wait_for(
            run_session(_ev(files), host="127.0.0.1", port=port, ssl_context=ctx), 30)
        assert report.success, report.summary()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


@pytest.mark.parametrize(("changes", "message"), [
    ({"pki": None, "allow_plain_tcp_iso20": True, "port": 0, "pnc_mo_roots": "MO"},
     "Plug & Charge runs over TLS only"),
    ({"pnc_mo_roots": "EMPTY"}, "cannot load the MO roots"),
    ({"pnc_mo_roots": "MISSING"}, "cannot load the MO roots"),
    ({"require_vehicle_cert": True}, "--require-vehicle-cert needs --vehicle-roots"),
    ({"cps_sim": "DIR"}, "--oem-roots and --cps-sim need --pnc-mo-roots"),
    ({"pnc_mo_roots": "MO", "cps_sim": "MISSING"}, "not a certs.pnc_pki directory"),
    ({"pnc_mo_roots": "MO", "oem_roots": "EMPTY"}, "cannot load"),
    ({"pki": None, "allow_plain_tcp_iso20": True, "port": 0, "vehicle_roots": "OEM"},
     "--vehicle-roots needs TLS"),
])
async def test_setup_errors(files: dict[str, Any], changes: dict[str, Any], message: str) -> None:
    paths = {"MO": files["mo_root"], "EMPTY": files["dir"] / "empty.pem", "DIR": files["dir"],
             "MISSING": files["dir"] / "missing.pem", "OEM": files["oem_root"]}
    changes = {k: paths.get(v, v) if isinstance(v, str) else v for k, v in changes.items()}
    with pytest.raises(SetupError, match=re.escape(message)):
        await run_secc(_options(files, **changes), stop=asyncio.Event())


async def test_run_secc_offers_certificate_installation_with_cps_sim(
        files: dict[str, Any]) -> None:
    pki = files["pki"]
    options = _options(files, pnc_mo_roots=files["mo_root"], oem_roots=files["oem_root"],
                       cps_sim=files["dir"])
    task, stop, port, _ = await _serve(options)
    try:
        creds = PncCredentials(
            oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
            oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
            oem_provisioning_key=pki.oem_provisioning.key,
            v2g_roots=(pki.v2g_root.cert,), install_certificate=True)
        scenario = fast_scenario("dc_pnc", pnc=creds, pnc_fallback_to_eim=False, max_loops=4,
                                 meter_info_every=2)
        report = await asyncio.wait_for(run_session(
            scenario, host="127.0.0.1", port=port,
            ssl_context=make_ssl_context(files["v2g_root"])), 30)
        assert report.success, report.summary()
        assert report.extra["installed_emaid"] and report.extra["authorization"] == "PnC"
        assert report.extra["metering_confirmations"] >= 1  # evse secc asks for them
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


def test_ev_pnc_strict_option(files: dict[str, Any]) -> None:
    from simulators.ev.client import scenario_from_args

    parser = build_parser("ev")
    ns = parser.parse_args(["ev", "--scenario", "dc_pnc", "--pnc-strict", "--contract-cert",
                            str(files["contract"]), "--contract-key",
                            str(files["contract_key"]), "--no-metering-confirmation"])
    cfg = scenario_from_args(ns)
    assert cfg.authorization == "PnC" and cfg.pnc_fallback_to_eim is False
    assert cfg.pnc_metering_confirmation is False and cfg.pnc.has_contract
    cfg = scenario_from_args(parser.parse_args(["ev", "--scenario", "dc_pnc", "--contract-cert",
                                                str(files["contract"]), "--contract-key",
                                                str(files["contract_key"])]))
    assert cfg.pnc_fallback_to_eim is True
    with pytest.raises(ValueError, match="--pnc-strict needs PnC credentials"):
        scenario_from_args(parser.parse_args(["ev", "--scenario", "dc",
                                              "--pnc-strict"]))
