"""A simulated car from the cable up: SLAC on the PLC interface, SDP, then the V2G session.

    python -m simulators.link_ev --interface plc0 --scenario dc_bpt_scheduled --plain

The pilot is the charger board's business (a test, `evse sim-hw`'s `plug`/`ready`
commands, or `--hal sim:plugged` drive it); this car pairs by SLAC over an AF_PACKET raw
socket on `interface` (root or CAP_NET_RAW: run it in the car's network namespace), finds the
SECC by SDP on that interface and runs the session. It prints one JSON line with the SLAC
result, the times and the session report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evse.aio.slac_link import FrameTransport, RawSocketTransport
from evse.link.slac_messages import mac_text
from simulators.slac_ev import EvSlacBehaviour, EvSlacFailed, EvSlacResult, ev_slac


@dataclass
class LinkEvResult:
    slac: EvSlacResult
    slac_s: float  # SLAC start -> match
    report: Any


async def plug_in_and_charge(interface: str, scenario: Any, *, tls: bool | None = False,
                             ca_file: str | None = None, slac: EvSlacBehaviour | None = None,
                             transport: FrameTransport | None = None,
                             sdp_retries: int = 20, slac_tries: int = 10) -> LinkEvResult:
    """SLAC (repeated while the charger does not answer: it may not be listening yet), SDP
    on `interface`, session."""
    from simulators.ev.client import run_session

    loop = asyncio.get_running_loop()
    port = transport if transport is not None else RawSocketTransport(interface)
    start = loop.time()
    try:
        for attempt in range(slac_tries):
            try:
                result = await ev_slac(port, slac or EvSlacBehaviour().scaled(5.0))
                break
            except EvSlacFailed:
                if attempt == slac_tries - 1:
                    raise
    finally:
        port.close()
    matched = loop.time()
    report = await run_session(scenario, interface=interface, tls=tls, ca_file=ca_file,
                               sdp_retries=sdp_retries)
    return LinkEvResult(result, matched - start, report)


def main(argv: Sequence[str] | None = None) -> int:
    from simulators.ev import get_scenario

    p = argparse.ArgumentParser(prog="python -m simulators.link_ev", description=__doc__)
    p.add_argument("--interface", required=True, help="the car's PLC interface")
    p.add_argument("--scenario", default="dc_bpt_scheduled")
    p.add_argument("--plain", action="store_true", help="plain TCP (the SECC must allow it)")
    p.add_argument("--ca", default=None, help="V2G root CA (PEM) for TLS")
    p.add_argument("--loop-interval", type=float, default=0.05)
    p.add_argument("--max-loops", type=int, default=20)
    p.add_argument("--no-atten-rsp", action="store_true",
                   help="misbehave: never answer CM_ATTEN_CHAR.IND")
    p.add_argument("--wrong-run-id", action="store_true",
                   help="misbehave: another RunID after the parameter exchange")
    p.add_argument("--slac-tries", type=int, default=10, help="SLAC attempts (default 10)")
    p.add_argument("--speedup", type=float, default=1.0, help="the charger's sim HAL speedup")
    p.add_argument("--slack", type=float, default=1.0, help="scale the EV's timeouts")
    ns = p.parse_args(argv)
    from simulators.ev import EvTimeouts

    scenario = get_scenario(ns.scenario).replace(
        loop_interval=ns.loop_interval, max_loops=ns.max_loops, speedup=ns.speedup,
        timeouts=EvTimeouts().scaled(ns.slack))
    slac = EvSlacBehaviour(answer_atten_char=not ns.no_atten_rsp,
                           wrong_run_id=ns.wrong_run_id).scaled(5.0)
    t0 = time.time()
    try:
        out = asyncio.run(plug_in_and_charge(ns.interface, scenario,
                                             tls=False if ns.plain else None, ca_file=ns.ca,
                                             slac=slac, slac_tries=ns.slac_tries))
    except EvSlacFailed as exc:
        print(json.dumps({"success": False, "reason": f"SLAC: {exc}"}), flush=True)
        return 3
    report = out.report
    print(json.dumps({
        "evse_mac": mac_text(out.slac.evse_mac), "nid": out.slac.nid.hex(),
        "slac_s": out.slac_s, "started": t0,
        "success": report.success, "reason": report.reason, "loops": report.loops,
        "protocol": report.protocol, "service_id": report.service_id,
    }), flush=True)
    return 0 if report.success else 1


if __name__ == "__main__":
    sys.exit(main())
