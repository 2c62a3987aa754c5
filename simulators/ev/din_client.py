"""`evse ev --protocol din`: the simulated DIN EV over SDP/TCP (DIN has no TLS).

The asyncio driving is `simulators.ev.client.run_session` with a `DinEvcc` (same sans-IO
interface as the -20 `Evcc`); only the scenario options differ.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from simulators.ev.din_evcc import DIN_SCENARIOS, DinEvcc, DinScenario, get_din_scenario
from simulators.ev.scenarios import BatteryParams


def din_scenario_from_args(ns: argparse.Namespace) -> DinScenario:
    """The DIN scenario named by --scenario (the -20 default "dc" means "din_dc") with the
    generic options applied."""
    name = ns.scenario if ns.scenario in DIN_SCENARIOS else "din_dc"
    if ns.scenario not in DIN_SCENARIOS and ns.scenario != "dc":
        raise ValueError(f"{ns.scenario!r} is not a DIN scenario "
                         f"(DIN: {', '.join(DIN_SCENARIOS)})")
    changes: dict[str, Any] = {}
    if ns.loops is not None:
        changes["loops"] = ns.loops
    if ns.loop_interval is not None:
        changes["loop_interval"] = ns.loop_interval
    if ns.loop_sim_seconds is not None:
        changes["loop_sim_seconds"] = ns.loop_sim_seconds
    if ns.evcc_id:
        changes["evcc_id"] = bytes.fromhex(ns.evcc_id)
    battery: BatteryParams = get_din_scenario(name).battery
    if ns.soc is not None:
        battery = _replace(battery, soc=ns.soc / 100.0)
    if ns.capacity is not None:
        battery = _replace(battery, capacity_kwh=ns.capacity)
    changes["battery"] = battery
    if ns.timeout_scale != 1.0:
        s = get_din_scenario(name)
        changes.update(msg_timeout=s.msg_timeout * ns.timeout_scale,
                       loop_timeout=s.loop_timeout * ns.timeout_scale)
    return get_din_scenario(name, **changes)


def _replace(battery: BatteryParams, **changes: Any) -> BatteryParams:
    import dataclasses

    return dataclasses.replace(battery, **changes)


async def main_din_ev(ns: argparse.Namespace) -> int:
    """Run one DIN scenario, print the report; 0 ok, 1 session failed, 2 not run."""
    from simulators.ev.client import EvClientError, run_session

    if ns.tls:
        print("evse ev: DIN SPEC 70121 runs over plain TCP only (no --tls)", file=sys.stderr)
        return 2
    try:
        scenario = din_scenario_from_args(ns)
    except ValueError as exc:
        print(f"evse ev: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    evcc = DinEvcc(scenario)
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, evcc.request_stop, "user_stop")
            installed.append(sig)
    try:
        report = await run_session(
            scenario,  # type: ignore[arg-type]  # only its name is read
            host=ns.host, port=ns.port, interface=ns.interface, tls=False,
            evcc=evcc,  # type: ignore[arg-type]  # DinEvcc has Evcc's interface
            connect_timeout=ns.connect_timeout,
        )
    except (EvClientError, OSError, ssl.SSLError) as exc:
        print(f"evse ev: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    print(report.summary())
    if ns.json:
        text = json.dumps(report.to_dict(), indent=2, default=str)
        if ns.json == "-":
            print(text)
        else:
            Path(ns.json).write_text(text + "\n")
    return 0 if report.success else 1
