"""`evse demo --ocpp`: the demo's charger talks OCPP 2.1 to the CSMS simulator; the summary
shows the messages exchanged and the transaction (also through the CLI parser)."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

from evse.cli import build_parser
from simulators.demo import DemoOptions, run_demo


async def test_demo_ocpp_summary_lists_the_messages(tmp_path: Path) -> None:
    out = io.StringIO()
    code = await asyncio.wait_for(run_demo(DemoOptions(
        loops=40, loop_interval=0.03, speedup=60.0, quiet=True, reports=tmp_path,
        ocpp=True), out), 90)
    text = out.getvalue()
    assert code == 0, text
    sent = re.search(r"OCPP 2\.1 station -> CSMS\s+(.*)", text)
    assert sent, text
    for action in ("BootNotification 1", "StatusNotification", "Authorize 1",
                   "TransactionEvent", "NotifyEVChargingNeeds 1"):
        assert action in sent[1], text
    assert re.search(r"OCPP transaction\s+Started\(EVDetected\)#0 > Updated\(Authorized\)#1"
                     r" > Ended\(ChargingStateChanged\)#\d+", text), text
    assert build_parser("demo").parse_args(["demo", "--ocpp"]).ocpp is True
