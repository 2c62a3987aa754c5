"""Named EV scenarios: what the simulated EV wants from a charging session.

A `ScenarioConfig` is plain, immutable data: the energy transfer service and control mode,
the battery, when to stop, how fast simulated time runs, which faults to expect. The EVCC
state machine (`simulators.ev.evcc`) reads it; `get_scenario(name, **overrides)` builds one.

Time has two scales here. *Real* seconds (`loop_interval`, `ongoing_interval`, timeouts) are
what the SECC sees on the wire. *Simulated* seconds move the battery: each charge-loop round
advances simulated time by `loop_sim_seconds` when set, else by the real time elapsed times
`speedup`, so a demo can charge a battery noticeably in a few real seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from simulators.battery import DEFAULT_OCV_TABLE, EvBattery


class EnergyService(IntEnum):
    """ISO 15118-20 energy transfer service IDs (as ServiceDiscoveryRes vectors show: DC=2,
    DC_BPT=6 offered together by real chargers; AC_BPT=5 in ServiceDetailReq)."""

    AC = 1
    DC = 2
    AC_BPT = 5
    DC_BPT = 6

    @property
    def is_dc(self) -> bool:
        return self in (EnergyService.DC, EnergyService.DC_BPT)

    @property
    def is_bpt(self) -> bool:
        return self in (EnergyService.AC_BPT, EnergyService.DC_BPT)


class ControlMode(StrEnum):
    SCHEDULED = "scheduled"
    DYNAMIC = "dynamic"

    @property
    def parameter_value(self) -> int:
        """Value of the "ControlMode" service parameter (1 Scheduled, 2 Dynamic)."""
        return 1 if self is ControlMode.SCHEDULED else 2


# supportedAppProtocol namespaces of ISO 15118-20 (version 1.0).
NAMESPACE_DC = "urn:iso:std:iso:15118:-20:DC"
NAMESPACE_AC = "urn:iso:std:iso:15118:-20:AC"


@dataclass(frozen=True, slots=True)
class AppProtocolOffer:
    namespace: str
    schema_id: int
    priority: int  # 1 = most preferred
    major: int = 1
    minor: int = 0


@dataclass(frozen=True, slots=True)
class BatteryParams:
    """Parameters of the EV battery (`simulators.battery.EvBattery`)."""

    capacity_kwh: float = 60.0
    soc: float = 0.5  # initial state of charge, 0..1
    internal_resistance_ohm: float = 0.1
    max_charge_current: float = 250.0
    max_discharge_current: float = 150.0
    max_charge_power: float = 120_000.0
    max_discharge_power: float = 50_000.0
    min_voltage: float = 300.0
    max_voltage: float = 420.0
    ocv_table: tuple[tuple[float, float], ...] = DEFAULT_OCV_TABLE

    def make(self) -> EvBattery:
        return EvBattery(
            capacity_kwh=self.capacity_kwh,
            soc=self.soc,
            ocv_table=self.ocv_table,
            internal_resistance_ohm=self.internal_resistance_ohm,
            max_charge_current=self.max_charge_current,
            max_discharge_current=self.max_discharge_current,
            max_charge_power=self.max_charge_power,
            max_discharge_power=self.max_discharge_power,
            min_voltage=self.min_voltage,
            max_voltage=self.max_voltage,
        )


@dataclass(frozen=True, slots=True)
class EvTimeouts:
    """EVCC-side timers of ISO 15118-20, in real seconds.

    `msg*` are V2G_EVCC_Msg_Timeout (the wait for a response: 2 s, 5 s for ServiceDetail and
    CertificateInstallation, 0.5 s for AC/DC_ChargeLoop). `ongoing` is V2G_EVCC_Ongoing_Timeout
    (EVSEProcessing=Ongoing repeats of Authorization/ScheduleExchange), `cable_check`
    V2G_EVCC_CableCheck_Timeout, `pre_charge` V2G_EVCC_PreCharge_Timeout, `communication_setup`
    V2G_EVCC_CommunicationSetup_Timeout (start of the connection until SessionSetupRes).
    `welding` bounds the WeldingDetection repeats (EV-chosen).

    `performance*` are the SECC's V2G_SECC_Msg_Performance_Time: responses slower than these
    are recorded as timing violations in the report but do not fail the session.
    """

    msg: float = 2.0
    msg_long: float = 5.0
    charge_loop: float = 0.5
    ongoing: float = 60.0
    cable_check: float = 40.0
    pre_charge: float = 10.0
    communication_setup: float = 20.0
    welding: float = 20.0
    performance: float = 1.5
    performance_long: float = 4.5
    performance_loop: float = 0.25

    def scaled(self, factor: float) -> EvTimeouts:
        """Every EV-side timeout times `factor` (performance limits unchanged)."""
        if factor <= 0:
            raise ValueError("timeout scale must be > 0")
        return dataclasses.replace(
            self,
            msg=self.msg * factor,
            msg_long=self.msg_long * factor,
            charge_loop=self.charge_loop * factor,
            ongoing=self.ongoing * factor,
            cable_check=self.cable_check * factor,
            pre_charge=self.pre_charge * factor,
            communication_setup=self.communication_setup * factor,
            welding=self.welding * factor,
        )


@dataclass(frozen=True, slots=True)
class ScenarioConfig:
    name: str
    service: EnergyService
    control_mode: ControlMode = ControlMode.SCHEDULED
    description: str = ""
    evcc_id: str = "WEVSESTACKSIM0001"
    battery: BatteryParams = field(default_factory=BatteryParams)
    target_soc: float = 80.0  # percent; reaching it ends the charge loop
    min_soc: float = 20.0  # percent; BPT never discharges below it
    # Charge-loop limits (None = unlimited; at least one should be set).
    max_loops: int | None = 20
    max_duration: float | None = None  # simulated seconds of charge loop
    # Pacing (real seconds).
    loop_interval: float = 0.1  # between the starts of two ChargeLoopReqs
    ongoing_interval: float = 0.05  # before repeating a request answered "Ongoing"
    precharge_interval: float = 0.05  # between PreChargeReqs / WeldingDetectionReqs
    # Simulated time.
    speedup: float = 1.0
    loop_sim_seconds: float | None = None  # fixed simulated seconds per loop round
    # Clock the SECC's schedule is read on: "real" (seconds since ScheduleExchangeRes, as the
    # SECC runs it) or "sim" (simulated charge-loop seconds, for long schedules in demos).
    schedule_time: str = "real"
    # Session setup.
    zero_session_id: bool = True  # all-zero SessionID in the first SessionSetupReq
    app_protocols: tuple[AppProtocolOffer, ...] | None = None  # None: derived from service
    departure_time: int = 7200  # seconds from now
    # AC on-board charger.
    ac_max_charge_power: float = 11_000.0
    ac_min_charge_power: float = 100.0
    ac_max_discharge_power: float = 11_000.0
    ac_min_discharge_power: float = 100.0
    # DC details.
    precharge_tolerance_v: float = 10.0
    welding_voltage_threshold: float = 60.0
    # BPT: loop rounds [start, end) discharge when the SECC's schedule has no discharge in it
    # (Scheduled mode only; needs a DischargingSchedule or BPT limits from the SECC).
    discharge_loops: tuple[int, int] | None = None
    discharge_power: float | None = None  # W magnitude of forced discharge; None: limits
    expect_discharge: bool = False  # success requires energy flowing out of the EV
    # Pause / resume.
    pause_after_loops: int | None = None
    pause_duration: float = 0.2  # real seconds between the two TCP connections
    resume_via_authorization: bool = False  # after OK_OldSessionJoined: Auth first, not CPD
    # EV-initiated schedule renegotiation after this many loops: PowerDelivery
    # (ScheduleRenegotiation), ScheduleExchange, PowerDelivery(Start), back to the loop.
    renegotiate_after_loops: int | None = None
    # EV-initiated stop.
    stop_after_loops: int | None = None
    termination_code: str | None = None
    termination_explanation: str | None = None
    # Charger-initiated stop (emergency): success requires EVSENotification=Terminate.
    expect_evse_stop: bool = False
    meter_info_every: int = 10  # MeterInfoRequested on loop 1, 1+N, ...; 0 = never
    timeouts: EvTimeouts = field(default_factory=EvTimeouts)
    # Authorization: "EIM", or "PnC" (TLS; contract or OEM provisioning credentials in `pnc`,
    # a simulators.ev.pnc.PncCredentials).
    authorization: str = "EIM"
    pnc: Any = None
    pnc_fallback_to_eim: bool = True  # PnC not offered / no contract: EIM, with a warning
    # PnC: answer EVSENotification=MeteringConfirmation with a MeteringConfirmationReq signed
    # by the contract key (False: ignore the request)
    pnc_metering_confirmation: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.target_soc <= 100 or not 0 <= self.min_soc <= 100:
            raise ValueError("target_soc and min_soc are percentages")
        if self.max_loops is not None and self.max_loops < 1:
            raise ValueError("max_loops must be >= 1")
        if self.speedup <= 0:
            raise ValueError("speedup must be > 0")
        if self.schedule_time not in ("real", "sim"):
            raise ValueError('schedule_time must be "real" or "sim"')
        if self.authorization not in ("EIM", "PnC"):
            raise ValueError('authorization must be "EIM" or "PnC"')
        if (self.pause_after_loops is not None and self.max_loops is not None
                and self.pause_after_loops >= self.max_loops):
            raise ValueError("pause_after_loops must be below max_loops (loops are counted "
                             "over both connections)")

    def replace(self, **changes: Any) -> ScenarioConfig:
        return dataclasses.replace(self, **changes)

    def offers(self) -> tuple[AppProtocolOffer, ...]:
        if self.app_protocols is not None:
            return self.app_protocols
        ns = NAMESPACE_DC if self.service.is_dc else NAMESPACE_AC
        return (AppProtocolOffer(ns, schema_id=1, priority=1),)

    @property
    def supported_service_ids(self) -> tuple[int, ...]:
        base = EnergyService.DC if self.service.is_dc else EnergyService.AC
        if self.service.is_bpt:
            return (int(self.service), int(base))
        return (int(self.service),)


def _scenarios() -> dict[str, ScenarioConfig]:
    s: dict[str, ScenarioConfig] = {}

    def add(cfg: ScenarioConfig) -> None:
        s[cfg.name] = cfg

    add(ScenarioConfig(
        name="dc",
        service=EnergyService.DC,
        description="DC charge (Scheduled) to the target SOC or for max_loops rounds",
    ))
    add(ScenarioConfig(
        name="dc_dynamic",
        service=EnergyService.DC,
        control_mode=ControlMode.DYNAMIC,
        description="DC charge in Dynamic control mode: the charger decides the power",
    ))
    add(ScenarioConfig(
        name="dc_bpt_scheduled",
        service=EnergyService.DC_BPT,
        description="DC_BPT Scheduled: follow the SECC's schedule, including a discharge phase "
        "(negative target current) where the schedule is negative, else in loops 6..12",
        max_loops=16,
        discharge_loops=(6, 12),
        expect_discharge=True,
    ))
    add(ScenarioConfig(
        name="dc_bpt_dynamic",
        service=EnergyService.DC_BPT,
        control_mode=ControlMode.DYNAMIC,
        description="DC_BPT Dynamic: send limits incl. discharge, follow the charger's "
        "present current (negative = discharge) within them",
    ))
    add(ScenarioConfig(
        name="ac",
        service=EnergyService.AC,
        description="AC charge (Scheduled)",
    ))
    add(ScenarioConfig(
        name="ac_bpt",
        service=EnergyService.AC_BPT,
        description="AC_BPT Scheduled: follow EVSETargetActivePower / the schedule, with a "
        "discharge phase in loops 6..12 when the schedule has none",
        max_loops=16,
        discharge_loops=(6, 12),
        expect_discharge=True,
    ))
    add(ScenarioConfig(
        name="ac_bpt_dynamic",
        service=EnergyService.AC_BPT,
        control_mode=ControlMode.DYNAMIC,
        description="AC_BPT Dynamic: follow the charger's EVSETargetActivePower setpoints",
    ))
    add(ScenarioConfig(
        name="pause_resume",
        service=EnergyService.DC,
        description="SessionStop(Pause) after 4 loops, new TCP connection, SessionSetup with "
        "the old SessionID (expects OK_OldSessionJoined), straight to ChargeParameterDiscovery",
        max_loops=8,
        pause_after_loops=4,
    ))
    add(ScenarioConfig(
        name="dc_renegotiation",
        service=EnergyService.DC,
        description="DC charge; after 3 loops the EV renegotiates the schedule "
        "(PowerDelivery ScheduleRenegotiation, ScheduleExchange, PowerDelivery Start)",
        max_loops=8,
        renegotiate_after_loops=3,
    ))
    add(ScenarioConfig(
        name="ev_stop",
        service=EnergyService.DC,
        description="EV-initiated stop after 3 loops, well below the target SOC",
        max_loops=50,
        stop_after_loops=3,
        termination_code="UserStop",
        termination_explanation="driver pressed stop",
    ))
    add(ScenarioConfig(
        name="dc_pnc",
        service=EnergyService.DC,
        description="DC charge with Plug & Charge over TLS: a signed AuthorizationReq with "
        "the contract from the options (or CertificateInstallation with the OEM "
        "provisioning certificate when the SECC offers it)",
        authorization="PnC",
    ))
    add(ScenarioConfig(
        name="emergency_stop",
        service=EnergyService.DC,
        description="charge until the charger signals EVSENotification=Terminate (e.g. "
        "emergency shutdown), then stop cleanly; fails if it never comes",
        target_soc=100.0,
        max_loops=200,
        expect_evse_stop=True,
    ))
    return s


SCENARIOS: dict[str, ScenarioConfig] = _scenarios()


def scenario_names() -> tuple[str, ...]:
    return tuple(SCENARIOS)


def get_scenario(name: str, **overrides: Any) -> ScenarioConfig:
    """The named scenario with some fields replaced (`battery=BatteryParams(...)`, ...)."""
    try:
        base = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}") from None
    return base.replace(**overrides) if overrides else base
