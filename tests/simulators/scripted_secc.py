"""Test doubles of an SECC for the simulated EV: a tiny rule-based responder built with the
generated message classes, a fixed-sequence responder, and a fake-clock driver.

Not a real SECC: it answers each request with a plausible response so the EVCC's flow,
validation and control logic can be checked without sockets or our own SECC.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from evse.protocol.v2gtp import V2GTPReassembler
from exi_codec.schemas import iso20, iso20_ac, iso20_dc, sap
from simulators.ev.evcc import Evcc, Failed, Finished, Reconnect, SendData
from simulators.ev.messages import decode_payload, frame, message_name, rational, value_of
from tests.conftest import load_vectors

SESSION_ID = bytes.fromhex("2EFA1894DC7B9011")


def hdr(mod: Any, session_id: bytes = SESSION_ID, ts: int = 1_700_000_000) -> Any:
    return mod.MessageHeaderType(session_id=session_id, time_stamp=ts)


def param(name: str, value: int) -> Any:
    return iso20.ParameterType(name=name, int_value=value)


@dataclass
class ScriptedSecc:
    """Answers every -20 request of the EV with an OK response shaped by its settings."""

    session_id: bytes = SESSION_ID
    evse_id: str = "DE*PNX*E12345*1"
    services: tuple[int, ...] = (1, 2, 5, 6)
    auth_ongoing: int = 1
    schedule_ongoing: int = 1
    cable_check_ongoing: int = 2
    precharge_step: float = 150.0  # V per PreChargeReq
    schedule: tuple[tuple[int, float], ...] = ((3600, 50_000.0),)
    discharge_schedule: tuple[tuple[int, float], ...] | None = ((3600, -30_000.0),)
    max_current: float = 200.0
    max_power: float = 150_000.0
    max_discharge_current: float = 100.0
    max_discharge_power: float = 50_000.0
    bpt_channel: int | None = None  # ServiceDetail BPTChannel (1 Unified, 2 Separated)
    terminate_at_loop: int | None = None  # EVSENotification=Terminate in that ChargeLoopRes
    dynamic_current: Callable[[int], float] = lambda loop: 50.0
    ac_target_power: Callable[[int], float] = lambda loop: 7_000.0
    overrides: dict[str, Callable[[Any, Any], Any]] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)  # requests never answered
    requests: list[Any] = field(default_factory=list)
    paused_sessions: set[bytes] = field(default_factory=set)
    voltage: float = 0.0
    loops: int = 0
    _counts: dict[str, int] = field(default_factory=dict)
    _reasm: V2GTPReassembler = field(default_factory=V2GTPReassembler)

    @property
    def names(self) -> list[str]:
        return [message_name(r) for r in self.requests]

    def new_connection(self) -> None:
        self._reasm = V2GTPReassembler()

    def feed(self, data: bytes) -> bytes:
        out = b""
        for fr in self._reasm.frames(data):
            assert not isinstance(fr, Exception), fr
            req = decode_payload(fr.payload_type, fr.payload)
            self.requests.append(req)
            name = message_name(req)
            self._counts[name] = self._counts.get(name, 0) + 1
            if name in self.silent:
                continue
            res = getattr(self, "r_" + name)(req)
            if name in self.overrides:
                res = self.overrides[name](req, res)
            if res is None:
                continue
            out += res if isinstance(res, bytes) else frame(res)
        return out

    def count(self, name: str) -> int:
        return self._counts.get(name, 0)

    # -- common messages -----------------------------------------------------------------

    def r_supportedAppProtocolReq(self, req: Any) -> Any:  # noqa: N802
        ours = [p for p in req.app_protocol if ":-20:" in p.protocol_namespace]
        best = min(ours, key=lambda p: p.priority)
        return sap.supportedAppProtocolRes(
            response_code="OK_SuccessfulNegotiation", schema_id=best.schema_id
        )

    def r_SessionSetupReq(self, req: Any) -> Any:  # noqa: N802
        sid = req.header.session_id
        if sid in self.paused_sessions:
            self.paused_sessions.discard(sid)
            return iso20.SessionSetupRes(
                header=hdr(iso20, sid), response_code="OK_OldSessionJoined", evseid=self.evse_id
            )
        return iso20.SessionSetupRes(
            header=hdr(iso20, self.session_id),
            response_code="OK_NewSessionEstablished",
            evseid=self.evse_id,
        )

    def r_AuthorizationSetupReq(self, req: Any) -> Any:  # noqa: N802
        return iso20.AuthorizationSetupRes(
            header=hdr(iso20, self.session_id),
            response_code="OK",
            authorization_services=("EIM",),
            certificate_installation_service=False,
            eim_as_res_authorization_mode=iso20.EIM_ASResAuthorizationModeType(),
        )

    def r_AuthorizationReq(self, req: Any) -> Any:  # noqa: N802
        ongoing = self.count("AuthorizationReq") <= self.auth_ongoing
        return iso20.AuthorizationRes(
            header=hdr(iso20, self.session_id),
            response_code="OK",
            evse_processing="Ongoing" if ongoing else "Finished",
        )

    def r_ServiceDiscoveryReq(self, req: Any) -> Any:  # noqa: N802
        return iso20.ServiceDiscoveryRes(
            header=hdr(iso20, self.session_id),
            response_code="OK",
            service_renegotiation_supported=False,
            energy_transfer_service_list=iso20.ServiceListType(service=tuple(
                iso20.ServiceType(service_id=s, free_service=False) for s in self.services
            )),
        )

    def r_ServiceDetailReq(self, req: Any) -> Any:  # noqa: N802
        extra = ()
        if self.bpt_channel is not None and req.service_id in (5, 6):
            extra = (param("BPTChannel", self.bpt_channel), param("GeneratorMode", 1))
        sets = tuple(
            iso20.ParameterSetType(parameter_set_id=i, parameter=(
                param("Connector", 2), param("ControlMode", mode),
                param("MobilityNeedsMode", 1), param("Pricing", 0), *extra,
            ))
            for i, mode in ((0, 2), (1, 1))  # like the real ServiceDetailRes vector 003
        )
        return iso20.ServiceDetailRes(
            header=hdr(iso20, self.session_id),
            response_code="OK",
            service_id=req.service_id,
            service_parameter_list=iso20.ServiceParameterListType(parameter_set=sets),
        )

    def r_ServiceSelectionReq(self, req: Any) -> Any:  # noqa: N802
        return iso20.ServiceSelectionRes(header=hdr(iso20, self.session_id), response_code="OK")

    def r_ScheduleExchangeReq(self, req: Any) -> Any:  # noqa: N802
        ongoing = self.count("ScheduleExchangeReq") <= self.schedule_ongoing
        common = dict(
            header=hdr(iso20, self.session_id),
            response_code="OK",
            evse_processing="Ongoing" if ongoing else "Finished",
        )
        if req.dynamic_se_req_control_mode is not None:
            return iso20.ScheduleExchangeRes(
                **common, dynamic_se_res_control_mode=iso20.Dynamic_SEResControlModeType()
            )

        def sched(entries: Iterable[tuple[int, float]]) -> Any:
            return iso20.ChargingScheduleType(power_schedule=iso20.PowerScheduleType(
                time_anchor=0,
                power_schedule_entries=iso20.PowerScheduleEntryListType(power_schedule_entry=tuple(
                    iso20.PowerScheduleEntryType(duration=d, power=rational(iso20, p))
                    for d, p in entries
                )),
            ))

        tup = iso20.ScheduleTupleType(
            schedule_tuple_id=1,
            charging_schedule=sched(self.schedule),
            discharging_schedule=(
                sched(self.discharge_schedule) if self.discharge_schedule is not None else None
            ),
        )
        return iso20.ScheduleExchangeRes(
            **common,
            scheduled_se_res_control_mode=iso20.Scheduled_SEResControlModeType(
                schedule_tuple=(tup,)
            ),
        )

    def r_PowerDeliveryReq(self, req: Any) -> Any:  # noqa: N802
        return iso20.PowerDeliveryRes(header=hdr(iso20, self.session_id), response_code="OK")

    def r_SessionStopReq(self, req: Any) -> Any:  # noqa: N802
        if str(req.charging_session) == "Pause":
            self.paused_sessions.add(req.header.session_id)
        return iso20.SessionStopRes(header=hdr(iso20, self.session_id), response_code="OK")

    # -- DC ------------------------------------------------------------------------------

    def r_DC_ChargeParameterDiscoveryReq(self, req: Any) -> Any:  # noqa: N802
        m = iso20_dc
        f: dict[str, Any] = dict(
            evse_maximum_charge_power=rational(m, self.max_power),
            evse_minimum_charge_power=rational(m, 0),
            evse_maximum_charge_current=rational(m, self.max_current),
            evse_minimum_charge_current=rational(m, 0),
            evse_maximum_voltage=rational(m, 920),
            evse_minimum_voltage=rational(m, 150),
        )
        if req.bpt_dc_cpd_req_energy_transfer_mode is not None:
            f.update(
                evse_maximum_discharge_power=rational(m, self.max_discharge_power),
                evse_minimum_discharge_power=rational(m, 0),
                evse_maximum_discharge_current=rational(m, self.max_discharge_current),
                evse_minimum_discharge_current=rational(m, 0),
            )
            return m.DC_ChargeParameterDiscoveryRes(
                header=hdr(m, self.session_id), response_code="OK",
                bpt_dc_cpd_res_energy_transfer_mode=m.BPT_DC_CPDResEnergyTransferModeType(**f),
            )
        return m.DC_ChargeParameterDiscoveryRes(
            header=hdr(m, self.session_id), response_code="OK",
            dc_cpd_res_energy_transfer_mode=m.DC_CPDResEnergyTransferModeType(**f),
        )

    def r_DC_CableCheckReq(self, req: Any) -> Any:  # noqa: N802
        ongoing = self.count("DC_CableCheckReq") <= self.cable_check_ongoing
        return iso20_dc.DC_CableCheckRes(
            header=hdr(iso20_dc, self.session_id), response_code="OK",
            evse_processing="Ongoing" if ongoing else "Finished",
        )

    def r_DC_PreChargeReq(self, req: Any) -> Any:  # noqa: N802
        target = value_of(req.ev_target_voltage)
        step = min(self.precharge_step, abs(target - self.voltage))
        self.voltage += step if target >= self.voltage else -step
        return iso20_dc.DC_PreChargeRes(
            header=hdr(iso20_dc, self.session_id), response_code="OK",
            evse_present_voltage=rational(iso20_dc, self.voltage),
        )

    def r_DC_ChargeLoopReq(self, req: Any) -> Any:  # noqa: N802
        m = iso20_dc
        self.loops += 1
        voltage = value_of(req.ev_present_voltage)
        status = None
        if self.terminate_at_loop is not None and self.loops >= self.terminate_at_loop:
            status = m.EVSEStatusType(notification_max_delay=0, evse_notification="Terminate")
        res: dict[str, Any] = dict(
            header=hdr(m, self.session_id), response_code="OK", evse_status=status,
            evse_power_limit_achieved=False, evse_current_limit_achieved=False,
            evse_voltage_limit_achieved=False,
            evse_present_voltage=rational(m, voltage),
        )
        if req.scheduled_dc_cl_req_control_mode is not None:
            current = value_of(req.scheduled_dc_cl_req_control_mode.ev_target_current)
            mode = {"scheduled_dc_cl_res_control_mode": m.Scheduled_DC_CLResControlModeType()}
        elif req.bpt_scheduled_dc_cl_req_control_mode is not None:
            current = value_of(req.bpt_scheduled_dc_cl_req_control_mode.ev_target_current)
            mode = {"bpt_scheduled_dc_cl_res_control_mode":
                    m.BPT_Scheduled_DC_CLResControlModeType()}
        else:
            current = self.dynamic_current(self.loops)
            lim = dict(
                evse_maximum_charge_power=rational(m, self.max_power),
                evse_minimum_charge_power=rational(m, 0),
                evse_maximum_charge_current=rational(m, self.max_current),
                evse_maximum_voltage=rational(m, 920),
            )
            if req.bpt_dynamic_dc_cl_req_control_mode is not None:
                mode = {"bpt_dynamic_dc_cl_res_control_mode": m.BPT_Dynamic_DC_CLResControlModeType(
                    **lim,
                    evse_maximum_discharge_power=rational(m, self.max_discharge_power),
                    evse_minimum_discharge_power=rational(m, 0),
                    evse_maximum_discharge_current=rational(m, self.max_discharge_current),
                    evse_minimum_voltage=rational(m, 150),
                )}
            else:
                mode = {"dynamic_dc_cl_res_control_mode":
                        m.Dynamic_DC_CLResControlModeType(**lim)}
        return m.DC_ChargeLoopRes(**res, evse_present_current=rational(m, current), **mode)

    def r_DC_WeldingDetectionReq(self, req: Any) -> Any:  # noqa: N802
        self.voltage = max(0.0, self.voltage - 400.0)
        return iso20_dc.DC_WeldingDetectionRes(
            header=hdr(iso20_dc, self.session_id), response_code="OK",
            evse_present_voltage=rational(iso20_dc, self.voltage),
        )

    # -- AC ------------------------------------------------------------------------------

    def r_AC_ChargeParameterDiscoveryReq(self, req: Any) -> Any:  # noqa: N802
        a = iso20_ac
        f: dict[str, Any] = dict(
            evse_maximum_charge_power=rational(a, 22_000),
            evse_minimum_charge_power=rational(a, 1_380),
            evse_nominal_frequency=rational(a, 50),
        )
        if req.bpt_ac_cpd_req_energy_transfer_mode is not None:
            f.update(  # negative discharge limits, as a real charger (dSPACE vector) sends
                evse_maximum_discharge_power=rational(a, -11_000),
                evse_minimum_discharge_power=rational(a, 0),
            )
            return a.AC_ChargeParameterDiscoveryRes(
                header=hdr(a, self.session_id), response_code="OK",
                bpt_ac_cpd_res_energy_transfer_mode=a.BPT_AC_CPDResEnergyTransferModeType(**f),
            )
        return a.AC_ChargeParameterDiscoveryRes(
            header=hdr(a, self.session_id), response_code="OK",
            ac_cpd_res_energy_transfer_mode=a.AC_CPDResEnergyTransferModeType(**f),
        )

    def r_AC_ChargeLoopReq(self, req: Any) -> Any:  # noqa: N802
        a = iso20_ac
        self.loops += 1
        status = None
        if self.terminate_at_loop is not None and self.loops >= self.terminate_at_loop:
            status = a.EVSEStatusType(notification_max_delay=0, evse_notification="Terminate")
        target = rational(a, self.ac_target_power(self.loops))
        if req.scheduled_ac_cl_req_control_mode is not None:
            mode = {"scheduled_ac_cl_res_control_mode": a.Scheduled_AC_CLResControlModeType()}
        elif req.bpt_scheduled_ac_cl_req_control_mode is not None:
            mode = {"bpt_scheduled_ac_cl_res_control_mode":
                    a.BPT_Scheduled_AC_CLResControlModeType()}
        elif req.bpt_dynamic_ac_cl_req_control_mode is not None:
            mode = {"bpt_dynamic_ac_cl_res_control_mode":
                    a.BPT_Dynamic_AC_CLResControlModeType(evse_target_active_power=target)}
        else:
            mode = {"dynamic_ac_cl_res_control_mode":
                    a.Dynamic_AC_CLResControlModeType(evse_target_active_power=target)}
        return a.AC_ChargeLoopRes(
            header=hdr(a, self.session_id), response_code="OK", evse_status=status, **mode
        )


class SequenceSecc:
    """Answers the n-th request with the n-th scripted response, whatever it is."""

    def __init__(self, responses: Iterable[Any]) -> None:
        self.responses = list(responses)
        self.requests: list[Any] = []
        self._reasm = V2GTPReassembler()

    @property
    def names(self) -> list[str]:
        return [message_name(r) for r in self.requests]

    def new_connection(self) -> None:
        self._reasm = V2GTPReassembler()

    def feed(self, data: bytes) -> bytes:
        out = b""
        for fr in self._reasm.frames(data):
            assert not isinstance(fr, Exception), fr
            self.requests.append(decode_payload(fr.payload_type, fr.payload))
            if not self.responses:
                continue
            res = self.responses.pop(0)
            out += res if isinstance(res, bytes) else frame(res)
        return out


@dataclass
class Outcome:
    effect: Finished | Failed
    now: float
    effects: list[Any]

    @property
    def report(self) -> Any:
        return self.effect.report


def drive(
    evcc: Evcc, secc: Any, *, t0: float = 1000.0, latency: float = 0.002, max_steps: int = 20000
) -> Outcome:
    """Run the EVCC against an in-memory responder on a fake clock until it ends."""
    now = t0
    inbox = secc.feed(evcc.start(now))
    seen: list[Any] = []
    for _ in range(max_steps):
        if inbox:
            now += latency
            effects = evcc.receive_data(inbox, now)
            inbox = b""
        else:
            deadline = evcc.next_deadline()
            if deadline is None:
                raise AssertionError(f"EVCC idle in {evcc.state} with nothing to do")
            now = max(now, deadline)
            effects = evcc.handle_timeout(now)
        for e in effects:
            seen.append(e)
            if isinstance(e, SendData):
                inbox += secc.feed(e.data)
            elif isinstance(e, Reconnect):
                now += e.delay
                secc.new_connection()
                inbox += secc.feed(evcc.start(now))
            elif isinstance(e, (Finished, Failed)):
                return Outcome(e, now, seen)
    raise AssertionError("the session did not end")


# -- real vectors ----------------------------------------------------------------------------

def vector_message(vector_id: str) -> Any:
    """A real -20 message from ../shared/vectors, decoded with our codec."""
    import exi_codec

    for v in load_vectors():
        if v["id"] == vector_id:
            return exi_codec.decode(bytes.fromhex(v["hex"]), v["standard"])
    raise KeyError(vector_id)


def vector_record(vector_id: str) -> dict[str, Any]:
    for v in load_vectors():
        if v["id"] == vector_id:
            return dict(v)
    raise KeyError(vector_id)


def with_session(msg: Any, session_id: bytes = SESSION_ID) -> Any:
    return msg.replace(header=msg.header.replace(session_id=session_id))


def dump(msg: Any) -> str:
    return json.dumps(msg.to_json(), default=str)
