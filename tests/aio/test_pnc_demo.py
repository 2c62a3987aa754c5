"""`evse demo --pnc`: the SECC and the simulated EV in one process over mutual TLS 1.3 with
Plug & Charge; the summary shows the eMAID, the signature algorithm and the verification time,
and the exit code says whether the session was authorized by PnC."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from simulators.demo import DemoOptions, main_demo, run_demo
from simulators.demo.pnc import DEMO_INSTALLED_EMAID, PncDemo

SIGNATURES = {"secp521r1": "ECDSA secp521r1 + SHA-512 over", "ed448": "Ed448 + SHAKE256 over"}


def _options(**kw: object) -> DemoOptions:
    base: dict[str, object] = dict(scenario="dc_pnc", pnc=True, speedup=120.0, loops=4,
                                   loop_interval=0.02, quiet=True)
    base.update(kw)
    return DemoOptions(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
async def test_demo_pnc(algorithm: str, tmp_path: Path) -> None:
    out = io.StringIO()
    summary = tmp_path / "summary.json"
    code = await run_demo(_options(algorithm=algorithm, json_summary=summary), out)
    text = out.getvalue()
    assert code == 0, text
    assert "TLS 1.3 over loopback" in text
    assert re.search(r"authorization\s+Plug & Charge, eMAID DEEVSC00000001X", text), text
    assert f"PnC signature            {SIGNATURES[algorithm]}" in text
    assert re.search(r"PnC verification\s+[0-9.]+ ms \(contract chain \+ signature\)", text)
    assert re.search(r"TLS\s+TLSv1\.3 TLS_AES_256_GCM_SHA384, vehicle certificate "
                     r"WMIV1234567890ABCDEX", text), text
    assert "falling back" not in text
    data = json.loads(summary.read_text())
    assert data["success"]
    assert [(s["authorization"], s["emaid"]) for s in data["sessions"]] == [
        ("PnC", "DEEVSC00000001X")]


@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
async def test_demo_pnc_with_certificate_installation(algorithm: str) -> None:
    out = io.StringIO()
    code = await run_demo(_options(install_certificate=True, algorithm=algorithm), out)
    text = out.getvalue()
    assert code == 0, text
    assert f"eMAID {DEMO_INSTALLED_EMAID}" in text
    assert re.search(rf"certificate installation\s+contract {DEMO_INSTALLED_EMAID} issued by "
                     "the local CPS", text), text


def test_demo_pnc_option_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_demo(DemoOptions(install_certificate=True)) == 2
    assert "--install-certificate needs --pnc" in capsys.readouterr().err


def test_demo_does_not_count_eim_as_pnc(tmp_path: Path) -> None:
    demo = PncDemo.create(tmp_path, "ed448")
    report = SimpleNamespace(extra={"authorization": "PnC"})
    pnc = SimpleNamespace(authorization="PnC", emaid=demo.pki.emaid)
    eim = SimpleNamespace(authorization="EIM", emaid=None)
    assert demo.used_pnc(report, [pnc])
    assert not demo.used_pnc(report, [eim])
    assert not demo.used_pnc(SimpleNamespace(extra={}), [pnc])  # the EV fell back
    assert not demo.used_pnc(report, [SimpleNamespace(authorization="PnC", emaid="OTHER")])
    # the demo's backend grants verified PnC contracts only
    assert demo.authorize(SimpleNamespace(method="PnC", emaid="X"), "1")
    assert not demo.authorize(SimpleNamespace(method="EIM", emaid=None), "1")
    assert demo.config_changes()["auto_authorize"] is False
    assert demo.scenario(SimpleNamespace(replace=lambda **kw: kw))["pnc_fallback_to_eim"] is False
