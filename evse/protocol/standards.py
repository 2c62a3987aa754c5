"""The registry of V2G standards the SECC can negotiate at supportedAppProtocol.

Adding a standard = one `Standard` entry: its ProtocolNamespaces, the schema version we
implement, its machine factory (machine.py) and its transport rule. A standard without a
factory is known but not implemented yet: enabling it in `SeccConfig.protocols` is a config
error. sap.py negotiates from this table; `SeccConnection` builds the winner's machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evse.protocol.config import SeccConfig
    from evse.protocol.machine import MachineContext, MachineFactory, StandardMachine

ISO20_DC = "urn:iso:std:iso:15118:-20:DC"
ISO20_AC = "urn:iso:std:iso:15118:-20:AC"
ISO2 = "urn:iso:15118:2:2013:MsgDef"
DIN = "urn:din:70121:2012:MsgDef"


class Tls(StrEnum):
    """Which transports a standard runs on."""

    REQUIRED = "required"  # TLS only (plain TCP only with SeccConfig.allow_plain_tcp_iso20)
    OPTIONAL = "optional"  # TLS or plain TCP
    NEVER = "never"  # plain TCP only (DIN SPEC 70121 has no TLS)


@dataclass(frozen=True, slots=True)
class Standard:
    name: str  # the name in SeccConfig.protocols, [station] protocols and --protocols
    namespaces: tuple[str, ...]
    version: tuple[int, int]  # (major, minor) of the schema we implement
    factory: MachineFactory | None  # None: not implemented yet
    tls: Tls
    # Does the station have anything to offer under this namespace (e.g. -20 AC needs an AC
    # service)? None: always.
    offers: Callable[[str, SeccConfig], bool] | None = None
    # TLS versions the standard may run on (ssl's names); None: any. A connection whose
    # version is not known (None) is not refused for it.
    tls_versions: tuple[str, ...] | None = None

    def transport_ok(self, tls: bool, config: SeccConfig, tls_version: str | None = None) -> bool:
        if tls and tls_version is not None and self.tls_versions is not None \
                and tls_version not in self.tls_versions:
            return False
        if self.tls == Tls.REQUIRED:
            return tls or config.allow_plain_tcp_iso20
        return self.tls == Tls.OPTIONAL or not tls


def _iso20_machine(ctx: MachineContext) -> StandardMachine:
    from evse.protocol.iso20.machine import Iso20Machine  # the machine imports the config

    return Iso20Machine(ctx)


def _din_machine(ctx: MachineContext) -> StandardMachine:
    from evse.protocol.din.machine import DinMachine

    return DinMachine(ctx)


def _iso2_machine(ctx: MachineContext) -> StandardMachine:
    from evse.protocol.iso2.machine import Iso2Machine

    return Iso2Machine(ctx)


def _iso20_offers(namespace: str, config: SeccConfig) -> bool:
    return bool(config.services_for(namespace))


STANDARDS: dict[str, Standard] = {
    "iso20": Standard(
        "iso20", (ISO20_DC, ISO20_AC), (1, 0), _iso20_machine, Tls.REQUIRED, _iso20_offers,
        tls_versions=("TLSv1.3",),  # -20 is TLS 1.3 only: refused on a TLS 1.2 connection
    ),
    "iso2": Standard("iso2", (ISO2,), (2, 0), _iso2_machine, Tls.OPTIONAL),
    "din": Standard("din", (DIN,), (2, 0), _din_machine, Tls.NEVER),
}


def standard_for(namespace: str) -> Standard | None:
    """The registered standard a ProtocolNamespace belongs to."""
    return next((s for s in STANDARDS.values() if namespace in s.namespaces), None)


def check_protocols(names: tuple[str, ...]) -> None:
    """Raise ValueError unless `names` are known, implemented standards (no duplicates)."""
    if not names:
        raise ValueError("at least one protocol must be enabled")
    unknown = [n for n in names if n not in STANDARDS]
    if unknown:
        raise ValueError(f"unknown protocols {unknown} (known: {', '.join(STANDARDS)})")
    if len(set(names)) != len(names):
        raise ValueError(f"protocols listed twice: {list(names)}")
    missing = [n for n in names if STANDARDS[n].factory is None]
    if missing:
        raise ValueError(f"protocols not implemented yet: {missing}")
