"""A scripted EV for the SECC tests: builds -20 requests with the generated classes, frames
them, feeds `SeccConnection.receive_data` on a fake clock and decodes the response."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import exi_codec
from evse.protocol import events as ev
from evse.protocol.config import ISO20_AC, ISO20_DC, ControlMode, SeccConfig, ServiceId
from evse.protocol.iso20.states import State
from evse.protocol.limits import EvseLimits
from evse.protocol.secc import SeccConnection
from evse.protocol.session import SessionStore
from evse.protocol.units import to_rational
from evse.protocol.v2gtp import HEADER_SIZE, PayloadType, encode_frame
from exi_codec.schemas import iso20, iso20_ac, iso20_dc, sap

PT = {"iso20": PayloadType.COMMON, "iso20_dc": PayloadType.DC, "iso20_ac": PayloadType.AC}
SCHEMA_OF = {v: k for k, v in PT.items()} | {PayloadType.SAP: "sap"}

DC_LIMITS = EvseLimits(
    max_charge_power=50_000,
    max_charge_current=125,
    max_voltage=500,
    min_voltage=150,
    max_discharge_power=20_000,
    max_discharge_current=50,
)
AC_LIMITS = EvseLimits(
    max_charge_power=11_000,
    max_charge_current=16,
    max_voltage=400,
    max_discharge_power=11_000,
    max_discharge_current=16,
)


def config(**kw: Any) -> SeccConfig:
    base: dict[str, Any] = dict(
        evse_id="DE*EVS*E1",
        allow_plain_tcp_iso20=True,
        auto_authorize=True,
        services=(ServiceId.DC, ServiceId.DC_BPT, ServiceId.AC, ServiceId.AC_BPT),
        limits=DC_LIMITS,
    )
    base.update(kw)
    return SeccConfig(**base)


class FakeRng:
    def __init__(self) -> None:
        self.n = 0

    def token_bytes(self, n: int) -> bytes:
        self.n += 1
        return bytes([self.n]) * n


def R(mod: ModuleType, x: float, e: int | None = None) -> Any:
    if e is None:
        return to_rational(x, mod.RationalNumberType)
    return mod.RationalNumberType(exponent=e, value=round(x / 10**e))


def schema_of(msg: Any) -> str:
    return type(msg)._exi_module.SCHEMA


@dataclass
class Ev:
    conn: SeccConnection
    now: float = 0.0
    session_id: bytes = bytes(8)
    effects: list[Any] = field(default_factory=list)  # every effect, in order

    @classmethod
    def connect(
        cls,
        cfg: SeccConfig | None = None,
        *,
        tls: bool = False,
        store: SessionStore | None = None,
        now: float = 0.0,
    ) -> Ev:
        conn = SeccConnection(
            cfg or config(),
            tls=tls,
            now=now,
            session_store=store,
            rng=FakeRng(),
            epoch_offset=1_700_000_000,
        )
        return cls(conn, now=now)

    def feed(self, data: bytes, dt: float = 0.1) -> list[Any]:
        self.now += dt
        out = self.conn.receive_data(data, self.now)
        self.effects += out
        return out

    def event(self, event: Any, dt: float = 0.0) -> list[Any]:
        self.now += dt
        out = self.conn.handle_event(event, self.now)
        self.effects += out
        return out

    def send(self, msg: Any, dt: float = 0.1) -> tuple[Any, list[Any]]:
        pt = PayloadType.SAP if schema_of(msg) == "sap" else PT[schema_of(msg)]
        out = self.feed(encode_frame(pt, exi_codec.encode(msg)), dt)
        return response(out), out

    def header(self, mod: ModuleType = iso20) -> Any:
        return mod.MessageHeaderType(session_id=self.session_id, time_stamp=int(self.now))

    # -- the common steps ----------------------------------------------------------------------
    def sap(self, *namespaces: str) -> Any:
        offers = tuple(
            sap.AppProtocolType(
                protocol_namespace=ns,
                version_number_major=1,
                version_number_minor=0,
                schema_id=i + 1,
                priority=i + 1,
            )
            for i, ns in enumerate(namespaces or (ISO20_DC,))
        )
        res, _ = self.send(sap.supportedAppProtocolReq(app_protocol=offers))
        return res

    def setup(self, evcc_id: str = "WMIV1234567890ABCDEX") -> Any:
        res, _ = self.send(iso20.SessionSetupReq(header=self.header(), evccid=evcc_id))
        self.session_id = bytes(res.header.session_id)
        return res

    def authorize(self) -> Any:
        self.send(iso20.AuthorizationSetupReq(header=self.header()))
        return self.authorization()

    def authorization(self) -> Any:
        res, _ = self.send(
            iso20.AuthorizationReq(
                header=self.header(),
                selected_authorization_service="EIM",
                eim_a_req_authorization_mode=iso20.EIM_AReqAuthorizationModeType(),
            )
        )
        return res

    def select(self, service: ServiceId, mode: ControlMode) -> Any:
        self.send(iso20.ServiceDiscoveryReq(header=self.header()))
        self.send(iso20.ServiceDetailReq(header=self.header(), service_id=int(service)))
        res, _ = self.send(
            iso20.ServiceSelectionReq(
                header=self.header(),
                selected_energy_transfer_service=iso20.SelectedServiceType(
                    service_id=int(service), parameter_set_id=int(mode)
                ),
            )
        )
        return res

    def schedule_exchange(self, mode: ControlMode, departure: int = 7200) -> Any:
        if mode == ControlMode.SCHEDULED:
            kw = {
                "scheduled_se_req_control_mode": iso20.Scheduled_SEReqControlModeType(
                    departure_time=departure
                )
            }
        else:
            kw = {
                "dynamic_se_req_control_mode": iso20.Dynamic_SEReqControlModeType(
                    departure_time=departure,
                    minimum_soc=20,
                    target_soc=80,
                    ev_target_energy_request=R(iso20, 40_000),
                    ev_maximum_energy_request=R(iso20, 60_000),
                    ev_minimum_energy_request=R(iso20, 0),
                )
            }
        res, _ = self.send(
            iso20.ScheduleExchangeReq(header=self.header(), maximum_supporting_points=1024, **kw)
        )
        return res

    def power_delivery(
        self, progress: str, channel: str | None = None, processing: str = "Finished"
    ) -> Any:
        res, _ = self.send(
            iso20.PowerDeliveryReq(
                header=self.header(),
                ev_processing=processing,
                charge_progress=progress,
                bpt_channel_selection=channel,
            )
        )
        return res

    def session_stop(self, how: str = "Terminate") -> tuple[Any, list[Any]]:
        return self.send(iso20.SessionStopReq(header=self.header(), charging_session=how))

    # -- DC ------------------------------------------------------------------------------------
    def dc_cpd(self, bpt: bool) -> Any:
        m = iso20_dc
        base = dict(
            ev_maximum_charge_power=R(m, 100_000, 1),
            ev_minimum_charge_power=R(m, 0),
            ev_maximum_charge_current=R(m, 200),
            ev_minimum_charge_current=R(m, 0),
            ev_maximum_voltage=R(m, 450),
            ev_minimum_voltage=R(m, 200),
        )
        if bpt:
            kw = {
                "bpt_dc_cpd_req_energy_transfer_mode": m.BPT_DC_CPDReqEnergyTransferModeType(
                    **base,
                    ev_maximum_discharge_power=R(m, 15_000),
                    ev_minimum_discharge_power=R(m, 0),
                    ev_maximum_discharge_current=R(m, 40),
                    ev_minimum_discharge_current=R(m, 0),
                )
            }
        else:
            kw = {"dc_cpd_req_energy_transfer_mode": m.DC_CPDReqEnergyTransferModeType(**base)}
        res, _ = self.send(m.DC_ChargeParameterDiscoveryReq(header=self.header(m), **kw))
        return res

    def cable_check(self) -> Any:
        res, _ = self.send(iso20_dc.DC_CableCheckReq(header=self.header(iso20_dc)))
        return res

    def pre_charge(self, target: float = 400) -> Any:
        m = iso20_dc
        res, _ = self.send(
            m.DC_PreChargeReq(
                header=self.header(m),
                ev_processing="Ongoing",
                ev_present_voltage=R(m, 380),
                ev_target_voltage=R(m, target),
            )
        )
        return res

    def dc_loop(
        self,
        mode: ControlMode,
        bpt: bool,
        current: float = 100.0,
        voltage: float = 400.0,
        meter: bool = False,
        dt: float = 0.1,
    ) -> tuple[Any, list]:
        m = iso20_dc
        if mode == ControlMode.SCHEDULED:
            cls = (
                m.BPT_Scheduled_DC_CLReqControlModeType
                if bpt
                else m.Scheduled_DC_CLReqControlModeType
            )
            key = (
                "bpt_scheduled_dc_cl_req_control_mode"
                if bpt
                else "scheduled_dc_cl_req_control_mode"
            )
            cm = cls(ev_target_current=R(m, current, -1), ev_target_voltage=R(m, voltage))
        else:
            base = dict(
                ev_target_energy_request=R(m, 40_000),
                ev_maximum_energy_request=R(m, 60_000),
                ev_minimum_energy_request=R(m, 0),
                ev_maximum_charge_power=R(m, 100_000, 1),
                ev_minimum_charge_power=R(m, 0),
                ev_maximum_charge_current=R(m, 200),
                ev_maximum_voltage=R(m, 450),
                ev_minimum_voltage=R(m, 200),
            )
            if bpt:
                cm = m.BPT_Dynamic_DC_CLReqControlModeType(
                    **base,
                    ev_maximum_discharge_power=R(m, 15_000),
                    ev_minimum_discharge_power=R(m, 0),
                    ev_maximum_discharge_current=R(m, 40),
                )
                key = "bpt_dynamic_dc_cl_req_control_mode"
            else:
                cm = m.Dynamic_DC_CLReqControlModeType(**base)
                key = "dynamic_dc_cl_req_control_mode"
        return self.send(
            m.DC_ChargeLoopReq(
                header=self.header(m),
                meter_info_requested=meter,
                ev_present_voltage=R(m, voltage),
                **{key: cm},
            ),
            dt,
        )

    def welding(self) -> Any:
        res, _ = self.send(
            iso20_dc.DC_WeldingDetectionReq(header=self.header(iso20_dc), ev_processing="Finished")
        )
        return res

    # -- AC ------------------------------------------------------------------------------------
    def ac_cpd(self, bpt: bool) -> Any:
        m = iso20_ac
        base = dict(ev_maximum_charge_power=R(m, 11_000), ev_minimum_charge_power=R(m, 1_000))
        if bpt:
            kw = {
                "bpt_ac_cpd_req_energy_transfer_mode": m.BPT_AC_CPDReqEnergyTransferModeType(
                    **base,
                    ev_maximum_discharge_power=R(m, 7_000),
                    ev_minimum_discharge_power=R(m, 0),
                )
            }
        else:
            kw = {"ac_cpd_req_energy_transfer_mode": m.AC_CPDReqEnergyTransferModeType(**base)}
        res, _ = self.send(m.AC_ChargeParameterDiscoveryReq(header=self.header(m), **kw))
        return res

    def ac_loop(
        self,
        mode: ControlMode,
        bpt: bool,
        present: float = 5_000,
        meter: bool = False,
        dt: float = 0.1,
    ) -> tuple[Any, list]:
        m = iso20_ac
        if mode == ControlMode.SCHEDULED:
            cls = (
                m.BPT_Scheduled_AC_CLReqControlModeType
                if bpt
                else m.Scheduled_AC_CLReqControlModeType
            )
            key = (
                "bpt_scheduled_ac_cl_req_control_mode"
                if bpt
                else "scheduled_ac_cl_req_control_mode"
            )
            cm = cls(ev_present_active_power=R(m, present))
        else:
            base = dict(
                ev_target_energy_request=R(m, 40_000),
                ev_maximum_energy_request=R(m, 60_000),
                ev_minimum_energy_request=R(m, 0),
                ev_maximum_charge_power=R(m, 11_000),
                ev_minimum_charge_power=R(m, 0),
                ev_present_active_power=R(m, present),
                ev_present_reactive_power=R(m, 0),
            )
            if bpt:
                cm = m.BPT_Dynamic_AC_CLReqControlModeType(
                    **base,
                    ev_maximum_discharge_power=R(m, 7_000),
                    ev_minimum_discharge_power=R(m, 0),
                )
                key = "bpt_dynamic_ac_cl_req_control_mode"
            else:
                cm = m.Dynamic_AC_CLReqControlModeType(**base)
                key = "dynamic_ac_cl_req_control_mode"
        return self.send(
            m.AC_ChargeLoopReq(header=self.header(m), meter_info_requested=meter, **{key: cm}), dt
        )


def response(effects: list[Any]) -> Any:
    """Decode the (single) SendData among `effects`, None when nothing was sent."""
    sent = [e for e in effects if isinstance(e, ev.SendData)]
    if not sent:
        return None
    assert len(sent) == 1, sent
    data = sent[0].data
    pt = PayloadType(int.from_bytes(data[2:4], "big"))
    return exi_codec.decode(data[HEADER_SIZE:], SCHEMA_OF[pt])


def kinds(effects: list[Any]) -> list[str]:
    return [type(e).__name__ for e in effects]


def assert_safe_end(effects: list[Any], failed: bool = True) -> None:
    names = kinds(effects)
    assert "StopPower" in names and "OpenContactors" in names, names
    assert names.index("StopPower") < names.index("OpenContactors"), names
    ended = [e for e in effects if isinstance(e, ev.SessionEnded)]
    assert len(ended) == 1 and ended[0].failed is failed, effects
    assert names.index("OpenContactors") < names.index("SessionEnded"), names


def of(effects: list[Any], cls: type) -> list[Any]:
    return [e for e in effects if isinstance(e, cls)]


def dc_to_loop(x: Ev, service: ServiceId, mode: ControlMode) -> None:
    bpt = service == ServiceId.DC_BPT
    assert x.sap().response_code == "OK_SuccessfulNegotiation"
    assert x.setup().response_code == "OK_NewSessionEstablished"
    assert x.authorize().evse_processing == "Finished"
    assert x.select(service, mode).response_code == "OK"
    assert x.dc_cpd(bpt).response_code == "OK"
    assert x.schedule_exchange(mode).evse_processing == "Finished"
    assert x.cable_check().evse_processing == "Ongoing"
    assert x.cable_check().evse_processing == "Ongoing"
    x.event(ev.CableCheckFinished(isolation_ok=True))
    assert x.cable_check().evse_processing == "Finished"
    x.event(ev.MeasurementsUpdated(present_voltage=395.0, present_current=0.0))
    assert x.pre_charge(400).evse_present_voltage.value == 395
    assert x.power_delivery("Start").response_code == "OK"
    assert x.conn.state == State.DC_CHARGE_LOOP


__all__ = [
    "AC_LIMITS",
    "DC_LIMITS",
    "Ev",
    "ISO20_AC",
    "ISO20_DC",
    "R",
    "assert_safe_end",
    "config",
    "dc_to_loop",
    "kinds",
    "of",
    "response",
]
