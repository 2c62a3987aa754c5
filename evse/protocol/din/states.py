"""The DIN SPEC 70121 session state machine as data: every legal (state, request) pair.

`TRANSITIONS[state][request][outcome] -> next state`. The outcome is a small label computed
from the request and our response by `outcome()` (EVSEProcessing Ongoing, ReadyToChargeState).
A request absent from `TRANSITIONS[state]` is a sequence error: FAILED_SequenceError in that
request's response, then the session ends. So is an outcome absent from the row.

DIN is DC only with external payment (EIM): SessionSetup, ServiceDiscovery,
ServicePaymentSelection, ContractAuthentication (Ongoing until authorized),
ChargeParameterDiscovery, CableCheck (Ongoing until the insulation test is done), PreCharge
(repeated until the EV is satisfied), PowerDelivery(ReadyToChargeState=true), CurrentDemand,
PowerDelivery(false), WeldingDetection, SessionStop.

Real cars, taken in our stride:
- SessionStopReq at any point after SessionSetup (after CableCheck or PreCharge too) is
  answered OK with the power stage made safe (the handler emits StopPower/OpenContactors);
- a repeated ChargeParameterDiscoveryReq after a Finished one (before the cable check starts)
  is answered again;
- long EVSEProcessing=Ongoing (ContractAuthentication, CableCheck) and PreCharge loops stay in
  their state (bounded by the Ongoing, cable check and sequence timers).

The first request of each row is the one we "expect" in that state: an unidentifiable message
gets a FAILED response of that type.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class State(StrEnum):
    SESSION_SETUP = "DIN_SessionSetup"
    SERVICE_DISCOVERY = "DIN_ServiceDiscovery"
    SERVICE_PAYMENT_SELECTION = "DIN_ServicePaymentSelection"
    CONTRACT_AUTHENTICATION = "DIN_ContractAuthentication"
    CHARGE_PARAMETER_DISCOVERY = "DIN_ChargeParameterDiscovery"
    CABLE_CHECK = "DIN_CableCheck"
    PRE_CHARGE = "DIN_PreCharge"
    CURRENT_DEMAND = "DIN_CurrentDemand"
    POWER_OFF = "DIN_PowerOff"  # after PowerDelivery(ReadyToChargeState=false)
    WELDING_DETECTION = "DIN_WeldingDetection"
    ENDED = "Ended"  # the value of machine.ConnectionState.ENDED


S = State
OK = "ok"
ONGOING = "ongoing"  # our EVSEProcessing is Ongoing
START = "start"  # PowerDelivery ReadyToChargeState=true
STOP_POWER = "stop"  # PowerDelivery ReadyToChargeState=false
STOP = {"SessionStopReq": {OK: S.ENDED}}

TRANSITIONS: dict[State, dict[str, dict[str, State]]] = {
    S.SESSION_SETUP: {"SessionSetupReq": {OK: S.SERVICE_DISCOVERY}},
    S.SERVICE_DISCOVERY: {"ServiceDiscoveryReq": {OK: S.SERVICE_PAYMENT_SELECTION}, **STOP},
    S.SERVICE_PAYMENT_SELECTION: {
        "ServicePaymentSelectionReq": {OK: S.CONTRACT_AUTHENTICATION},
        **STOP,
    },
    S.CONTRACT_AUTHENTICATION: {
        "ContractAuthenticationReq": {
            ONGOING: S.CONTRACT_AUTHENTICATION,
            OK: S.CHARGE_PARAMETER_DISCOVERY,
        },
        **STOP,
    },
    S.CHARGE_PARAMETER_DISCOVERY: {
        "ChargeParameterDiscoveryReq": {
            ONGOING: S.CHARGE_PARAMETER_DISCOVERY,
            OK: S.CABLE_CHECK,
        },
        **STOP,
    },
    S.CABLE_CHECK: {
        "CableCheckReq": {ONGOING: S.CABLE_CHECK, OK: S.PRE_CHARGE},
        # real cars repeat ChargeParameterDiscovery (handler: only before the check starts)
        "ChargeParameterDiscoveryReq": {OK: S.CABLE_CHECK, ONGOING: S.CABLE_CHECK},
        **STOP,
    },
    S.PRE_CHARGE: {
        "PreChargeReq": {OK: S.PRE_CHARGE},
        "PowerDeliveryReq": {START: S.CURRENT_DEMAND, STOP_POWER: S.POWER_OFF},
        **STOP,
    },
    S.CURRENT_DEMAND: {
        "CurrentDemandReq": {OK: S.CURRENT_DEMAND},
        "PowerDeliveryReq": {STOP_POWER: S.POWER_OFF, START: S.CURRENT_DEMAND},
        **STOP,
    },
    S.POWER_OFF: {"WeldingDetectionReq": {OK: S.WELDING_DETECTION}, **STOP},
    S.WELDING_DETECTION: {"WeldingDetectionReq": {OK: S.WELDING_DETECTION}, **STOP},
    S.ENDED: {},
}

# States in which energy may flow: a charger stop is signalled (StopCharging), not failed.
ENERGY_STATES = frozenset({S.CURRENT_DEMAND})
# States after which the power stage is being shut down: a charger stop does not fail them.
STOPPING_STATES = frozenset({S.POWER_OFF, S.WELDING_DETECTION})


def legal(state: State, request: str) -> bool:
    return request in TRANSITIONS.get(state, {})


def expected_request(state: State) -> str | None:
    """The request we wait for in `state` (first of its row), None when nothing is expected."""
    return next(iter(TRANSITIONS.get(state, {})), None)


def outcome(name: str, req: Any, res: Any) -> str:
    """The label selecting the next state (`name`: the request's body element name)."""
    if name == "PowerDeliveryReq":
        return START if req.ready_to_charge_state else STOP_POWER
    processing = getattr(res, "evse_processing", None)
    if processing is not None and str(processing) != "Finished":
        return ONGOING
    return OK
