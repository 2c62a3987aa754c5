"""Station configuration: one TOML file, validated at start into frozen dataclasses.

Every problem is collected (not only the first) and named by its key, for example
``limits.max_charge_current: must be > 0, got -5``; unknown keys are errors too (a typo must
not silently fall back to a default). Relative paths are relative to the config file's
directory. The keys, their defaults and meaning: docs/config.md; a complete example:
config/evse.example.toml.

    cfg = load_config("/etc/evse/evse.toml")     # raises ConfigError(errors)
    errors = check_config("/etc/evse/evse.toml")  # [] when valid (`evse config check FILE`)
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from evse.aio.admission import AdmissionConfig
from evse.aio.read_budget import ReadBudget
from evse.energy.prices import PriceCurve
from evse.protocol.limits import EvseLimits
from evse.protocol.standards import STANDARDS, Tls, check_protocols
from evse.protocol.v2gtp import DEFAULT_MAX_PAYLOAD, HEADER_SIZE

__all__ = ["ConfigError", "ConnectorConfig", "EnergyConfig", "HalBackendConfig", "HalConfig",
           "SupervisorConfig",
           "LimitsConfig", "MqttConfig", "NetworkConfig", "ReportsConfig", "StationConfig",
           "TariffConfig", "TlsConfig", "check_config", "load_config", "loads_config",
           "parse_config", "parse_hal_spec", "HalPartConfig"]

ConnectorType = Literal["DC", "AC"]
SERVICES_BY_TYPE: dict[str, tuple[str, ...]] = {"DC": ("DC", "DC_BPT"), "AC": ("AC", "AC_BPT")}
_TOPIC_LEVEL = re.compile(r"^[^/+#\x00-\x1f]{1,255}$")
_CONNECTOR_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
# hal.parts.PARTS, and the alias IEC 61557-8 gives the isolation monitor
_HAL_PARTS = ("board", "power_supply", "isolation_monitor", "meter")
_HAL_PART_ALIASES = {"insulation_monitor": "isolation_monitor"}
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class ConfigError(ValueError):
    """The configuration is invalid; `errors` lists every problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.errors))


# -- the typed result -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """One `[[connectors]]` entry: its id, type (DC or AC) and offered services."""

    id: str
    type: ConnectorType
    services: tuple[str, ...]  # subset of DC, DC_BPT (DC) or AC, AC_BPT (AC)
    # the connector's own PLC link (docs/link.md): its modem's network interface (None: the
    # station's [network] interface, no pilot/SLAC wiring), and which modem sits on it
    interface: str | None = None
    modem: str = "qca7000"  # "qca7000" | "simulated"
    digital_communication: bool = True  # False: basic AC charging only (no SLAC)
    basic_charging_fallback: bool = True  # basic AC charging when SLAC does not match
    plugged: bool = False  # sim board: a car is plugged in at start (pilot B)

    @property
    def bidirectional(self) -> bool:
        return any(s.endswith("_BPT") for s in self.services)


@dataclass(frozen=True, slots=True)
class HalBackendConfig:
    """One HAL backend of `[hal]` (`backend` / `backends`): its name, target and options."""

    name: str  # a name in hal.registry ("sim", "serial", "can", plugins)
    target: str | None = None  # what follows the colon: "/dev/ttyUSB0", "can0"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    part: str | None = None  # "meter" for "meter=modbus-meter:tcp:HOST" (short form)

    @property
    def spec(self) -> str:
        """This entry in the --hal spec syntax."""
        text = self.name if self.target is None else f"{self.name}:{self.target}"
        return text if self.part is None else f"{self.part}={text}"


@dataclass(frozen=True, slots=True)
class HalPartConfig:
    """One [hal.parts] entry: which backend provides the part, with its options."""

    part: str  # board, power_supply, isolation_monitor, meter
    backend: str  # a part backend name in hal.registry ("serial", "modbus-meter", "sim")
    target: str | None = None  # the spec form's target ("tcp:10.0.0.7:502")
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    """[hal.supervisor]: the safety supervisor around each connector's HAL backend."""

    enabled: bool | None = None  # None: on unless every backend is `sim`
    # hal.supervisor.SafetySupervisor keyword options that were given (the rest: defaults)
    options: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    reset_on_new_session: bool = True
    reset_emergency_stop: bool = True
    derate_limits: bool = True


@dataclass(frozen=True, slots=True)
class HalConfig:
    """`[hal]`: the backends or the named parts of every connector's HAL, and the supervisor."""

    backends: tuple[HalBackendConfig, ...] = (HalBackendConfig("sim"),)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    parts: tuple[HalPartConfig, ...] = ()  # [hal.parts]: instead of `backends`
    # A real board or power supply beside a simulated isolation monitor (hal/parts.py)
    allow_simulated_parts: bool = False


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """`[limits]`: the station's electrical limits (never above the power supply's)."""

    max_voltage: float  # V
    max_charge_current: float  # A
    max_charge_power: float  # W
    min_voltage: float = 0.0
    max_discharge_current: float = 0.0  # A, magnitude; 0 = no bidirectional power transfer
    max_discharge_power: float = 0.0  # W, magnitude

    def to_evse_limits(self) -> EvseLimits:
        return EvseLimits(max_charge_power=self.max_charge_power,
                          max_charge_current=self.max_charge_current,
                          max_voltage=self.max_voltage, min_voltage=self.min_voltage,
                          max_discharge_power=self.max_discharge_power,
                          max_discharge_current=self.max_discharge_current)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """`[tls]`: SECC certificate chain and key, trust roots, Plug & Charge roots, TLS profile."""

    cert_chain: Path | None = None  # PEM: SECC leaf + Sub-CA 2 + Sub-CA 1
    private_key: Path | None = None
    private_key_password_file: Path | None = None
    trust_roots: Path | None = None  # PEM file of V2G roots (the vehicle certificate's)
    require_vehicle_cert: bool = False
    allow_plain_tcp_iso20: bool = False  # test benches only
    pnc_mo_roots: Path | None = None  # PEM MO roots: offer Plug & Charge (over TLS only)
    profile_best_effort: bool = False  # serve TLS even if the -20 profile is incomplete
    ocsp_response: Path | None = None  # DER OCSP response about the SECC leaf: stapled


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """`[network]`: interface, address, ports, admission and read budget of the SECC."""

    interface: str
    address: ipaddress.IPv6Address | None = None  # None: the interface's link-local address
    tls_port: int = 64109
    tcp_port: int = 64110
    # bounds for connections without a session ([network.admission], evse/aio/admission.py)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    # what one V2G connection may cost the event loop (evse.aio.read_budget)
    read_budget: ReadBudget = field(default_factory=ReadBudget)
    paused_session_max_age_s: float = 24 * 3600.0  # a paused session stays resumable this long


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """`[mqtt]`: the broker and topic prefix of the local energy manager API (docs/mqtt.md)."""

    host: str = "localhost"
    port: int = 1883
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None  # read by the bridge at each connect (not logged)
    topic_prefix: str = "evse/v1"
    client_id: str | None = None  # default "evse-<station id>"
    keepalive: int = 30  # s
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    telemetry_interval_s: float = 5.0
    state_interval_s: float = 1.0  # how often the state is checked for changes
    # EIM authorization: "auto" (free charging) or "mqtt" (the EV waits for an `authorize`
    # command after an `authorization_requested` event)
    authorization: str = "auto"


@dataclass(frozen=True, slots=True)
class OcppConfig:
    """[ocpp]: the connection to the CSMS (docs/ocpp.md). Security profile 1: ws:// with
    HTTP Basic auth; 2: wss:// (server certificate checked against `ca_file`) with Basic
    auth; 3: wss:// with a client certificate (`cert_file`, `key_file`), no password."""

    url: str
    station_id: str = ""  # default: [station] id; appended to the URL path
    version: str = "2.1"  # "2.0.1" or "2.1": the subprotocol offered first
    security_profile: int = 1
    password: str | None = None
    password_file: Path | None = None  # read at each connect (not logged)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    heartbeat_s: float = 60.0  # until the CSMS gives its own interval
    boot_retry_s: float = 30.0
    call_timeout_s: float = 30.0
    sampled_interval_s: float = 60.0  # TransactionEvent meter values; 0 = none
    authorize: bool = True  # EV authorization through Authorize (the authorization hook)
    pnc_offline: bool = True  # CSMS unreachable: PnC rests on the local MO-root check
    # -20 CertificateInstallation through Get15118EVCertificate (instead of a local CPS)
    certificate_installation: bool = False
    # PnC: always check the contract chain through GetCertificateStatus (OCSP), not only when
    # Authorize answers without a certificateStatus
    ocsp: bool = False
    # roots installed by the CSMS (InstallCertificate), one directory per certificate type
    certificates_dir: Path = Path("ocpp_certs")
    # durable TransactionEvent queue (SQLite); default beside the config file
    queue_file: Path = Path("ocpp_queue.sqlite3")
    # the station's own certificates (SignCertificate/CertificateSigned, docs/ocpp.md):
    # renewed when they end within this many days (checked every renew_check_s)
    renew_before_days: float = 30.0
    renew_check_s: float = 3600.0
    # roots a renewed CSMS-client certificate must chain to (default: ca_file)
    client_ca_file: Path | None = None
    # V2G roots a renewed SECC certificate must chain to (besides V2GRootCertificates the
    # CSMS installed)
    v2g_roots: Path | None = None
    # failed SECC TLS handshakes: at most one SecurityEventNotification per window
    tls_event_window_s: float = 60.0


@dataclass(frozen=True, slots=True)
class TariffConfig:
    """Buy and sell prices as a daily profile: N equal slots from local midnight (N = 1 is
    a flat tariff; 24 hourly, 96 quarter-hourly...)."""

    currency: str = "EUR"
    buy: tuple[float, ...] = (0.30,)
    sell: tuple[float, ...] = (0.0,)

    def curve(self, day_start: float, days: int = 2) -> PriceCurve:
        """The profile repeated for `days` days from `day_start` (local midnight as a Unix
        time; the caller knows the time zone). A single price gives a flat curve."""
        if len(self.buy) == 1 and len(self.sell) == 1:
            return PriceCurve.flat(self.buy[0], self.sell[0], currency=self.currency)
        n = max(len(self.buy), len(self.sell))
        buy = self.buy * (n // len(self.buy))
        sell = self.sell * (n // len(self.sell))
        return PriceCurve.day_ahead(day_start, 86400 / n, buy * days, sell * days,
                                    currency=self.currency)


@dataclass(frozen=True, slots=True)
class EnergyConfig:
    """`[energy]`: reserve and target SOC, planning and V2G policy of the energy manager."""

    reserve_soc: float = 20.0  # percent: never discharge below
    target_soc: float = 80.0  # percent at departure, when the EV does not say
    max_soc: float = 100.0
    default_departure_h: float = 8.0  # hours after plug-in, when the EV gives no departure
    battery_capacity_kwh: float = 60.0  # when the EV does not tell
    # deprecated: a flat currency per kWh discharged; set, it replaces the wear model
    degradation_cost: float | None = None
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    v2g: bool = True  # False: smart charging only, never discharge for money
    slot_minutes: int = 15
    chemistry: str = "nmc"  # wear tables: "nmc" or "lfp"
    replacement_cost: float = 110.0  # currency per kWh of battery (docs/config.md: source)
    battery_temperature_c: float = 20.0
    max_discharge_kwh_per_day: float | None = None  # owner's cap on V2G (None: no cap)
    outage_reserve_soc: float = 0.0  # percent kept for V2H while an outage is possible
    outage_possible: bool = False


@dataclass(frozen=True, slots=True)
class ReportsConfig:
    """`[reports]`: where session reports (JSON, optional SVG) are written."""

    dir: Path
    svg: bool = True


@dataclass(frozen=True, slots=True)
class StationConfig:
    """A whole station configuration file (docs/config.md), validated: see `load_config`."""

    station_id: str
    connectors: tuple[ConnectorConfig, ...]
    hal: HalConfig
    limits: LimitsConfig
    tls: TlsConfig
    network: NetworkConfig
    mqtt: MqttConfig | None  # None: no [mqtt] section or enabled = false
    tariffs: TariffConfig
    energy: EnergyConfig
    reports: ReportsConfig
    source: Path | None = None
    # [station] protocols: the standards offered at supportedAppProtocol (SeccConfig.protocols)
    protocols: tuple[str, ...] = ("iso20",)
    ocpp: OcppConfig | None = None  # None: no [ocpp] section or enabled = false

    def connector(self, connector_id: str) -> ConnectorConfig:
        for c in self.connectors:
            if c.id == connector_id:
                return c
        raise KeyError(connector_id)

    @property
    def mqtt_client_id(self) -> str:
        return (self.mqtt.client_id if self.mqtt and self.mqtt.client_id
                else f"evse-{self.station_id}")


# -- the validator --------------------------------------------------------------------------

_MISSING: Any = object()


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as written in TOML
    return repr(value)


class _Table:
    """One TOML table being read: typed getters that record errors under the dotted key."""

    def __init__(self, data: Mapping[str, Any], path: str, errors: list[str],
                 base_dir: Path) -> None:
        self.data = data
        self.path = path
        self.errors = errors
        self.base_dir = base_dir
        self.seen: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{self.key(key)}: {message}")

    def raw(self, key: str, default: Any) -> Any:
        self.seen.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            self.error(key, "required")
        return default

    def number(self, key: str, default: Any, *, gt: float | None = None,
               ge: float | None = None, le: float | None = None) -> float:
        value = self.raw(key, default)
        if value is _MISSING:
            return 0.0
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(key, f"must be a number, got {_fmt(value)}")
            return 0.0
        value = float(value)
        if not math.isfinite(value):
            self.error(key, f"must be a finite number, got {_fmt(value)}")
        elif gt is not None and not value > gt:
            self.error(key, f"must be > {gt:g}, got {value:g}")
        elif ge is not None and not value >= ge:
            self.error(key, f"must be >= {ge:g}, got {value:g}")
        elif le is not None and not value <= le:
            self.error(key, f"must be <= {le:g}, got {value:g}")
        return value

    def integer(self, key: str, default: Any, *, ge: int | None = None,
                le: int | None = None) -> int:
        value = self.raw(key, default)
        if value is _MISSING:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be an integer, got {_fmt(value)}")
            return 0
        if ge is not None and value < ge:
            self.error(key, f"must be >= {ge}, got {value}")
        elif le is not None and value > le:
            self.error(key, f"must be <= {le}, got {value}")
        return value

    def boolean(self, key: str, default: Any) -> bool:
        value = self.raw(key, default)
        if value is _MISSING:
            return False
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, got {_fmt(value)}")
            return False
        return value

    def string(self, key: str, default: Any, *, pattern: re.Pattern[str] | None = None,
               rule: str = "", choices: Sequence[str] | None = None) -> Any:
        value = self.raw(key, default)
        if value is _MISSING or value is None:
            return value if value is None else ""
        if not isinstance(value, str):
            self.error(key, f"must be a string, got {_fmt(value)}")
            return ""
        if choices is not None and value not in choices:
            self.error(key, "must be one of " + ", ".join(map(repr, choices))
                       + f", got {_fmt(value)}")
        elif pattern is not None and not pattern.match(value):
            self.error(key, f"{rule}, got {_fmt(value)}")
        return value

    def path_(self, key: str, default: Any = None) -> Path | None:
        value = self.string(key, default)
        if value is None or value == "":
            if value == "" and key in self.data:
                self.error(key, "must not be empty")
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def table(self, key: str, *, required: bool = False) -> _Table | None:
        value = self.raw(key, _MISSING if required else None)
        if value is None or value is _MISSING:
            return None
        if not isinstance(value, dict):
            self.error(key, f"must be a table, got {_fmt(value)}")
            return None
        return _Table(value, self.key(key), self.errors, self.base_dir)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                hint = difflib.get_close_matches(key, sorted(self.seen), n=1)
                suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.error(key, f"unknown key{suffix}")


def _price_list(t: _Table, key: str, default: float) -> tuple[float, ...]:
    value = t.raw(key, default)
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        t.error(key, "must not be empty")
        return (default,)
    out = []
    for i, item in enumerate(items):
        name = f"{key}[{i}]" if isinstance(value, list) else key
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(
                item):
            t.error(name, f"must be a number (or a list of numbers), got {_fmt(item)}")
            return (default,)
        out.append(float(item))
    if 86400 % len(out):
        t.error(key, f"a daily profile needs a number of prices that divides a day into "
                     f"whole seconds (1, 24, 48, 96, ...), got {len(out)}")
    return tuple(out)


def parse_hal_spec(spec: str) -> list[tuple[str, str | None]]:
    """"serial:/dev/ttyUSB0,can:can0" -> [("serial", "/dev/ttyUSB0"), ("can", "can0")].

    An item assigning a part keeps it in the name: "meter=sim" -> ("meter=sim", None)."""
    out: list[tuple[str, str | None]] = []
    for part in spec.split(","):
        name, sep, target = part.strip().partition(":")
        out.append((name.strip(), target.strip() if sep else None))
    return out


def _hal_parts(t: _Table) -> tuple[HalPartConfig, ...]:
    p = t.table("parts")
    if p is None:
        return ()
    out: list[HalPartConfig] = []
    for key, value in p.data.items():
        p.seen.add(key)
        part = _HAL_PART_ALIASES.get(key, key)
        if part not in _HAL_PARTS:
            p.error(key, f"not a HAL part (use {', '.join(_HAL_PARTS)})")
            continue
        if any(c.part == part for c in out):
            p.error(key, f"the {part} is assigned twice")
            continue
        if isinstance(value, str):
            value = {"backend": value}
        if not isinstance(value, dict):
            p.error(key, f'must be a backend name or a table {{backend = "..."}}, '
                         f"got {_fmt(value)}")
            continue
        options = dict(value)
        backend = options.pop("backend", None)
        target = options.pop("target", None)
        if not isinstance(backend, str) or not _BACKEND_NAME.match(backend):
            p.error(f"{key}.backend", f"a backend name is required, got {_fmt(backend)}")
            continue
        if target is not None and (not isinstance(target, str) or not target):
            p.error(f"{key}.target", f"must be a non-empty string, got {_fmt(target)}")
            continue
        out.append(HalPartConfig(part, backend, target, MappingProxyType(options)))
    missing = [name for name in _HAL_PARTS if all(c.part != name for c in out)]
    if missing and out:
        t.error("parts", f"every part is assigned explicitly; missing: {', '.join(missing)} "
                         '(name "sim" for a simulated one)')
    return tuple(out)


def _spec_item(t: _Table, i: int, name: str, target: str | None) -> HalBackendConfig:
    part: str | None = None
    if "=" in name:
        part_name, _, name = name.partition("=")
        part = _HAL_PART_ALIASES.get(part_name.strip(), part_name.strip())
        name = name.strip()
        if part not in _HAL_PARTS:
            t.error("backends", f"entry {i + 1}: {part_name!r} is not a HAL part "
                                f"(use {', '.join(_HAL_PARTS)})")
    if not _BACKEND_NAME.match(name):
        t.error("backends", f"entry {i + 1}: backend name must be lower-case letters, "
                            f"digits, '_' and '-', got {name!r}")
    elif target == "":
        t.error("backends", f"entry {i + 1} ({name!r}): empty target after ':'")
    return HalBackendConfig(name, target, part=part)


def _hal(root: _Table) -> HalConfig:
    t = root.table("hal")
    if t is None:
        return HalConfig()
    parts = _hal_parts(t)
    allow = t.boolean("allow_simulated_parts", False)
    if parts and "backends" in t.data:
        t.error("parts", "give [hal] backends or [hal.parts], not both")
    raw = t.raw("backends", "sim")
    backends: list[HalBackendConfig] = []
    if isinstance(raw, str):
        for i, (name, target) in enumerate(parse_hal_spec(raw)):
            backends.append(_spec_item(t, i, name, target))
    elif isinstance(raw, list) and raw:
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                t.error(f"backends[{i}]", f"must be a table, got {_fmt(item)}")
                continue
            b = _Table(item, t.key(f"backends[{i}]"), t.errors, t.base_dir)
            name = b.string("name", _MISSING, pattern=_BACKEND_NAME,
                            rule="must be lower-case letters, digits, '_' and '-'")
            target = b.string("target", None)
            opts = b.raw("options", {})
            if not isinstance(opts, dict):
                b.error("options", f"must be a table, got {_fmt(opts)}")
                opts = {}
            b.finish()
            backends.append(HalBackendConfig(name, target, MappingProxyType(dict(opts))))
    else:
        t.error("backends", 'must be a string like "sim" or "serial:/dev/ttyUSB0,can:can0", '
                            f"or a non-empty array of tables, got {_fmt(raw)}")
    names = [b.name for b in backends if b.part is None]
    for name in sorted({n for n in names if names.count(n) > 1}):
        t.error("backends", f"backend {name!r} given more than once")
    supervisor = _supervisor(t)
    t.finish()
    return HalConfig(tuple(backends) or HalConfig().backends, supervisor, parts, allow)


# SafetySupervisor options (hal.supervisor) and their lower bounds: > 0 or >= 0.
_SUPERVISOR_OPTIONS = {
    "stale_after": "gt", "contactor_timeout": "gt", "zero_current": "gt", "open_timeout": "gt",
    "voltage_tolerance": "ge", "current_tolerance": "ge", "isolation_ohm_per_volt": "ge",
}


def _supervisor(hal: _Table) -> SupervisorConfig:
    t = hal.table("supervisor")
    if t is None:
        return SupervisorConfig()
    enabled = t.boolean("enabled", None) if "enabled" in t.data else None
    options = {}
    for key, bound in _SUPERVISOR_OPTIONS.items():
        if key in t.data:
            options[key] = (t.number(key, _MISSING, gt=0.0) if bound == "gt"
                            else t.number(key, _MISSING, ge=0.0))
    cfg = SupervisorConfig(
        enabled=enabled,
        options=MappingProxyType(options),
        reset_on_new_session=t.boolean("reset_on_new_session", True),
        reset_emergency_stop=t.boolean("reset_emergency_stop", True),
        derate_limits=t.boolean("derate_limits", True),
    )
    t.seen.update({"enabled", *_SUPERVISOR_OPTIONS})  # known keys: "did you mean" hints
    t.finish()
    return cfg


def _connector_id(c: _Table) -> str:
    """An integer >= 0 (as text) or a short name; "" when missing or invalid (reported)."""
    cid = c.raw("id", _MISSING)
    if isinstance(cid, int) and not isinstance(cid, bool) and cid >= 0:
        return str(cid)
    if isinstance(cid, str) and _CONNECTOR_ID.match(cid):
        return cid
    if cid is not _MISSING:
        c.error("id", "must be an integer >= 0 or a string of letters, digits, '_', '.', "
                      f"'-' (at most 32), got {_fmt(cid)}")
    return ""


def _connector_services(c: _Table, ctype: str) -> tuple[str, ...]:
    """The listed services (default: the type's first), each one of the type's."""
    services_raw = c.raw("services", None)
    allowed = SERVICES_BY_TYPE.get(ctype, ())
    if services_raw is None:
        return allowed[:1]
    if (not isinstance(services_raw, list) or not services_raw
            or not all(isinstance(s, str) for s in services_raw)):
        c.error("services", f"must be a non-empty list of strings, got {_fmt(services_raw)}")
        return ()
    services = tuple(services_raw)
    for s in services:
        if allowed and s not in allowed:
            c.error("services", f"{s!r} is not a service of {ctype} connectors "
                                f"(allowed: {', '.join(allowed)})")
    if len(set(services)) != len(services):
        c.error("services", "a service is listed twice")
    return services


def _connectors(root: _Table) -> tuple[ConnectorConfig, ...]:
    raw = root.raw("connectors", _MISSING)
    if raw is _MISSING:
        return ()
    if not isinstance(raw, list) or not raw:
        root.error("connectors", "must be a non-empty array of tables ([[connectors]])")
        return ()
    out: list[ConnectorConfig] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            root.error(f"connectors[{i}]", f"must be a table, got {_fmt(item)}")
            continue
        c = _Table(item, f"connectors[{i}]", root.errors, root.base_dir)
        cid = _connector_id(c)
        ctype = c.string("type", _MISSING, choices=("DC", "AC"))
        services = _connector_services(c, ctype)
        interface = c.string("interface", None, pattern=re.compile(r"^[^\s/]{1,15}$"),
                             rule="must be a network interface name (1-15 characters, no '/')")
        modem = c.string("modem", "qca7000", choices=("qca7000", "simulated"))
        digital = c.boolean("digital_communication", True)
        fallback = c.boolean("basic_charging_fallback", True)
        plugged = c.boolean("plugged", False)
        c.finish()
        out.append(ConnectorConfig(cid, ctype, services, interface, modem, digital, fallback,
                                   plugged))
    ids = [c.id for c in out if c.id]
    for cid in sorted({x for x in ids if ids.count(x) > 1}):
        root.error("connectors", f"connector id {cid!r} used more than once")
    names = [c.interface for c in out if c.interface]
    if names and len(names) != len(out):
        # the SECC then listens per connector link only: a connector without one is unreachable
        root.error("connectors", "either every connector has an interface or none")
    for name in sorted({x for x in names if names.count(x) > 1}):
        # one link per connector: two connectors on one modem would share its SLAC and SDP
        root.error("connectors", f"interface {name!r} bound to more than one connector")
    return tuple(out)


def _limits(root: _Table) -> LimitsConfig:
    t = root.table("limits", required=True)
    if t is None:
        return LimitsConfig(0.0, 0.0, 0.0)
    cfg = LimitsConfig(
        max_voltage=t.number("max_voltage", _MISSING, gt=0),
        max_charge_current=t.number("max_charge_current", _MISSING, gt=0),
        max_charge_power=t.number("max_charge_power", _MISSING, gt=0),
        min_voltage=t.number("min_voltage", 0.0, ge=0),
        max_discharge_current=t.number("max_discharge_current", 0.0, ge=0),
        max_discharge_power=t.number("max_discharge_power", 0.0, ge=0))
    if cfg.max_voltage > 0 and cfg.min_voltage >= cfg.max_voltage:
        t.error("min_voltage", f"must be < limits.max_voltage ({cfg.max_voltage:g}), "
                               f"got {cfg.min_voltage:g}")
    t.finish()
    return cfg


def _protocols(station: _Table) -> tuple[str, ...]:
    value = station.raw("protocols", ["iso20"])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        station.error("protocols", f"must be a list of strings, got {_fmt(value)}")
        return ("iso20",)
    try:
        check_protocols(tuple(value))
    except ValueError as exc:
        station.error("protocols", str(exc))
        return ("iso20",)
    return tuple(value)


def _tls(root: _Table, protocols: tuple[str, ...]) -> TlsConfig:
    t = root.table("tls")
    # DIN and -2 run over plain TCP: no TLS needed unless a TLS-only standard (-20) is enabled.
    tls_only = any(STANDARDS[p].tls == Tls.REQUIRED for p in protocols)
    if t is None:
        if not tls_only:
            return TlsConfig()
        root.error("tls", "required (ISO 15118-20 runs over TLS 1.3): give tls.cert_chain and "
                          "tls.private_key, or set tls.allow_plain_tcp_iso20 = true on a "
                          "test bench")
        return TlsConfig()
    cfg = TlsConfig(cert_chain=t.path_("cert_chain"), private_key=t.path_("private_key"),
                    private_key_password_file=t.path_("private_key_password_file"),
                    trust_roots=t.path_("trust_roots"),
                    require_vehicle_cert=t.boolean("require_vehicle_cert", False),
                    allow_plain_tcp_iso20=t.boolean("allow_plain_tcp_iso20", False),
                    pnc_mo_roots=t.path_("pnc_mo_roots"),
                    profile_best_effort=t.boolean("profile_best_effort", False),
                    ocsp_response=t.path_("ocsp_response"))
    have_chain, have_key = cfg.cert_chain is not None, cfg.private_key is not None
    if have_chain != have_key:
        t.error("private_key" if have_chain else "cert_chain",
                "required together with tls." + ("cert_chain" if have_chain else "private_key"))
    elif not have_chain and not cfg.allow_plain_tcp_iso20 and tls_only:
        t.error("cert_chain", "required (ISO 15118-20 runs over TLS 1.3) unless "
                              "tls.allow_plain_tcp_iso20 = true")
    if cfg.require_vehicle_cert and cfg.trust_roots is None:
        t.error("trust_roots", "required when tls.require_vehicle_cert = true")
    if cfg.ocsp_response is not None and not have_chain:
        t.error("ocsp_response", "stapled over TLS only: needs tls.cert_chain and "
                                 "tls.private_key")
    if cfg.pnc_mo_roots is not None and not have_chain:
        t.error("pnc_mo_roots", "Plug & Charge runs over TLS only: needs tls.cert_chain and "
                                "tls.private_key")
    t.finish()
    return cfg


def _network(root: _Table) -> NetworkConfig:
    t = root.table("network", required=True)
    if t is None:
        return NetworkConfig("")
    interface = t.string("interface", _MISSING, pattern=re.compile(r"^[^\s/]{1,15}$"),
                         rule="must be a network interface name (1-15 characters, no '/')")
    address_raw = t.string("address", None)
    address = None
    if address_raw:
        try:
            address = ipaddress.IPv6Address(address_raw.split("%")[0])
        except ValueError:
            t.error("address", f"must be an IPv6 address, got {address_raw!r}")
    tls_port = t.integer("tls_port", 64109, ge=1, le=65535)
    tcp_port = t.integer("tcp_port", 64110, ge=1, le=65535)
    if tls_port == tcp_port and tls_port:
        t.error("tcp_port", f"must differ from network.tls_port, got {tcp_port}")
    d = ReadBudget()
    budget = d
    try:
        budget = ReadBudget(
            chunk=t.integer("read_slice", d.chunk, ge=64, le=65536),
            window=t.number("read_window_s", d.window, gt=0, le=10),
            bytes_per_window=t.integer("read_bytes_per_window", d.bytes_per_window, ge=64,
                                       le=1 << 24),
            max_bytes_without_message=t.integer(
                "max_bytes_without_message", d.max_bytes_without_message,
                ge=DEFAULT_MAX_PAYLOAD + HEADER_SIZE, le=1 << 30))
    except ValueError as exc:
        t.error("read_bytes_per_window", str(exc))
    max_age = t.number("paused_session_max_age_s", 24 * 3600.0, gt=0)
    admission = _admission(t)
    t.finish()
    return NetworkConfig(interface, address, tls_port, tcp_port, admission, budget, max_age)


def _admission(network: _Table) -> AdmissionConfig:
    d = AdmissionConfig()
    t = network.table("admission")
    if t is None:
        return d
    ints = {key: t.integer(key, getattr(d, key), ge=1, le=100_000) for key in (
        "max_handshakes_per_listener", "max_handshakes", "max_presession_per_listener",
        "max_presession", "handshake_max_bytes", "accept_burst")}
    timeout = t.number("handshake_timeout", d.handshake_timeout, gt=0, le=60)
    rate = t.number("accept_rate", d.accept_rate, gt=0, le=100_000)
    grace = t.number("evict_grace", d.evict_grace, ge=0, le=60)
    t.finish()
    try:
        return AdmissionConfig(**ints, handshake_timeout=timeout, accept_rate=rate,
                               evict_grace=grace)
    except ValueError as exc:  # a value already reported above
        network.error("admission", str(exc))
        return d


def _mqtt(root: _Table) -> MqttConfig | None:
    t = root.table("mqtt")
    if t is None:
        return None
    enabled = t.boolean("enabled", True)
    tls = t.boolean("tls", False)
    prefix = t.string("topic_prefix", "evse/v1",
                      pattern=re.compile(r"^[^/+#\x00-\x1f]+(/[^/+#\x00-\x1f]+)*$"),
                      rule="must be topic levels separated by '/', without '+', '#', "
                           "or a leading or trailing '/'")
    password = t.string("password", None)
    password_file = t.path_("password_file")
    if password is not None and password_file is not None:
        t.error("password_file", "give either mqtt.password or mqtt.password_file, not both")
    username = t.string("username", None)
    if (password is not None or password_file is not None) and username is None:
        t.error("username", "required when a password is given")
    cfg = MqttConfig(
        host=t.string("host", "localhost", pattern=re.compile(r"^\S+$"),
                      rule="must be a host name or address"),
        port=t.integer("port", 8883 if tls else 1883, ge=1, le=65535),
        tls=tls, ca_file=t.path_("ca_file"), cert_file=t.path_("cert_file"),
        key_file=t.path_("key_file"), username=username, password=password,
        password_file=password_file,
        topic_prefix=prefix,
        client_id=t.string("client_id", None, pattern=re.compile(r"^[\x21-\x7e]{1,128}$"),
                           rule="must be 1-128 printable characters without spaces"),
        keepalive=t.integer("keepalive", 30, ge=5, le=65535),
        reconnect_min_s=t.number("reconnect_min_s", 1.0, gt=0),
        reconnect_max_s=t.number("reconnect_max_s", 60.0, gt=0),
        telemetry_interval_s=t.number("telemetry_interval_s", 5.0, gt=0),
        state_interval_s=t.number("state_interval_s", 1.0, gt=0),
        authorization=t.string("authorization", "auto", choices=("auto", "mqtt")))
    if cfg.reconnect_max_s < cfg.reconnect_min_s:
        t.error("reconnect_max_s", f"must be >= mqtt.reconnect_min_s "
                                   f"({cfg.reconnect_min_s:g}), got {cfg.reconnect_max_s:g}")
    if (cfg.cert_file is None) != (cfg.key_file is None):
        t.error("key_file" if cfg.cert_file else "cert_file",
                "mqtt.cert_file and mqtt.key_file go together")
    if not tls:
        for key in ("ca_file", "cert_file", "key_file"):
            if key in t.data:
                t.error(key, "only used with mqtt.tls = true")
    t.finish()
    return cfg if enabled else None


def _ocpp(root: _Table, station_id: str) -> OcppConfig | None:
    t = root.table("ocpp")
    if t is None:
        return None
    enabled = t.boolean("enabled", True)
    profile = t.integer("security_profile", 1, ge=1, le=3)
    scheme = "ws" if profile == 1 else "wss"
    url = t.string("url", _MISSING, pattern=re.compile(rf"^{scheme}://[^\s/]+(/\S*)?$"),
                   rule=f"security profile {profile} needs a {scheme}:// URL")
    password = t.string("password", None)
    password_file = t.path_("password_file")
    cfg = OcppConfig(
        url=url,
        station_id=t.string("station_id", station_id, pattern=re.compile(r"^[\x21-\x7e]{1,48}$"),
                            rule="must be 1-48 printable characters without spaces"),
        version=t.string("version", "2.1", choices=("2.0.1", "2.1")),
        security_profile=profile, password=password, password_file=password_file,
        ca_file=t.path_("ca_file"), cert_file=t.path_("cert_file"), key_file=t.path_("key_file"),
        reconnect_min_s=t.number("reconnect_min_s", 1.0, gt=0),
        reconnect_max_s=t.number("reconnect_max_s", 60.0, gt=0),
        heartbeat_s=t.number("heartbeat_s", 60.0, gt=0),
        boot_retry_s=t.number("boot_retry_s", 30.0, gt=0),
        call_timeout_s=t.number("call_timeout_s", 30.0, gt=0),
        sampled_interval_s=t.number("sampled_interval_s", 60.0),
        authorize=t.boolean("authorize", True), pnc_offline=t.boolean("pnc_offline", True),
        certificate_installation=t.boolean("certificate_installation", False),
        ocsp=t.boolean("ocsp", False),
        certificates_dir=t.path_("certificates_dir", "ocpp_certs") or Path("ocpp_certs"),
        queue_file=t.path_("queue_file", "ocpp_queue.sqlite3") or Path("ocpp_queue.sqlite3"),
        renew_before_days=t.number("renew_before_days", 30.0, gt=0),
        renew_check_s=t.number("renew_check_s", 3600.0, gt=0),
        client_ca_file=t.path_("client_ca_file"), v2g_roots=t.path_("v2g_roots"),
        tls_event_window_s=t.number("tls_event_window_s", 60.0, gt=0))
    if cfg.sampled_interval_s < 0:
        t.error("sampled_interval_s", "must be >= 0 (0: no periodic meter values)")
    if cfg.reconnect_max_s < cfg.reconnect_min_s:
        t.error("reconnect_max_s", f"must be >= ocpp.reconnect_min_s "
                                   f"({cfg.reconnect_min_s:g}), got {cfg.reconnect_max_s:g}")
    if password is not None and password_file is not None:
        t.error("password_file", "give either ocpp.password or ocpp.password_file, not both")
    _ocpp_profile_keys(t, cfg)
    t.finish()
    return cfg if enabled else None


def _ocpp_profile_keys(t: _Table, cfg: OcppConfig) -> None:
    """Each security profile's credentials, and no key another profile uses."""
    profile = cfg.security_profile
    if profile in (1, 2) and cfg.password is None and cfg.password_file is None:
        t.error("password", f"security profile {profile} needs a password (HTTP Basic auth)")
    if profile == 3:
        for key in ("password", "password_file"):
            if key in t.data:
                t.error(key, "not used with security profile 3 (client certificate)")
        for key in ("cert_file", "key_file"):
            if getattr(cfg, key) is None:
                t.error(key, "required with security profile 3")
    unused = {1: (("ca_file", "cert_file", "key_file"), "security profiles 2 and 3 (TLS)"),
              2: (("cert_file", "key_file"), "security profile 3")}.get(profile)
    if unused is not None:
        for key in unused[0]:
            if key in t.data:
                t.error(key, f"only used with {unused[1]}")


def _tariffs(root: _Table) -> TariffConfig:
    t = root.table("tariffs")
    if t is None:
        return TariffConfig()
    currency = t.string("currency", "EUR", pattern=_CURRENCY,
                        rule="must be an ISO 4217 code of 3 capital letters")
    buy = _price_list(t, "buy", 0.30)
    sell = _price_list(t, "sell", 0.0)
    if len(buy) > 1 and len(sell) > 1 and len(buy) != len(sell):
        t.error("sell", f"has {len(sell)} prices, tariffs.buy has {len(buy)} "
                        "(give the same number, or one price)")
    t.finish()
    return TariffConfig(currency, buy, sell)


def _energy(root: _Table) -> EnergyConfig:
    t = root.table("energy")
    if t is None:
        return EnergyConfig()
    d = EnergyConfig()
    cfg = EnergyConfig(
        reserve_soc=t.number("reserve_soc", d.reserve_soc, ge=0, le=100),
        target_soc=t.number("target_soc", d.target_soc, ge=0, le=100),
        max_soc=t.number("max_soc", d.max_soc, gt=0, le=100),
        default_departure_h=t.number("default_departure_h", d.default_departure_h, gt=0,
                                     le=168),
        battery_capacity_kwh=t.number("battery_capacity_kwh", d.battery_capacity_kwh, gt=0),
        degradation_cost=(t.number("degradation_cost", 0.0, ge=0)
                          if "degradation_cost" in t.data else None),
        charge_efficiency=t.number("charge_efficiency", d.charge_efficiency, gt=0, le=1),
        discharge_efficiency=t.number("discharge_efficiency", d.discharge_efficiency, gt=0,
                                      le=1),
        v2g=t.boolean("v2g", d.v2g),
        slot_minutes=t.integer("slot_minutes", d.slot_minutes, ge=1, le=1440),
        chemistry=t.string("chemistry", d.chemistry, choices=("nmc", "lfp")),
        replacement_cost=t.number("replacement_cost", d.replacement_cost, ge=0),
        battery_temperature_c=t.number("battery_temperature_c", d.battery_temperature_c,
                                       ge=-40, le=80),
        max_discharge_kwh_per_day=(t.number("max_discharge_kwh_per_day", 0.0, ge=0)
                                   if "max_discharge_kwh_per_day" in t.data else None),
        outage_reserve_soc=t.number("outage_reserve_soc", d.outage_reserve_soc, ge=0, le=100),
        outage_possible=t.boolean("outage_possible", d.outage_possible))
    if cfg.reserve_soc > cfg.target_soc:
        t.error("reserve_soc", f"must be <= energy.target_soc ({cfg.target_soc:g}), "
                               f"got {cfg.reserve_soc:g}")
    if cfg.target_soc > cfg.max_soc:
        t.error("target_soc", f"must be <= energy.max_soc ({cfg.max_soc:g}), "
                              f"got {cfg.target_soc:g}")
    if cfg.slot_minutes > 0 and 1440 % cfg.slot_minutes:
        t.error("slot_minutes", f"must divide a day (1, 5, 15, 30, 60, ...), "
                                f"got {cfg.slot_minutes}")
    t.finish()
    return cfg


def _reports(root: _Table) -> ReportsConfig:
    t = root.table("reports")
    if t is None:
        return ReportsConfig(root.base_dir / "reports")
    directory = t.path_("dir", "reports") or root.base_dir / "reports"
    cfg = ReportsConfig(directory, t.boolean("svg", True))
    t.finish()
    return cfg


def _check_files(cfg: StationConfig, errors: list[str]) -> None:
    def need(key: str, path: Path | None) -> None:
        if path is not None and not path.is_file():
            errors.append(f"{key}: file not found: {str(path)!r}")

    need("tls.cert_chain", cfg.tls.cert_chain)
    need("tls.private_key", cfg.tls.private_key)
    need("tls.private_key_password_file", cfg.tls.private_key_password_file)
    need("tls.trust_roots", cfg.tls.trust_roots)
    need("tls.pnc_mo_roots", cfg.tls.pnc_mo_roots)
    need("tls.ocsp_response", cfg.tls.ocsp_response)
    if cfg.ocpp is not None:
        for key in ("ca_file", "cert_file", "key_file", "password_file"):  # not queue_file
            need(f"ocpp.{key}", getattr(cfg.ocpp, key))
    if cfg.mqtt is not None:
        need("mqtt.ca_file", cfg.mqtt.ca_file)
        need("mqtt.cert_file", cfg.mqtt.cert_file)
        need("mqtt.key_file", cfg.mqtt.key_file)
        need("mqtt.password_file", cfg.mqtt.password_file)


def parse_config(data: Mapping[str, Any], *, base_dir: Path | str = ".",
                 check_files: bool = False, source: Path | None = None) -> StationConfig:
    """Validate already-parsed TOML. `check_files`: also require that the TLS/MQTT files
    exist (off by default so a config can be checked on another machine)."""
    errors: list[str] = []
    root = _Table(data, "", errors, Path(base_dir))
    station = root.table("station", required=True)
    station_id = ""
    protocols: tuple[str, ...] = ("iso20",)
    if station is not None:
        station_id = station.string("id", _MISSING, pattern=_TOPIC_LEVEL,
                                    rule="must be 1-255 characters without '/', '+', '#'")
        protocols = _protocols(station)
        station.finish()
    connectors = _connectors(root)
    limits = _limits(root)
    for i, c in enumerate(connectors):
        if c.bidirectional:
            for key in ("max_discharge_power", "max_discharge_current"):
                if getattr(limits, key) <= 0 and "limits" in data:
                    errors.append(f"connectors[{i}].services: "
                                  f"{'/'.join(s for s in c.services if s.endswith('_BPT'))} "
                                  f"needs limits.{key} > 0")
    cfg = StationConfig(
        station_id=station_id, connectors=connectors, hal=_hal(root), limits=limits,
        tls=_tls(root, protocols), network=_network(root), mqtt=_mqtt(root),
        tariffs=_tariffs(root), energy=_energy(root), reports=_reports(root), source=source,
        protocols=protocols, ocpp=_ocpp(root, station_id))
    root.finish()
    if check_files and not errors:
        _check_files(cfg, errors)
    if errors:
        raise ConfigError(errors)
    return cfg


def loads_config(text: str, *, base_dir: Path | str = ".", check_files: bool = False
                 ) -> StationConfig:
    """Parse and validate the TOML text of a station configuration (see `load_config`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"TOML syntax error: {exc}"]) from None
    return parse_config(data, base_dir=base_dir, check_files=check_files)


def load_config(path: Path | str, *, check_files: bool = False) -> StationConfig:
    """Read and validate a config file; raises ConfigError listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{p}: TOML syntax error: {exc}"]) from None
    return parse_config(data, base_dir=p.resolve().parent, check_files=check_files,
                        source=p)


def check_config(path: Path | str, *, check_files: bool = False) -> list[str]:
    """Every problem in a config file ([] when valid): for `evse config check FILE`."""
    try:
        load_config(path, check_files=check_files)
    except ConfigError as exc:
        return exc.errors
    return []

