"""Integration hooks: small typed Protocols, one async method each.

    class MyBackend:
        async def authorize(self, request: AuthorizationRequest) -> Decision:
            ok = await my_csms.check(request.evcc_id, request.emaid)
            return Decision(granted=ok, reason="" if ok else "unknown vehicle")

    server = SeccServer(config, station, address="::1", hooks=Hooks(authorizer=MyBackend()))

The sans-IO SECC never awaits a hook: it asks through an effect (or, for schedules and
certificate installation, gets "not ready yet" and answers the EV EVSEProcessing=Ongoing),
the asyncio layer (`evse.aio.hook_runner`) awaits the hook in a task and delivers the answer
as an event. A hook that raises counts as "no" (denied, no schedule from it, no certificate);
the session goes on where the standard allows it.

Defaults (a hook left None) are today's behaviour:

- `authorizer`: `SeccServer(authorize=...)` if given, else every request is granted (and
  logged), unless `SeccConfig.auto_authorize` already decided inside the SECC;
- `schedules`: the connection's `SeccConfig.schedule_provider` (the energy policy);
- `certificates`: `SeccConfig.certificate_installation` (e.g. the local CPS of `--cps-sim`);
  for -2 CertificateInstallation/Update the configured `SeccConfig.iso2_pnc` provisioning
  service, unless the source also implements `Iso2CertificateSource` (e.g. the CSMS's
  Get15118EVCertificate): then the -2 SECC holds the request and asks it;
- `meter`: the readings of the connector's HAL meter (`hal` `Meter`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from evse.protocol.schedules import ScheduleRequest

if TYPE_CHECKING:
    from evse.protocol.config import InstallationAnswer, Iso2Provisioned
    from evse.protocol.schedules import Schedules

__all__ = [
    "AuthorizationRequest",
    "Authorizer",
    "CertificateRequest",
    "CertificateSource",
    "Decision",
    "Hooks",
    "Iso2CertificateSource",
    "MeterReading",
    "MeterSource",
    "SchedulePolicy",
    "ScheduleRequest",
]


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """What the EV presented: EIM (external identification) or PnC (a verified contract)."""

    connector_id: str
    session_id: str | None  # hex
    method: str  # "EIM" or "PnC"
    evcc_id: str
    emaid: str | None = None  # PnC: the contract's eMAID
    certificate_chain: tuple[bytes, ...] = ()  # PnC: contract leaf first (DER), then sub-CAs


@dataclass(frozen=True, slots=True)
class Decision:
    """An authorizer's answer: granted or not, why not, and the token it accepted."""

    granted: bool
    reason: str = ""  # why not (in the SessionEnded reason when denied)
    id_token: str = ""  # the token the backend accepted (for the session record)


@runtime_checkable
class Authorizer(Protocol):
    """Authorization of EIM and PnC sessions (a CSMS, an RFID reader, a user's app)."""

    async def authorize(self, request: AuthorizationRequest) -> Decision: ...


@runtime_checkable
class SchedulePolicy(Protocol):
    """The energy policy's schedules for ScheduleExchange (Scheduled and Dynamic mode; in
    Dynamic mode setpoints then come from `SeccServer.set_setpoint`). `request` is what the
    EV asked (`evse.protocol.schedules.ScheduleRequest`: `timestamp` in Unix seconds, `now`
    the SECC's clock, on which `Schedules.start` must be). None: no schedule from this policy
    (the SECC then uses the configured schedule provider's)."""

    async def schedules(self, connector_id: str, request: ScheduleRequest
                        ) -> Schedules | None: ...


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """A CertificateInstallationReq (PnC) as received; `request` is the protocol object:
    -20: the CertificateInstallationReq message; -2 (`standard` "iso2"): the EV's whole
    V2G_Message (header with its Signature) holding a CertificateInstallationReq
    (`action` "Install") or CertificateUpdateReq ("Update")."""

    connector_id: str
    session_id: bytes
    timestamp: int
    request: Any
    standard: str = "iso20"  # "iso20" or "iso2"
    action: str = "Install"  # "Install" or "Update" (-20: always Install)


@runtime_checkable
class CertificateSource(Protocol):
    """Certificate provisioning: the CertificateInstallation answer (a CPS / the CSMS)."""

    async def installation(self, request: CertificateRequest) -> InstallationAnswer: ...


@runtime_checkable
class Iso2CertificateSource(Protocol):
    """Optional second method of a `CertificateSource`: the -2 CertificateInstallationRes /
    CertificateUpdateRes (body + the provisioning service's header Signature, or a FAILED
    code). The -2 SECC holds the EV's request meanwhile and answers FAILED itself when this
    takes longer than `evse.protocol.iso2.timeouts.PROVISIONING_WAIT` (4 s)."""

    async def iso2_certificate(self, request: CertificateRequest) -> Iso2Provisioned: ...


@dataclass(frozen=True, slots=True)
class MeterReading:
    """Registers of the connector's meter (Wh since the meter's origin), optionally signed."""

    imported_wh: float
    exported_wh: float
    signature: bytes | None = None


@runtime_checkable
class MeterSource(Protocol):
    """The meter reading source for MeterInfo and receipts (e.g. a calibrated meter that
    the HAL does not know). Read at most every `SeccServer.poll_interval`, in a task; the
    latest reading is used, so a slow meter never delays the charge loop."""

    async def read(self, connector_id: str) -> MeterReading: ...


@dataclass(frozen=True, slots=True)
class Hooks:
    """Every hook at once (`SeccServer(..., hooks=Hooks(...))`); None: the default."""

    authorizer: Authorizer | None = None
    schedules: SchedulePolicy | None = None
    certificates: CertificateSource | None = None
    meter: MeterSource | None = None
