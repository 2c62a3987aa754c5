"""SECC configuration: identity, offered services, limits, options."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from evse.protocol.iso20.timeouts import Timeouts
from evse.protocol.limits import EvseLimits
from evse.protocol.schedules import ScheduleProvider
from evse.protocol.standards import DIN as DIN  # the namespaces, re-exported
from evse.protocol.standards import ISO2 as ISO2
from evse.protocol.standards import ISO20_AC, ISO20_DC, STANDARDS, check_protocols
from evse.protocol.v2gtp import DEFAULT_MAX_PAYLOAD

ISO20_VERSION = STANDARDS["iso20"].version  # major, minor of the -20 schemas we implement


class ServiceId(IntEnum):
    """-20 energy transfer and value-added service ids (serviceIDType)."""

    AC = 1
    DC = 2
    WPT = 3
    DC_ACDP = 4
    AC_BPT = 5
    DC_BPT = 6
    DC_ACDP_BPT = 7
    INTERNET = 65
    PARKING_STATUS = 66


class ControlMode(IntEnum):
    """ServiceDetail parameter ControlMode (also our ParameterSetID for it)."""

    SCHEDULED = 1
    DYNAMIC = 2


DC_SERVICES = (ServiceId.DC, ServiceId.DC_BPT)
AC_SERVICES = (ServiceId.AC, ServiceId.AC_BPT)
BPT_SERVICES = frozenset({ServiceId.DC_BPT, ServiceId.AC_BPT})
SERVICES_BY_PROTOCOL = {ISO20_DC: DC_SERVICES, ISO20_AC: AC_SERVICES}

DEFAULT_LIMITS = EvseLimits(
    max_charge_power=50_000.0, max_charge_current=125.0, max_voltage=500.0, min_voltage=150.0
)


# -- Plug & Charge: the seams to the crypto (evse.security) -----------------------------------
# The core stays crypto-free: it hands decoded requests to objects injected through SeccConfig
# and acts on the -20 response codes they return. evse.security.PncVerifier and
# evse.security.LocalCps implement these protocols.


@dataclass(frozen=True, slots=True)
class PncVerdict:
    """A verifier's answer: "OK" or the -20 responseCodeType value to send instead."""

    response_code: str = "OK"
    reason: str = ""
    emaid: str | None = None  # Authorization: the verified contract's eMAID
    certificate_chain: tuple[bytes, ...] = field(default=(), repr=False)  # DER, leaf first

    @property
    def ok(self) -> bool:
        return self.response_code.startswith("OK")


class PncVerifier(Protocol):
    """Checks the signed parts of PnC requests. `timestamp`: Unix seconds (certificate
    validity); `session_id`: the -20 SessionID (a verifier may remember per session)."""

    def verify_authorization(
        self, req: Any, *, timestamp: int, session_id: bytes
    ) -> PncVerdict: ...  # header Signature over PnC_AReqAuthorizationMode + contract chain

    def verify_certificate_installation(
        self, req: Any, *, timestamp: int, session_id: bytes
    ) -> PncVerdict: ...  # header Signature over OEMProvisioningCertificateChain (+ chain)

    def verify_metering_confirmation(
        self, req: Any, *, timestamp: int, session_id: bytes
    ) -> PncVerdict: ...  # header Signature over SignedMeteringData (session's contract key)


@dataclass(frozen=True, slots=True)
class InstallationAnswer:
    """What a certificate provisioning service returned for a CertificateInstallationReq."""

    response_code: str = "OK"  # or WARNING_NoCertificateAvailable, ...
    cps_certificate_chain: Any = None  # iso20.CertificateChainType (CPS leaf + Sub-CAs)
    signed_installation_data: Any = None  # iso20.SignedInstallationDataType
    signature: Any = None  # iso20.SignatureType over SignedInstallationData (response header)
    remaining_contract_certificate_chains: int = 0
    reason: str = ""


class CertificateInstallationBackend(Protocol):
    """The CPS hook. Must not block: return None while the answer is pending (the SECC
    answers EVSEProcessing=Ongoing and asks again at the EV's next, identical request)."""

    def installation_data(
        self, req: Any, *, timestamp: int, session_id: bytes
    ) -> InstallationAnswer | None: ...


@dataclass(frozen=True, slots=True)
class Iso2Provisioned:
    """A -2 CertificateInstallationRes / CertificateUpdateRes from the provisioning service:
    the body and the header Signature of the SA provisioning certificate, or a FAILED code."""

    response_code: str = "OK"
    body: Any = None  # iso2.CertificateInstallationResType / CertificateUpdateResType
    signature: Any = None  # iso2.SignatureType for the response header
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.response_code.startswith("OK")


class Iso2PncBackend(Protocol):
    """ISO 15118-2 Plug & Charge (over TLS only): the crypto the -2 machine calls, answering
    "OK" or the -2 responseCodeType value (evse.security.iso2_pnc.Iso2PncService).
    `certificate_chain`: the contract chain (DER, leaf first) its verify_contract returned."""

    receipt_required: bool  # ask for a signed MeteringReceipt in the charge loop

    def verify_contract(self, chain: Any, emaid: str | None, *, timestamp: int) -> PncVerdict:
        ...  # PaymentDetailsReq: contract chain to an MO root, eMAID

    def new_challenge(self) -> bytes: ...  # GenChallenge (16 random bytes)

    def verify_authorization(self, req: Any, signature: Any, certificate_chain: tuple[bytes, ...],
                             challenge: bytes) -> PncVerdict: ...

    def verify_metering_receipt(self, req: Any, signature: Any,
                                certificate_chain: tuple[bytes, ...]) -> PncVerdict: ...

    def install(self, req: Any, *, timestamp: int) -> Iso2Provisioned: ...

    def update(self, req: Any, *, timestamp: int) -> Iso2Provisioned: ...


@dataclass(frozen=True, slots=True)
class SeccConfig:
    """What the SECC offers and how it behaves: services, control modes, limits, standards,
    authorization and Plug & Charge hooks, timeouts."""

    evse_id: str = "ZZ00000"
    services: tuple[ServiceId, ...] = (ServiceId.DC,)
    control_modes: tuple[ControlMode, ...] = (ControlMode.SCHEDULED, ControlMode.DYNAMIC)
    limits: EvseLimits = DEFAULT_LIMITS
    # Standards offered at supportedAppProtocol (names in standards.STANDARDS: "iso20",
    # "iso2", "din"); the EV's priority picks among them. Only -20 is implemented so far.
    protocols: tuple[str, ...] = ("iso20",)
    allow_plain_tcp_iso20: bool = False  # test/lab only: -20 (TLS-only) over plain TCP
    auto_authorize: bool = False  # demo: EIM authorized without asking anybody
    # Plug & Charge (TLS only). Without pnc_verifier every PnC AuthorizationReq is refused.
    offer_pnc: bool = False
    pnc_verifier: PncVerifier | None = None  # e.g. evse.security.PncVerifier(mo_roots=...)
    pnc_auto_authorize: bool = False  # a verified contract needs no backend decision
    # Offer CertificateInstallation (with PnC over TLS) and answer it through this hook.
    certificate_installation: CertificateInstallationBackend | None = None
    # PnC sessions: ask the EV to sign the metering data (EVSENotification=MeteringConfirmation
    # in every ChargeLoopRes that carries MeterInfo); the verified record leaves as the
    # effect MeteringConfirmed.
    pnc_metering_confirmation: bool = False
    # ISO 15118-2 Plug & Charge: "Contract" is offered over TLS when set (pnc_auto_authorize
    # applies to -2 contracts too)
    iso2_pnc: Iso2PncBackend | None = None
    # -2 CertificateInstallation/Update asked through the RequestIso2Certificate effect and
    # held until Iso2CertificateAnswered (or answered FAILED when the provisioning time is
    # up) instead of iso2_pnc.install/update in the handler (the asyncio layer sets it when
    # a certificate hook can answer -2, e.g. the CSMS's Get15118EVCertificate)
    iso2_certificates_async: bool = False
    max_payload: int = DEFAULT_MAX_PAYLOAD
    # V2GTP frames discarded without an answer (bad header, type not allowed here, empty):
    # past either limit without a valid frame in between the connection is closed, so junk
    # costs bounded work.
    max_ignored_frames: int = 64
    max_ignored_bytes: int = 65536
    schedule_provider: ScheduleProvider | None = None
    # Absolute price schedule in ScheduleExchangeRes: optional in the XSD, but the issue asks
    # for it and real EVs (Josev) reject a Scheduled response without any price schedule.
    pricing: bool = True
    free_service: bool = False
    meter_id: str = "METER-1"
    notification_max_delay: int = 10  # s the EV gets to stop after EVSENotification=Terminate
    precharge_max_current: float = 2.0
    dc_connector: int = 2  # ServiceDetail Connector for DC (1 Core, 2 Extended, 3 Dual2, 4 Dual4)
    bpt_channel: int = 1  # 1 Unified, 2 Separated
    generator_mode: int = 1  # 1 GridFollowing, 2 GridForming
    grid_islanding_detection: int = 1  # AC_BPT: 1 Active, 2 Passive
    # ServiceDetail MobilityNeedsMode: 1 the EV provides departure time and SOC targets
    # (Dynamic ScheduleExchangeRes omits them), 2 the SECC provides them too (echoed there).
    mobility_needs_mode: int = 1
    timeouts: Timeouts = field(default_factory=Timeouts)

    def __post_init__(self) -> None:
        check_protocols(self.protocols)
        bad = [s for s in self.services if s not in (*DC_SERVICES, *AC_SERVICES)]
        if bad or not self.services:
            raise ValueError(f"services must be among DC, DC_BPT, AC, AC_BPT (got {bad})")
        if BPT_SERVICES & set(self.services) and not self.limits.bidirectional:
            raise ValueError("BPT services need discharge limits (EvseLimits.max_discharge_*)")
        if not self.control_modes:
            raise ValueError("at least one control mode is needed")
        if self.mobility_needs_mode not in (1, 2):
            raise ValueError("mobility_needs_mode must be 1 (EV) or 2 (EV and SECC)")
        if not 0 <= self.notification_max_delay <= 65535:
            raise ValueError("notification_max_delay must fit an unsignedShort")

    def services_for(self, protocol: str) -> tuple[ServiceId, ...]:
        """The services we offer to an EV that negotiated `protocol`."""
        allowed = SERVICES_BY_PROTOCOL.get(protocol, ())
        return tuple(s for s in self.services if s in allowed)
