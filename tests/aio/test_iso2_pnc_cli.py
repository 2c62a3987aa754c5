"""`evse secc --iso2-pki DIR` beside the -20 TLS 1.3 profile on one TLS port, and `evse ev
--protocol iso2 --scenario iso2_*pnc*` against it: certificate installation and a charge over
real TLS 1.2, through the command-line entry points."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path

import pytest

from certs.iso2_pki import make_iso2_pki
from certs.make_pki import make_pki
from evse.aio.app import SeccOptions, SetupError, run_secc
from evse.cli import build_parser
from simulators.ev.iso2_client import main_iso2_ev
from tests.aio.helpers import HOST


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    iso20 = make_pki(tmp_path_factory.mktemp("pki20")).secc_chain.parent
    iso2 = tmp_path_factory.mktemp("pki2")
    make_iso2_pki().write(iso2)
    return iso20, iso2


async def test_evse_secc_and_ev_iso2_pnc(dirs: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    iso20, iso2 = dirs
    options = SeccOptions(address=HOST, pki=iso20, iso2_pki=iso2, tls_port=0, port=0,
                          sdp=False, sim_speedup=10.0, poll_interval=0.01,
                          protocols=("iso20", "iso2"))
    ready, stop = asyncio.Event(), asyncio.Event()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        task = asyncio.create_task(run_secc(options, ready=ready, stop=stop))
        await asyncio.wait_for(ready.wait(), 30)
    line = out.getvalue()
    assert "TLS 1.3 + TLS 1.2 (-2) on port" in line and "-2 Plug & Charge" in line, line
    match = re.search(r"TLS 1\.2 \(-2\) on port (\d+)", line)
    assert match is not None
    try:
        for scenario, extra in (("iso2_dc_pnc_install", []),
                                ("iso2_ac_pnc", ["--contract-cert", str(iso2 / "contract.pem"),
                                                 "--contract-key", str(iso2 / "contract.key")])):
            ns = build_parser("ev").parse_args([
                "ev", "--protocol", "iso2", "--scenario", scenario, "--host", HOST,
                "--port", match.group(1), "--ca", str(iso2 / "v2g_root.pem"),
                "--oem-prov-cert", str(iso2 / "oem_provisioning.pem"),
                "--oem-prov-key", str(iso2 / "oem_provisioning.key"), "--loops", "5",
                "--timeout-scale", "3", *extra])
            rc = await main_iso2_ev(ns)
            report = capsys.readouterr().out
            assert rc == 0, report
            assert "PaymentDetailsReq" in report and "FAILED" not in report
            assert ("CertificateInstallationReq" in report) == (scenario.endswith("install"))
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


async def test_iso2_pki_needs_iso2_enabled(dirs: tuple[Path, Path]) -> None:
    iso20, iso2 = dirs
    with pytest.raises(SetupError, match="--iso2-pki needs iso2"):
        await run_secc(SeccOptions(address=HOST, pki=iso20, iso2_pki=iso2, tls_port=0,
                                   sdp=False, protocols=("iso20",)))


async def test_ev_pnc_scenario_needs_its_files(capsys: pytest.CaptureFixture[str]) -> None:
    ns = build_parser("ev").parse_args(["ev", "--protocol", "iso2", "--scenario", "iso2_dc_pnc",
                                    "--host", HOST, "--port", "1"])
    assert await main_iso2_ev(ns) == 2
    assert "needs --ca" in capsys.readouterr().err
