"""The `evse` command: run a charger, a simulated EV, or both in one process.

    evse secc --interface eth1 --pki /etc/evse/pki          # the charger (SECC), sim HAL
    evse ev --interface eth1 --scenario dc_bpt_scheduled    # the simulated EV (SDP + TLS)
    evse demo                                               # both, over loopback
    evse config check FILE                                  # validate a station config
    evse sim-hw --pty-link /tmp/evse-mcu                    # simulated MCU + CAN modules

Only argparse is imported at start (`evse --help` stays fast); each subcommand imports what
it needs when it runs. Asyncio programs live in evse.aio (app.py, demo.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

COMMANDS = ("secc", "ev", "demo", "config", "sim-hw")
DEFAULT_LEVELS = {"secc": logging.INFO, "ev": logging.INFO}  # others: WARNING


def _verbosity(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    # On subparsers the default must not overwrite what the top level parsed (`evse -v demo`).
    default = argparse.SUPPRESS if sub else 0
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="more logging (-v info, -vv debug)")
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS
                        if sub else False, help="only warnings and errors")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} out of range")
    return value


def _protocols(text: str) -> tuple[str, ...]:
    from evse.protocol.standards import check_protocols

    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    try:
        check_protocols(names)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def _window(text: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected T0,T1 in seconds, e.g. 60,120") from None
    if not 0 <= a < b:
        raise argparse.ArgumentTypeError("need 0 <= T0 < T1")
    return a, b


def _outage(text: str) -> tuple[float, float]:
    after, _, kw = text.partition(":")
    try:
        value = (float(after), float(kw) if kw else 3.0)
    except ValueError:
        raise argparse.ArgumentTypeError("expected AFTER_S[:HOME_KW], e.g. 60:3.5") from None
    if not (value[0] >= 0 and value[1] >= 0):
        raise argparse.ArgumentTypeError("AFTER_S and HOME_KW must be >= 0")
    return value


def _secc_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interface", "-i", help="network interface of the PLC modem: listen on its "
                   "IPv6 link-local address and answer SDP there")
    p.add_argument("--address", help="listen on this address instead (e.g. ::1, 127.0.0.1, "
                   "fe80::1%%eth1)")
    p.add_argument("--hal", help="HAL spec, every part assigned (default: from --config, else "
                   "'sim'), e.g. sim, serial:/dev/ttyUSB0,can:can0,sim or PART=NAME:TARGET "
                   "items such as meter=modbus-meter:tcp:10.0.0.7 (docs/hardware.md)")
    p.add_argument("--allow-simulated-parts", action="store_true",
                   help="accept a real board or power supply beside a SIMULATED isolation "
                   "monitor (test benches only; [hal] allow_simulated_parts in --config)")
    p.add_argument("--config", type=Path, help="station configuration file (TOML)")
    p.add_argument("--pki", type=Path, help="directory with secc_chain.pem (or secc.pem) and "
                   "secc.key (python -m certs.make_pki DIR or, with the PnC hierarchies, "
                   "python -m certs.pnc_pki DIR makes a test PKI)")
    p.add_argument("--allow-plain-tcp-iso20", action="store_true",
                   help="test benches only: accept ISO 15118-20 over plain TCP")
    p.add_argument("--protocols", type=_protocols, help="standards offered at "
                   "supportedAppProtocol, comma separated, among iso20, iso2, din (default: "
                   "[station] protocols, else iso20); the EV's priority picks among them")
    p.add_argument("--port", type=_port, help="plain TCP port (default 64110)")
    p.add_argument("--tls-port", type=_port, help="TLS port (default 64109)")
    p.add_argument("--connectors", type=int, help="number of connectors (sim HAL; default 1)")
    p.add_argument("--services", help="offered services, comma separated "
                   "(default DC,DC_BPT,AC,AC_BPT for sim)")
    p.add_argument("--control-modes", default="scheduled,dynamic",
                   help="offered control modes, comma separated (default scheduled,dynamic)")
    p.add_argument("--evse-id", help="EVSE ID (default from --config or DE*EVS*E0000001)")
    p.add_argument("--discharge-window", type=_window, metavar="T0,T1",
                   help="BPT: the schedule discharges from T0 to T1 s after ScheduleExchange")
    p.add_argument("--no-sdp", action="store_true", help="do not answer SDP")
    p.add_argument("--sdp-port", type=_port, default=15118, help="SDP UDP port (default 15118)")
    p.add_argument("--reports", type=Path, help="write a JSON + SVG report per session here")
    p.add_argument("--sim-speedup", type=float, default=1.0, metavar="X",
                   help="sim HAL only: run the simulated hardware X times faster")
    p.add_argument("--grid-outage", type=_outage, metavar="AFTER_S[:HOME_KW]",
                   help="SIL: the grid fails AFTER_S s after start; Dynamic BPT sessions then "
                   "supply a home load of HOME_KW (default 3) down to the reserve SOC (V2H)")
    adm = p.add_argument_group("admission: connections without a session (docs/config.md)")
    adm.add_argument("--tls-handshake-timeout", type=float, metavar="S",
                     help="close a TLS handshake not finished S s after accept (default 4)")
    adm.add_argument("--max-pending-handshakes", type=int, metavar="N",
                     help="pending TLS handshakes in total (default 64); per listener: "
                     "[network.admission] max_handshakes_per_listener (default 16)")
    adm.add_argument("--accept-rate", type=float, metavar="R",
                     help="accepted connections per second, sustained (default 200)")
    sup = p.add_mutually_exclusive_group()
    sup.add_argument("--supervisor", dest="supervise", action="store_true", default=None,
                     help="run each connector's HAL under the safety supervisor (the default "
                     "for every HAL but sim; [hal.supervisor] in --config)")
    sup.add_argument("--no-supervisor", dest="supervise", action="store_false",
                     help="no safety supervisor (test benches only)")
    p.add_argument("--tls-profile-best-effort", action="store_true", default=None,
                   help="serve TLS even when the ISO 15118-20 TLS profile (suites, groups, "
                   "signature algorithms, CA names, OCSP) cannot be applied completely; a "
                   "WARNING names the missing parts (default: no TLS listener then)")
    p.add_argument("--ocsp-response", type=Path, metavar="FILE",
                   help="DER OCSP response about the SECC leaf certificate: stapled when the EV "
                   "asks (status_request)")
    pnc = p.add_argument_group("Plug & Charge and mutual TLS (docs/pnc.md)")
    pnc.add_argument("--pnc-mo-roots", type=Path, metavar="FILE",
                     help="PEM bundle of the installed MO (eMSP) root certificates: offer Plug "
                     "& Charge (TLS only) and verify contracts against them")
    pnc.add_argument("--vehicle-roots", type=Path, metavar="FILE",
                     help="PEM bundle of the roots for vehicle certificates (OEM/V2G): request "
                     "the vehicle certificate in the TLS handshake (CERT_OPTIONAL: an EV "
                     "without one is accepted, one that does not verify is refused); a paused "
                     "session then resumes only with the same vehicle certificate")
    pnc.add_argument("--require-vehicle-cert", action="store_true",
                     help="with --vehicle-roots: refuse EVs without a vehicle certificate "
                     "(CERT_REQUIRED)")
    pnc.add_argument("--oem-roots", type=Path, metavar="FILE",
                     help="with --pnc-mo-roots: PEM OEM roots; the OEM provisioning chain of a "
                     "CertificateInstallationReq must lead to one of them")
    pnc.add_argument("--cps-sim", type=Path, metavar="DIR",
                     help="with --pnc-mo-roots: offer CertificateInstallation answered by a "
                     "local CPS simulator using the PKI in DIR (python -m certs.pnc_pki DIR; "
                     "test benches only)")


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", choices=("iso20", "iso2", "din"), default="iso20",
                   help="the standard the simulated EV speaks (default iso20; iso2: EIM over "
                   "TCP, scenarios iso2_*; din: DIN SPEC 70121 DC over TCP; bidirectional "
                   "power transfer is -20 only)")
    p.add_argument("--scenario", "-s",
                   help="EV scenario (default: dc_bpt_scheduled, charge + discharge; dc_pnc "
                   "with --pnc); `evse ev --list-scenarios` lists them")
    p.add_argument("--tls", action="store_true", help="TLS 1.3 with a throw-away test PKI")
    p.add_argument("--speedup", type=float, default=60.0,
                   help="simulated (HAL) seconds per real second (default 60)")
    p.add_argument("--loops", type=int, help="charge-loop rounds (default 100 for BPT)")
    p.add_argument("--loop-interval", type=float, default=0.1,
                   help="real seconds between charge-loop requests (default 0.1)")
    p.add_argument("--progress-hz", type=float, default=4.0, help="progress lines per second")
    p.add_argument("--no-progress", action="store_true", help="only the summary")
    p.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
    p.add_argument("--reports", type=Path, metavar="DIR",
                   help="write the session report (JSON + SVG, money summary) here "
                   "(default: evse-demo-reports in the temporary directory)")
    p.add_argument("--pnc", action="store_true",
                   help="Plug & Charge over TLS 1.3 with a throw-away PnC test PKI (mutual TLS; "
                   "the EV must authorize with its contract, no fallback to EIM)")
    p.add_argument("--algorithm", choices=("secp521r1", "ed448"), default="secp521r1",
                   help="--pnc: key and signature algorithm of the test PKI")
    p.add_argument("--ocpp", action="store_true",
                   help="OCPP 2.1 to a CSMS simulator over a loopback WebSocket (Authorize, "
                   "TransactionEvents, charging profiles); the summary lists the messages")
    p.add_argument("--install-certificate", action="store_true",
                   help="--pnc: the EV has no contract and installs one from a local CPS "
                   "(CertificateInstallation) first; X448 key transport with ed448")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; the `ev` options (from the EV simulator) only when `command` is ev."""
    parser = argparse.ArgumentParser(
        prog="evse", description="ISO 15118-20 charging station (SECC) with bidirectional "
        "power transfer, and its simulated EV.")
    _verbosity(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("secc", help="run the charger until SIGINT/SIGTERM",
                       description="Run the charger (SECC): TLS 1.3 (and/or plain TCP on test "
                       "benches) on the interface's link-local address, SDP, one controller "
                       "per connector. SIGINT/SIGTERM: safe state, then exit.")
    _verbosity(p, sub=True)
    _secc_arguments(p)
    p = sub.add_parser("ev", help="run the simulated EV against a charger",
                       description="The simulated EV: SDP on --interface (or --host/--port), "
                       "TCP or TLS 1.3, one scenario; prints its session report.")
    _verbosity(p, sub=True)
    if command == "ev":
        from simulators.ev.client import add_ev_arguments

        add_ev_arguments(p)
    p = sub.add_parser("demo", help="charger + simulated EV in one process over loopback",
                       description="Charger (sim HAL) and simulated EV in one process over "
                       "loopback, sharing one battery: live progress, then a summary.")
    _verbosity(p, sub=True)
    _demo_arguments(p)
    p = sub.add_parser("config", help="station configuration tools")
    _verbosity(p, sub=True)
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    check = csub.add_parser("check", help="validate a configuration file")
    check.add_argument("file", type=Path)
    check.add_argument("--check-files", action="store_true",
                       help="also require the TLS/MQTT files it names to exist")
    p = sub.add_parser("sim-hw", help="simulated safety MCU (pty) and CAN power modules",
                       description="Simulated safety MCU on a pty (symlinked to --pty-link) "
                       "and simulated bidirectional power modules on a python-can bus another "
                       "process reaches (udp_multicast), for `evse secc --hal serial:...,"
                       "can:...`; fault injection commands on stdin (`help`). See "
                       "docs/hardware.md.")
    _verbosity(p, sub=True)
    if command == "sim-hw":
        from simulators.hw import add_arguments

        add_arguments(p)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _setup_logging(command: str | None, verbose: int, quiet: bool) -> None:
    base = DEFAULT_LEVELS.get(command or "", logging.WARNING)
    level = logging.WARNING if quiet else max(logging.DEBUG, base - 10 * verbose)
    if command not in DEFAULT_LEVELS and verbose:
        level = logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        stream=sys.stderr)


def _config_check(ns: argparse.Namespace) -> int:
    from evse.config import check_config

    if ns.config_command != "check":
        print("usage: evse config check FILE", file=sys.stderr)
        return 2
    errors = check_config(ns.file, check_files=ns.check_files)
    for error in errors:
        print(f"{ns.file}: {error}")
    if not errors:
        print(f"{ns.file}: OK")
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(args)
    parser = build_parser(command)
    ns = parser.parse_args(args)
    if ns.command is None:
        parser.print_help()
        return 2
    _setup_logging(ns.command, ns.verbose, ns.quiet)
    if ns.command == "secc":
        from evse.aio.app import SeccOptions, main_secc

        services = None
        if ns.services:
            services = tuple(s.strip().upper() for s in ns.services.split(",") if s.strip())
        return main_secc(SeccOptions(
            interface=ns.interface, address=ns.address, hal=ns.hal, config=ns.config,
            allow_plain_tcp_iso20=ns.allow_plain_tcp_iso20, protocols=ns.protocols,
            port=ns.port, allow_simulated_parts=ns.allow_simulated_parts,
            tls_port=ns.tls_port, pki=ns.pki, connectors=ns.connectors, services=services,
            evse_id=ns.evse_id, discharge_window=ns.discharge_window, sdp=not ns.no_sdp,
            sdp_port=ns.sdp_port, reports=ns.reports, sim_speedup=ns.sim_speedup,
            control_modes=tuple(m.strip().upper() for m in ns.control_modes.split(",")
                                if m.strip()),
            pnc_mo_roots=ns.pnc_mo_roots, vehicle_roots=ns.vehicle_roots,
            require_vehicle_cert=ns.require_vehicle_cert, supervise=ns.supervise,
            oem_roots=ns.oem_roots, cps_sim=ns.cps_sim,
            tls_profile_best_effort=ns.tls_profile_best_effort, ocsp_response=ns.ocsp_response,
            extra={"grid_outage": ns.grid_outage} if ns.grid_outage else {},
            admission={k: v for k, v in (
                ("handshake_timeout", ns.tls_handshake_timeout),
                ("max_handshakes", ns.max_pending_handshakes),
                ("accept_rate", ns.accept_rate)) if v is not None},
        ))
    if ns.command == "ev":
        from evse.aio.app import main_ev

        return main_ev(ns)
    if ns.command == "demo":
        from evse.aio.demo import DEFAULT_SCENARIO, DemoOptions, main_demo

        return main_demo(DemoOptions(
            scenario=ns.scenario or ("dc_pnc" if ns.pnc else DEFAULT_SCENARIO), tls=ns.tls,
            speedup=ns.speedup, loops=ns.loops,
            loop_interval=ns.loop_interval, progress_hz=ns.progress_hz,
            quiet=ns.no_progress, json_summary=ns.json, reports=ns.reports,
            pnc=ns.pnc, algorithm=ns.algorithm, install_certificate=ns.install_certificate,
            protocol=ns.protocol, ocpp=ns.ocpp,
        ))
    if ns.command == "sim-hw":
        from simulators.hw import main as sim_hw_main

        return sim_hw_main(ns=ns)
    return _config_check(ns)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
