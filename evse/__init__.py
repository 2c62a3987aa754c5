"""evse: the charging-station (SECC) side of ISO 15118-20, -2 and DIN SPEC 70121.

The public API is exactly the names in `__all__` below (and those of `hal` and `exi_codec`);
every submodule is an implementation detail that may change in any release. See the README,
"Version policy".

Embedding the charger in an asyncio application::

    import evse

    cfg = evse.load_config("/etc/evse/evse.toml")           # or evse.StationConfig(...)
    station, config = evse.build_station(evse.SeccOptions(), cfg)
    server = evse.SeccServer(config, station, interface="eth1", tls=...)
    await server.start()

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
    "Authorizer": "evse.aio.secc_server",
    "Connector": "evse.aio.secc_server",
    "SeccServer": "evse.aio.secc_server",
    "SessionSummary": "evse.aio.secc_server",
    "Station": "evse.aio.secc_server",
    # the SECC's protocol configuration and its hooks
    "CertificateInstallationBackend": "evse.protocol.config",
    "ControlMode": "evse.protocol.config",
    "EvseLimits": "evse.protocol.limits",
    "PncVerifier": "evse.protocol.config",
    "RequestAuthorization": "evse.protocol.events",
    "SeccConfig": "evse.protocol.config",
    "ServiceId": "evse.protocol.config",
    # TODO(coordinator): export the session event types and hooks of `evse.events` and
    # `evse.hooks` here once branch h/events is merged (issue 12 items 2 and 3).
}

__all__ = [
    "Authorizer",
    "CertificateInstallationBackend",
    "ConfigError",
    "Connector",
    "ConnectorConfig",
    "ControlMode",
    "EnergyConfig",
    "EvseLimits",
    "HalBackendConfig",
    "HalConfig",
    "HalPartConfig",
    "LimitsConfig",
    "MqttConfig",
    "NetworkConfig",
    "PncVerifier",
    "ReportsConfig",
    "RequestAuthorization",
    "SeccConfig",
    "SeccOptions",
    "SeccServer",
    "ServiceId",
    "SessionSummary",
    "SetupError",
    "Station",
    "StationConfig",
    "SupervisorConfig",
    "TariffConfig",
    "TlsConfig",
    "build_station",
    "check_config",
    "load_config",
    "loads_config",
    "parse_config",
    "run_secc",
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
    from evse.aio.app import SeccOptions, SetupError, build_station, run_secc
    from evse.aio.secc_server import Authorizer, Connector, SeccServer, SessionSummary, Station
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
    from evse.protocol.config import (
        CertificateInstallationBackend,
        ControlMode,
        PncVerifier,
        SeccConfig,
        ServiceId,
    )
    from evse.protocol.events import RequestAuthorization
    from evse.protocol.limits import EvseLimits
