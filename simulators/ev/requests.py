"""What the simulated EV asks for: setpoints from schedule, limits and battery, and the
builders of every ISO 15118-20 request. A mixin of `simulators.ev.evcc.Evcc`, which holds the
state these read (kept apart so the state machine stays readable)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exi_codec.schemas import iso20, iso20_ac, iso20_dc, sap
from simulators.ev.messages import header, maybe_value, rational, value_of
from simulators.ev.scenarios import ControlMode

if TYPE_CHECKING:
    from simulators.ev.battery_link import BatteryLink
    from simulators.ev.scenarios import ScenarioConfig

INF = math.inf


@dataclass(slots=True)
class EvseLimits:
    """What the SECC told us (magnitudes, W / A / V); None = not told."""

    max_charge_power: float | None = None
    min_charge_power: float | None = None
    max_charge_current: float | None = None
    max_voltage: float | None = None
    min_voltage: float | None = None
    max_discharge_power: float | None = None
    min_discharge_power: float | None = None
    max_discharge_current: float | None = None

    def update(self, src: Any, **names: str) -> None:
        """Copy the RationalNumber fields named `names` (ours -> theirs) when present."""
        for ours, theirs in names.items():
            v = maybe_value(getattr(src, theirs, None))
            if v is not None:
                setattr(self, ours, abs(v))


@dataclass(frozen=True, slots=True)
class Schedule:
    """The ScheduleTuple the EV selected: entries as (duration s, power W as sent).

    Two conventions for asking the EV to discharge are understood: a negative power in the
    ChargingSchedule, or (ours, `evse.protocol.schedules`) a ChargingSchedule power of 0 with a
    non-zero DischargingSchedule power (sent negative) in the same interval. The
    DischargingSchedule's magnitude always caps the discharge power.
    """

    tuple_id: int
    time_anchor: int
    charging: tuple[tuple[float, float], ...]
    discharging: tuple[tuple[float, float], ...] = ()
    power_tolerance: float | None = None

    @staticmethod
    def power_at(entries: tuple[tuple[float, float], ...], t: float) -> float | None:
        """Power of the entry covering `t` seconds after the start (the last one beyond)."""
        if not entries:
            return None
        start = 0.0
        for duration, power in entries:
            if t < start + duration:
                return power
            start += duration
        return entries[-1][1]

    def discharge_limit(self, t: float) -> float | None:
        """Magnitude allowed by the DischargingSchedule at t (None: no DischargingSchedule)."""
        d = self.power_at(self.discharging, t)
        return None if d is None else abs(d)

    def setpoint_at(self, t: float) -> float | None:
        """The power the schedule asks for at t, signed (negative = discharge)."""
        c = self.power_at(self.charging, t)
        if c is None:
            return None
        d = self.discharge_limit(t)
        if c < 0:
            return -min(-c, d) if d is not None else c
        if c == 0 and d:
            return -d
        return c

    def breakpoints(self) -> list[float]:
        """Start times of every interval of either schedule, and the end of the longest."""
        points = {0.0}
        for entries in (self.charging, self.discharging):
            t = 0.0
            for duration, _ in entries:
                t += duration
                points.add(t)
        return sorted(points)

    @property
    def has_discharge(self) -> bool:
        return any((self.setpoint_at(t) or 0.0) < 0 for t in self.breakpoints()[:-1])


def _processing(finished: bool) -> Any:
    return iso20_dc.processingType.Finished if finished else iso20_dc.processingType.Ongoing


def _first(*values: Any) -> Any:
    """The first value that is not None (generated messages may be empty tuples)."""
    for v in values:
        if v is not None:
            return v
    return None


def _entries(power_schedule: Any) -> tuple[tuple[float, float], ...]:
    if power_schedule is None or power_schedule.power_schedule_entries is None:
        return ()
    return tuple(
        (float(e.duration), value_of(e.power))
        for e in power_schedule.power_schedule_entries.power_schedule_entry
    )


class EvRequests:
    """Setpoints and request builders; `Evcc` provides the attributes declared here."""

    scenario: ScenarioConfig
    battery: BatteryLink
    evse_limits: EvseLimits
    schedule: Schedule | None
    service_parameters: dict[str, Any]
    parameter_set_id: int | None
    epoch_offset: float
    loops: int
    sim_time: float
    stop_reason: str | None
    _session_id: bytes
    _now: float
    _schedule_received_at: float
    _evse_target_power: float | None
    _ac_power_sent: float
    _precharge_target: float
    _precharge_done: bool
    _welding_done: bool
    _channel: str | None
    _session_end: str

    def _timestamp(self, now: float) -> int:
        return max(0, int(now + self.epoch_offset))

    def _hdr(self, mod: Any, now: float) -> Any:
        return header(mod, self._session_id, self._timestamp(now))

    # == setpoints ============================================================================

    def _schedule_time(self, now: float | None = None) -> float:
        """Seconds into the schedule: real time since ScheduleExchangeRes (the SECC's clock
        runs the schedule), or simulated charge-loop time with `schedule_time="sim"`."""
        if self.scenario.schedule_time == "sim":
            return self.sim_time
        t = now if now is not None else self._now
        return max(0.0, t - self._schedule_received_at)

    def _schedule_power(self) -> tuple[float | None, bool]:
        """(power W signed the schedule asks for now or None, forced discharge?)."""
        sched = self.schedule
        if sched is None:
            return None, False
        t = self._schedule_time()
        p = sched.setpoint_at(t)
        window = self.scenario.discharge_loops
        if (self.scenario.service.is_bpt and not sched.has_discharge and window is not None
                and window[0] <= self.loops < window[1]):
            allowed = sched.discharge_limit(t)  # None: no DischargingSchedule, no discharge
            wanted = self.scenario.discharge_power
            magnitude = min(allowed or 0.0, wanted if wanted is not None else INF)
            if magnitude > 0:
                return -magnitude, True
        return p, False

    def _discharging_now(self) -> bool:
        if not self.scenario.service.is_bpt:
            return False
        if self.scenario.control_mode is ControlMode.SCHEDULED:
            p, forced = self._schedule_power()
            return forced or (p is not None and p < 0)
        return False

    def _dc_target_current(self) -> float:
        lim, cfg = self.evse_limits, self.scenario
        v = max(self.battery.present_voltage(), 1.0)
        soc = self.battery.soc * 100.0
        p, _forced = self._schedule_power()
        if p is not None and p < 0:
            if not cfg.service.is_bpt or soc <= cfg.min_soc:
                return 0.0
            mag = min(
                self.battery.discharge_current_limit(),
                lim.max_discharge_current if lim.max_discharge_current is not None else INF,
                (lim.max_discharge_power if lim.max_discharge_power is not None else INF) / v,
                abs(p) / v,
            )
            return -max(0.0, mag)
        if soc >= cfg.target_soc:
            return 0.0
        mag = min(
            self.battery.charge_current_limit(),
            lim.max_charge_current if lim.max_charge_current is not None else INF,
            (lim.max_charge_power if lim.max_charge_power is not None else INF) / v,
            p / v if p is not None else INF,
        )
        return max(0.0, mag)

    def _ac_power_setpoint(self) -> float:
        lim, cfg = self.evse_limits, self.scenario
        v = max(self.battery.present_voltage(), 1.0)
        soc = self.battery.soc * 100.0
        upper = min(
            cfg.ac_max_charge_power,
            lim.max_charge_power if lim.max_charge_power is not None else INF,
            self.battery.charge_current_limit() * v,
        )
        lower = 0.0
        if cfg.service.is_bpt and soc > cfg.min_soc:
            lower = -min(
                cfg.ac_max_discharge_power,
                lim.max_discharge_power if lim.max_discharge_power is not None else INF,
                self.battery.discharge_current_limit() * v,
            )
        if cfg.control_mode is ControlMode.DYNAMIC:
            target = self._evse_target_power or 0.0
        else:
            p, forced = self._schedule_power()
            if self._evse_target_power is not None:
                target = self._evse_target_power
            elif p is not None:
                target = p
            else:
                target = upper
            if forced and self._evse_target_power is None:
                target = p if p is not None else lower
        return max(lower, min(upper, target))

    def _energy_requests(self) -> tuple[float, float, float]:
        """(target, maximum, minimum) energy requests in Wh."""
        cfg = self.scenario
        target = max(0.0, self.battery.energy_wh_to(cfg.target_soc))
        maximum = max(0.0, self.battery.energy_wh_to(100.0))
        minimum = self.battery.energy_wh_to(cfg.min_soc)
        if not cfg.service.is_bpt:
            minimum = max(0.0, minimum)
        return target, maximum, minimum

    def _departure(self) -> int:
        return max(0, int(self.scenario.departure_time - self.sim_time))

    # == requests =============================================================================

    def _req_sap(self, now: float) -> Any:
        return sap.supportedAppProtocolReq(app_protocol=tuple(
            sap.AppProtocolType(
                protocol_namespace=o.namespace,
                version_number_major=o.major,
                version_number_minor=o.minor,
                schema_id=o.schema_id,
                priority=o.priority,
            )
            for o in self.scenario.offers()
        ))

    def _req_session_setup(self, now: float) -> Any:
        return iso20.SessionSetupReq(header=self._hdr(iso20, now), evccid=self.scenario.evcc_id)

    def _req_auth_setup(self, now: float) -> Any:
        return iso20.AuthorizationSetupReq(header=self._hdr(iso20, now))

    def _req_auth(self, now: float) -> Any:
        pnc = getattr(self, "pnc", None)
        if pnc is not None:  # Plug & Charge: signed PnC_AReqAuthorizationMode
            return pnc.authorization_req(self._hdr(iso20, now))
        return iso20.AuthorizationReq(
            header=self._hdr(iso20, now),
            selected_authorization_service=iso20.authorizationType.EIM,
            eim_a_req_authorization_mode=iso20.EIM_AReqAuthorizationModeType(),
        )

    def _req_service_discovery(self, now: float) -> Any:
        return iso20.ServiceDiscoveryReq(
            header=self._hdr(iso20, now),
            supported_service_i_ds=iso20.ServiceIDListType(
                service_id=self.scenario.supported_service_ids
            ),
        )

    def _req_service_detail(self, now: float) -> Any:
        return iso20.ServiceDetailReq(
            header=self._hdr(iso20, now), service_id=int(self.scenario.service)
        )

    def _req_service_selection(self, now: float) -> Any:
        return iso20.ServiceSelectionReq(
            header=self._hdr(iso20, now),
            selected_energy_transfer_service=iso20.SelectedServiceType(
                service_id=int(self.scenario.service), parameter_set_id=self.parameter_set_id
            ),
        )

    def _req_cpd(self, now: float) -> Any:
        cfg, b = self.scenario, self.battery.battery
        if cfg.service.is_dc:
            m = iso20_dc
            f: dict[str, Any] = dict(
                ev_maximum_charge_power=rational(m, b.max_charge_power),
                ev_minimum_charge_power=rational(m, 0),
                ev_maximum_charge_current=rational(m, b.max_charge_current),
                ev_minimum_charge_current=rational(m, 0),
                ev_maximum_voltage=rational(m, b.max_voltage),
                ev_minimum_voltage=rational(m, b.min_voltage),
                target_soc=int(round(cfg.target_soc)),
            )
            if cfg.service.is_bpt:
                f.update(
                    ev_maximum_discharge_power=rational(m, b.max_discharge_power),
                    ev_minimum_discharge_power=rational(m, 0),
                    ev_maximum_discharge_current=rational(m, b.max_discharge_current),
                    ev_minimum_discharge_current=rational(m, 0),
                )
                return m.DC_ChargeParameterDiscoveryReq(
                    header=self._hdr(m, now),
                    bpt_dc_cpd_req_energy_transfer_mode=m.BPT_DC_CPDReqEnergyTransferModeType(**f),
                )
            return m.DC_ChargeParameterDiscoveryReq(
                header=self._hdr(m, now),
                dc_cpd_req_energy_transfer_mode=m.DC_CPDReqEnergyTransferModeType(**f),
            )
        a = iso20_ac
        f = dict(
            ev_maximum_charge_power=rational(a, cfg.ac_max_charge_power),
            ev_minimum_charge_power=rational(a, cfg.ac_min_charge_power),
        )
        if cfg.service.is_bpt:
            f.update(
                ev_maximum_discharge_power=rational(a, cfg.ac_max_discharge_power),
                ev_minimum_discharge_power=rational(a, cfg.ac_min_discharge_power),
            )
            return a.AC_ChargeParameterDiscoveryReq(
                header=self._hdr(a, now),
                bpt_ac_cpd_req_energy_transfer_mode=a.BPT_AC_CPDReqEnergyTransferModeType(**f),
            )
        return a.AC_ChargeParameterDiscoveryReq(
            header=self._hdr(a, now),
            ac_cpd_req_energy_transfer_mode=a.AC_CPDReqEnergyTransferModeType(**f),
        )

    def _req_schedule_exchange(self, now: float) -> Any:
        cfg, m = self.scenario, iso20
        target, maximum, minimum = self._energy_requests()
        if cfg.control_mode is ControlMode.SCHEDULED:
            return m.ScheduleExchangeReq(
                header=self._hdr(m, now),
                maximum_supporting_points=1024,
                scheduled_se_req_control_mode=m.Scheduled_SEReqControlModeType(
                    departure_time=self._departure(),
                    ev_target_energy_request=rational(m, target),
                    ev_maximum_energy_request=rational(m, maximum),
                    ev_minimum_energy_request=rational(m, max(0.0, minimum)),
                ),
            )
        v2x: dict[str, Any] = {}
        if cfg.service.is_bpt:
            v2x = dict(
                ev_maximum_v2_x_energy_request=rational(m, maximum),
                ev_minimum_v2_x_energy_request=rational(m, minimum),
            )
        return m.ScheduleExchangeReq(
            header=self._hdr(m, now),
            maximum_supporting_points=1024,
            dynamic_se_req_control_mode=m.Dynamic_SEReqControlModeType(
                departure_time=self._departure(),
                minimum_soc=int(round(cfg.min_soc)),
                target_soc=int(round(cfg.target_soc)),
                ev_target_energy_request=rational(m, target),
                ev_maximum_energy_request=rational(m, maximum),
                ev_minimum_energy_request=rational(m, minimum),
                **v2x,
            ),
        )

    def _req_cable_check(self, now: float) -> Any:
        return iso20_dc.DC_CableCheckReq(header=self._hdr(iso20_dc, now))

    def _req_pre_charge(self, now: float) -> Any:
        m = iso20_dc
        return m.DC_PreChargeReq(
            header=self._hdr(m, now),
            ev_processing=_processing(self._precharge_done),
            ev_present_voltage=rational(m, self.battery.open_circuit_voltage()),
            ev_target_voltage=rational(m, self._precharge_target),
        )

    def _wanted_channel(self) -> str | None:
        """BPT_ChannelSelection for now: only with BPTChannel=2 (Separated) in Scheduled mode;
        with a unified channel (and in Dynamic mode) the direction needs no selection."""
        cfg = self.scenario
        if not cfg.service.is_bpt or cfg.control_mode is not ControlMode.SCHEDULED:
            return None
        if self.service_parameters.get("BPTChannel") != 2:
            return None
        return "Discharge" if self._discharging_now() else "Charge"

    def _req_power_delivery(self, now: float, progress: str) -> Any:
        m = iso20
        profile = None
        channel = None
        if progress == "Start":
            profile = self._power_profile(now)
            channel = self._wanted_channel()
            self._channel = channel
        return m.PowerDeliveryReq(
            header=self._hdr(m, now),
            ev_processing=iso20.processingType.Finished,
            charge_progress=iso20.chargeProgressType(progress),
            ev_power_profile=profile,
            bpt_channel_selection=None if channel is None else iso20.channelSelectionType(channel),
        )

    def _power_profile(self, now: float) -> Any:
        m, cfg = iso20, self.scenario
        b = self.battery.battery
        if cfg.service.is_dc:
            max_charge, max_discharge = b.max_charge_power, b.max_discharge_power
        else:
            max_charge, max_discharge = cfg.ac_max_charge_power, cfg.ac_max_discharge_power
        if not cfg.service.is_bpt:
            max_discharge = 0.0
        sched = self.schedule
        if cfg.control_mode is ControlMode.SCHEDULED and sched is not None:
            points = sched.breakpoints()
            segments = [
                (b - a, sched.setpoint_at(a) or 0.0)
                for a, b in zip(points, points[1:], strict=False)
            ] or [(float(self._departure()), max_charge)]
            return m.EVPowerProfileType(
                time_anchor=sched.time_anchor,
                scheduled_evppt_control_mode=m.Scheduled_EVPPTControlModeType(
                    selected_schedule_tuple_id=sched.tuple_id,
                    power_tolerance_acceptance=(
                        iso20.powerToleranceAcceptanceType.PowerToleranceConfirmed
                        if sched.power_tolerance is not None else None
                    ),
                ),
                ev_power_profile_entries=m.EVPowerProfileEntryListType(ev_power_profile_entry=tuple(
                    m.PowerScheduleEntryType(
                        duration=int(d),
                        power=rational(m, max(-max_discharge, min(max_charge, p))),
                    )
                    for d, p in segments[:2048]
                )),
            )
        return m.EVPowerProfileType(
            time_anchor=self._timestamp(now),
            dynamic_evppt_control_mode=m.Dynamic_EVPPTControlModeType(),
            ev_power_profile_entries=m.EVPowerProfileEntryListType(ev_power_profile_entry=(
                m.PowerScheduleEntryType(
                    duration=max(1, self._departure()), power=rational(m, max_charge)
                ),
            )),
        )

    def _display(self, mod: Any) -> Any:
        cfg = self.scenario
        soc = self.battery.soc * 100.0
        return mod.DisplayParametersType(
            present_soc=self.battery.soc_percent,
            minimum_soc=int(round(cfg.min_soc)),
            target_soc=int(round(cfg.target_soc)),
            maximum_soc=100,
            charging_complete=soc >= cfg.target_soc,
            battery_energy_capacity=rational(mod, self.battery.capacity_wh),
        )

    def _meter_requested(self) -> bool:
        every = self.scenario.meter_info_every
        return every > 0 and self.loops % every == 0

    def _req_loop(self, now: float) -> Any:
        if self.scenario.service.is_dc:
            return self._req_dc_loop(now)
        return self._req_ac_loop(now)

    def _req_dc_loop(self, now: float) -> Any:
        m, cfg = iso20_dc, self.scenario
        b = self.battery.battery
        v = self.battery.present_voltage()
        soc = self.battery.soc * 100.0
        charge_current = self.battery.charge_current_limit()
        discharge_current = self.battery.discharge_current_limit() if soc > cfg.min_soc else 0.0
        ev_max_power = min(b.max_charge_power, charge_current * v)
        ev_max_discharge_power = min(b.max_discharge_power, discharge_current * v)
        common: dict[str, Any] = dict(
            header=self._hdr(m, now),
            display_parameters=self._display(m),
            meter_info_requested=self._meter_requested(),
            ev_present_voltage=rational(m, v),
        )
        if cfg.control_mode is ControlMode.SCHEDULED:
            lim = self.evse_limits
            target_v = min(b.max_voltage, lim.max_voltage if lim.max_voltage is not None else INF)
            f: dict[str, Any] = dict(
                ev_target_current=rational(m, self._dc_target_current()),
                ev_target_voltage=rational(m, target_v),
                ev_maximum_charge_power=rational(m, ev_max_power),
                ev_minimum_charge_power=rational(m, 0),
                ev_maximum_charge_current=rational(m, charge_current),
                ev_maximum_voltage=rational(m, b.max_voltage),
                ev_minimum_voltage=rational(m, b.min_voltage),
            )
            if cfg.service.is_bpt:
                f.update(
                    ev_maximum_discharge_power=rational(m, ev_max_discharge_power),
                    ev_minimum_discharge_power=rational(m, 0),
                    ev_maximum_discharge_current=rational(m, discharge_current),
                )
                return m.DC_ChargeLoopReq(
                    **common,
                    bpt_scheduled_dc_cl_req_control_mode=m.BPT_Scheduled_DC_CLReqControlModeType(
                        **f
                    ),
                )
            return m.DC_ChargeLoopReq(
                **common,
                scheduled_dc_cl_req_control_mode=m.Scheduled_DC_CLReqControlModeType(**f),
            )
        target, maximum, minimum = self._energy_requests()
        f = dict(
            departure_time=self._departure(),
            ev_target_energy_request=rational(m, target),
            ev_maximum_energy_request=rational(m, maximum),
            ev_minimum_energy_request=rational(m, minimum),
            ev_maximum_charge_power=rational(m, ev_max_power),
            ev_minimum_charge_power=rational(m, 0),
            ev_maximum_charge_current=rational(m, charge_current),
            ev_maximum_voltage=rational(m, b.max_voltage),
            ev_minimum_voltage=rational(m, b.min_voltage),
        )
        if cfg.service.is_bpt:
            f.update(
                ev_maximum_discharge_power=rational(m, ev_max_discharge_power),
                ev_minimum_discharge_power=rational(m, 0),
                ev_maximum_discharge_current=rational(m, discharge_current),
                ev_maximum_v2_x_energy_request=rational(m, maximum),
                ev_minimum_v2_x_energy_request=rational(m, minimum),
            )
            return m.DC_ChargeLoopReq(
                **common,
                bpt_dynamic_dc_cl_req_control_mode=m.BPT_Dynamic_DC_CLReqControlModeType(**f),
            )
        return m.DC_ChargeLoopReq(
            **common, dynamic_dc_cl_req_control_mode=m.Dynamic_DC_CLReqControlModeType(**f)
        )

    def _req_ac_loop(self, now: float) -> Any:
        a, cfg = iso20_ac, self.scenario
        power = self._ac_power_setpoint()
        self._ac_power_sent = power
        v = max(self.battery.present_voltage(), 1.0)
        soc = self.battery.soc * 100.0
        max_charge = min(cfg.ac_max_charge_power, self.battery.charge_current_limit() * v)
        max_discharge = 0.0
        if soc > cfg.min_soc:
            max_discharge = min(cfg.ac_max_discharge_power,
                                self.battery.discharge_current_limit() * v)
        common: dict[str, Any] = dict(
            header=self._hdr(a, now),
            display_parameters=self._display(a),
            meter_info_requested=self._meter_requested(),
        )
        f: dict[str, Any] = dict(
            ev_maximum_charge_power=rational(a, max_charge),
            ev_minimum_charge_power=rational(a, min(cfg.ac_min_charge_power, max_charge)),
            ev_present_active_power=rational(a, power),
            ev_present_reactive_power=rational(a, 0),
        )
        bpt = dict(
            ev_maximum_discharge_power=rational(a, max_discharge),
            ev_minimum_discharge_power=rational(a, min(cfg.ac_min_discharge_power, max_discharge)),
        )
        if cfg.control_mode is ControlMode.SCHEDULED:
            if cfg.service.is_bpt:
                return a.AC_ChargeLoopReq(
                    **common,
                    bpt_scheduled_ac_cl_req_control_mode=a.BPT_Scheduled_AC_CLReqControlModeType(
                        **f, **bpt
                    ),
                )
            return a.AC_ChargeLoopReq(
                **common,
                scheduled_ac_cl_req_control_mode=a.Scheduled_AC_CLReqControlModeType(**f),
            )
        target, maximum, minimum = self._energy_requests()
        f.update(
            departure_time=self._departure(),
            ev_target_energy_request=rational(a, target),
            ev_maximum_energy_request=rational(a, maximum),
            ev_minimum_energy_request=rational(a, minimum),
        )
        if cfg.service.is_bpt:
            return a.AC_ChargeLoopReq(
                **common,
                bpt_dynamic_ac_cl_req_control_mode=a.BPT_Dynamic_AC_CLReqControlModeType(
                    **f, **bpt,
                    ev_maximum_v2_x_energy_request=rational(a, maximum),
                    ev_minimum_v2_x_energy_request=rational(a, minimum),
                ),
            )
        return a.AC_ChargeLoopReq(
            **common, dynamic_ac_cl_req_control_mode=a.Dynamic_AC_CLReqControlModeType(**f)
        )

    def _req_welding(self, now: float) -> Any:
        return iso20_dc.DC_WeldingDetectionReq(
            header=self._hdr(iso20_dc, now),
            ev_processing=_processing(self._welding_done),
        )

    def _req_session_stop(self, now: float) -> Any:
        cfg = self.scenario
        terminate = self._session_end == "Terminate"
        code = cfg.termination_code if terminate and self.stop_reason == "ev_stop" else None
        text = cfg.termination_explanation if code is not None else None
        return iso20.SessionStopReq(
            header=self._hdr(iso20, now),
            charging_session=iso20.chargingSessionType(self._session_end),
            ev_termination_code=code,
            ev_termination_explanation=text,
        )
