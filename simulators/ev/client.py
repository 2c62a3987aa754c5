"""asyncio runner of the simulated EV: SDP, TCP/TLS, and the sans-IO `Evcc` in between.

    report = await run_session(get_scenario("dc"), host="::1", port=50000)
    report = await run_session(get_scenario("dc_bpt_scheduled"), interface="eth1",
                               ca_file="v2g_root_ca.pem")          # SDP + TLS 1.3

`run_session` discovers the SECC with SDP (UDP multicast to ff02::1%IF port 15118) unless
`host` and `port` are given, connects over TCP or TLS 1.3 (TLS when the SDP response says so
or `tls=True`), pumps bytes between the socket and the EVCC, drives its timers with
`loop.time()`, reconnects after a pause, and returns the `SessionReport`.

The CLI seam used by `evse ev`: `add_ev_arguments(parser)`, `async main_ev(ns) -> int` and
`run_ev(argv) -> int` (0 success, 1 the session failed, 2 could not run it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import signal
import socket
import ssl
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evse.protocol.sdp import (
    SDP_MULTICAST_ADDRESS,
    SDP_PORT,
    SdpError,
    SdpRequest,
    SdpResponse,
    Security,
    parse_response,
)
from simulators.battery import EvBattery
from simulators.ev.battery_link import BatteryLink
from simulators.ev.evcc import Evcc, Failed, Finished, Reconnect, SendData
from simulators.ev.report import SessionReport
from simulators.ev.scenarios import (
    BatteryParams,
    ControlMode,
    ScenarioConfig,
    get_scenario,
    scenario_names,
)

log = logging.getLogger("simulators.ev")

SDP_TIMEOUT = 0.25  # V2G_EVCC_SDP_Timeout per request (ISO 15118-20 / -2)
SDP_RETRIES = 50  # the EV gives up after this many requests
READ_SIZE = 65536


class EvClientError(Exception):
    """The EV could not start a session (no SECC found, TLS set-up impossible, ...)."""


# -- SDP -------------------------------------------------------------------------------------


class _SdpProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(data)


async def discover_secc(
    interface: str | None,
    *,
    security: Security = Security.TLS,
    timeout: float = SDP_TIMEOUT,
    retries: int = SDP_RETRIES,
    address: str | None = None,
    port: int = SDP_PORT,
) -> SdpResponse:
    """Multicast SDP requests on `interface` until an SECC answers.

    `address` replaces the ff02::1 multicast group (tests send to ::1)."""
    loop = asyncio.get_running_loop()
    scope = socket.if_nametoindex(interface) if interface else 0
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        if scope:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, scope)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        sock.bind(("::", 0, 0, scope))
    except OSError:
        sock.close()
        raise
    transport, proto = await loop.create_datagram_endpoint(_SdpProtocol, sock=sock)
    target = (address or str(SDP_MULTICAST_ADDRESS), port, 0, scope)
    request = SdpRequest(security).encode()
    try:
        for attempt in range(retries):
            transport.sendto(request, target)
            deadline = loop.time() + timeout
            while (left := deadline - loop.time()) > 0:
                try:
                    datagram = await asyncio.wait_for(proto.queue.get(), left)
                except TimeoutError:
                    break
                try:
                    response = parse_response(datagram)
                except SdpError as exc:
                    log.debug("ignoring bad SDP response: %s", exc)
                    continue
                log.info("SDP: SECC at [%s]:%d security %s (attempt %d)",
                         response.address, response.port, response.security.name, attempt + 1)
                return response
    finally:
        transport.close()
    raise EvClientError(f"no SDP response after {retries} requests")


# -- TLS -------------------------------------------------------------------------------------


def make_ssl_context(
    ca_file: str | Path | None,
    *,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    check_hostname: bool = False,
) -> ssl.SSLContext:
    """A TLS 1.3-only client context trusting the V2G root `ca_file`.

    The EV reaches the SECC by a (link-local) address, not by the name in its certificate, so
    the hostname is not checked by default; the chain to the V2G root is. `cert_file` /
    `key_file` add the vehicle certificate for mutual authentication.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ca_file is not None:
        ctx.load_verify_locations(str(ca_file))
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    return ctx


# -- the session runner ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    ssl: ssl.SSLContext | None = None
    server_hostname: str | None = None


async def _resolve_endpoint(
    *,
    host: str | None,
    port: int | None,
    interface: str | None,
    tls: bool | None,
    ssl_context: ssl.SSLContext | None,
    ca_file: str | Path | None,
    cert_file: str | Path | None,
    key_file: str | Path | None,
    server_hostname: str | None,
    sdp_address: str | None,
    sdp_port: int,
    sdp_retries: int,
) -> Endpoint:
    # host/port given: TLS when asked, or when a CA/context says we mean to verify the SECC.
    use_tls = tls if tls is not None else (ssl_context is not None or ca_file is not None)
    if host is None or port is None:
        want = Security.NONE if tls is False else Security.TLS
        res = await discover_secc(
            interface, security=want, address=sdp_address, port=sdp_port, retries=sdp_retries
        )
        offered_tls = res.security is Security.TLS
        if tls is True and not offered_tls:
            raise EvClientError("TLS required but the SECC offers only plain TCP")
        if tls is False and offered_tls:
            raise EvClientError("plain TCP required but the SECC offers only TLS")
        use_tls = offered_tls
        addr = res.address
        host = str(addr)
        if addr.is_link_local and interface:
            host = f"{addr}%{interface}"
        port = res.port
    if use_tls:
        if ssl_context is None:
            if ca_file is None:
                raise EvClientError("TLS needs a V2G root CA (--ca) to verify the SECC")
            ssl_context = make_ssl_context(ca_file, cert_file=cert_file, key_file=key_file)
        return Endpoint(host, port, ssl_context, server_hostname or _sni(host))
    return Endpoint(host, port)


def _sni(host: str) -> str | None:
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host.split("%")[0])
        return None  # no SNI for an address
    return host


async def _connect(
    ep: Endpoint, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kwargs: dict[str, Any] = {}
    if ep.ssl is not None:
        kwargs = {"ssl": ep.ssl, "server_hostname": ep.server_hostname or ""}
    return await asyncio.wait_for(asyncio.open_connection(ep.host, ep.port, **kwargs), timeout)


async def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


async def drive_evcc(
    evcc: Evcc,
    endpoint: Endpoint,
    *,
    connect_timeout: float = 5.0,
) -> SessionReport:
    """Run `evcc` over real connections to `endpoint` until it finishes or fails."""
    loop = asyncio.get_running_loop()
    writer: asyncio.StreamWriter | None = None
    try:
        try:
            reader, writer = await _connect(endpoint, connect_timeout)
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            return _final(evcc.abort(f"cannot connect to {endpoint.host}:{endpoint.port}: "
                                     f"{exc!r}", loop.time()), evcc, loop)
        writer.write(evcc.start(loop.time()))
        while True:
            for effect in await _next_effects(evcc, reader, loop):
                if isinstance(effect, SendData):
                    log.debug("-> %s (%d bytes)", effect.message, len(effect.data))
                    writer.write(effect.data)
                    try:
                        await writer.drain()
                    except (OSError, ssl.SSLError):
                        return _final(evcc.connection_lost(loop.time()), evcc, loop)
                elif isinstance(effect, Reconnect):
                    log.info("session paused; reconnecting in %.2f s", effect.delay)
                    await _close(writer)
                    writer = None
                    await asyncio.sleep(effect.delay)
                    try:
                        reader, writer = await _connect(endpoint, connect_timeout)
                    except (TimeoutError, OSError, ssl.SSLError) as exc:
                        return _final(evcc.abort(f"cannot reconnect: {exc!r}", loop.time()),
                                      evcc, loop)
                    writer.write(evcc.start(loop.time()))
                elif isinstance(effect, (Finished, Failed)):
                    return effect.report
    except asyncio.CancelledError:
        evcc.abort("cancelled", loop.time())
        raise
    finally:
        await _close(writer)


async def _next_effects(evcc: Evcc, reader: asyncio.StreamReader,
                        loop: asyncio.AbstractEventLoop) -> list[Any]:
    """What the EVCC does next: on data received, on its deadline, or on a lost connection."""
    deadline = evcc.next_deadline()
    timeout = None if deadline is None else max(0.0, deadline - loop.time())
    try:
        data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
    except TimeoutError:
        return evcc.handle_timeout(loop.time())
    except (OSError, ssl.SSLError) as exc:
        log.info("connection error: %r", exc)
        return evcc.connection_lost(loop.time())
    now = loop.time()
    return evcc.receive_data(data, now) if data else evcc.connection_lost(now)


def _final(effects: list[Any], evcc: Evcc, loop: asyncio.AbstractEventLoop) -> SessionReport:
    for e in effects:
        if isinstance(e, (Finished, Failed)):
            return e.report
    return evcc.report(loop.time())


async def run_session(
    scenario: ScenarioConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    interface: str | None = None,
    tls: bool | None = None,
    ssl_context: ssl.SSLContext | None = None,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    server_hostname: str | None = None,
    battery: BatteryLink | EvBattery | None = None,
    evcc: Evcc | None = None,
    connect_timeout: float = 5.0,
    sdp_address: str | None = None,
    sdp_port: int = SDP_PORT,
    sdp_retries: int = SDP_RETRIES,
) -> SessionReport:
    """One EV session against an SECC; see the module docstring.

    `tls`: None = as SDP says (with host/port: TLS if `ca_file`/`ssl_context` is given, else
    plain TCP), True/False = force. After a pause the EV reconnects to the same endpoint.
    Raises `EvClientError` when no session could be started (no SDP answer, no CA for TLS).
    """
    loop = asyncio.get_running_loop()
    endpoint = await _resolve_endpoint(
        host=host, port=port, interface=interface, tls=tls, ssl_context=ssl_context,
        ca_file=ca_file, cert_file=cert_file, key_file=key_file,
        server_hostname=server_hostname, sdp_address=sdp_address, sdp_port=sdp_port,
        sdp_retries=sdp_retries,
    )
    if evcc is None:
        evcc = Evcc(scenario, battery=battery, epoch_offset=time.time() - loop.time())
    log.info("EV scenario %s -> %s:%d (%s)", scenario.name, endpoint.host, endpoint.port,
             "TLS" if endpoint.ssl else "TCP")
    return await drive_evcc(evcc, endpoint, connect_timeout=connect_timeout)


# -- CLI -------------------------------------------------------------------------------------


def add_ev_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of `evse ev` (the simulated EV)."""
    parser.add_argument("--interface", "-i", help="network interface for SDP (link-local IPv6)")
    from simulators.ev.din_evcc import DIN_SCENARIOS
    from simulators.ev.iso2_evcc import ISO2_SCENARIOS

    parser.add_argument("--protocol", default="iso20", choices=("iso20", "iso2", "din"),
                        help="the standard the EV offers at supportedAppProtocol (default "
                        "iso20; iso2: scenarios iso2_*, EIM over plain TCP, Plug & Charge "
                        "(iso2_*pnc*) over TLS 1.2 with --ca and --oem-prov-cert/--oem-prov-key "
                        "(and --contract-cert/--contract-key for an installed contract); din: "
                        "DIN SPEC 70121 DC over plain TCP, scenarios din_*)")
    parser.add_argument("--scenario", "-s", default="dc",
                        choices=[*scenario_names(), *ISO2_SCENARIOS, *DIN_SCENARIOS],
                        help="EV scenario (default: dc; with --protocol iso2: iso2_dc, with "
                        "--protocol din: din_dc)")
    parser.add_argument("--host", help="SECC address: skip SDP (needs --port)")
    parser.add_argument("--port", type=int, help="SECC TCP port: skip SDP (needs --host)")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--tls", dest="tls", action="store_true", default=None,
                     help="require TLS 1.3")
    tls.add_argument("--no-tls", dest="tls", action="store_false", help="require plain TCP")
    parser.add_argument("--ca", help="V2G root CA certificate (PEM) that must sign the SECC")
    parser.add_argument("--cert", help="vehicle certificate chain (PEM) for mutual TLS")
    parser.add_argument("--key", help="private key of --cert")
    parser.add_argument("--server-name", help="expected SECC name for SNI")
    parser.add_argument("--control-mode", choices=[m.value for m in ControlMode],
                        help="override the scenario's control mode")
    parser.add_argument("--loops", type=int, help="maximum charge-loop rounds")
    parser.add_argument("--duration", type=float, help="maximum simulated charge-loop seconds")
    parser.add_argument("--soc", type=float, help="initial SOC in percent")
    parser.add_argument("--target-soc", type=float, help="target SOC in percent")
    parser.add_argument("--capacity", type=float, help="battery capacity in kWh")
    parser.add_argument("--speedup", type=float, help="simulated seconds per real second")
    parser.add_argument("--loop-sim-seconds", type=float,
                        help="simulated seconds per charge-loop round (overrides --speedup)")
    parser.add_argument("--loop-interval", type=float,
                        help="real seconds between ChargeLoopReqs (default 0.1)")
    parser.add_argument("--evcc-id", help="EVCCID sent in SessionSetupReq")
    parser.add_argument("--random-session-id", action="store_true",
                        help="non-zero random SessionID in the first SessionSetupReq")
    parser.add_argument("--timeout-scale", type=float, default=1.0,
                        help="multiply every EV-side timeout (slow SECCs, debugging)")
    parser.add_argument("--connect-timeout", type=float, default=5.0)
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON ('-': stdout)")
    parser.add_argument("--list-scenarios", action="store_true",
                        help="print the scenarios and exit")
    pnc = parser.add_argument_group("Plug & Charge (any of these selects PnC authorization)")
    pnc.add_argument("--contract-cert", help="contract certificate chain (PEM: leaf, then the "
                     "MO Sub-CAs)")
    pnc.add_argument("--contract-key", help="private key of --contract-cert (PEM)")
    pnc.add_argument("--oem-prov-cert", help="OEM provisioning certificate chain (PEM) for "
                     "CertificateInstallation")
    pnc.add_argument("--oem-prov-key", help="private key of --oem-prov-cert (PEM)")
    pnc.add_argument("--install-certificate", action="store_true",
                     help="ask for a contract via CertificateInstallation when offered")
    pnc.add_argument("--pnc-strict", action="store_true",
                     help="PnC only: stop instead of falling back to EIM when the SECC does not "
                     "offer PnC or no contract is available")
    pnc.add_argument("--no-metering-confirmation", dest="metering_confirmation",
                     action="store_false",
                     help="do not answer EVSENotification=MeteringConfirmation")
    return parser


def _pnc_from_args(ns: argparse.Namespace) -> Any:
    """PncCredentials from the Plug & Charge options, None when none is given."""
    names = ("contract_cert", "contract_key", "oem_prov_cert", "oem_prov_key")
    files = {n: getattr(ns, n, None) for n in names}
    if not any(files.values()) and not getattr(ns, "install_certificate", False):
        return None
    from simulators.ev.pnc import PncCredentials

    data = {n: Path(f).read_bytes() if f else None for n, f in files.items()}
    ca = getattr(ns, "ca", None)
    return PncCredentials.from_pem(
        data["contract_cert"],
        data["contract_key"],
        oem_provisioning_chain=data["oem_prov_cert"],
        oem_provisioning_key=data["oem_prov_key"],
        v2g_roots=Path(ca).read_bytes() if ca else None,
        install_certificate=bool(getattr(ns, "install_certificate", False)),
    )


# Options that override a scenario field as given: (argument, field).
_FIELD_OPTIONS = (("loops", "max_loops"), ("duration", "max_duration"),
                  ("target_soc", "target_soc"), ("speedup", "speedup"),
                  ("loop_sim_seconds", "loop_sim_seconds"), ("loop_interval", "loop_interval"))


def scenario_from_args(ns: argparse.Namespace) -> ScenarioConfig:
    cfg = get_scenario(ns.scenario)
    changes: dict[str, Any] = {field: getattr(ns, arg) for arg, field in _FIELD_OPTIONS
                               if getattr(ns, arg) is not None}
    if ns.control_mode:
        changes["control_mode"] = ControlMode(ns.control_mode)
    if ns.evcc_id:
        changes["evcc_id"] = ns.evcc_id
    if ns.random_session_id:
        changes["zero_session_id"] = False
    battery: BatteryParams = cfg.battery
    if ns.soc is not None:
        battery = dataclasses.replace(battery, soc=ns.soc / 100.0)
    if ns.capacity is not None:
        battery = dataclasses.replace(battery, capacity_kwh=ns.capacity)
    if battery is not cfg.battery:
        changes["battery"] = battery
    if ns.timeout_scale != 1.0:
        changes["timeouts"] = cfg.timeouts.scaled(ns.timeout_scale)
    changes.update(_pnc_changes(ns, cfg))
    return cfg.replace(**changes)


def _pnc_changes(ns: argparse.Namespace, cfg: ScenarioConfig) -> dict[str, Any]:
    """The scenario fields the Plug & Charge options set."""
    changes: dict[str, Any] = {}
    pnc = _pnc_from_args(ns)
    if pnc is not None:
        changes.update(authorization="PnC", pnc=pnc)
    if getattr(ns, "pnc_strict", False):
        if cfg.authorization != "PnC" and pnc is None:
            raise ValueError("--pnc-strict needs PnC credentials (--contract-cert/--contract-key "
                             "or --oem-prov-cert/--oem-prov-key --install-certificate) or a "
                             "PnC scenario")
        changes.update(authorization="PnC", pnc_fallback_to_eim=False)
    if not getattr(ns, "metering_confirmation", True):
        changes["pnc_metering_confirmation"] = False
    return changes


def _print_scenarios() -> None:
    from simulators.ev.din_evcc import DIN_SCENARIOS
    from simulators.ev.scenarios import SCENARIOS

    for name, cfg in SCENARIOS.items():
        print(f"{name:18} {cfg.description}")
    for name in DIN_SCENARIOS:
        print(f"{name:18} DIN SPEC 70121 DC (--protocol din)")


def _endpoint_error(ns: argparse.Namespace) -> str | None:
    if (ns.host is None) != (ns.port is None):
        return "--host and --port go together"
    if ns.host is None and not ns.interface:
        return "give --interface for SDP, or --host and --port"
    return None


@contextlib.contextmanager
def _stop_on_signals(evcc: Evcc) -> Iterator[None]:
    """SIGINT/SIGTERM: the first ends the session cleanly, the next cancels the caller."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    stops = 0

    def on_signal() -> None:
        nonlocal stops
        stops += 1
        if stops == 1:
            log.warning("stop requested: ending the session cleanly (again to abort)")
            evcc.request_stop("user_stop")
        elif task is not None:
            task.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _write_json(report: SessionReport, dest: str) -> None:
    text = json.dumps(report.to_dict(), indent=2, default=str)
    if dest == "-":
        print(text)
    else:
        Path(dest).write_text(text + "\n")


async def main_ev(ns: argparse.Namespace) -> int:
    """`evse ev`: run one scenario, print the report; 0 ok, 1 session failed, 2 not run."""
    if getattr(ns, "protocol", "iso20") == "iso2":
        from simulators.ev.iso2_client import main_iso2_ev

        return await main_iso2_ev(ns)
    if getattr(ns, "list_scenarios", False):
        _print_scenarios()
        return 0
    error = _endpoint_error(ns)
    if error is not None:
        print(f"evse ev: {error}", file=sys.stderr)
        return 2
    if getattr(ns, "protocol", "iso20") == "din":
        from simulators.ev.din_client import main_din_ev

        return await main_din_ev(ns)
    try:
        scenario = scenario_from_args(ns)
    except (ValueError, OSError) as exc:
        print(f"evse ev: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    evcc = Evcc(scenario, epoch_offset=time.time() - loop.time())
    with _stop_on_signals(evcc):
        try:
            report = await run_session(
                scenario,
                host=ns.host,
                port=ns.port,
                interface=ns.interface,
                tls=ns.tls,
                ca_file=ns.ca,
                cert_file=ns.cert,
                key_file=ns.key,
                server_hostname=ns.server_name,
                evcc=evcc,
                connect_timeout=ns.connect_timeout,
            )
        except (EvClientError, OSError, ssl.SSLError) as exc:
            print(f"evse ev: {exc}", file=sys.stderr)
            return 2
        except asyncio.CancelledError:
            report = evcc.report(loop.time())
    print(report.summary())
    if ns.json:
        _write_json(report, ns.json)
    return 0 if report.success else 1


def run_ev(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` with `add_ev_arguments` and run `main_ev`."""
    parser = add_ev_arguments(argparse.ArgumentParser(prog="evse ev", description=__doc__))
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(main_ev(ns))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_ev())
