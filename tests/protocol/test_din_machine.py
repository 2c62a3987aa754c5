"""DinMachine through SeccConnection on a fake clock: real-car quirks on the wire, bad input
(each answered with the DIN FAILED code in the request's own type, power made safe first,
the session ended) and every timer."""

from __future__ import annotations

import dataclasses
from typing import Any

import exi_codec
from evse.protocol import events as ev
from evse.protocol.din.machine import DinMachine
from evse.protocol.din.states import State
from evse.protocol.v2gtp import PayloadType, encode_frame
from tests.protocol.test_din_states import SID, answer, connect, forced, request


def din(conn: Any) -> DinMachine:
    assert isinstance(conn.machine, DinMachine)
    return conn.machine


def assert_failed_safely(effects: list[Any], field: str, code: str) -> None:
    assert answer(effects) == (field, code)
    kinds = [type(e) for e in effects]
    assert kinds[:2] == [ev.StopPower, ev.OpenContactors]
    assert kinds[-2:] == [ev.SessionEnded, ev.CloseConnection]


def test_trailing_zero_and_empty_session_id_in_session_setup() -> None:
    frame = request("SessionSetupReq", b"")
    # a car's trailing 0x00 after the EXI stream, inside the V2GTP payload
    padded = encode_frame(PayloadType.SAP, frame[8:] + b"\x00")
    conn = connect()
    effects = conn.receive_data(padded, 0.1)
    assert answer(effects) == ("session_setup_res", "OK_NewSessionEstablished")
    assert din(conn).state == State.SERVICE_DISCOVERY
    started = [e for e in effects if isinstance(e, ev.SessionStarted)]
    assert started == [ev.SessionStarted(SID, "0A1B2C3D4E5F", "urn:din:70121:2012:MsgDef")]
    # and the next request with a trailing 0x00 too
    nxt = encode_frame(PayloadType.SAP, request("ServiceDiscoveryReq")[8:] + b"\x00")
    assert answer(conn.receive_data(nxt, 0.2)) == ("service_discovery_res", "OK")


def test_soc_outside_the_facet_is_accepted_and_clamped() -> None:
    conn = forced(State.CABLE_CHECK)
    din(conn).cable_check_started = None
    # CableCheckReq with EVRESSSOC 120 (7 bits carry it; the facet says 0..100)
    frame = request("CableCheckReq")
    exi = bytearray(frame[8:])
    msg = exi_codec.decode(bytes(exi), "din")
    status = msg.body.cable_check_req.dc_ev_status.replace(evresssoc=120)
    msg = msg.replace(body=msg.body.replace(
        cable_check_req=msg.body.cable_check_req.replace(dc_ev_status=status)))
    data = encode_frame(PayloadType.SAP, exi_codec.encode(msg, strict=False))
    effects = conn.receive_data(data, 1.0)
    assert answer(effects) == ("cable_check_res", "OK")
    assert conn.session is not None and conn.session.present_soc == 100


def test_wrong_session_id_is_failed_unknown_session() -> None:
    conn = forced(State.CURRENT_DEMAND)
    effects = conn.receive_data(request("CurrentDemandReq", b"\x13" * 8), 1.0)
    assert_failed_safely(effects, "current_demand_res", "FAILED_UnknownSession")
    assert conn.closed


def test_malformed_exi_is_failed_in_the_expected_type() -> None:
    conn = forced(State.CURRENT_DEMAND)
    effects = conn.receive_data(encode_frame(PayloadType.SAP, b"\x80\x9a\xff\xfe\xfd"), 1.0)
    assert_failed_safely(effects, "current_demand_res", "FAILED")


def test_truncated_request_is_failed_in_its_own_type() -> None:
    conn = forced(State.PRE_CHARGE)
    frame = request("CurrentDemandReq")
    effects = conn.receive_data(encode_frame(PayloadType.SAP, frame[8:-3]), 1.0)
    field, code = answer(effects)
    assert code == "FAILED" and field in ("current_demand_res", "pre_charge_res")


def test_over_long_session_id_is_failed() -> None:
    conn = connect()
    msg = exi_codec.decode(request("SessionSetupReq")[8:], "din")
    msg = msg.replace(header=msg.header.replace(session_id=b"\x01" * 100))
    data = encode_frame(PayloadType.SAP, exi_codec.encode(msg, strict=False))
    effects = conn.receive_data(data, 0.1)
    assert answer(effects)[1] == "FAILED" and conn.closed


def test_emergency_stop_is_immediate_and_the_next_request_fails() -> None:
    conn = forced(State.CURRENT_DEMAND)
    effects = conn.handle_event(ev.EmergencyStop(), 1.0)
    assert [type(e) for e in effects] == [ev.StopPower, ev.OpenContactors]
    effects = conn.receive_data(request("CurrentDemandReq"), 1.1)
    assert_failed_safely(effects, "current_demand_res", "FAILED")
    sent = next(e for e in effects if isinstance(e, ev.SendData))
    res = exi_codec.decode(sent.data[8:], "din").body.current_demand_res
    assert res.dc_evse_status.evse_status_code == "EVSE_EmergencyShutdown"


def test_charger_stop_before_energy_fails_the_request_safely() -> None:
    conn = forced(State.CHARGE_PARAMETER_DISCOVERY)
    conn.handle_event(ev.StopRequested("user"), 1.0)
    effects = conn.receive_data(request("ChargeParameterDiscoveryReq"), 1.1)
    assert_failed_safely(effects, "charge_parameter_discovery_res", "FAILED")


def test_sequence_timeout_ends_the_session_safely() -> None:
    conn = forced(State.CURRENT_DEMAND)
    conn.receive_data(request("CurrentDemandReq"), 1.0)
    deadline = conn.next_deadline()
    assert deadline == 61.0  # the SECC sequence timeout, 60 s after our response
    assert conn.handle_timeout(60.9) == []
    effects = conn.handle_timeout(61.0)
    assert [type(e) for e in effects][:2] == [ev.StopPower, ev.OpenContactors]
    assert conn.closed and "sequence timeout" in effects[-1].reason


def test_cable_check_timeout() -> None:
    conn = forced(State.CABLE_CHECK)
    effects = conn.receive_data(request("CableCheckReq"), 1.0)
    assert any(isinstance(e, ev.StartCableCheck) for e in effects)
    t = 1.0
    while t < 45.0:  # the EV keeps polling, the insulation test never ends
        t += 1.0
        effects = conn.receive_data(request("CableCheckReq"), t)
        if conn.closed:
            break
    assert conn.closed and t == 41.0  # 40 s after the first CableCheckReq
    assert any("cable check timeout" in getattr(e, "reason", "") for e in effects)


def test_ongoing_timeout_while_authorization_never_comes() -> None:
    conn = forced(State.CONTRACT_AUTHENTICATION)
    machine = din(conn)
    machine.din.record.authorized = False
    machine.config = dataclasses.replace(machine.config, auto_authorize=False)
    effects = conn.receive_data(request("ContractAuthenticationReq"), 1.0)
    assert any(isinstance(e, ev.RequestAuthorization) for e in effects)
    t = 1.0
    while not conn.closed and t < 100:
        t += 2.0
        effects = conn.receive_data(request("ContractAuthenticationReq"), t)
    assert conn.closed and t == 57.0  # 55 s after the first Ongoing (at 1 s), on the poll
    assert any("Ongoing for too long" in getattr(e, "reason", "") for e in effects)


def test_ev_ignoring_stop_charging_is_cut_off_after_notification_max_delay() -> None:
    conn = forced(State.CURRENT_DEMAND)
    conn.handle_event(ev.StopRequested("user"), 1.0)
    effects = conn.receive_data(request("CurrentDemandReq"), 1.0)
    assert answer(effects) == ("current_demand_res", "OK")
    assert conn.next_deadline() == 1.0 + conn.config.notification_max_delay
    t = 1.0
    while not conn.closed:
        t += 0.5
        effects = conn.receive_data(request("CurrentDemandReq"), t)
    assert t == 1.0 + conn.config.notification_max_delay
    assert [type(e) for e in effects][:2] == [ev.StopPower, ev.OpenContactors]


def test_session_stop_in_the_charge_loop_makes_power_safe() -> None:
    conn = forced(State.CURRENT_DEMAND)
    effects = conn.receive_data(request("SessionStopReq"), 1.0)
    kinds = [type(e) for e in effects]
    assert kinds == [ev.StopPower, ev.OpenContactors, ev.SendData, ev.SessionEnded,
                     ev.CloseConnection]
    assert answer(effects) == ("session_stop_res", "OK")


def test_long_precharge_loop_is_fine() -> None:
    conn = forced(State.PRE_CHARGE)
    for i in range(500):
        effects = conn.receive_data(request("PreChargeReq"), 1.0 + i * 0.1)
        assert answer(effects) == ("pre_charge_res", "OK")
    assert din(conn).state == State.PRE_CHARGE


def test_connection_lost_is_safe() -> None:
    conn = forced(State.CURRENT_DEMAND)
    effects = conn.handle_event(ev.ConnectionLost(), 1.0)
    assert [type(e) for e in effects][:2] == [ev.StopPower, ev.OpenContactors]
    assert conn.closed

