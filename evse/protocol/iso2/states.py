"""The -2 session state machine as data: every legal (state, request) pair in one table.

`TRANSITIONS[state][request][outcome] -> next state`, as for -20 (iso20/states.py). The
outcome is a small label computed from the request and our response by `outcome()`. A
request absent from `TRANSITIONS[state]`, or an outcome absent from its row, is a sequence
error: FAILED_SequenceError, then the session ends. The first request of each row is the one
we "expect" in that state (an unidentifiable message gets that request's FAILED response).

The loop and stopping states share their names with -20's (DC_ChargeLoop, AC_ChargeLoop,
DC_PowerOff, DC_WeldingDetection, AC_PowerOff): the server's turnaround statistics and the
station port read them by name, whatever the standard.

SessionStop is legal in every state after SessionSetup: real cars send it at odd points
(after Authorization, after ChargeParameterDiscovery, in the loop); it is answered OK with
the power stage made safe.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class State(StrEnum):
    SESSION_SETUP = "SessionSetup"
    SERVICE_DISCOVERY = "ServiceDiscovery"
    PAYMENT_SERVICE_SELECTION = "PaymentServiceSelection"  # ServiceDetail* then the selection
    # Plug & Charge (Contract): CertificateInstallation/Update, then PaymentDetails. Not
    # offered yet: no selection reaches it (the PnC work fills these handlers in).
    PAYMENT_DETAILS = "PaymentDetails"
    AUTHORIZATION = "Authorization"
    CHARGE_PARAMETER_DISCOVERY = "ChargeParameterDiscovery"
    DC_CABLE_CHECK = "DC_CableCheck"
    DC_PRE_CHARGE = "DC_PreCharge"
    DC_CHARGE_LOOP = "DC_ChargeLoop"
    DC_RENEGOTIATION = "DC_Renegotiation"  # after PowerDelivery(Renegotiate): a new CPD
    DC_RENEGOTIATED = "DC_Renegotiated"  # new schedule: PowerDelivery(Start) back to the loop
    DC_POWER_OFF = "DC_PowerOff"  # after PowerDelivery(Stop)
    DC_WELDING_DETECTION = "DC_WeldingDetection"
    AC_POWER_DELIVERY = "AC_PowerDelivery"
    AC_CHARGE_LOOP = "AC_ChargeLoop"
    AC_RENEGOTIATION = "AC_Renegotiation"
    AC_RENEGOTIATED = "AC_Renegotiated"
    AC_POWER_OFF = "AC_PowerOff"
    ENDED = "Ended"


S = State
OK = "ok"
ONGOING = "ongoing"  # our EVSEProcessing is Ongoing
STOP = {"SessionStopReq": {"terminate": S.ENDED, "pause": S.ENDED}}
# CPD outcomes: which energy transfer the EV requested
_CPD = {ONGOING: S.CHARGE_PARAMETER_DISCOVERY, "dc": S.DC_CABLE_CHECK, "ac": S.AC_POWER_DELIVERY}


def _renegotiation(
    renegotiation: State, renegotiated: State, loop: State, power_off: State, energy: str
) -> dict[State, dict[str, dict[str, State]]]:
    """EV-initiated renegotiation: PowerDelivery(Renegotiate) -> ChargeParameterDiscovery
    (repeated while Ongoing) -> PowerDelivery(Start) back to the loop, or (Stop) to end."""
    return {
        renegotiation: {
            "ChargeParameterDiscoveryReq": {ONGOING: renegotiation, energy: renegotiated},
            **STOP,
        },
        renegotiated: {
            "PowerDeliveryReq": {"start": loop, "stop": power_off},
            "ChargeParameterDiscoveryReq": {ONGOING: renegotiated, energy: renegotiated},
            **STOP,
        },
    }


def _loop(loop: State, power_off: State, renegotiation: State, request: str) -> dict[str, Any]:
    return {
        request: {OK: loop},
        "PowerDeliveryReq": {
            "stop": power_off,
            "start": loop,  # a repeated Start changes nothing
            "renegotiate": renegotiation,
        },
        # Only after a response with ReceiptRequired=true (PnC); the handler refuses others.
        "MeteringReceiptReq": {OK: loop},
        **STOP,
    }


TRANSITIONS: dict[State, dict[str, dict[str, State]]] = {
    S.SESSION_SETUP: {
        "SessionSetupReq": {"new": S.SERVICE_DISCOVERY, "resumed": S.SERVICE_DISCOVERY},
    },
    S.SERVICE_DISCOVERY: {"ServiceDiscoveryReq": {OK: S.PAYMENT_SERVICE_SELECTION}, **STOP},
    S.PAYMENT_SERVICE_SELECTION: {
        "PaymentServiceSelectionReq": {
            "external": S.AUTHORIZATION, "contract": S.PAYMENT_DETAILS,
        },
        "ServiceDetailReq": {OK: S.PAYMENT_SERVICE_SELECTION},
        **STOP,
    },
    S.PAYMENT_DETAILS: {
        "PaymentDetailsReq": {OK: S.AUTHORIZATION},
        "CertificateInstallationReq": {OK: S.PAYMENT_DETAILS},
        "CertificateUpdateReq": {OK: S.PAYMENT_DETAILS},
        **STOP,
    },
    S.AUTHORIZATION: {
        "AuthorizationReq": {ONGOING: S.AUTHORIZATION, OK: S.CHARGE_PARAMETER_DISCOVERY},
        **STOP,
    },
    S.CHARGE_PARAMETER_DISCOVERY: {"ChargeParameterDiscoveryReq": _CPD, **STOP},
    # -- DC ----------------------------------------------------------------------------------
    S.DC_CABLE_CHECK: {
        "CableCheckReq": {ONGOING: S.DC_CABLE_CHECK, OK: S.DC_PRE_CHARGE},
        # real cars repeat ChargeParameterDiscovery before the cable check
        "ChargeParameterDiscoveryReq": {ONGOING: S.DC_CABLE_CHECK, "dc": S.DC_CABLE_CHECK},
        **STOP,
    },
    S.DC_PRE_CHARGE: {
        "PreChargeReq": {OK: S.DC_PRE_CHARGE},
        "PowerDeliveryReq": {"start": S.DC_CHARGE_LOOP, "stop": S.DC_POWER_OFF},
        **STOP,
    },
    S.DC_CHARGE_LOOP: _loop(
        S.DC_CHARGE_LOOP, S.DC_POWER_OFF, S.DC_RENEGOTIATION, "CurrentDemandReq"
    ),
    **_renegotiation(
        S.DC_RENEGOTIATION, S.DC_RENEGOTIATED, S.DC_CHARGE_LOOP, S.DC_POWER_OFF, "dc"
    ),
    S.DC_POWER_OFF: {"WeldingDetectionReq": {OK: S.DC_WELDING_DETECTION}, **STOP},
    S.DC_WELDING_DETECTION: {"WeldingDetectionReq": {OK: S.DC_WELDING_DETECTION}, **STOP},
    # -- AC ----------------------------------------------------------------------------------
    S.AC_POWER_DELIVERY: {
        "PowerDeliveryReq": {"start": S.AC_CHARGE_LOOP, "stop": S.AC_POWER_OFF},
        "ChargeParameterDiscoveryReq": {ONGOING: S.AC_POWER_DELIVERY, "ac": S.AC_POWER_DELIVERY},
        **STOP,
    },
    S.AC_CHARGE_LOOP: _loop(
        S.AC_CHARGE_LOOP, S.AC_POWER_OFF, S.AC_RENEGOTIATION, "ChargingStatusReq"
    ),
    **_renegotiation(
        S.AC_RENEGOTIATION, S.AC_RENEGOTIATED, S.AC_CHARGE_LOOP, S.AC_POWER_OFF, "ac"
    ),
    S.AC_POWER_OFF: {**STOP, "MeteringReceiptReq": {OK: S.AC_POWER_OFF}},
    S.ENDED: {},
}

# States in which energy may flow (a charger stop request is signalled, not failed).
ENERGY_STATES = frozenset({S.DC_CHARGE_LOOP, S.AC_CHARGE_LOOP})
STOPPING_STATES = frozenset({S.DC_POWER_OFF, S.DC_WELDING_DETECTION, S.AC_POWER_OFF})


def legal(state: State, request: str) -> bool:
    return request in TRANSITIONS.get(state, {})


def expected_request(state: State) -> str | None:
    """The request we wait for in `state` (first of its row), None when nothing is expected."""
    return next(iter(TRANSITIONS.get(state, {})), None)


def outcome(req: Any, res: Any, energy: str | None) -> str:
    """The label selecting the next state; `energy` is "dc"/"ac" once the EV requested an
    energy transfer mode in ChargeParameterDiscovery."""
    name = type(req).__name__.removesuffix("Type")
    code = str(res.response_code)
    if name == "SessionSetupReq":
        return "resumed" if code == "OK_OldSessionJoined" else "new"
    if name == "PaymentServiceSelectionReq":
        return "contract" if req.selected_payment_option == "Contract" else "external"
    if name == "SessionStopReq":
        return "pause" if req.charging_session == "Pause" else "terminate"
    if name == "PowerDeliveryReq":
        return str(req.charge_progress).lower()
    processing = getattr(res, "evse_processing", None)
    if processing is not None and processing != "Finished":
        return ONGOING
    if name == "ChargeParameterDiscoveryReq":
        return energy or OK
    return OK
