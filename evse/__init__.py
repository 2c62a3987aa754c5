"""evse: the charging-station (SECC) side of ISO 15118-20, -2 and DIN SPEC 70121.

The public API is exactly the names in `__all__` below (and those of `hal` and `exi_codec`);
every submodule is an implementation detail that may change in any release. See the README,
"Version policy".

Embedding the charger in an asyncio application::

    import evse

    cfg = evse.load_config("/etc/evse/evse.toml")           # or evse.StationConfig(...)
    station, config = evse.build_station(evse.SeccOptions(), cfg)
    server = evse.SeccServer(config, station, interface="eth1", tls=...,
                             hooks=evse.Hooks(authorizer=my_backend))
    await server.start()
    async for event in station.events():                   # evse.SessionStarted, ...
        ...

or everything `evse secc` does: `await evse.run_secc(evse.SeccOptions(config=path))`.
Hardware: the part interfaces, `hal.compose` and `hal.register_backend` are in `hal`.

The names load on first use (PEP 562), so `import evse` stays cheap (the `evse` command
starts with it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # = [project] version in pyproject.toml (a test checks)

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # configuration: the TOML file format as typed, frozen dataclasses
    "ConfigError": "evse.config",
    "ConnectorConfig": "evse.config",
    "EnergyConfig": "evse.config",
    "HalBackendConfig": "evse.config",
    "HalConfig": "evse.config",
    "HalPartConfig": "evse.config",
    "LimitsConfig": "evse.config",
    "MqttConfig": "evse.config",
    "NetworkConfig": "evse.config",
    "ReportsConfig": "evse.config",
    "StationConfig": "evse.config",
    "SupervisorConfig": "evse.config",
    "TariffConfig": "evse.config",
    "TlsConfig": "evse.config",
    "check_config": "evse.config",
    "load_config": "evse.config",
    "loads_config": "evse.config",
    "parse_config": "evse.config",
    # building and running a station
    "SeccOptions": "evse.aio.app",
    "SetupError": "evse.aio.app",
    "build_station": "evse.aio.app",
    "run_secc": "evse.aio.app",
    "supply_limits": "evse.aio.app",
    "Connector": "evse.aio.station",
    "SeccServer": "evse.aio.secc_server",
    "SessionSummary": "evse.aio.session_records",
    "Station": "evse.aio.station",
    # the SECC's protocol configuration and its hooks
    "CertificateInstallationBackend": "evse.protocol.config",
    "ControlMode": "evse.protocol.config",
    "EvseLimits": "evse.protocol.limits",
    "PncVerifier": "evse.protocol.config",
    "SeccConfig": "evse.protocol.config",
    "ServiceId": "evse.protocol.config",
    # session events (evse.events): Station.events() / on_event()
    "AuthorizationDecided": "evse.events",
    "AuthorizationRequested": "evse.events",
    "ConsumerOverflow": "evse.events",
    "EventBus": "evse.events",
    "EventHandle": "evse.events",
    "EventsDropped": "evse.events",
    "Fault": "evse.events",
    "Measurement": "evse.events",
    "Plugged": "evse.events",
    "SafeState": "evse.events",
    "ScheduleSent": "evse.events",
    "ServiceSelected": "evse.events",
    "SessionEnded": "evse.events",
    "SessionEvent": "evse.events",
    "SessionPaused": "evse.events",
    "SessionResumed": "evse.events",
    "SessionStarted": "evse.events",
    "SessionWarning": "evse.events",
    "Subscription": "evse.events",
    "Unplugged": "evse.events",
    # hooks (evse.hooks): SeccServer(hooks=Hooks(...))
    "AuthorizationRequest": "evse.hooks",
    "Authorizer": "evse.hooks",
    "CertificateRequest": "evse.hooks",
    "CertificateSource": "evse.hooks",
    "Decision": "evse.hooks",
    "Hooks": "evse.hooks",
    "MeterReading": "evse.hooks",
    "MeterSource": "evse.hooks",
    "SchedulePolicy": "evse.hooks",
    "ScheduleRequest": "evse.hooks",
}

__all__ = [
    "AuthorizationDecided",
    "AuthorizationRequest",
    "AuthorizationRequested",
    "Authorizer",
    "CertificateInstallationBackend",
    "CertificateRequest",
    "CertificateSource",
    "ConfigError",
    "Connector",
    "ConnectorConfig",
    "ConsumerOverflow",
    "ControlMode",
    "Decision",
    "EnergyConfig",
    "EventBus",
    "EventHandle",
    "EventsDropped",
    "EvseLimits",
    "Fault",
    "HalBackendConfig",
    "HalConfig",
    "HalPartConfig",
    "Hooks",
    "LimitsConfig",
    "Measurement",
    "MeterReading",
    "MeterSource",
    "MqttConfig",
    "NetworkConfig",
    "Plugged",
    "PncVerifier",
    "ReportsConfig",
    "SafeState",
    "SchedulePolicy",
    "ScheduleRequest",
    "ScheduleSent",
    "SeccConfig",
    "SeccOptions",
    "SeccServer",
    "ServiceId",
    "ServiceSelected",
    "SessionEnded",
    "SessionEvent",
    "SessionPaused",
    "SessionResumed",
    "SessionStarted",
    "SessionSummary",
    "SessionWarning",
    "SetupError",
    "Station",
    "StationConfig",
    "Subscription",
    "SupervisorConfig",
    "TariffConfig",
    "TlsConfig",
    "Unplugged",
    "build_station",
    "check_config",
    "load_config",
    "loads_config",
    "parse_config",
    "run_secc",
    "supply_limits",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evse' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once loaded, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from evse.aio.app import SeccOptions, SetupError, build_station, run_secc, supply_limits
    from evse.aio.secc_server import SeccServer
    from evse.aio.session_records import SessionSummary
    from evse.aio.station import Connector, Station
    from evse.config import (
        ConfigError,
        ConnectorConfig,
        EnergyConfig,
        HalBackendConfig,
        HalConfig,
        HalPartConfig,
        LimitsConfig,
        MqttConfig,
        NetworkConfig,
        ReportsConfig,
        StationConfig,
        SupervisorConfig,
        TariffConfig,
        TlsConfig,
        check_config,
        load_config,
        loads_config,
        parse_config,
    )
    from evse.events import (
        AuthorizationDecided,
        AuthorizationRequested,
        ConsumerOverflow,
        EventBus,
        EventHandle,
        EventsDropped,
        Fault,
        Measurement,
        Plugged,
        SafeState,
        ScheduleSent,
        ServiceSelected,
        SessionEnded,
        SessionEvent,
        SessionPaused,
        SessionResumed,
        SessionStarted,
        SessionWarning,
        Subscription,
        Unplugged,
    )
    from evse.hooks import (
        AuthorizationRequest,
        Authorizer,
        CertificateRequest,
        CertificateSource,
        Decision,
        Hooks,
        MeterReading,
        MeterSource,
        SchedulePolicy,
        ScheduleRequest,
    )
    from evse.protocol.config import (
        CertificateInstallationBackend,
        ControlMode,
        PncVerifier,
        SeccConfig,
        ServiceId,
    )
    from evse.protocol.limits import EvseLimits
