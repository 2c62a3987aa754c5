"""The transition table: every (state, request) pair, and random walks through it."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evse.protocol import events as ev
from evse.protocol.config import ControlMode, ServiceId
from evse.protocol.iso20.messages import REQUESTS
from evse.protocol.iso20.states import (
    ENERGY_STATES,
    TRANSITIONS,
    State,
    expected_request,
    legal,
    outcome,
)
from evse.protocol.limits import EvLimits
from tests.protocol.evcc import Ev, assert_safe_end, config, kinds
from tests.protocol.requests import REQUEST_NAMES, build

SESSION_STATES = [s for s in State if s != State.SUPPORTED_APP_PROTOCOL]
# Legal in the table only where the session offered it: these sessions (config() without a
# CPS hook) never offer CertificateInstallation, so it is a sequence error in every state.
NOT_OFFERED = frozenset({"CertificateInstallationReq"})


def sequence_error(state: State, name: str) -> bool:
    return not legal(state, name) or name in NOT_OFFERED


def forced(state: State) -> Ev:
    """A session set up for real, then put into `state` with a plausible context."""
    x = Ev.connect(config(control_modes=(ControlMode.SCHEDULED,)))
    x.sap()
    x.setup()
    s = x.conn.session
    assert s is not None
    ac = state.name.startswith("AC_")
    s.offered_auth = ("EIM",)
    s.offered_services = (ServiceId.DC, ServiceId.DC_BPT)
    s.service = ServiceId.AC if ac else ServiceId.DC
    s.control_mode = ControlMode.SCHEDULED
    s.ev = EvLimits(
        max_charge_power=30_000, max_charge_current=100, max_voltage=450, min_voltage=200
    )
    s.schedule_tuple_id = 1
    s.energy_flowing = state in ENERGY_STATES
    s.state = state
    return x


def test_every_state_has_a_row_and_targets_are_states() -> None:
    assert set(TRANSITIONS) == set(State) - {State.SUPPORTED_APP_PROTOCOL}
    for row in TRANSITIONS.values():
        for request, outcomes in row.items():
            assert request in REQUESTS
            assert all(isinstance(target, State) for target in outcomes.values())


def test_expected_request_is_the_first_of_the_row() -> None:
    assert expected_request(State.SESSION_SETUP) == "SessionSetupReq"
    assert expected_request(State.DC_CHARGE_LOOP) == "DC_ChargeLoopReq"
    assert expected_request(State.ENDED) is None


@pytest.mark.parametrize(
    ("state", "requests"),
    [
        (State.SERVICE_DETAIL, {"ServiceDetailReq", "SessionStopReq"}),  # no ServiceSelection
        (State.SERVICE_SELECTION, {"ServiceDetailReq", "ServiceSelectionReq", "SessionStopReq"}),
        (State.DC_RENEGOTIATION, {"ScheduleExchangeReq"}),
        (State.DC_RENEGOTIATED, {"PowerDeliveryReq"}),
        (State.AC_RENEGOTIATION, {"ScheduleExchangeReq"}),
        (State.AC_RENEGOTIATED, {"PowerDeliveryReq"}),
    ],
)
def test_service_and_renegotiation_rows(state: State, requests: set[str]) -> None:
    assert set(TRANSITIONS[state]) == requests


def test_renegotiation_and_authorization_retry_outcomes() -> None:
    assert TRANSITIONS[State.DC_CHARGE_LOOP]["PowerDeliveryReq"]["schedulerenegotiation"] == (
        State.DC_RENEGOTIATION)
    assert TRANSITIONS[State.AC_CHARGE_LOOP]["PowerDeliveryReq"]["schedulerenegotiation"] == (
        State.AC_RENEGOTIATION)
    assert TRANSITIONS[State.AUTHORIZATION]["AuthorizationReq"]["retry"] == State.AUTHORIZATION
    for row in (State.DC_PRE_CHARGE, State.AC_POWER_DELIVERY, State.DC_RENEGOTIATED):
        assert "schedulerenegotiation" not in TRANSITIONS[row]["PowerDeliveryReq"]


@pytest.mark.parametrize("state", SESSION_STATES)
@pytest.mark.parametrize("name", REQUEST_NAMES)
def test_every_state_request_pair(state: State, name: str) -> None:
    x = forced(state)
    res, effects = x.send(build(name, x.session_id))
    assert type(res).__name__ == REQUESTS[name].response
    assert REQUESTS[name].schema == type(res)._exi_module.SCHEMA  # the request's message set
    if not sequence_error(state, name):
        assert res.response_code != "FAILED_SequenceError", (state, name, x.effects)
    else:
        assert res.response_code == "FAILED_SequenceError"
        assert_safe_end(effects)
        assert kinds(effects)[-1] == "CloseConnection"
        assert x.conn.closed and x.conn.state == State.ENDED
        assert x.feed(b"\x01\xfe") == []  # nothing more is processed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    mode=st.sampled_from(list(ControlMode)),
    service=st.sampled_from([ServiceId.DC, ServiceId.DC_BPT]),
)
def test_random_walks_respect_the_table(
    data: st.DataObject, mode: ControlMode, service: ServiceId
) -> None:
    x = Ev.connect(config(control_modes=(mode,)))
    x.sap()
    x.setup()
    for _ in range(25):
        state = x.conn.state
        if x.conn.closed:
            break
        if state == State.DC_CABLE_CHECK and data.draw(st.booleans()):
            x.event(ev.CableCheckFinished(isolation_ok=True))
        row = sorted(TRANSITIONS[state])
        name = data.draw(
            st.sampled_from(row)
            if row and data.draw(st.integers(0, 3))
            else st.sampled_from(REQUEST_NAMES)
        )
        msg = build(name, x.session_id)
        if name == "ServiceSelectionReq":
            msg = msg.replace(
                selected_energy_transfer_service=msg.selected_energy_transfer_service.replace(
                    service_id=int(service), parameter_set_id=int(mode)
                )
            )
        res, effects = x.send(msg, dt=0.05)
        if not sequence_error(state, name):
            assert res.response_code != "FAILED_SequenceError", (state, name)
        else:
            assert res.response_code == "FAILED_SequenceError", (state, name)
        if str(res.response_code).startswith("FAILED"):
            assert_safe_end(effects)
            assert x.conn.closed
        else:
            key = outcome(msg, res, x.conn.session.energy if x.conn.session else None)
            assert x.conn.state == TRANSITIONS[state][name][key]
