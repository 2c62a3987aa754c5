"""`evse secc --config FILE` with `[ocpp] certificate_installation = true` and `ocsp = true`,
end to end: a car without a contract gets one from the CSMS simulator's CPS through
Get15118EVCertificate (the local `--cps-sim` CPS is overridden), and its contract chain is
checked through GetCertificateStatus before the session is authorized."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from certs.pnc_pki import make_pnc_pki
from evse.aio.app import SeccOptions, run_secc
from evse.aio.pnc import DEMO_INSTALLED_EMAID
from evse.config import loads_config
from evse.security.cps import LocalCps
from simulators.csms import CsmsSimulator, OcspResponder
from simulators.ev.client import make_ssl_context, run_session
from simulators.ev.pnc import PncCredentials
from tests.aio.helpers import fast_scenario

STATION_ID = "CS-PNC-1"
INSTALLED = "DEEVSC00000123Y"

CONFIG = """
[station]
id = "{station}"

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

[tls]
cert_chain = "{d}/secc.pem"
private_key = "{d}/secc.key"
pnc_mo_roots = "{d}/mo_root.pem"
trust_roots = "{d}/oem_root.pem"

[ocpp]
url = "{url}"
password = "0123456789abcdef"
reconnect_min_s = 0.05
reconnect_max_s = 0.2
queue_file = "{queue}"
certificate_installation = true
ocsp = true
"""


def test_config_keys() -> None:
    text = CONFIG.format(station="X", d="/tmp", url="ws://127.0.0.1:1", queue="q")
    cfg = loads_config(text, base_dir=Path("/tmp"))
    assert cfg.ocpp is not None and cfg.ocpp.certificate_installation and cfg.ocpp.ocsp
    default = loads_config(text.replace("certificate_installation = true\nocsp = true\n", ""),
                           base_dir=Path("/tmp"))
    assert default.ocpp is not None
    assert not default.ocpp.certificate_installation and not default.ocpp.ocsp


def test_the_config_doc_lists_the_keys() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "config.md").read_text()
    assert "| `certificate_installation`" in doc and "| `ocsp`" in doc


@pytest.mark.parametrize("revoked", [False, True], ids=["good", "revoked-sub-ca"])
async def test_evse_secc_installs_through_the_csms_and_checks_ocsp(tmp_path: Path,
                                                                   revoked: bool) -> None:
    pki = make_pnc_pki("secp521r1")
    d = tmp_path / "pki"
    d.mkdir()
    pki.write(d)
    mo2 = pki.contract.subs[0]
    csms = CsmsSimulator(passwords={STATION_ID: "0123456789abcdef"}, accept_all_tokens=True)
    csms.cps = LocalCps(cps_key=pki.cps.key,
                        cps_chain=[pki.cps.leaf.cert, *(s.cert for s in pki.cps.subs)],
                        mo_sub_ca=mo2.cert, mo_sub_ca_key=mo2.key,
                        mo_chain=[s.cert for s in pki.contract.subs], emaid=INSTALLED)
    csms.ocsp = OcspResponder(issuers=[(pki.mo_root.cert, pki.mo_root.key),
                                       *((s.cert, s.key) for s in pki.contract.subs)])
    if revoked:
        csms.ocsp.revoked.add(pki.contract.subs[-1].cert.serial_number)
    await csms.start()
    path = tmp_path / "station.toml"
    path.write_text(CONFIG.format(station=STATION_ID, d=d, url=csms.url,
                                  queue=tmp_path / "q.sqlite3"))
    # --cps-sim too: the [ocpp] source must take its place
    options = SeccOptions(config=path, address="127.0.0.1", tls_port=0, sdp=False, hal="sim",
                          sim_speedup=10.0, poll_interval=0.01, cps_sim=d)
    out = io.StringIO()
    ready, stop = asyncio.Event(), asyncio.Event()
    try:
        with contextlib.redirect_stdout(out):
            task = asyncio.create_task(run_secc(options, ready=ready, stop=stop))
            await asyncio.wait_for(ready.wait(), 20)
        m = re.search(r"TLS 1\.3 on port (\d+)", out.getvalue())
        assert m, out.getvalue()
        try:
            async with asyncio.timeout(30):
                while not csms.calls(STATION_ID, "StatusNotification"):
                    await asyncio.sleep(0.05)
            creds = PncCredentials(
                oem_provisioning_certificate=pki.oem_provisioning.leaf_der,
                oem_provisioning_sub_certificates=pki.oem_provisioning.sub_ders,
                oem_provisioning_key=pki.oem_provisioning.key,
                v2g_roots=(pki.v2g_root.cert,), install_certificate=True)
            scenario = fast_scenario("dc_pnc", pnc=creds, pnc_fallback_to_eim=False,
                                     max_loops=4)
            report: Any = await asyncio.wait_for(run_session(
                scenario, host="127.0.0.1", port=int(m[1]),
                ssl_context=make_ssl_context(d / "v2g_root.pem")), 60)
            assert report.extra["installed_emaid"] == INSTALLED  # the CSMS's, not the local
            assert INSTALLED != DEMO_INSTALLED_EMAID
            assert len(csms.calls(STATION_ID, "Get15118EVCertificate")) == 1
            (asked,) = csms.calls(STATION_ID, "Authorize")
            assert asked["id_token"] == {"id_token": INSTALLED, "type": "eMAID"}
            statuses = csms.calls(STATION_ID, "GetCertificateStatus")
            if revoked:  # leaf good, MO Sub-CA 2 good, Sub-CA 1 revoked: denied, no power
                assert not report.success
                assert len(statuses) == 3
            else:
                assert report.success, report.summary()
                assert report.extra["authorization"] == "PnC"
                assert len(statuses) == 3
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 20) == 0
    finally:
        await csms.stop()
