"""The simulators' `evse` subcommands, plugged into the `evse` CLI through the
`evse.commands` entry point group (pyproject.toml): `evse demo`, `evse ev`, `evse sim-hw`,
`evse fleet-sim`.

The charger itself (`evse.cli`) never imports this package; it finds these commands with
importlib.metadata. This module imports only argparse and logging at load time (`evse --help`
loads it to list the commands): each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoCommand:
    """`evse demo`: charger + simulated EV in one process over loopback."""

    help: str = "charger + simulated EV in one process over loopback"
    description: str = ("Charger (sim HAL) and simulated EV in one process over loopback, "
                        "sharing one battery: live progress, then a summary.")
    log_level: int = logging.WARNING

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--protocol", choices=("iso20", "iso2", "din"), default="iso20",
                       help="the standard the simulated EV speaks (default iso20; iso2: EIM "
                       "over TCP, scenarios iso2_*; din: DIN SPEC 70121 DC over TCP; "
                       "bidirectional power transfer is -20 only)")
        p.add_argument("--scenario", "-s",
                       help="EV scenario (default: dc_bpt_scheduled, charge + discharge; "
                       "dc_pnc with --pnc); `evse ev --list-scenarios` lists them")
        p.add_argument("--tls", action="store_true",
                       help="TLS 1.3 with a throw-away test PKI")
        p.add_argument("--speedup", type=float, default=60.0,
                       help="simulated (HAL) seconds per real second (default 60)")
        p.add_argument("--loops", type=int, help="charge-loop rounds (default 100 for BPT)")
        p.add_argument("--loop-interval", type=float, default=0.1,
                       help="real seconds between charge-loop requests (default 0.1)")
        p.add_argument("--progress-hz", type=float, default=4.0,
                       help="progress lines per second")
        p.add_argument("--no-progress", action="store_true", help="only the summary")
        p.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
        p.add_argument("--reports", type=Path, metavar="DIR",
                       help="write the session report (JSON + SVG, money summary) here "
                       "(default: evse-demo-reports in the temporary directory)")
        p.add_argument("--day", action="store_true",
                       help="an evening-to-morning V2G day with real day-ahead prices "
                       "(bundled), compressed to about a minute: planner, wear, V2H outage, "
                       "value report")
        p.add_argument("--day-seconds", type=float, default=60.0, metavar="S",
                       help="--day: real seconds for the whole stay (default 60)")
        p.add_argument("--pnc", action="store_true",
                       help="Plug & Charge over TLS 1.3 with a throw-away PnC test PKI (mutual "
                       "TLS; the EV must authorize with its contract, no fallback to EIM)")
        p.add_argument("--algorithm", choices=("secp521r1", "ed448"), default="secp521r1",
                       help="--pnc: key and signature algorithm of the test PKI")
        p.add_argument("--ocpp", action="store_true",
                       help="OCPP 2.1 to a CSMS simulator over a loopback WebSocket (Authorize, "
                       "TransactionEvents, charging profiles); the summary lists the messages")
        p.add_argument("--install-certificate", action="store_true",
                       help="--pnc: the EV has no contract and installs one from a local CPS "
                       "(CertificateInstallation) first; X448 key transport with ed448")

    def run(self, ns: argparse.Namespace) -> int:
        if ns.day:
            from simulators.demo.day import DayOptions, main_day

            return main_day(DayOptions(seconds=ns.day_seconds, reports=ns.reports,
                                       quiet=ns.no_progress))
        from simulators.demo import DEFAULT_SCENARIO, DemoOptions, main_demo

        return main_demo(DemoOptions(
            scenario=ns.scenario or ("dc_pnc" if ns.pnc else DEFAULT_SCENARIO), tls=ns.tls,
            speedup=ns.speedup, loops=ns.loops,
            loop_interval=ns.loop_interval, progress_hz=ns.progress_hz,
            quiet=ns.no_progress, json_summary=ns.json, reports=ns.reports,
            pnc=ns.pnc, algorithm=ns.algorithm, install_certificate=ns.install_certificate,
            protocol=ns.protocol, ocpp=ns.ocpp,
        ))


@dataclass(frozen=True)
class EvCommand:
    """`evse ev`: the simulated EV against a charger."""

    help: str = "run the simulated EV against a charger"
    description: str = ("The simulated EV: SDP on --interface (or --host/--port), TCP or TLS "
                        "1.3, one scenario; prints its session report.")
    log_level: int = logging.INFO

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        from simulators.ev.client import add_ev_arguments

        add_ev_arguments(p)

    def run(self, ns: argparse.Namespace) -> int:
        import asyncio

        from simulators.ev.client import main_ev

        try:
            return asyncio.run(main_ev(ns))
        except KeyboardInterrupt:
            return 130


@dataclass(frozen=True)
class SimHwCommand:
    """`evse sim-hw`: the simulated safety MCU (pty) and CAN power modules."""

    help: str = "simulated safety MCU (pty) and CAN power modules"
    description: str = ("Simulated safety MCU on a pty (symlinked to --pty-link) and "
                        "simulated bidirectional power modules on a python-can bus another "
                        "process reaches (udp_multicast), for `evse secc --hal serial:...,"
                        "can:...`; fault injection commands on stdin (`help`). See "
                        "docs/hardware.md.")
    log_level: int = logging.WARNING

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        from simulators.hw import add_arguments

        add_arguments(p)

    def run(self, ns: argparse.Namespace) -> int:
        from simulators.hw import main

        return main(ns=ns)


@dataclass(frozen=True)
class FleetSimCommand:
    """`evse fleet-sim N`: simulated stations behind one broker and the example aggregator."""

    help: str = "N simulated stations behind one MQTT broker, driven by an example aggregator"
    description: str = ("N simulated stations (charger + simulated car each) behind one MQTT "
                        "broker, spread over worker processes, and the example aggregator "
                        "making the fleet follow a grid power request. See docs/fleet.md.")
    log_level: int = logging.WARNING

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        from simulators.fleet.cli import add_arguments

        add_arguments(p)

    def run(self, ns: argparse.Namespace) -> int:
        from simulators.fleet.cli import main

        return main(ns)


demo = DemoCommand()
ev = EvCommand()
sim_hw = SimHwCommand()
fleet_sim = FleetSimCommand()
