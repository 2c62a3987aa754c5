"""`evse demo --protocol iso2`: a -2 session end to end with the summary table."""

from __future__ import annotations

import io

import pytest

from simulators.demo import DemoOptions
from simulators.demo.iso2 import run_iso2_demo


@pytest.mark.parametrize("scenario", ["iso2_dc", "iso2_ac"])
async def test_iso2_demo_summary(scenario: str) -> None:
    out = io.StringIO()
    rc = await run_iso2_demo(DemoOptions(scenario=scenario, loops=20, loop_interval=0.02,
                                         quiet=True, protocol="iso2"), out)
    text = out.getvalue()
    assert rc == 0, text
    assert "urn:iso:15118:2:2013:MsgDef" in text and "OK (session stopped)" in text
    assert "bidirectional power transfer is ISO 15118-20 only" in text
    charged = next(line for line in text.splitlines() if "energy charged" in line)
    assert float(charged.split()[2]) > 0.0


def test_cli_demo_rejects_a_20_scenario_with_iso2(capsys: pytest.CaptureFixture[str]) -> None:
    from simulators.demo import main_demo

    assert main_demo(DemoOptions(scenario="dc_bpt_dynamic", protocol="iso2")) == 2
    assert "iso2_dc" in capsys.readouterr().err


def test_cli_parses_the_iso2_options() -> None:
    from evse.cli import build_parser

    ns = build_parser("ev").parse_args(
        ["ev", "--protocol", "iso2", "-s", "iso2_ac", "--host", "::1", "--port", "15118"])
    assert (ns.protocol, ns.scenario) == ("iso2", "iso2_ac")
    ns = build_parser("demo").parse_args(["demo", "--protocol", "iso2"])
    assert ns.protocol == "iso2"
