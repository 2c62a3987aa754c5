"""Each DIN handler called directly with the real DIN requests of ../shared/vectors: the
request decodes, the handler answers, the answer encodes (and decodes back to itself) and
has the shape of the real chargers' responses to the same request."""

from __future__ import annotations

from typing import Any

import pytest

import exi_codec
from evse.protocol import events as ev
from evse.protocol.config import SeccConfig
from evse.protocol.din.handlers import HANDLERS, Inputs
from evse.protocol.din.messages import REQUESTS, body_element, wrap
from evse.protocol.din.session import DinSession
from evse.protocol.din.states import State
from evse.protocol.din.units import from_physical, physical, seconds
from evse.protocol.errors import Failed, ProtocolError
from evse.protocol.limits import EvLimits, EvseLimits
from evse.protocol.schedules import PowerEntry, ScheduleRequest, Schedules
from evse.protocol.session import ChargerState, Session
from evse.protocol.standards import DIN
from exi_codec.schemas import din
from tests.conftest import load_vectors

DIN_VECTORS = [v for v in load_vectors() if v["standard"] == "din"]
REQUEST_VECTORS = [v for v in DIN_VECTORS if v["message"].endswith("Req")]
SID = bytes.fromhex("0A0B0C0D0E0F1011")
LIMITS = EvseLimits(max_charge_power=50_000.0, max_charge_current=125.0, max_voltage=500.0,
                    min_voltage=150.0)
EV = EvLimits(max_charge_power=100_000.0, max_charge_current=250.0, max_voltage=450.0,
              min_voltage=0.0)


def ids(v: dict[str, Any]) -> str:
    return f"{v['message']}-{v['source'].split('@')[0].split('/')[-1]}-{v['hex'][-6:]}"


def inputs(charger: ChargerState | None = None, **cfg: Any) -> Inputs:
    base: dict[str, Any] = dict(protocols=("iso20", "din"), limits=LIMITS, evse_id="DE*ABC*E1",
                                auto_authorize=True)
    base.update(cfg)
    return Inputs(now=10.0, timestamp=1_750_000_000, config=SeccConfig(**base),
                  charger=charger or ChargerState(limits=LIMITS, present_voltage=380.0,
                                                  present_current=50.0),
                  new_session_id=SID)


def din_session(**kw: Any) -> DinSession:
    record = Session(protocol=DIN, session_id=SID, evcc_id="0A1B", established=True, ev=EV)
    s = DinSession(record=record)
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def decode_request(v: dict[str, Any]) -> tuple[str, Any]:
    msg = exi_codec.decode(bytes.fromhex(v["hex"]), "din", max_lengths=True)
    field, req = body_element(msg)
    names = {spec.field: name for name, spec in REQUESTS.items()}
    assert field is not None
    return names[field], req


def roundtrip(name: str, res: Any) -> dict[str, Any]:
    """Encode our response as the SECC sends it, decode it, return its Body element JSON."""
    msg = wrap(REQUESTS[name], SID, res)
    back = exi_codec.decode(exi_codec.encode(msg), "din")
    assert back == msg
    body = exi_codec.to_json(back)["V2G_Message"]["Body"]
    (element,) = body.values()
    return element  # type: ignore[no-any-return]


def real_responses(name: str) -> list[dict[str, Any]]:
    res = name[:-3] + "Res"
    return [v["decoded"]["V2G_Message"]["Body"][res] for v in DIN_VECTORS if v["message"] == res]


def test_every_din_request_kind_of_the_vectors_has_a_handler() -> None:
    if not DIN_VECTORS:
        pytest.skip("vectors not available")
    kinds = {v["message"] for v in REQUEST_VECTORS}
    assert kinds == set(HANDLERS)  # all 11 DIN EIM DC requests come with real vectors


@pytest.mark.parametrize("v", REQUEST_VECTORS, ids=ids)
def test_handler_answers_the_real_request(v: dict[str, Any]) -> None:
    name, req = decode_request(v)
    session = din_session()
    charger = ChargerState(limits=LIMITS, present_voltage=380.0, present_current=50.0)
    if name == "CableCheckReq":
        session.cable_check_started = 5.0
        charger.isolation_ok = True
    if name == "SessionSetupReq":
        session = DinSession(record=Session(protocol=DIN))
    res, effects = HANDLERS[name](req, session, inputs(charger))
    assert str(res.response_code).startswith("OK")
    ours = roundtrip(name, res)
    # every element the real chargers sent is in ours too (except the optional DateTimeNow)
    for real in real_responses(name):
        missing = set(real) - set(ours) - {"DateTimeNow"}
        assert not missing, (missing, ours)
    # what each handler must do with it
    if name == "SessionSetupReq":
        assert session.record.session_id == SID and session.record.established
        assert session.record.evcc_id == din.SessionSetupReqType(evccid=req.evccid).evccid.hex(
        ).upper()
        assert effects == [ev.SessionStarted(SID, session.record.evcc_id, DIN)]
    elif name == "ServicePaymentSelectionReq":
        assert effects == [ev.EnergyServiceSelected(2, 1, False)]
    elif name == "ChargeParameterDiscoveryReq":
        p = req.dc_ev_charge_parameter
        (reported,) = effects
        assert isinstance(reported, ev.EvLimitsReported)
        assert reported.limits.max_voltage == from_physical(p.ev_maximum_voltage_limit)
        assert reported.limits.max_charge_current == from_physical(p.ev_maximum_current_limit)
        assert ours["EVSEProcessing"] == "Finished"
        assert session.record.present_soc == p.dc_ev_status.evresssoc
    elif name == "CableCheckReq":
        assert ours["EVSEProcessing"] == "Finished"
        assert ours["DC_EVSEStatus"]["EVSEIsolationStatus"] == "Valid"
    elif name == "PreChargeReq":
        (start,) = effects
        assert isinstance(start, ev.StartPreCharge)
        target = from_physical(req.ev_target_voltage)
        assert start.target_voltage == min(max(target, LIMITS.min_voltage), 450.0)
        assert start.max_current <= 2.0
    elif name == "PowerDeliveryReq":
        assert effects == [ev.CloseContactors()]  # every vector has ReadyToChargeState=true
    elif name == "CurrentDemandReq":
        (target,) = effects
        assert isinstance(target, ev.SetPowerTarget)
        assert target.current == min(from_physical(req.ev_target_current), 125.0)
        assert 0 < target.voltage <= 500.0
    elif name == "SessionStopReq":
        assert [type(e) for e in effects] == [ev.StopPower, ev.OpenContactors,
                                              ev.SessionEnded, ev.CloseConnection]
    elif name == "ContractAuthenticationReq":
        assert ours["EVSEProcessing"] == "Finished" and session.record.authorized


def test_real_response_vectors_decode_with_our_codec_as_the_ev_reads_them() -> None:
    """The real chargers' responses decode (lenient, max lengths): what our simulated EV and
    the tests rely on when they read the SECC's answers."""
    for v in DIN_VECTORS:
        if v["message"].endswith("Res"):
            msg = exi_codec.decode(bytes.fromhex(v["hex"]), "din", max_lengths=True)
            assert exi_codec.to_json(msg) == v["decoded"]


# -- the handlers' own decisions -------------------------------------------------------------


def _cpd(transfer: str = "DC_extended", voltage: float = 450.0, soc: int = 50) -> Any:
    return din.ChargeParameterDiscoveryReqType(
        ev_requested_energy_transfer_type=din.EVRequestedEnergyTransferType(transfer),
        dc_ev_charge_parameter=din.DC_EVChargeParameterType(
            dc_ev_status=din.DC_EVStatusType(ev_ready=False, ev_error_code="NO_ERROR",
                                             evresssoc=soc),
            ev_maximum_current_limit=physical(200.0, "A"),
            ev_maximum_voltage_limit=physical(voltage, "V"),
        ),
    )


def test_charge_parameter_discovery_refuses_ac_and_too_low_voltage() -> None:
    h = HANDLERS["ChargeParameterDiscoveryReq"]
    with pytest.raises(ProtocolError) as exc:
        h(_cpd("AC_three_phase_core"), din_session(), inputs())
    assert exc.value.response_code == "FAILED_WrongEnergyTransferType"
    with pytest.raises(ProtocolError) as exc:
        h(_cpd(voltage=100.0), din_session(), inputs())
    assert exc.value.response_code == "FAILED_WrongChargeParameter"


def test_charge_parameter_discovery_ongoing_while_the_charger_has_no_power() -> None:
    none = EvseLimits(max_charge_power=0.0, max_charge_current=0.0, max_voltage=500.0)
    res, _ = HANDLERS["ChargeParameterDiscoveryReq"](
        _cpd(), din_session(), inputs(ChargerState(limits=none)))
    assert res.evse_processing == "Ongoing"


class _Provider:
    """A schedule provider (as the OCPP schedule policy behind the hooks): None until
    `answer` is set, and what it was asked."""

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer
        self.asked: list[ScheduleRequest] = []

    def schedules_for(self, req: ScheduleRequest) -> Any:
        self.asked.append(req)
        return self.answer


def _pmax_entries(res: Any) -> list[tuple[int, int | None, int]]:
    (tuple_,) = res.sa_schedule_list.sa_schedule_tuple
    return [(e.relative_time_interval.start, e.relative_time_interval.duration, e.p_max)
            for e in tuple_.p_max_schedule.p_max_schedule_entry]


def _two_periods() -> Schedules:
    return Schedules(start=10.0, charging=(PowerEntry(600, 20_000.0), PowerEntry(3000, 8000.0)))


def test_without_a_csms_bound_din_keeps_the_single_pmax_entry() -> None:
    provider = _Provider(_two_periods())
    res, _ = HANDLERS["ChargeParameterDiscoveryReq"](
        _cpd(), din_session(), inputs(schedule_provider=provider))
    assert provider.asked == []  # the local policy is not asked: today's behaviour
    assert _pmax_entries(res) == [(0, 86400, 32767)]
    empty = ChargerState(limits=LIMITS, bound=ev.PowerBoundUpdated())  # a withdrawn bound
    res, _ = HANDLERS["ChargeParameterDiscoveryReq"](
        _cpd(), din_session(), inputs(empty, schedule_provider=provider))
    assert provider.asked == [] and len(_pmax_entries(res)) == 1


def test_a_csms_bound_gives_din_the_schedule_of_pmax_entries() -> None:
    provider = _Provider()
    charger = ChargerState(limits=LIMITS, bound=ev.PowerBoundUpdated(max_charge_power=20_000.0))
    h = HANDLERS["ChargeParameterDiscoveryReq"]
    res, _ = h(_cpd(), din_session(), inputs(charger, schedule_provider=provider))
    assert res.evse_processing == "Ongoing"  # the policy has not answered yet
    (asked,) = provider.asked
    # the rated limits (not the bound of the moment: later periods may be higher)
    assert asked.evse_limits.max_charge_power == 50_000.0 and not asked.bpt
    provider.answer = _two_periods()
    res, _ = h(_cpd(), din_session(), inputs(charger, schedule_provider=provider))
    assert res.evse_processing == "Finished"
    assert _pmax_entries(res) == [(0, None, 20_000), (600, 3000, 8000)]
    # the limit now stays EVSEMaximumPowerLimit (the bound's)
    assert from_physical(res.dc_evse_charge_parameter.evse_maximum_power_limit) == 20_000.0
    roundtrip("ChargeParameterDiscoveryReq", res)  # valid DIN EXI
    # a schedule above the limit now (e.g. the local fallback): its first entry is capped
    provider.answer = Schedules(start=10.0, charging=(PowerEntry(60, 30_000.0),
                                                      PowerEntry(60, 25_000.0)))
    res, _ = h(_cpd(), din_session(), inputs(charger, schedule_provider=provider))
    assert _pmax_entries(res) == [(0, None, 20_000), (60, 60, 25_000)]


def test_din_pmax_entries_are_capped_to_five_and_to_xs_short() -> None:
    periods = (PowerEntry(60, 40_000.0),
               *(PowerEntry(60, 30_000.0 - 1000.0 * i) for i in range(7)))
    provider = _Provider(Schedules(start=10.0, charging=periods))
    charger = ChargerState(limits=LIMITS, bound=ev.PowerBoundUpdated(max_charge_power=40_000.0))
    res, _ = HANDLERS["ChargeParameterDiscoveryReq"](
        _cpd(), din_session(), inputs(charger, schedule_provider=provider))
    entries = _pmax_entries(res)
    assert len(entries) == 5
    assert entries[0] == (0, None, 32767)  # PMax is an xs:short
    # the tail (periods 5..8) merges into one entry with its smallest power
    assert entries[1:] == [(60, None, 30_000), (120, None, 29_000), (180, None, 28_000),
                           (240, 240, 24_000)]
    roundtrip("ChargeParameterDiscoveryReq", res)


def test_repeated_charge_parameter_discovery_after_the_cable_check_started_is_refused() -> None:
    with pytest.raises(ProtocolError) as exc:
        HANDLERS["ChargeParameterDiscoveryReq"](_cpd(), din_session(cable_check_started=1.0),
                                                inputs())
    assert exc.value.response_code == "FAILED_SequenceError"


def test_soc_outside_the_xsd_range_is_clamped() -> None:
    session = din_session()
    HANDLERS["ChargeParameterDiscoveryReq"](_cpd(soc=120), session, inputs())
    assert session.record.present_soc == 100


def test_cable_check_starts_once_then_ongoing_until_the_result() -> None:
    session = din_session()
    charger = ChargerState(limits=LIMITS, isolation_ok=True)  # a stale result: ignored
    res, effects = HANDLERS["CableCheckReq"](din.CableCheckReqType(), session, inputs(charger))
    assert effects == [ev.StartCableCheck(voltage=450.0)]
    assert res.evse_processing == "Ongoing"
    assert res.dc_evse_status.evse_status_code == "EVSE_IsolationMonitoringActive"
    charger.isolation_ok = False
    with pytest.raises(Failed):
        HANDLERS["CableCheckReq"](din.CableCheckReqType(), session, inputs(charger))
    assert session.isolation == "Fault"


def test_current_demand_zero_current_when_the_ev_is_not_ready_or_a_stop_is_pending() -> None:
    req = din.CurrentDemandReqType(
        dc_ev_status=din.DC_EVStatusType(ev_ready=False, ev_error_code="NO_ERROR", evresssoc=50),
        ev_target_current=physical(100.0, "A"), ev_target_voltage=physical(400.0, "V"),
        ev_maximum_voltage_limit=physical(-450.0, "V"),  # a car's sign quirk: magnitude
        charging_complete=False,
        remaining_time_to_full_so_c=din.PhysicalValueType(multiplier=0, unit="h", value=2),
    )
    session = din_session(state=State.CURRENT_DEMAND)
    res, effects = HANDLERS["CurrentDemandReq"](req, session, inputs())
    assert effects[0].current == 0.0  # type: ignore[union-attr]
    assert session.record.ev is not None and session.record.ev.max_voltage == 450.0
    assert session.remaining_time_to_full_soc_s == 7200.0
    ready = req.replace(dc_ev_status=din.DC_EVStatusType(ev_ready=True, evresssoc=50))
    charger = ChargerState(limits=LIMITS, present_voltage=400.0, stop_reason="user")
    res, effects = HANDLERS["CurrentDemandReq"](ready, session, inputs(charger))
    assert effects[0].current == 0.0  # type: ignore[union-attr]
    assert res.dc_evse_status.evse_notification == "StopCharging"
    assert res.dc_evse_status.evse_status_code == "EVSE_Shutdown"


def test_negative_target_current_is_not_a_discharge() -> None:
    req = din.CurrentDemandReqType(
        dc_ev_status=din.DC_EVStatusType(ev_ready=True, evresssoc=50),
        ev_target_current=physical(-20.0, "A"), ev_target_voltage=physical(400.0, "V"),
        charging_complete=False)
    _, effects = HANDLERS["CurrentDemandReq"](req, din_session(), inputs())
    assert effects[0].current == 0.0  # type: ignore[union-attr]


def test_contract_authentication_asks_once_and_waits() -> None:
    session = din_session()
    charger = ChargerState(limits=LIMITS)
    h = HANDLERS["ContractAuthenticationReq"]
    res, effects = h(din.ContractAuthenticationReqType(), session, inputs(charger,
                                                                          auto_authorize=False))
    assert res.evse_processing == "Ongoing"
    assert effects == [ev.RequestAuthorization(method="EIM", evcc_id="0A1B")]
    res, effects = h(din.ContractAuthenticationReqType(), session, inputs(charger,
                                                                          auto_authorize=False))
    assert res.evse_processing == "Ongoing" and effects == []
    charger.authorization = False
    with pytest.raises(Failed):
        h(din.ContractAuthenticationReqType(), session, inputs(charger, auto_authorize=False))


def test_payment_and_service_selection_must_match_the_offer() -> None:
    h = HANDLERS["ServicePaymentSelectionReq"]
    contract = din.ServicePaymentSelectionReqType(
        selected_payment_option="Contract",
        selected_service_list=din.SelectedServiceListType(
            selected_service=(din.SelectedServiceType(service_id=1),)))
    with pytest.raises(ProtocolError) as exc:
        h(contract, din_session(), inputs())
    assert exc.value.response_code == "FAILED_PaymentSelectionInvalid"
    other = contract.replace(
        selected_payment_option="ExternalPayment",
        selected_service_list=din.SelectedServiceListType(
            selected_service=(din.SelectedServiceType(service_id=7),)))
    with pytest.raises(ProtocolError) as exc:
        h(other, din_session(), inputs())
    assert exc.value.response_code == "FAILED_ServiceSelectionInvalid"


@pytest.mark.parametrize(("unit", "value", "expected"),
                         [("s", 90, 90.0), ("m", 90, 5400.0), ("h", 2, 7200.0), (None, 30, 30.0)])
def test_times_in_any_unit(unit: str | None, value: int, expected: float) -> None:
    pv = din.PhysicalValueType(multiplier=0, unit=unit, value=value)
    assert seconds(pv) == expected


@pytest.mark.parametrize("x", [0.0, 1.5, 400.0, 125.0, 50_000.0, 150_000.0, -20.0, 0.001])
def test_physical_values_round_trip(x: float) -> None:
    pv = physical(x, "W")
    assert -32768 <= pv.value <= 32767 and -3 <= pv.multiplier <= 3
    assert from_physical(pv) == pytest.approx(x)
