"""Each handler called directly, mostly with real -20 requests from ../shared/vectors."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import exi_codec
from evse.protocol import errors
from evse.protocol import events as ev
from evse.protocol.config import ISO20_AC, ISO20_DC, ControlMode, ServiceId
from evse.protocol.iso20.handlers import HANDLERS, Inputs
from evse.protocol.limits import EvLimits
from evse.protocol.schedules import PowerEntry, Schedules
from evse.protocol.session import ChargerState, Session, SessionStore
from exi_codec.schemas import iso20, iso20_ac, iso20_dc
from tests.conftest import load_vectors
from tests.protocol.evcc import AC_LIMITS, config

VECTORS = {v["id"]: v for v in load_vectors()}
SID = bytes.fromhex("0A0B0C0D0E0F1011")
EV_DC = EvLimits(
    max_charge_power=150_000,
    max_charge_current=300,
    max_voltage=900,
    min_voltage=10,
    max_discharge_power=11_000,
    max_discharge_current=25,
)
SCHEDULED, DYNAMIC = ControlMode.SCHEDULED, ControlMode.DYNAMIC


def vector(vid: str) -> Any:
    if vid not in VECTORS:
        pytest.skip(f"vector {vid} not available")
    v = VECTORS[vid]
    return exi_codec.decode(bytes.fromhex(v["hex"]), v["standard"])


def vector_json(vid: str) -> dict[str, Any]:
    if vid not in VECTORS:
        pytest.skip(f"vector {vid} not available")
    return VECTORS[vid]["decoded"]  # type: ignore[no-any-return]


def session(**kw: Any) -> Session:
    s = Session(
        protocol=kw.pop("protocol", ISO20_DC), session_id=SID, evcc_id="EV", established=True
    )
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def dc_session(
    service: ServiceId = ServiceId.DC, mode: ControlMode = SCHEDULED, **kw: Any
) -> Session:
    fields: dict[str, Any] = dict(
        service=service,
        control_mode=mode,
        offered_services=(service,),
        ev=EV_DC,
        schedule_tuple_id=1,
    )
    return session(**(fields | kw))


def inputs(cfg: Any = None, **charger: Any) -> Inputs:
    cfg = cfg or config()
    return Inputs(
        now=100.0,
        timestamp=1_700_000_123,
        config=cfg,
        charger=ChargerState(limits=cfg.limits, **charger),
        tls=True,
        new_session_id=SID,
        paused=SessionStore(),
    )


def call(req: Any, s: Session, i: Inputs) -> tuple[Any, list[Any]]:
    res, effects = HANDLERS[type(req).__name__](req, s, i)
    assert exi_codec.decode(exi_codec.encode(res), type(res)._exi_module.SCHEMA) == res
    assert type(res).__name__ == type(req).__name__[:-3] + "Res"
    assert bytes(res.header.session_id) == s.session_id and res.header.time_stamp == i.timestamp
    return res, effects


def keys(msg: Any) -> set[str]:
    return set(next(iter(exi_codec.to_json(msg).values())))


def value(r: Any) -> float:
    return float(r.value * 10**r.exponent)


# -- SessionSetup / SessionStop --------------------------------------------------------------


@pytest.mark.parametrize(
    "vid", ["iso20-SessionSetupReq-001", "iso20-SessionSetupReq-002", "iso20-SessionSetupReq-003"]
)
def test_session_setup_new(vid: str) -> None:
    req = vector(vid)
    s = Session(protocol=ISO20_DC)
    res, effects = call(req, s, inputs())
    assert res.response_code == "OK_NewSessionEstablished" and res.evseid == "DE*EVS*E1"
    assert effects == [ev.SessionStarted(SID, req.evccid, ISO20_DC, resumed=False)]
    assert keys(res) == keys(vector("iso20-SessionSetupRes-001"))


def test_session_setup_resumes_a_paused_session() -> None:
    i = inputs()
    old = dc_session(service=ServiceId.DC_BPT)
    old.session_id, old.evcc_id = bytes.fromhex("2EFA1894DC7B9011"), "WMIV1234567890ABCDEX"
    i.paused.pause(old)
    req = vector("iso20-SessionSetupReq-001").replace(
        header=iso20.MessageHeaderType(session_id=old.session_id, time_stamp=1)
    )
    s = Session(protocol=ISO20_DC)
    res, effects = HANDLERS["SessionSetupReq"](req, s, i)
    assert res.response_code == "OK_OldSessionJoined" and s.session_id == old.session_id
    assert s.service == ServiceId.DC_BPT and s.ev == EV_DC and effects[0].resumed


@pytest.mark.parametrize("vid", ["iso20-SessionStopReq-001", "iso20-SessionStopReq-002"])
def test_session_stop_terminate(vid: str) -> None:
    res, effects = call(vector(vid), dc_session(), inputs())
    assert res.response_code == "OK"
    assert effects == [
        ev.StopPower(),
        ev.OpenContactors(),
        ev.SessionEnded("EV terminated the session", False),
        ev.CloseConnection(5.0),
    ]


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("Pause", errors.PauseNotAllowed),
        ("ServiceRenegotiation", errors.NoServiceRenegotiationSupported),
    ],
)
def test_session_stop_refusals(how: str, error: type) -> None:
    req = vector("iso20-SessionStopReq-001").replace(charging_session=how)
    with pytest.raises(error) as info:
        HANDLERS["SessionStopReq"](req, session(), inputs())
    assert info.value.response_code.startswith("FAILED_")


# -- Authorization ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vid", ["iso20-AuthorizationSetupReq-001", "iso20-AuthorizationSetupReq-002"]
)
def test_authorization_setup_offers_eim(vid: str) -> None:
    res, _ = call(vector(vid), session(), inputs())
    assert res.authorization_services == ("EIM",) and res.eim_as_res_authorization_mode is not None
    assert keys(res) == keys(vector("iso20-AuthorizationSetupRes-004"))


def test_authorization_setup_offers_pnc_only_over_tls() -> None:
    req = vector("iso20-AuthorizationSetupReq-001")
    i = dataclasses.replace(inputs(config(offer_pnc=True)), gen_challenge=bytes(range(16)))
    res, _ = call(req, session(), i)
    assert res.authorization_services == ("EIM", "PnC")
    assert res.pnc_as_res_authorization_mode.gen_challenge == bytes(range(16))
    res, _ = call(req, session(), dataclasses.replace(i, tls=False))
    assert res.authorization_services == ("EIM",)


@pytest.mark.parametrize(
    "vid",
    ["iso20-AuthorizationReq-001", "iso20-AuthorizationReq-003", "iso20-AuthorizationReq-009"],
)
def test_authorization_eim(vid: str) -> None:
    req = vector(vid)
    s = session(offered_auth=("EIM",))
    cfg = config(auto_authorize=False)
    res, effects = call(req, s, inputs(cfg))
    assert res.evse_processing == "Ongoing_WaitingForCustomerInteraction"
    assert effects == [ev.RequestAuthorization("EIM", "EV")]
    res, effects = call(req, s, inputs(cfg))
    assert effects == []  # asked once
    res, _ = call(req, s, inputs(cfg, authorization=True))
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")
    res, _ = call(req, session(offered_auth=("EIM",)), inputs(cfg, authorization=False))
    assert res.response_code == "WARNING_EIMAuthorizationFailure"
    res, _ = call(req, session(offered_auth=("EIM",)), inputs())  # auto_authorize
    assert res.evse_processing == "Finished"
    assert keys(res) == keys(vector("iso20-AuthorizationRes-001"))


def test_authorization_with_a_method_not_offered() -> None:
    req = vector("iso20-AuthorizationReq-001")
    res, _ = call(req, session(offered_auth=("PnC",)), inputs())
    assert res.response_code == "WARNING_AuthorizationSelectionInvalid"


# -- Services --------------------------------------------------------------------------------


@pytest.mark.parametrize("vid", ["iso20-ServiceDiscoveryReq-001", "iso20-ServiceDiscoveryReq-003"])
def test_service_discovery_lists_the_dc_services(vid: str) -> None:
    s = session()
    res, _ = call(vector(vid), s, inputs())
    real = vector("iso20-ServiceDiscoveryRes-001")  # a charger offering DC and DC_BPT
    assert (
        [x.service_id for x in res.energy_transfer_service_list.service]
        == [x.service_id for x in real.energy_transfer_service_list.service]
        == [2, 6]
    )
    assert s.offered_services == (ServiceId.DC, ServiceId.DC_BPT)
    assert res.service_renegotiation_supported is False and keys(res) == keys(real)


def test_service_discovery_filters_by_the_evs_supported_ids() -> None:
    req = vector("iso20-ServiceDiscoveryReq-001").replace(
        supported_service_i_ds=iso20.ServiceIDListType(service_id=(6, 65))
    )
    res, _ = call(req, session(), inputs())
    assert [x.service_id for x in res.energy_transfer_service_list.service] == [6]
    res, _ = call(
        req.replace(supported_service_i_ds=iso20.ServiceIDListType(service_id=(5,))),
        session(protocol=ISO20_AC),
        inputs(config(limits=AC_LIMITS)),
    )
    assert [x.service_id for x in res.energy_transfer_service_list.service] == [5]
    with pytest.raises(errors.NoEnergyTransferServiceSelected):
        HANDLERS["ServiceDiscoveryReq"](
            req.replace(supported_service_i_ds=iso20.ServiceIDListType(service_id=(1,))),
            session(),
            inputs(),
        )


@pytest.mark.parametrize("vid", ["iso20-ServiceDetailReq-002", "iso20-ServiceDetailReq-003"])
def test_service_detail_dc(vid: str) -> None:
    res, _ = call(vector(vid), session(offered_services=(ServiceId.DC,)), inputs())
    real = vector("iso20-ServiceDetailRes-003")  # Dynamic and Scheduled sets, same names
    ours = {
        p.parameter_set_id: {x.name: x.int_value for x in p.parameter}
        for p in res.service_parameter_list.parameter_set
    }
    theirs = [[x.name for x in p.parameter] for p in real.service_parameter_list.parameter_set]
    assert all(list(params) == theirs[0] for params in ours.values())
    assert ours[1]["ControlMode"] == 1 and ours[2]["ControlMode"] == 2
    assert ours[1]["Connector"] == 2 and ours[1]["MobilityNeedsMode"] == 1


def test_service_detail_ac_bpt_from_a_real_request() -> None:
    req = vector("iso20-ServiceDetailReq-001")  # ServiceID 5
    res, _ = call(
        req,
        session(protocol=ISO20_AC, offered_services=(ServiceId.AC_BPT,)),
        inputs(config(limits=AC_LIMITS)),
    )
    params = {x.name: x.int_value for x in res.service_parameter_list.parameter_set[0].parameter}
    assert params["EVSENominalVoltage"] == 230 and params["BPTChannel"] == 1
    assert params["GeneratorMode"] == 1 and params["DetectionMethod_GridCodeIslanding"] == 1
    with pytest.raises(errors.ServiceIDInvalid):
        HANDLERS["ServiceDetailReq"](req, session(offered_services=(ServiceId.DC,)), inputs())


@pytest.mark.parametrize(
    ("vid", "service", "protocol"),
    [
        ("iso20-ServiceSelectionReq-003", ServiceId.DC, ISO20_DC),
        ("iso20-ServiceSelectionReq-001", ServiceId.AC_BPT, ISO20_AC),
    ],
)
def test_service_selection(vid: str, service: ServiceId, protocol: str) -> None:
    s = session(protocol=protocol, offered_services=(service,), detailed_services=(service,))
    res, effects = call(vector(vid), s, inputs(config(limits=AC_LIMITS)))
    assert res.response_code == "OK" and s.service == service
    assert s.control_mode == SCHEDULED
    assert effects == [ev.EnergyServiceSelected(int(service), 1, service == ServiceId.AC_BPT)]
    with pytest.raises(errors.ServiceSelectionInvalid):
        HANDLERS["ServiceSelectionReq"](vector(vid), session(offered_services=()), inputs())
    with pytest.raises(errors.ServiceSelectionInvalid, match="no ServiceDetail"):
        HANDLERS["ServiceSelectionReq"](vector(vid), session(offered_services=(service,)),
                                        inputs(config(limits=AC_LIMITS)))


# -- ScheduleExchange ------------------------------------------------------------------------


def test_schedule_exchange_dynamic_from_a_real_request() -> None:
    """The SECC states departure time and SOC targets only when it provides mobility needs
    (MobilityNeedsMode 2); when the EV provides them (1, the default) they are left out."""
    req = vector("iso20-ScheduleExchangeReq-002")
    s = dc_session(ServiceId.DC_BPT, DYNAMIC)
    res, _ = call(req, s, inputs())
    mode = res.dynamic_se_res_control_mode
    assert (mode.departure_time, mode.minimum_soc, mode.target_soc) == (None, None, None)
    assert s.departure_at == 100.0 + 7200 and (s.minimum_soc, s.target_soc) == (30, 80)
    assert s.schedules is not None
    s = dc_session(ServiceId.DC_BPT, DYNAMIC)
    res, _ = call(req, s, inputs(config(mobility_needs_mode=2)))
    mode = res.dynamic_se_res_control_mode
    assert (mode.departure_time, mode.minimum_soc, mode.target_soc) == (7200, 30, 80)
    assert keys(res) == keys(vector("iso20-ScheduleExchangeRes-003"))


@pytest.mark.parametrize("vid", ["iso20-ScheduleExchangeReq-003", "iso20-ScheduleExchangeReq-004"])
def test_schedule_exchange_scheduled(vid: str) -> None:
    req = vector(vid)
    s = dc_session(ServiceId.DC_BPT)
    res, _ = call(req, s, inputs())
    (tuple_,) = res.scheduled_se_res_control_mode.schedule_tuple
    entries = tuple_.charging_schedule.power_schedule.power_schedule_entries.power_schedule_entry
    assert len(entries) <= req.maximum_supporting_points and value(entries[0].power) == 50_000
    assert tuple_.charging_schedule.power_schedule.time_anchor == 1_700_000_123
    assert tuple_.discharging_schedule is not None and s.schedule_tuple_id == 1


def test_schedule_exchange_control_mode_mismatch_and_ongoing() -> None:
    with pytest.raises(errors.Failed):
        HANDLERS["ScheduleExchangeReq"](
            vector("iso20-ScheduleExchangeReq-002"), dc_session(), inputs()
        )

    class NotReady:
        def schedules(self, *args: Any) -> None:
            return None

    res, _ = call(
        vector("iso20-ScheduleExchangeReq-003"),
        dc_session(),
        inputs(config(schedule_provider=NotReady())),
    )
    assert res.evse_processing == "Ongoing"


# -- PowerDelivery ---------------------------------------------------------------------------


def test_power_delivery_start_from_real_requests() -> None:
    s = dc_session()
    res, effects = call(vector("iso20-PowerDeliveryReq-001"), s, inputs())  # tuple 1
    assert res.response_code == "OK" and effects == [ev.CloseContactors()] and s.energy_flowing
    s = dc_session()
    res, effects = call(vector("iso20-PowerDeliveryReq-002"), s, inputs())  # EV Ongoing
    assert effects == [] and not s.energy_flowing
    s = dc_session(mode=DYNAMIC)
    _, effects = call(vector("iso20-PowerDeliveryReq-006"), s, inputs())
    assert effects == [ev.CloseContactors()]
    with pytest.raises(errors.ScheduleSelectionInvalid):
        HANDLERS["PowerDeliveryReq"](
            vector("iso20-PowerDeliveryReq-001"), dc_session(schedule_tuple_id=2), inputs()
        )
    with pytest.raises(errors.PowerDeliveryNotApplied):
        HANDLERS["PowerDeliveryReq"](
            vector("iso20-PowerDeliveryReq-001"), dc_session(), inputs(stop_reason="backend stop")
        )


def test_power_delivery_stop_standby_and_channel() -> None:
    start = vector("iso20-PowerDeliveryReq-001")
    s = dc_session(ServiceId.DC_BPT)
    call(start.replace(bpt_channel_selection="Discharge"), s, inputs())
    assert s.bpt_channel == "Discharge"
    res, effects = call(start.replace(charge_progress="Standby"), s, inputs())
    assert effects == [ev.StopPower()] and s.standby
    _, effects = call(start, s, inputs())
    assert effects == [] and not s.standby  # contactors are still closed
    _, effects = call(start.replace(charge_progress="Stop"), s, inputs())
    assert effects == [ev.StopPower(), ev.OpenContactors()] and not s.energy_flowing
    call(start, s, inputs())
    res, effects = call(start.replace(charge_progress="ScheduleRenegotiation"), s, inputs())
    assert res.response_code == "OK" and effects == [ev.StopPower()] and s.standby
    _, effects = call(start, s, inputs())
    assert effects == [] and not s.standby and s.energy_flowing  # contactors stayed closed


# -- DC --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vid",
    [
        "iso20_dc-DC_ChargeParameterDiscoveryReq-001",
        "iso20_dc-DC_ChargeParameterDiscoveryReq-002",
        "iso20_dc-DC_ChargeParameterDiscoveryReq-003",
    ],
)
def test_dc_charge_parameter_discovery(vid: str) -> None:
    req = vector(vid)
    s = session(service=ServiceId.DC)
    res, effects = call(req, s, inputs())
    mode = res.dc_cpd_res_energy_transfer_mode
    assert (
        value(mode.evse_maximum_voltage) == 500 and value(mode.evse_maximum_charge_current) == 125
    )
    assert s.ev.max_voltage == value(req.dc_cpd_req_energy_transfer_mode.ev_maximum_voltage)
    assert effects == [ev.EvLimitsReported(s.ev)]
    assert keys(mode) <= keys(
        vector("iso20_dc-DC_ChargeParameterDiscoveryRes-002").dc_cpd_res_energy_transfer_mode
    )
    with pytest.raises(errors.WrongChargeParameter):  # a BPT service needs the BPT parameters
        HANDLERS["DC_ChargeParameterDiscoveryReq"](req, session(service=ServiceId.DC_BPT), inputs())


def test_dc_charge_parameter_discovery_bpt_and_incompatible_voltage() -> None:
    req = vector("iso20_dc-DC_ChargeParameterDiscoveryReq-001")
    plain = req.dc_cpd_req_energy_transfer_mode
    bpt = iso20_dc.BPT_DC_CPDReqEnergyTransferModeType(
        **{n: getattr(plain, n) for n in type(plain)._py_names()},
        ev_maximum_discharge_power=iso20_dc.RationalNumberType(exponent=3, value=-11),
        ev_minimum_discharge_power=iso20_dc.RationalNumberType(exponent=0, value=0),
        ev_maximum_discharge_current=iso20_dc.RationalNumberType(exponent=0, value=25),
        ev_minimum_discharge_current=iso20_dc.RationalNumberType(exponent=0, value=0),
    )
    s = session(service=ServiceId.DC_BPT)
    res, _ = call(
        req.replace(dc_cpd_req_energy_transfer_mode=None, bpt_dc_cpd_req_energy_transfer_mode=bpt),
        s,
        inputs(),
    )
    assert value(res.bpt_dc_cpd_res_energy_transfer_mode.evse_maximum_discharge_power) == 20_000
    assert s.ev.max_discharge_power == 11_000  # negative on the wire, a magnitude here
    low = plain.replace(ev_maximum_voltage=iso20_dc.RationalNumberType(exponent=0, value=100))
    with pytest.raises(errors.WrongChargeParameter):
        HANDLERS["DC_ChargeParameterDiscoveryReq"](
            req.replace(dc_cpd_req_energy_transfer_mode=low),
            session(service=ServiceId.DC),
            inputs(),
        )


def test_dc_cable_check_from_a_real_request() -> None:
    req = vector("iso20_dc-DC_CableCheckReq-001")
    s = dc_session()
    res, effects = call(req, s, inputs(isolation_ok=True))  # a stale result does not count
    assert res.evse_processing == "Ongoing" and effects == [ev.StartCableCheck(500.0)]
    assert s.cable_check_started == 100.0
    res, effects = call(req, s, inputs())
    assert res.evse_processing == "Ongoing" and effects == []
    res, _ = call(req, s, inputs(isolation_ok=True))
    assert res.evse_processing == "Finished"
    with pytest.raises(errors.Failed):
        HANDLERS["DC_CableCheckReq"](req, s, inputs(isolation_ok=False))


def test_dc_pre_charge_from_real_requests() -> None:
    s = dc_session()
    res, effects = call(vector("iso20_dc-DC_PreChargeReq-001"), s, inputs(present_voltage=123.4))
    assert effects == [ev.StartPreCharge(400.0, 2.0)] and value(res.evse_present_voltage) == 123.4
    _, effects = call(vector("iso20_dc-DC_PreChargeReq-004"), s, inputs())  # same target
    assert effects == []
    # 20 kV (a real request from Josev's EV simulator): clamped to the highest voltage both
    # sides allow, never passed on to the power stage, and the session goes on.
    res, effects = call(vector("iso20_dc-DC_PreChargeReq-002"), s, inputs())
    highest = min(s.ev.max_voltage, inputs().charger.limits.max_voltage)
    assert effects == [ev.StartPreCharge(highest, 2.0)]
    assert res.response_code == "OK"


@pytest.mark.parametrize(
    "vid", ["iso20_dc-DC_WeldingDetectionReq-001", "iso20_dc-DC_WeldingDetectionReq-004"]
)
def test_dc_welding_detection(vid: str) -> None:
    res, effects = call(vector(vid), dc_session(), inputs(present_voltage=12.0))
    assert value(res.evse_present_voltage) == 12.0 and effects == []


@pytest.mark.parametrize(
    ("vid", "amps"),
    [("iso20_dc-DC_ChargeLoopReq-001", 20.0), ("iso20_dc-DC_ChargeLoopReq-014", 120.0)],
)
def test_dc_charge_loop_scheduled(vid: str, amps: float) -> None:
    s = dc_session()
    res, effects = call(vector(vid), s, inputs(present_voltage=398.0, present_current=19.9))
    assert effects == [ev.SetPowerTarget(400.0, amps, amps * 398.0)]
    assert value(res.evse_present_voltage) == 398.0 and res.evse_status is None
    assert keys(res) == keys(vector("iso20_dc-DC_ChargeLoopRes-004"))
    assert keys(res.scheduled_dc_cl_res_control_mode) == keys(
        vector("iso20_dc-DC_ChargeLoopRes-004").scheduled_dc_cl_res_control_mode
    )


def test_dc_charge_loop_bpt_scheduled_and_limits() -> None:
    req = vector("iso20_dc-DC_ChargeLoopReq-003")  # BPT_Scheduled, 20 A at 400 V
    s = dc_session(ServiceId.DC_BPT)
    res, effects = call(req, s, inputs())
    assert res.bpt_scheduled_dc_cl_res_control_mode is not None
    assert effects[0].current == 20.0
    mode = req.bpt_scheduled_dc_cl_req_control_mode
    minus = mode.replace(ev_target_current=iso20_dc.RationalNumberType(exponent=0, value=-60))
    res, effects = call(req.replace(bpt_scheduled_dc_cl_req_control_mode=minus), s, inputs())
    assert effects[0].current == -25.0 and res.evse_current_limit_achieved  # EV's 25 A
    with pytest.raises(errors.Failed):  # a BPT branch in a non-BPT session
        HANDLERS["DC_ChargeLoopReq"](req, dc_session(), inputs())
    with pytest.raises(errors.Failed):  # a Scheduled branch in a Dynamic session
        HANDLERS["DC_ChargeLoopReq"](req, dc_session(ServiceId.DC_BPT, DYNAMIC), inputs())


def test_dc_charge_loop_follows_the_schedule_and_reports_the_meter() -> None:
    req = vector("iso20_dc-DC_ChargeLoopReq-001").replace(meter_info_requested=True)
    sched = Schedules(start=0.0, charging=(PowerEntry(3600, 4000.0),))
    s = dc_session(schedules=sched)
    res, effects = call(req, s, inputs(present_voltage=400.0, imported_wh=5000.0))
    assert effects[0].current == 10.0 and res.evse_power_limit_achieved  # 4 kW at 400 V
    assert res.meter_info.charged_energy_reading_wh == 5000
    assert value(res.scheduled_dc_cl_res_control_mode.evse_maximum_charge_power) == 4000


# -- AC --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vid", "bpt", "ev_max"),
    [
        ("iso20_ac-AC_ChargeParameterDiscoveryReq-001", False, 32.0),
        ("iso20_ac-AC_ChargeParameterDiscoveryReq-002", False, 22_000.0),
        ("iso20_ac-AC_ChargeParameterDiscoveryReq-003", True, 11_000.0),
    ],
)
def test_ac_charge_parameter_discovery(vid: str, bpt: bool, ev_max: float) -> None:
    s = session(protocol=ISO20_AC, service=ServiceId.AC_BPT if bpt else ServiceId.AC)
    res, effects = call(vector(vid), s, inputs(config(limits=AC_LIMITS)))
    mode = res.bpt_ac_cpd_res_energy_transfer_mode if bpt else res.ac_cpd_res_energy_transfer_mode
    assert (
        value(mode.evse_maximum_charge_power) == 11_000 and value(mode.evse_nominal_frequency) == 50
    )
    assert s.ev.max_charge_power == ev_max
    if bpt:
        assert value(mode.evse_maximum_discharge_power) == 11_000
        assert s.ev.max_discharge_power == 11_000


@pytest.mark.parametrize(
    ("vid", "bpt"),
    [
        ("iso20_ac-AC_ChargeLoopReq-001", False),
        ("iso20_ac-AC_ChargeLoopReq-003", True),
        ("iso20_ac-AC_ChargeLoopReq-004", True),
    ],
)
def test_ac_charge_loop_scheduled(vid: str, bpt: bool) -> None:
    s = session(
        protocol=ISO20_AC,
        service=ServiceId.AC_BPT if bpt else ServiceId.AC,
        control_mode=SCHEDULED,
        ev=EvLimits(max_charge_power=7_400, max_discharge_power=5_000),
    )
    res, effects = call(vector(vid), s, inputs(config(limits=AC_LIMITS), present_power=3_000.0))
    mode = res.bpt_scheduled_ac_cl_res_control_mode if bpt else res.scheduled_ac_cl_res_control_mode
    assert value(mode.evse_present_active_power) == 3_000
    assert effects[0].power == value(mode.evse_target_active_power) > 0
    assert effects[0].voltage == 230.0


def test_ac_charge_loop_dynamic_discharge_and_stop_pending() -> None:
    m = iso20_ac
    r = lambda v: m.RationalNumberType(exponent=0, value=v)  # noqa: E731
    req = m.AC_ChargeLoopReq(
        header=m.MessageHeaderType(session_id=SID, time_stamp=1),
        meter_info_requested=False,
        bpt_dynamic_ac_cl_req_control_mode=m.BPT_Dynamic_AC_CLReqControlModeType(
            ev_target_energy_request=r(1000),
            ev_maximum_energy_request=r(2000),
            ev_minimum_energy_request=r(0),
            ev_maximum_charge_power=r(7000),
            ev_minimum_charge_power=r(0),
            ev_present_active_power=r(0),
            ev_present_reactive_power=r(0),
            ev_maximum_discharge_power=r(4000),
            ev_minimum_discharge_power=r(0),
        ),
    )
    s = session(
        protocol=ISO20_AC,
        service=ServiceId.AC_BPT,
        control_mode=DYNAMIC,
        ev=EvLimits(max_charge_power=7000),
    )
    res, effects = call(req, s, inputs(config(limits=AC_LIMITS), setpoint_w=-6000.0))
    assert effects[0].power == -4000  # the EV's discharge limit from this very request
    assert value(res.bpt_dynamic_ac_cl_res_control_mode.evse_target_active_power) == -4000
    res, effects = call(
        req, s, inputs(config(limits=AC_LIMITS), setpoint_w=-6000.0, stop_reason="user")
    )
    assert effects[0].power == 0 and res.evse_status.evse_notification == "Terminate"
