"""Sans-IO simulated EV for DIN SPEC 70121 (DC, external payment), the twin of `Evcc`.

    evcc = DinEvcc(get_din_scenario("din_dc"))
    send(evcc.start(now))                          # supportedAppProtocolReq (DIN offer)
    for effect in evcc.receive_data(chunk, now):   # SendData / Finished / Failed
        ...
    evcc.next_deadline(); evcc.handle_timeout(now)

Flow: supportedAppProtocol, SessionSetup, ServiceDiscovery, ServicePaymentSelection
(ExternalPayment), ContractAuthentication (repeated while Ongoing), ChargeParameterDiscovery
(repeated while Ongoing), CableCheck (repeated while Ongoing), PreCharge (until the charger's
voltage is within tolerance of the battery's), PowerDelivery(ReadyToChargeState=true),
CurrentDemand (paced by `loop_interval`; the battery charges at the charger's present
current), PowerDelivery(false), WeldingDetection, SessionStop. Scenario knobs reproduce the
real-car quirks the SECC must survive (SessionStop after CableCheck or PreCharge, a repeated
ChargeParameterDiscovery, a trailing 0x00 after the EXI stream, an empty SessionID in
SessionSetupReq, RemainingTimeToFullSoC in minutes). Same effects and report as `Evcc`.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import exi_codec
from evse.protocol.v2gtp import PayloadType, V2GTPError, V2GTPReassembler, encode_frame
from exi_codec.errors import ExiError
from exi_codec.schemas import din, sap
from simulators.ev.battery_link import BatteryLink
from simulators.ev.evcc import Failed, Finished, SendData
from simulators.ev.report import (
    MessageRecord,
    SessionReport,
    TimingViolation,
    judged_on_energy,
)
from simulators.ev.scenarios import BatteryParams

DIN_NAMESPACE = "urn:din:70121:2012:MsgDef"
Effect = SendData | Finished | Failed


@dataclass(frozen=True, slots=True)
class DinScenario:
    name: str = "din_dc"
    evcc_id: bytes = bytes.fromhex("0A1B2C3D4E5F")
    battery: BatteryParams = field(default_factory=lambda: BatteryParams(soc=0.3))
    loops: int = 20  # CurrentDemand rounds before the EV stops (ChargingComplete)
    loop_interval: float = 0.05  # real s between CurrentDemand requests
    loop_sim_seconds: float = 30.0  # simulated battery seconds per CurrentDemand round
    # with a shared battery (the charger's power stage moves it): simulated seconds per real
    # second, to count the energy as the power stage delivers it
    speedup: float = 1.0
    ongoing_interval: float = 0.05  # real s between repeats while EVSEProcessing=Ongoing
    target_current: float = 100.0
    precharge_tolerance: float = 20.0  # V
    stop_after: str | None = None  # "CableCheck" / "PreCharge": SessionStop right after it
    repeat_charge_parameter_discovery: bool = False
    trailing_zero: bool = False  # a 0x00 after every EXI stream
    empty_session_id: bool = False  # SessionSetupReq with an empty SessionID
    minutes: bool = False  # RemainingTimeToFullSoC in minutes rather than seconds
    msg_timeout: float = 2.0  # the EV's wait for a response (DESIGN.md 5b)
    loop_timeout: float = 0.25  # CurrentDemand
    ongoing_timeout: float = 60.0

    def replace(self, **changes: Any) -> DinScenario:
        return dataclasses.replace(self, **changes)


DIN_SCENARIOS: dict[str, DinScenario] = {
    "din_dc": DinScenario(),
    "din_stop_after_cable_check": DinScenario(name="din_stop_after_cable_check",
                                              stop_after="CableCheck"),
    "din_stop_after_precharge": DinScenario(name="din_stop_after_precharge",
                                            stop_after="PreCharge"),
    "din_quirks": DinScenario(name="din_quirks", repeat_charge_parameter_discovery=True,
                              trailing_zero=True, empty_session_id=True, minutes=True),
}


def get_din_scenario(name: str, **overrides: Any) -> DinScenario:
    try:
        base = DIN_SCENARIOS[name]
    except KeyError:
        known = ", ".join(DIN_SCENARIOS)
        raise ValueError(f"unknown DIN scenario {name!r} (known: {known})") from None
    return base.replace(**overrides) if overrides else base


def _pv(x: float, unit: str | None, multiplier: int = -1) -> din.PhysicalValueType:
    value = max(-32768, min(32767, round(x * 10**-multiplier)))
    u = None if unit is None else din.unitSymbolType(unit)
    return din.PhysicalValueType(multiplier=multiplier, unit=u, value=value)


def _value(pv: Any) -> float:
    return float(pv.value) * 10.0 ** int(pv.multiplier or 0) if pv is not None else 0.0


def _power(p_max: Any) -> float:
    """DIN's PMax is a PhysicalValue (W); a plain number is taken as W."""
    return _value(p_max) if hasattr(p_max, "value") else float(p_max)


class DinEvcc:
    """The EV's DIN state machine (sans-IO). See the module docstring."""

    def __init__(
        self,
        scenario: DinScenario,
        *,
        battery: BatteryLink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.scenario = scenario
        # shared=True (the demo): the charger's power stage moves the battery, the EV counts
        self.battery = battery if battery is not None else BatteryLink(scenario.battery.make())
        self.state = "Idle"
        self.states: list[str] = []
        self.messages: list[MessageRecord] = []
        self.warnings: list[str] = []
        self.notifications: list[str] = []
        self.timing_violations: list[TimingViolation] = []
        self.loops = 0
        self.protocol: str | None = None
        self.evse_id: str | None = None
        self.failure: str | None = None
        self.stop_reason: str | None = None
        self.evse_max_current = 0.0
        self.evse_max_voltage = 0.0
        self.pmax_w: list[list[float]] = []  # the PMaxSchedule of each SAScheduleList received
        self.loop_log: list[tuple[float, float]] = []  # CurrentDemandRes: (EVSEMaxPower, V*A)
        self._rng = rng or random.Random()
        self._session_id = b""
        self._reasm = V2GTPReassembler(max_payload=65536)
        self._pending: tuple[str, float, float, int] | None = None  # name, sent, deadline, idx
        self._scheduled: tuple[float, str] | None = None  # at, request name
        self._out: list[Effect] = []
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._ongoing_since: float | None = None
        self._cpd_count = 0
        self._present_voltage = 0.0
        self._stop_requested: str | None = None
        self._last_loop_at: float | None = None

    # == public API ==========================================================================

    @property
    def session_id(self) -> bytes:
        return self._session_id

    @property
    def finished(self) -> bool:
        return self.state in ("Finished", "Failed")

    def start(self, now: float) -> bytes:
        self._started_at = now
        req = sap.supportedAppProtocolReq(app_protocol=(sap.AppProtocolType(
            protocol_namespace=DIN_NAMESPACE, version_number_major=2, version_number_minor=0,
            schema_id=1, priority=1),))
        self._send_raw("supportedAppProtocolReq", exi_codec.encode(req), now)
        out = self._take()
        assert isinstance(out[0], SendData)
        return out[0].data

    def receive_data(self, data: bytes, now: float) -> list[Effect]:
        if self.finished or self._started_at is None:
            return []
        try:
            for item in self._reasm.frames(data):
                if isinstance(item, V2GTPError):
                    self.warnings.append(f"ignored V2GTP frame: {item}")
                    continue
                self._on_payload(item.payload, now)
                if self.finished:
                    break
        except (V2GTPError, ExiError, _Abort) as exc:
            self._fail(str(exc), now)
        return self._take()

    def next_deadline(self) -> float | None:
        if self.finished or self._started_at is None:
            return None
        times = [t for t in (self._pending and self._pending[2],
                             self._scheduled and self._scheduled[0]) if t]
        return min(times) if times else None

    def handle_timeout(self, now: float) -> list[Effect]:
        if self.finished:
            return []
        if self._pending is not None and now >= self._pending[2]:
            self._fail(f"no response to {self._pending[0]} in time", now)
        elif self._scheduled is not None and now >= self._scheduled[0]:
            name = self._scheduled[1]
            self._scheduled = None
            self._request(name, now)
        return self._take()

    def connection_lost(self, now: float) -> list[Effect]:
        if not self.finished:
            self._fail(f"connection closed by the SECC in {self.state}", now)
        return self._take()

    def abort(self, reason: str, now: float) -> list[Effect]:
        if not self.finished:
            self._started_at = self._started_at if self._started_at is not None else now
            self._fail(reason, now)
        return self._take()

    def request_stop(self, reason: str = "ev_stop") -> None:
        """EV-side stop (the driver): the charge loop ends at its next round."""
        self._stop_requested = reason

    def report(self, now: float | None = None) -> SessionReport:
        end = self._ended_at if self._ended_at is not None else now
        start = self._started_at
        success = self.state == "Finished"
        return judged_on_energy(SessionReport(
            scenario=self.scenario.name,
            success=success,
            reason=(self.stop_reason or "finished") if success else (self.failure or self.state),
            states=tuple(self.states),
            messages=tuple(self.messages),
            energy_charged_wh=self.battery.energy_charged_wh,
            energy_discharged_wh=0.0,
            initial_soc=self.battery.initial_soc * 100.0,
            final_soc=self.battery.soc * 100.0,
            loops=self.loops,
            duration=0.0 if start is None or end is None else end - start,
            session_id=self._session_id.hex().upper() if self._session_id else None,
            evse_id=self.evse_id,
            protocol=self.protocol,
            service_id=1,
            control_mode="din",
            evse_notifications=tuple(self.notifications),
            warnings=tuple(self.warnings),
            timing_violations=tuple(self.timing_violations),
            extra={"standard": "din"},
        ), dc=True)  # DIN SPEC 70121 is DC only

    # == plumbing ============================================================================

    def _take(self) -> list[Effect]:
        out, self._out = self._out, []
        return out

    def _send_raw(self, name: str, exi: bytes, now: float) -> None:
        if self.scenario.trailing_zero and name != "supportedAppProtocolReq":
            exi += b"\x00"
        self._enter(name[:-3])
        timeout = self.scenario.loop_timeout if name == "CurrentDemandReq" else (
            self.scenario.msg_timeout)
        self.messages.append(MessageRecord(name, None, None, now, None, 1, self.state))
        self._pending = (name, now, now + timeout, len(self.messages) - 1)
        self._out.append(SendData(encode_frame(PayloadType.SAP, exi), name))

    def _enter(self, state: str) -> None:
        self.state = state
        if not self.states or self.states[-1] != state:
            self.states.append(state)

    def _request(self, name: str, now: float) -> None:
        body = din.BodyType(**{_FIELD[name]: self._build(name)})
        sid = b"" if name == "SessionSetupReq" and self.scenario.empty_session_id else (
            self._session_id or b"\x00")
        msg = din.V2G_Message(header=din.MessageHeaderType(session_id=sid), body=body)
        self._send_raw(name, exi_codec.encode(msg), now)

    def _later(self, name: str, now: float, delay: float) -> None:
        self._scheduled = (now + delay, name)

    def _fail(self, reason: str, now: float) -> None:
        self.failure = reason
        self._pending = self._scheduled = None
        self._ended_at = now
        self._enter("Failed")
        self._out.append(Failed(reason, self.report(now)))

    def _finish(self, now: float) -> None:
        self._pending = self._scheduled = None
        self._ended_at = now
        self._enter("Finished")
        self._out.append(Finished(self.report(now)))

    def _ev_status(self) -> din.DC_EVStatusType:
        return din.DC_EVStatusType(ev_ready=True, ev_error_code=din.DC_EVErrorCodeType.NO_ERROR,
                                   evresssoc=round(self.battery.soc * 100))

    # == requests ============================================================================

    def _build(self, name: str) -> Any:
        s, b = self.scenario, self.battery
        if name == "SessionSetupReq":
            return din.SessionSetupReqType(evccid=s.evcc_id)
        if name == "ServiceDiscoveryReq":
            return din.ServiceDiscoveryReqType()
        if name == "ServicePaymentSelectionReq":
            return din.ServicePaymentSelectionReqType(
                selected_payment_option=din.paymentOptionType.ExternalPayment,
                selected_service_list=din.SelectedServiceListType(
                    selected_service=(din.SelectedServiceType(service_id=1),)))
        if name == "ContractAuthenticationReq":
            return din.ContractAuthenticationReqType()
        if name == "ChargeParameterDiscoveryReq":
            return din.ChargeParameterDiscoveryReqType(
                ev_requested_energy_transfer_type=din.EVRequestedEnergyTransferType.DC_extended,
                dc_ev_charge_parameter=din.DC_EVChargeParameterType(
                    dc_ev_status=self._ev_status(),
                    ev_maximum_current_limit=_pv(s.battery.max_charge_current, "A"),
                    ev_maximum_voltage_limit=_pv(s.battery.max_voltage, "V"),
                    ev_energy_capacity=_pv(s.battery.capacity_kwh * 1000, "Wh", 2),
                    full_soc=100, bulk_soc=80))
        if name == "CableCheckReq":
            return din.CableCheckReqType(dc_ev_status=self._ev_status())
        if name == "PreChargeReq":
            return din.PreChargeReqType(dc_ev_status=self._ev_status(),
                                        ev_target_voltage=_pv(b.present_voltage(), "V"),
                                        ev_target_current=_pv(1.0, "A"))
        if name == "PowerDeliveryReq":
            return din.PowerDeliveryReqType(
                ready_to_charge_state=self.state in ("PreCharge",),
                dc_ev_power_delivery_parameter=din.DC_EVPowerDeliveryParameterType(
                    dc_ev_status=self._ev_status(), charging_complete=self.state != "PreCharge"))
        if name == "CurrentDemandReq":
            complete = self.loops + 1 >= s.loops  # the last round says ChargingComplete
            remaining = 600.0 * (1.0 - b.soc)
            full = _pv(remaining / 60.0, "m", 0) if s.minutes else _pv(remaining, "s", 0)
            return din.CurrentDemandReqType(
                dc_ev_status=self._ev_status(),
                ev_target_current=_pv(0.0 if complete else s.target_current, "A"),
                ev_maximum_voltage_limit=_pv(s.battery.max_voltage, "V"),
                ev_maximum_current_limit=_pv(s.battery.max_charge_current, "A"),
                charging_complete=complete,
                remaining_time_to_full_so_c=full,
                ev_target_voltage=_pv(s.battery.max_voltage, "V"))
        if name == "WeldingDetectionReq":
            return din.WeldingDetectionReqType(dc_ev_status=self._ev_status())
        if name == "SessionStopReq":
            return din.SessionStopType()
        raise AssertionError(name)

    # == responses ===========================================================================

    def _on_payload(self, payload: bytes, now: float) -> None:
        pending = self._pending
        if pending is None:
            raise _Abort("a message from the SECC without a request")
        name, sent, _, index = pending
        self._pending = None
        if name == "supportedAppProtocolReq":
            res = exi_codec.decode(payload, "sap")
            code = str(res.response_code)
            self._record(index, "supportedAppProtocolRes", code, now)
            if not code.startswith("OK"):
                raise _Abort(f"supportedAppProtocolRes {code}")
            self.protocol = DIN_NAMESPACE
            self._request("SessionSetupReq", now)
            return
        msg = exi_codec.decode(payload, "din")
        field_name = next(f for f, v in zip(_BODY, msg.body, strict=True) if v is not None)
        res = getattr(msg.body, field_name)
        res_name = _RES_NAME.get(field_name, field_name)
        code = str(res.response_code)
        self._record(index, res_name, code, now)
        limit = self.scenario.loop_timeout if name == "CurrentDemandReq" else 1.5
        if now - sent > limit:
            self.timing_violations.append(TimingViolation(name, now - sent, limit))
        if res_name != name[:-3] + "Res":
            raise _Abort(f"{res_name} in answer to {name}")
        if not code.startswith("OK"):
            raise _Abort(f"{res_name} {code}")
        if name != "SessionSetupReq" and bytes(msg.header.session_id) != self._session_id:
            raise _Abort("wrong SessionID in the response")
        status = getattr(res, "dc_evse_status", None)
        if status is not None and str(status.evse_notification) not in ("None", "None_"):
            note = str(status.evse_notification)
            if not self.notifications or self.notifications[-1] != note:
                self.notifications.append(note)
        self._next(name, res, msg, now)

    def _record(self, index: int, res_name: str, code: str, now: float) -> None:
        r = self.messages[index]
        self.messages[index] = dataclasses.replace(r, response=res_name, response_code=code,
                                                   received_at=now)

    def _ongoing(self, res: Any, name: str, now: float) -> bool:
        if str(res.evse_processing) == "Finished":
            self._ongoing_since = None
            return False
        self._ongoing_since = self._ongoing_since if self._ongoing_since is not None else now
        if now - self._ongoing_since > self.scenario.ongoing_timeout:
            raise _Abort(f"{name}: EVSEProcessing=Ongoing for too long")
        self._later(name, now, self.scenario.ongoing_interval)
        return True

    def _next(self, name: str, res: Any, msg: Any, now: float) -> None:
        s = self.scenario
        if name in _THEN:
            self._request(_THEN[name], now)
        elif name == "SessionSetupReq":
            self._session_id = bytes(msg.header.session_id)
            self.evse_id = bytes(res.evseid or b"").decode("ascii", "replace")
            self._request("ServiceDiscoveryReq", now)
        elif name == "ContractAuthenticationReq":
            if not self._ongoing(res, name, now):
                self._request("ChargeParameterDiscoveryReq", now)
        elif name == "ChargeParameterDiscoveryReq":
            self._on_charge_parameters(res, now)
        elif name == "CableCheckReq":
            if not self._ongoing(res, name, now):
                after = "SessionStopReq" if s.stop_after == "CableCheck" else "PreChargeReq"
                self._request(after, now)
        elif name == "PreChargeReq":
            self._on_precharge(res, now)
        elif name == "PowerDeliveryReq":
            self._on_power_delivery(now)
        elif name == "CurrentDemandReq":
            self._on_current_demand(res, now)
        elif name == "SessionStopReq":
            self.stop_reason = self.stop_reason or (
                f"stopped after {s.stop_after}" if s.stop_after else "charging complete")
            self._finish(now)

    def _on_charge_parameters(self, res: Any, now: float) -> None:
        p = res.dc_evse_charge_parameter
        self.evse_max_current = _value(p.evse_maximum_current_limit)
        self.evse_max_voltage = _value(p.evse_maximum_voltage_limit)
        if self._ongoing(res, "ChargeParameterDiscoveryReq", now):
            return
        if res.sa_schedule_list is not None:
            for t in res.sa_schedule_list.sa_schedule_tuple[:1]:
                self.pmax_w.append([_power(e.p_max)
                                    for e in t.p_max_schedule.p_max_schedule_entry])
        self._cpd_count += 1
        if self.scenario.repeat_charge_parameter_discovery and self._cpd_count == 1:
            self._request("ChargeParameterDiscoveryReq", now)
        else:
            self._request("CableCheckReq", now)

    def _on_precharge(self, res: Any, now: float) -> None:
        s = self.scenario
        self._present_voltage = _value(res.evse_present_voltage)
        if s.stop_after == "PreCharge":
            self._request("SessionStopReq", now)
        elif abs(self._present_voltage - self.battery.present_voltage()) <= (
                s.precharge_tolerance):
            self._request("PowerDeliveryReq", now)
        else:
            self._later("PreChargeReq", now, s.ongoing_interval)

    def _on_power_delivery(self, now: float) -> None:
        """Before the first charge loop: contactors closed, charge; after it: the end."""
        if self.loops == 0:
            self.battery.set_contactors(True)
            self._request("CurrentDemandReq", now)
        else:
            self.battery.set_contactors(False)
            self._request("WeldingDetectionReq", now)

    def _on_current_demand(self, res: Any, now: float) -> None:
        self.loops += 1
        current = max(0.0, _value(res.evse_present_current))
        voltage = _value(res.evse_present_voltage)
        self.loop_log.append((_value(res.evse_maximum_power_limit), current * voltage))
        if self.battery.shared:
            last = self._last_loop_at if self._last_loop_at is not None else now
            dt = (now - last) * self.scenario.speedup
        else:
            dt = self.scenario.loop_sim_seconds
        self._last_loop_at = now
        self.battery.apply_current(current, dt, voltage)
        stop = str(res.dc_evse_status.evse_notification) == "StopCharging"
        if stop:
            self.stop_reason = "evse_stop"
        elif self._stop_requested is not None:
            self.stop_reason = self._stop_requested
        if stop or self._stop_requested or self.loops >= self.scenario.loops:
            self._request("PowerDeliveryReq", now)
        else:
            self._later("CurrentDemandReq", now, self.scenario.loop_interval)


class _Abort(Exception):
    pass


# The requests that follow a response whatever it says.
_THEN = {"ServiceDiscoveryReq": "ServicePaymentSelectionReq",
         "ServicePaymentSelectionReq": "ContractAuthenticationReq",
         "WeldingDetectionReq": "SessionStopReq"}


_BODY = din.BodyType._py_names()
_FIELD = {"".join(p.capitalize() for p in f.split("_")[:-1]) + "Req": f
          for f in _BODY if f.endswith("_req")}
_RES_NAME = {f: "".join(p.capitalize() for p in f.split("_")[:-1]) + "Res"
             for f in _BODY if f.endswith("_res")}
