"""`evse secc` as an asyncio program (the CLI parses, this module runs).

`run_secc(options)` builds the station (HAL backends, one controller per connector), the
SECC configuration (limits no higher than what the power supply can do), TLS and SDP,
serves until SIGINT/SIGTERM, then ends every session with the safe state and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    from evse.aio.connector_link import ConnectorWiring, LinkSpec
    from evse.aio.ocpp_events import OcppRuntime
    from evse.aio.secc_server import SeccServer, Station
    from evse.aio.tls import TlsContext
    from evse.config import HalPartConfig, StationConfig, TlsConfig
    from evse.protocol.config import ControlMode, SeccConfig, ServiceId
    from evse.protocol.limits import EvseLimits
    from hal.interfaces import HalBackend

log = logging.getLogger("evse.secc")

ALL_SERVICES = ("DC", "DC_BPT", "AC", "AC_BPT")


@dataclass
class SeccOptions:
    """Options of `evse secc` / `run_secc` (the command line's); None: from the config file."""

    interface: str | None = None
    address: str | None = None
    hal: str | None = None  # backend spec; None: from the config file or "sim"
    config: Path | None = None
    allow_plain_tcp_iso20: bool = False
    protocols: tuple[str, ...] | None = None  # None: [station] protocols, else ("iso20",)
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
    # A real board or power supply beside a simulated isolation monitor (hal/parts.py);
    # also [hal] allow_simulated_parts in the config file
    allow_simulated_parts: bool = False
    # Plug & Charge / mutual TLS (docs/pnc.md); None: from the config file's [tls]
    pnc_mo_roots: Path | None = None  # PEM MO roots: offer PnC (TLS only)
    vehicle_roots: Path | None = None  # PEM roots for the vehicle certificate
    require_vehicle_cert: bool = False  # CERT_REQUIRED instead of CERT_OPTIONAL
    oem_roots: Path | None = None  # PEM OEM roots: check CertificateInstallation's chain
    cps_sim: Path | None = None  # certs.pnc_pki directory: local CPS (test benches)
    # certs.iso2_pki directory: -2 Plug & Charge over TLS 1.2 on the TLS port (test benches)
    iso2_pki: Path | None = None
    # AdmissionConfig fields that override [network.admission] (evse/aio/admission.py)
    admission: dict[str, Any] = field(default_factory=dict)
    # the -20 TLS profile (evse/aio/tls.py); None: from the config file's [tls]
    tls_profile_best_effort: bool | None = None  # serve TLS even if the profile is incomplete
    ocsp_response: Path | None = None  # DER OCSP response about the SECC leaf: stapled


class SetupError(Exception):
    """The charger cannot start with these options (printed, exit code 2)."""


def supply_limits(backend: HalBackend, configured: EvseLimits | None = None) -> EvseLimits:
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


def _create_backend(spec: str, options: dict[str, dict[str, Any]],
                    station_cfg: StationConfig | None, allow_simulated_parts: bool) -> HalBackend:
    """The HAL of one connector: from [hal.parts] if the config file has it (and --hal does
    not replace it), else from the spec; every part assigned explicitly (hal/parts.py)."""
    from hal import registry

    parts = station_cfg.hal.parts if station_cfg is not None else ()
    if parts and spec == _parts_spec(parts):
        table = {}
        for p in parts:
            opts = {**options.get(p.backend, {}), **dict(p.options)}
            if p.target is not None:
                opts["target"] = p.target
            table[p.part] = {"backend": p.backend, **opts}
        return registry.compose_from_parts(table, allow_simulated_parts=allow_simulated_parts)
    return registry.create_backend_from_spec(spec, options,
                                             allow_simulated_parts=allow_simulated_parts)


def _parts_spec(parts: Sequence[HalPartConfig]) -> str:
    """[hal.parts] in the spec syntax, for the log, the summary and supervision."""
    return ",".join(f"{p.part}={p.backend}" + (f":{p.target}" if p.target else "")
                    for p in parts)


def _hal_spec(options: SeccOptions, station_cfg: StationConfig | None
              ) -> tuple[str, dict[str, dict[str, Any]]]:
    """The HAL spec (--hal, else [hal.parts] or [hal] backends, else sim) and the options of
    each backend by name."""
    spec = options.hal
    backend_options: dict[str, dict[str, Any]] = {}
    if spec is None and station_cfg is not None and station_cfg.hal.parts:
        spec = _parts_spec(station_cfg.hal.parts)
    elif spec is None and station_cfg is not None:
        parts = []
        for b in station_cfg.hal.backends:
            parts.append(b.spec)
            if b.options:
                backend_options[b.name] = dict(b.options)
        spec = ",".join(parts)
    for name, opts in options.hal_options.items():
        backend_options.setdefault(name, {}).update(opts)
    # An EV simulator elsewhere steps its own battery: the sim's battery model closes its
    # contactors itself, so current flows as soon as ours close.
    backend_options.setdefault("sim", {}).setdefault("ev_contactor_closed", True)
    return spec or "sim", backend_options


def _connector_ids(options: SeccOptions, station_cfg: StationConfig | None
                   ) -> tuple[int, list[str] | None]:
    """How many connectors, and their ids from the config file (None: numbered)."""
    n = options.connectors
    ids: list[str] | None = None
    if station_cfg is not None and n is None:
        ids = [c.id for c in station_cfg.connectors] or None
        n = len(ids) if ids else None
    return n or 1, ids


def _create_backends(options: SeccOptions, station_cfg: StationConfig | None
                     ) -> tuple[str, list[HalBackend], list[str] | None]:
    """(spec, one HAL backend per connector, connector ids)."""
    spec, backend_options = _hal_spec(options, station_cfg)
    n, ids = _connector_ids(options, station_cfg)
    if n > 1 and any(part.split(":")[0].split("=")[-1] != "sim" for part in spec.split(",")):
        raise SetupError("several connectors need one HAL each: only the sim HAL can be "
                         "repeated (--connectors)")
    allow = options.allow_simulated_parts or bool(
        station_cfg is not None and station_cfg.hal.allow_simulated_parts)
    try:
        backends = [_create_backend(spec, backend_options, station_cfg, allow)
                    for _ in range(n)]
    except Exception as exc:
        raise SetupError(f"cannot create the HAL backend {spec!r}: {exc}") from exc
    from hal.parts import log_parts

    log_parts(backends[0], log)
    if options.sim_speedup != 1.0 and spec not in ("sim", "sim:plugged"):
        raise SetupError("--sim-speedup is for the simulated HAL only")
    return spec, backends, ids


def _services(options: SeccOptions, station_cfg: StationConfig | None, spec: str,
              limits: EvseLimits) -> tuple[ServiceId, ...]:
    """The offered services: --services, else the connectors', else what the HAL can do;
    no BPT service without a bidirectional power supply."""
    from evse.protocol.config import ServiceId

    if options.services is not None:
        services = options.services
    elif station_cfg is not None and station_cfg.connectors:
        services = tuple(dict.fromkeys(s for c in station_cfg.connectors for s in c.services))
    else:
        services = ALL_SERVICES if spec in ("sim", "sim:plugged") else ("DC", "DC_BPT")
    if not limits.bidirectional:
        services = tuple(s for s in services if not s.endswith("_BPT"))
    try:
        return tuple(ServiceId[s] for s in services)
    except KeyError as exc:
        raise SetupError(f"unknown service {exc.args[0]!r} (use {', '.join(ALL_SERVICES)})") \
            from None


def _control_modes(options: SeccOptions) -> tuple[ControlMode, ...]:
    from evse.protocol.config import ControlMode

    try:
        modes = tuple(ControlMode[m] for m in options.control_modes)
    except KeyError as exc:
        raise SetupError(f"unknown control mode {exc.args[0]!r} (use scheduled, dynamic)") \
            from None
    if not modes:
        raise SetupError("at least one control mode is needed")
    return modes


def build_station(options: SeccOptions, station_cfg: StationConfig | None = None
                  ) -> tuple[Station, SeccConfig]:
    """The station (one HAL backend and controller per connector, supervised as configured)
    and the SECC configuration for these options and, optionally, a loaded config file.

    Raises SetupError when the charger cannot start with them."""
    from evse.aio.supervised import station_for_secc
    from evse.energy.schedule import DefaultScheduleProvider
    from evse.protocol.config import SeccConfig

    spec, backends, ids = _create_backends(options, station_cfg)
    configured = station_cfg.limits.to_evse_limits() if station_cfg is not None else None
    limits = supply_limits(backends[0], configured)
    try:
        station = station_for_secc(
            spec, backends, limits=limits, ids=ids, speedup=options.sim_speedup,
            supervise_flag=options.supervise, supervisor_options=options.supervisor_options,
            config=station_cfg.hal.supervisor if station_cfg is not None else None)
    except (TypeError, ValueError) as exc:
        raise SetupError(f"cannot set up the safety supervisor: {exc}") from exc
    service_ids = _services(options, station_cfg, spec, limits)
    modes = _control_modes(options)
    evse_id = options.evse_id or (station_cfg.station_id if station_cfg else "DE*EVS*E0000001")
    allow_plain = options.allow_plain_tcp_iso20 or bool(
        station_cfg is not None and station_cfg.tls.allow_plain_tcp_iso20)
    protocols = options.protocols or (station_cfg.protocols if station_cfg else ("iso20",))
    try:
        config = SeccConfig(
            evse_id=evse_id,
            services=service_ids,
            control_modes=modes,
            limits=limits,
            protocols=protocols,
            allow_plain_tcp_iso20=allow_plain,
            auto_authorize=True,  # no authorization backend is wired yet: free charging (EIM)
            schedule_provider=DefaultScheduleProvider(discharge_window=options.discharge_window),
        )
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    return station, config


def _needs_tls(config: SeccConfig) -> bool:
    """A TLS-only standard (-20) is enabled and not allowed over plain TCP."""
    from evse.protocol.standards import STANDARDS, Tls

    return not config.allow_plain_tcp_iso20 and any(
        STANDARDS[p].tls == Tls.REQUIRED for p in config.protocols)


def _plain_tcp(config: SeccConfig) -> bool:
    """Open the plain TCP port: a TLS-only standard (-20) allowed there, or another one."""
    from evse.protocol.standards import STANDARDS, Tls

    return config.allow_plain_tcp_iso20 or any(
        STANDARDS[p].tls != Tls.REQUIRED for p in config.protocols)


@dataclass(frozen=True)
class _TlsFiles:
    """Where the SECC's TLS material comes from: --pki, else [tls]; vehicle roots from the
    command line over the file."""

    chain: Path | None = None
    key: Path | None = None
    roots: Path | None = None
    require_vehicle_cert: bool = False
    ocsp: Path | None = None
    best_effort: bool = False


def _tls_files(options: SeccOptions, tls_cfg: TlsConfig | None) -> _TlsFiles:
    chain: Path | None = None
    key: Path | None = None
    roots: Path | None = None
    require = False
    if options.pki is not None:
        chain, key = options.pki / "secc_chain.pem", options.pki / "secc.key"
        if not chain.exists() and (options.pki / "secc.pem").exists():
            chain = options.pki / "secc.pem"  # the certs.pnc_pki layout
    elif tls_cfg is not None and tls_cfg.cert_chain is not None:
        chain, key = tls_cfg.cert_chain, tls_cfg.private_key
        roots, require = tls_cfg.trust_roots, tls_cfg.require_vehicle_cert
    if options.vehicle_roots is not None:  # the command line wins over the file
        roots, require = options.vehicle_roots, options.require_vehicle_cert
    elif options.require_vehicle_cert:
        require = True
    if require and roots is None:
        raise SetupError("--require-vehicle-cert needs --vehicle-roots (or tls.trust_roots)")
    best_effort = options.tls_profile_best_effort
    if best_effort is None:
        best_effort = bool(tls_cfg is not None and tls_cfg.profile_best_effort)
    return _TlsFiles(chain, key, roots, require,
                     options.ocsp_response or (tls_cfg.ocsp_response if tls_cfg else None),
                     best_effort)


def _tls_context(options: SeccOptions, station_cfg: StationConfig | None,
                 allow_plain: bool) -> TlsContext | None:
    """The SECC's TlsContext, None without TLS. Fails closed: a -20 profile that cannot be
    applied completely means no TLS listener (SetupError when TLS was the only way to serve),
    unless best effort was asked for."""
    from evse.aio.tls import TlsProfileError, secc_context

    files = _tls_files(options, station_cfg.tls if station_cfg is not None else None)
    chain, key = files.chain, files.key
    if chain is None or key is None:
        if files.roots is not None and options.vehicle_roots is not None:
            raise SetupError("--vehicle-roots needs TLS: give --pki DIR")
        if options.ocsp_response is not None:
            raise SetupError("--ocsp-response needs TLS: give --pki DIR")
        return None
    from evse.aio.cert_files import recover_pair

    recover_pair(Path(chain), Path(key))  # a renewal (SignCertificate) a crash interrupted
    try:
        tls = secc_context(Path(chain), Path(key), vehicle_roots=files.roots,
                           require_vehicle_cert=files.require_vehicle_cert,
                           ocsp_response=files.ocsp, best_effort=files.best_effort)
    except TlsProfileError as exc:
        if not allow_plain:
            raise SetupError(f"refusing to offer ISO 15118-20 over TLS: {exc} "
                             "(--tls-profile-best-effort serves anyway)") from exc
        log.error("no TLS listener: %s", exc)
        return None
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot load the SECC certificate {chain} / {key}: {exc}") from exc
    mechanisms = ", ".join(f"{part} by {how}" for part, how in tls.mechanisms.items())
    log.info("TLS profile: %s; self-test %.1f ms%s", mechanisms or "none", tls.self_test_ms,
             "; OCSP stapling" if tls.ocsp_stapling else "")
    if tls.profile_failures:
        log.warning("TLS profile INCOMPLETE, serving anyway (best effort): %s",
                    "; ".join(tls.profile_failures))
    return tls


def _with_iso2_pnc(config: SeccConfig, options: SeccOptions
                   ) -> tuple[ssl.SSLContext | None, SeccConfig]:
    """(-2 TLS 1.2 context, config with -2 PnC) from --iso2-pki DIR; (None, config) without."""
    if options.iso2_pki is None:
        return None, config
    if "iso2" not in config.protocols:
        raise SetupError("--iso2-pki needs iso2 among the protocols (--protocols ...,iso2)")
    from evse.aio.cert_files import recover_pair
    from evse.aio.pnc import iso2_pnc_from_dir, replace_config
    from evse.aio.tls import TlsProfileError
    from evse.aio.tls_iso2 import iso2_secc_context

    d = options.iso2_pki
    try:
        recover_pair(d / "secc.pem", d / "secc.key")  # a renewal a crash interrupted
        tls = iso2_secc_context(d / "secc.pem", d / "secc.key")
        service = iso2_pnc_from_dir(d)
    except TlsProfileError as exc:
        raise SetupError(f"the -2 TLS 1.2 profile cannot be served: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise SetupError(f"--iso2-pki {d}: {exc}") from exc
    log.info("-2 Plug & Charge: TLS 1.2 %s on the TLS port, self-test %.1f ms",
             "ECDHE-ECDSA-AES128-SHA256", tls.self_test_ms)
    return tls.context, replace_config(config, {"iso2_pnc": service})


def _with_pnc(config: SeccConfig, options: SeccOptions, station_cfg: StationConfig | None,
              tls: bool) -> SeccConfig:
    """Offer Plug & Charge with the MO roots of --pnc-mo-roots / [tls] pnc_mo_roots."""
    from evse.aio.pnc import replace_config, secc_pnc_changes

    roots = options.pnc_mo_roots
    if roots is None and station_cfg is not None:
        roots = station_cfg.tls.pnc_mo_roots
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


def _load_station_config(options: SeccOptions) -> StationConfig | None:
    if options.config is None:
        return None
    from evse.config import ConfigError, load_config

    try:
        return load_config(options.config)
    except (ConfigError, OSError) as exc:
        raise SetupError(str(exc)) from exc


def _where(options: SeccOptions, station_cfg: StationConfig | None
           ) -> tuple[str | None, str | None]:
    """(interface, address) to serve on: the options, else [network]."""
    interface = options.interface or (station_cfg.network.interface if station_cfg else None)
    address = options.address
    if address is None and station_cfg is not None and station_cfg.network.address is not None:
        address = str(station_cfg.network.address)
    linked = station_cfg is not None and any(c.interface for c in station_cfg.connectors)
    if interface is None and address is None and not linked:
        raise SetupError("give --interface (the PLC modem's) or --address")
    return interface, address


def _build_server(options: SeccOptions, station_cfg: StationConfig | None
                  ) -> tuple[SeccServer, TlsContext | None, list[LinkSpec | None],
                             OcppRuntime | None]:
    """The SeccServer (not started) for these options, the TLS context it serves, the
    connectors' links to start with it and the OCPP runtime ([ocpp]) to start with it."""
    from evse.aio.admission import AdmissionConfig
    from evse.aio.secc_server import DEFAULT_TCP_PORT, DEFAULT_TLS_PORT, SeccServer

    interface, address = _where(options, station_cfg)
    station, config = build_station(options, station_cfg)
    from evse.aio.connector_link import link_specs

    try:  # pilot + SLAC per connector, one link each (docs/link.md)
        specs = link_specs(station, station_cfg, interface)
    except ValueError as exc:
        raise SetupError(str(exc)) from exc
    # allow_plain: TLS is not the only way to serve (a plain-TCP standard or test bench)
    tls_info = _tls_context(options, station_cfg, not _needs_tls(config))
    tls = tls_info.context if tls_info is not None else None
    if tls is None and _needs_tls(config):
        raise SetupError("ISO 15118-20 needs TLS 1.3: give --pki DIR (see certs/make_pki.py) "
                         "or, on a test bench, --allow-plain-tcp-iso20")
    config = _with_pnc(config, options, station_cfg, tls is not None)
    tls_iso2, config = _with_iso2_pnc(config, options)
    net = station_cfg.network if station_cfg is not None else None
    tls_port = options.tls_port if options.tls_port is not None else (
        net.tls_port if net else DEFAULT_TLS_PORT)
    tcp_port = options.port if options.port is not None else (
        net.tcp_port if net else DEFAULT_TCP_PORT)
    admission = net.admission if net else AdmissionConfig()
    try:
        admission = dataclasses.replace(admission, **options.admission)
    except (TypeError, ValueError) as exc:
        raise SetupError(f"admission: {exc}") from exc
    ocpp = None
    hooks = None
    if station_cfg is not None and station_cfg.ocpp is not None:
        from evse.aio.ocpp_events import OcppRuntime  # [ocpp]: needs the `ocpp` extra
        from evse.hooks import Hooks

        ocpp = OcppRuntime(station_cfg.ocpp, station.events,
                           [c.id for c in station.connectors])
        ocpp.client.max_power_w = station_cfg.limits.max_charge_power
        # the CSMS's charging profiles bound the schedules; Authorize decides (if enabled)
        # [ocpp] certificate_installation: the CSMS answers CertificateInstallation (-20) and
        # -2 CertificateInstallation/Update, in place of a local CPS (--cps-sim) and the
        # -2 provisioning service (--iso2-pki); contracts' OCSP through the CSMS
        hooks = Hooks(authorizer=ocpp.authorizer, schedules=ocpp.schedule_policy,
                      certificates=ocpp.certificates)
        mo_roots = getattr(config.pnc_verifier, "mo_roots", None)
        if mo_roots:
            ocpp.use_ocsp(mo_roots)
        if ocpp.authorizer is not None:
            config = dataclasses.replace(config, auto_authorize=False,
                                         pnc_auto_authorize=False)
    server = SeccServer(
        config, station, address=address, interface=interface,
        port=tcp_port if _plain_tcp(config) else None,
        tls=tls, tls_iso2=tls_iso2, tls_port=tls_port,
        sdp_port=options.sdp_port if options.sdp else None,
        # session reports (with the money summary): the energy runtime, not on_session_end
        poll_interval=options.poll_interval, on_session_end=None, admission=admission,
        read_budget=net.read_budget if net else None,
        paused_session_max_age=net.paused_session_max_age_s if net else 24 * 3600.0,
        hooks=hooks,
    )
    if ocpp is not None:
        ocpp.attach(server.set_power_bound, server.stop_session, server.set_in_service)
        assert station_cfg is not None and station_cfg.ocpp is not None
        ocpp.security = _ocpp_security(ocpp, station_cfg, options, server, tls is not None)
    return server, tls_info, specs, ocpp


def _ocpp_security(ocpp: OcppRuntime, station_cfg: StationConfig, options: SeccOptions,
                   server: SeccServer, tls: bool) -> Any:
    """Certificate renewal (the SECC's -20 certificate, the CSMS-client one), security
    events, and the CSMS's roots for the SECC (evse/aio/ocpp_security.py)."""
    from evse.aio.ocpp_security import StationSecurity
    from evse.aio.tls import secc_context
    from evse.aio.tls_iso2 import iso2_secc_context
    from evse.security.chains import load_pem_certificates

    assert station_cfg.ocpp is not None
    files = _tls_files(options, station_cfg.tls)
    chain, key = files.chain, files.key
    kw: dict[str, Any] = {}
    if tls and chain is not None and key is not None:
        def rebuild() -> ssl.SSLContext:
            # the stapled OCSP response was about the old leaf: not carried over; the
            # vehicle roots with the CSMS's OEM roots
            assert chain is not None and key is not None
            return secc_context(Path(chain), Path(key), vehicle_roots=security.vehicle_trust(),
                                require_vehicle_cert=files.require_vehicle_cert,
                                best_effort=files.best_effort).context

        kw.update(secc_files=(Path(chain), Path(key)), rebuild_secc=rebuild,
                  vehicle_roots=files.roots)
    if options.iso2_pki is not None:  # the -2 SECC certificate, a V2GCertificate too
        d = options.iso2_pki
        kw.update(iso2_files=(d / "secc.pem", d / "secc.key"),
                  rebuild_iso2=lambda: iso2_secc_context(d / "secc.pem",
                                                         d / "secc.key").context,
                  iso2_roots=lambda: load_pem_certificates(d / "v2g_root.pem"))
    security = StationSecurity(ocpp.client, station_cfg.ocpp, store=ocpp.client.cert_store,
                               server=server, **kw)
    return security



def _announce(server: SeccServer, tls_info: TlsContext | None,
              wirings: list[ConnectorWiring]) -> None:
    """The start line: where and how the charger serves, its HAL parts and links."""
    from evse.aio.connector_link import describe_links
    from hal.parts import describe

    config, station = server.config, server.station
    ports = []
    if server.tls_port is not None:
        failures = tls_info.profile_failures if tls_info is not None else ()
        versions = " + ".join(v for v, on in (("TLS 1.3", tls_info is not None),
                                              ("TLS 1.2 (-2)", config.iso2_pnc is not None))
                              if on)
        ports.append(f"{versions} on port {server.tls_port}" + (
            " (TLS profile INCOMPLETE, best effort: "
            + ", ".join(sorted({f.split(":", 1)[0] for f in failures})) + ")"
            if failures else ""))
    if server.port is not None:
        ports.append(f"plain TCP on port {server.port}")
    if server.sdp_port is not None:
        ports.append(f"SDP on UDP {server.sdp_port}")
    services = ", ".join(s.name for s in config.services)
    print(f"evse secc: {config.evse_id} at [{server.bound_address}]: {'; '.join(ports)}; "
          f"{len(station.connectors)} connector(s), services {services}"
          + ("; Plug & Charge (TLS)" if config.offer_pnc else "")
          + ("; -2 Plug & Charge (TLS 1.2)" if config.iso2_pnc is not None else ""), flush=True)
    print("evse secc: HAL " + "; ".join(map(str, describe(station.connectors[0].backend))),
          flush=True)
    if wirings:
        print("evse secc: pilot and SLAC: " + describe_links(wirings), flush=True)


async def _serve_until(stop: asyncio.Event, ready: asyncio.Event | None) -> None:
    """Wait for `stop`, set by SIGINT/SIGTERM too; `ready` is set once the handlers are in."""
    loop = asyncio.get_running_loop()
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


async def run_secc(options: SeccOptions, *, ready: asyncio.Event | None = None,
                   stop: asyncio.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM (or `stop`); 0 on a clean shutdown, 2 on a setup error."""
    from evse.aio.connector_link import close_links, start_links
    from evse.aio.energy_app import EnergyRuntime  # [energy], [tariffs], [mqtt], reports

    station_cfg = _load_station_config(options)
    server, tls_info, specs, ocpp = _build_server(options, station_cfg)
    reports_dir = options.reports or (station_cfg.reports.dir if station_cfg else None)
    energy = EnergyRuntime.for_secc(server, station_cfg, options, reports_dir)
    try:
        await server.start()
    except OSError as exc:
        for c in server.station.connectors:
            with contextlib.suppress(Exception):
                c.backend.close()
        raise SetupError(f"cannot listen: {exc}") from exc
    try:  # pilot + SLAC per connector, one link each (docs/link.md)
        wirings = await start_links(server, specs)
    except (OSError, ValueError) as exc:
        await server.close()
        raise SetupError(f"cannot start the connector links: {exc}") from exc
    await energy.start()
    if ocpp is not None:
        await ocpp.start()
        oc = ocpp.client.config
        print(f"evse secc: OCPP {oc.version} to {oc.url} as {oc.station_id}, "
              f"security profile {oc.security_profile}", flush=True)
    _announce(server, tls_info, wirings)
    stop = stop or asyncio.Event()
    if ocpp is not None:  # Reset from the CSMS: a clean exit; the service manager restarts us
        ocpp.client.on_reset = (ocpp.security.reset_hook(stop.set)
                                if ocpp.security is not None else stop.set)
    try:
        await _serve_until(stop, ready)
    finally:
        await close_links(wirings)
        await server.close()
        await energy.stop()
        if ocpp is not None:
            await ocpp.stop()
    print(f"evse secc: stopped after {server.sessions_total} session(s)", flush=True)
    return 0


def main_secc(options: SeccOptions) -> int:
    """`evse secc`: run_secc in its own event loop; the exit code."""
    try:
        return asyncio.run(run_secc(options))
    except SetupError as exc:
        print(f"evse secc: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
