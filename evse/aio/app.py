"""`evse secc` and `evse ev` as asyncio programs (the CLI parses, this module runs).

`run_secc(options)` builds the station (HAL backends, one controller per connector), the
SECC configuration (limits no higher than what the power supply can do), TLS and SDP,
serves until SIGINT/SIGTERM, then ends every session with the safe state and closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("evse.secc")

ALL_SERVICES = ("DC", "DC_BPT", "AC", "AC_BPT")


@dataclass
class SeccOptions:
    interface: str | None = None
    address: str | None = None
    hal: str | None = None  # backend spec; None: from the config file or "sim"
    config: Path | None = None
    allow_plain_tcp_iso20: bool = False
    port: int | None = None  # plain TCP
    tls_port: int | None = None
    pki: Path | None = None
    connectors: int | None = None
    services: tuple[str, ...] | None = None
    control_modes: tuple[str, ...] = ("SCHEDULED", "DYNAMIC")
    evse_id: str | None = None
    discharge_window: tuple[int, int] | None = None
    sdp: bool = True
    sdp_port: int = 15118
    poll_interval: float = 0.025
    sim_speedup: float = 1.0  # HAL clock multiplier (simulated hardware only)
    reports: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Safety supervisor (evse/aio/supervised.py): None = as [hal.supervisor] says, else on
    # unless every backend is sim; options are hal.supervisor.SafetySupervisor's
    supervise: bool | None = None
    supervisor_options: dict[str, Any] = field(default_factory=dict)
    hal_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per backend name
    # Plug & Charge / mutual TLS (docs/pnc.md); None: from the config file's [tls]
    pnc_mo_roots: Path | None = None  # PEM MO roots: offer PnC (TLS only)
    vehicle_roots: Path | None = None  # PEM roots for the vehicle certificate
    require_vehicle_cert: bool = False  # CERT_REQUIRED instead of CERT_OPTIONAL
    oem_roots: Path | None = None  # PEM OEM roots: check CertificateInstallation's chain
    cps_sim: Path | None = None  # certs.pnc_pki directory: local CPS (test benches)


class SetupError(Exception):
    """The charger cannot start with these options (printed, exit code 2)."""


def supply_limits(backend: Any, configured: Any = None) -> Any:
    """EvseLimits no higher than the power supply's capabilities (and the configured ones)."""
    from evse.protocol.limits import EvseLimits

    caps = backend.power_supply.capabilities
    limits = EvseLimits(
        max_charge_power=caps.max_charge_power,
        max_charge_current=caps.max_charge_current,
        max_voltage=caps.max_voltage,
        min_voltage=caps.min_voltage,
        max_discharge_power=caps.max_discharge_power if caps.bidirectional else 0.0,
        max_discharge_current=caps.max_discharge_current if caps.bidirectional else 0.0,
    )
    if configured is None:
        return limits
    return EvseLimits(
        max_charge_power=min(limits.max_charge_power, configured.max_charge_power),
        max_charge_current=min(limits.max_charge_current, configured.max_charge_current),
        max_voltage=min(limits.max_voltage, configured.max_voltage),
        min_voltage=max(limits.min_voltage, configured.min_voltage),
        max_discharge_power=min(limits.max_discharge_power, configured.max_discharge_power),
        max_discharge_current=min(limits.max_discharge_current,
                                  configured.max_discharge_current),
    )


def _create_backend(spec: str, options: dict[str, dict[str, Any]]) -> Any:
    from hal import registry

    from_spec = getattr(registry, "create_backend_from_spec", None)
    if from_spec is not None:
        return from_spec(spec, options)
    name = spec.split(":", 1)[0]
    return registry.create_backend(name, **options.get(name, {}))


def build_station(options: SeccOptions, station_cfg: Any = None) -> tuple[Any, Any]:
    """(Station, SeccConfig) for `evse secc`."""
    from evse.aio.supervised import station_for_secc
    from evse.energy.schedule import DefaultScheduleProvider
    from evse.protocol.config import ControlMode, SeccConfig, ServiceId

    spec = options.hal
    backend_options: dict[str, dict[str, Any]] = {}
    if spec is None and station_cfg is not None:
        parts = []
        for b in station_cfg.hal.backends:
            parts.append(b.name if b.target is None else f"{b.name}:{b.target}")
            if b.options:
                backend_options[b.name] = dict(b.options)
        spec = ",".join(parts)
    spec = spec or "sim"
    for name, opts in options.hal_options.items():
        backend_options.setdefault(name, {}).update(opts)
    # An EV simulator elsewhere steps its own battery: the sim's battery model closes its
    # contactors itself, so current flows as soon as ours close.
    backend_options.setdefault("sim", {}).setdefault("ev_contactor_closed", True)
    n = options.connectors
    ids: list[str] | None = None
    if station_cfg is not None and n is None:
        ids = [c.id for c in station_cfg.connectors] or None
        n = len(ids) if ids else None
    n = n or 1
    if n > 1 and any(part.split(":")[0] != "sim" for part in spec.split(",")):
        raise SetupError("several connectors need one HAL each: only the sim HAL can be "
                         "repeated (--connectors)")
    try:
        backends = [_create_backend(spec, backend_options) for _ in range(n)]
    except Exception as exc:
        raise SetupError(f"cannot create the HAL backend {spec!r}: {exc}") from exc
    if options.sim_speedup != 1.0 and spec != "sim":
        raise SetupError("--sim-speedup is for the simulated HAL only")
    configured = station_cfg.limits.to_evse_limits() if station_cfg is not None else None
    limits = supply_limits(backends[0], configured)
    try:
        station = station_for_secc(
            spec, backends, limits=limits, ids=ids, speedup=options.sim_speedup,
            supervise_flag=options.supervise, supervisor_options=options.supervisor_options,
            config=station_cfg.hal.supervisor if station_cfg is not None else None)
    except (TypeError, ValueError) as exc:
        raise SetupError(f"cannot set up the safety supervisor: {exc}") from exc
    if options.services is not None:
        services = options.services
    elif station_cfg is not None and station_cfg.connectors:
        services = tuple(dict.fromkeys(s for c in station_cfg.connectors for s in c.services))
    else:
        services = ALL_SERVICES if spec == "sim" else ("DC", "DC_BPT")
    if not limits.bidirectional:
        services = tuple(s for s in services if not s.endswith("_BPT"))
    try:
        service_ids = tuple(ServiceId[s] for s in services)
    except KeyError as exc:
        raise SetupError(f"unknown service {exc.args[0]!r} (use {', '.join(ALL_SERVICES)})") \
            from None
    try:
        modes = tuple(ControlMode[m] for m in options.control_modes)
    except KeyError as exc:
        raise SetupError(f"unknown control mode {exc.args[0]!r} (use scheduled, dynamic)") \
            from None
    if not modes:
        raise SetupError("at least one control mode is needed")
    evse_id = options.evse_id or (station_cfg.station_id if station_cfg else "DE*EVS*E0000001")
    allow_plain = options.allow_plain_tcp_iso20 or bool(
        station_cfg is not None and station_cfg.tls.allow_plain_tcp_iso20)
    window = options.discharge_window
    config = SeccConfig(
        evse_id=evse_id,
        services=service_ids,
        control_modes=modes,
        limits=limits,
        allow_plain_tcp_iso20=allow_plain,
        auto_authorize=True,  # no authorization backend is wired yet: free charging (EIM)
        schedule_provider=DefaultScheduleProvider(discharge_window=window),
    )
    return station, config


def _tls_context(options: SeccOptions, station_cfg: Any) -> Any:
    from evse.aio.tls import secc_context

    chain = key = roots = None
    require = False
    if options.pki is not None:
        chain, key = options.pki / "secc_chain.pem", options.pki / "secc.key"
        if not chain.exists() and (options.pki / "secc.pem").exists():
            chain = options.pki / "secc.pem"  # the certs.pnc_pki layout
    elif station_cfg is not None and station_cfg.tls.cert_chain is not None:
        chain, key = station_cfg.tls.cert_chain, station_cfg.tls.private_key
        roots, require = station_cfg.tls.trust_roots, station_cfg.tls.require_vehicle_cert
    if options.vehicle_roots is not None:  # the command line wins over the file
        roots, require = options.vehicle_roots, options.require_vehicle_cert
    elif options.require_vehicle_cert:
        require = True
    if require and roots is None:
        raise SetupError("--require-vehicle-cert needs --vehicle-roots (or tls.trust_roots)")
    if chain is None or key is None:
        if roots is not None and options.vehicle_roots is not None:
            raise SetupError("--vehicle-roots needs TLS: give --pki DIR")
        return None
    try:
        return secc_context(Path(chain), Path(key), vehicle_roots=roots,
                            require_vehicle_cert=require).context
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot load the SECC certificate {chain} / {key}: {exc}") from exc


def _with_pnc(config: Any, options: SeccOptions, station_cfg: Any, tls: bool) -> Any:
    """Offer Plug & Charge with the MO roots of --pnc-mo-roots / [tls] pnc_mo_roots."""
    from evse.aio.pnc import replace_config, secc_pnc_changes

    roots = options.pnc_mo_roots
    if roots is None and station_cfg is not None:
        roots = getattr(station_cfg.tls, "pnc_mo_roots", None)
    if roots is None:
        if options.oem_roots is not None or options.cps_sim is not None:
            raise SetupError("--oem-roots and --cps-sim need --pnc-mo-roots")
        return config
    if not tls:
        raise SetupError("Plug & Charge runs over TLS only: --pnc-mo-roots needs --pki DIR")
    try:
        changes = secc_pnc_changes(roots, oem_roots=options.oem_roots, cps_sim=options.cps_sim)
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot load the MO roots {roots}: {exc}") from exc
    n = len(changes["pnc_verifier"].mo_roots)
    log.info("Plug & Charge offered over TLS: %d MO root(s) from %s", n, roots)
    return replace_config(config, changes)


async def run_secc(options: SeccOptions, *, ready: asyncio.Event | None = None,
                   stop: asyncio.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM (or `stop`); 0 on a clean shutdown, 2 on a setup error."""
    from evse.aio.secc_server import DEFAULT_TCP_PORT, DEFAULT_TLS_PORT, SeccServer

    station_cfg = None
    if options.config is not None:
        from evse.config import ConfigError, load_config

        try:
            station_cfg = load_config(options.config)
        except (ConfigError, OSError) as exc:
            raise SetupError(str(exc)) from exc
    interface = options.interface or (station_cfg.network.interface if station_cfg else None)
    address = options.address
    if address is None and station_cfg is not None and station_cfg.network.address is not None:
        address = str(station_cfg.network.address)
    if interface is None and address is None:
        raise SetupError("give --interface (the PLC modem's) or --address")
    station, config = build_station(options, station_cfg)
    tls = _tls_context(options, station_cfg)
    if tls is None and not config.allow_plain_tcp_iso20:
        raise SetupError("ISO 15118-20 needs TLS 1.3: give --pki DIR (see certs/make_pki.py) "
                         "or, on a test bench, --allow-plain-tcp-iso20")
    config = _with_pnc(config, options, station_cfg, tls is not None)
    net = station_cfg.network if station_cfg is not None else None
    tls_port = options.tls_port if options.tls_port is not None else (
        net.tls_port if net else DEFAULT_TLS_PORT)
    tcp_port = options.port if options.port is not None else (
        net.tcp_port if net else DEFAULT_TCP_PORT)
    reports_dir = options.reports or (station_cfg.reports.dir if station_cfg else None)
    on_end = None  # session reports (with the money summary): the energy runtime below
    server = SeccServer(
        config, station, address=address, interface=interface,
        port=tcp_port if config.allow_plain_tcp_iso20 else None,
        tls=tls, tls_port=tls_port,
        sdp_port=options.sdp_port if options.sdp else None,
        poll_interval=options.poll_interval, on_session_end=on_end,
        read_budget=net.read_budget if net else None,
        paused_session_max_age=net.paused_session_max_age_s if net else 24 * 3600.0,
    )
    from evse.aio.energy_app import EnergyRuntime  # [energy], [tariffs], [mqtt], reports

    energy = EnergyRuntime.for_secc(server, station_cfg, options, reports_dir)
    try:
        await server.start()
    except OSError as exc:
        for c in station.connectors:
            with contextlib.suppress(Exception):
                c.backend.close()
        raise SetupError(f"cannot listen: {exc}") from exc
    await energy.start()
    where = server.bound_address
    ports = []
    if server.tls_port is not None:
        ports.append(f"TLS 1.3 on port {server.tls_port}")
    if server.port is not None:
        ports.append(f"plain TCP on port {server.port}")
    if server.sdp_port is not None:
        ports.append(f"SDP on UDP {server.sdp_port}")
    services = ", ".join(s.name for s in config.services)
    print(f"evse secc: {config.evse_id} at [{where}]: {'; '.join(ports)}; "
          f"{len(station.connectors)} connector(s), services {services}"
          + ("; Plug & Charge (TLS)" if config.offer_pnc else ""), flush=True)
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        log.info("stopping: ending sessions, power stages to the safe state")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.close()
        await energy.stop()
    print(f"evse secc: stopped after {server.sessions_total} session(s)", flush=True)
    return 0


def main_secc(options: SeccOptions) -> int:
    try:
        return asyncio.run(run_secc(options))
    except SetupError as exc:
        print(f"evse secc: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


def main_ev(ns: argparse.Namespace) -> int:
    """`evse ev`: the simulated EV (simulators.ev.client.main_ev)."""
    from simulators.ev.client import main_ev as ev_main

    try:
        return asyncio.run(ev_main(ns))
    except KeyboardInterrupt:
        return 130
