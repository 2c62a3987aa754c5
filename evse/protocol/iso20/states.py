"""The -20 session state machine as data: every legal (state, request) pair in one table.

`TRANSITIONS[state][request][outcome] -> next state`. The outcome is a small label computed
from the request and our response by `outcome()` (EVSEProcessing Ongoing, ChargeProgress,
ChargingSession, ...). A request absent from `TRANSITIONS[state]` is a sequence error:
FAILED_SequenceError in that request's message set, then the session ends. So is an outcome
absent from the row (e.g. PowerDelivery Standby before the charge loop).

The first request of each row is the one we "expect" in that state: an unidentifiable
message gets a FAILED response of that message set.

SUPPORTED_APP_PROTOCOL has no row: before the negotiation only supportedAppProtocolReq is
understood (other payload types are discarded; other EXI in a SAP frame gets
supportedAppProtocolRes Failed_NoNegotiation, see secc.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class State(StrEnum):
    SUPPORTED_APP_PROTOCOL = "SupportedAppProtocol"
    SESSION_SETUP = "SessionSetup"
    AUTHORIZATION_SETUP = "AuthorizationSetup"
    AUTHORIZATION = "Authorization"
    AUTHORIZATION_REFUSED = "AuthorizationRefused"  # only SessionStop is left
    # authorized with OK_CertificateExpiresSoon: the EV may renew its contract first
    CONTRACT_EXPIRES_SOON = "ContractExpiresSoon"
    SERVICE_DISCOVERY = "ServiceDiscovery"
    SERVICE_DETAIL = "ServiceDetail"  # after ServiceDiscoveryRes only ServiceDetail may follow
    SERVICE_SELECTION = "ServiceSelection"  # more ServiceDetail, or ServiceSelection
    DC_CHARGE_PARAMETER_DISCOVERY = "DC_ChargeParameterDiscovery"
    DC_SCHEDULE_EXCHANGE = "DC_ScheduleExchange"
    DC_CABLE_CHECK = "DC_CableCheck"
    DC_PRE_CHARGE = "DC_PreCharge"
    DC_CHARGE_LOOP = "DC_ChargeLoop"
    DC_RENEGOTIATION = "DC_Renegotiation"  # after PowerDelivery(ScheduleRenegotiation)
    DC_RENEGOTIATED = "DC_Renegotiated"  # new schedule: PowerDelivery(Start) back to the loop
    DC_POWER_OFF = "DC_PowerOff"  # after PowerDelivery(Stop)
    DC_WELDING_DETECTION = "DC_WeldingDetection"
    AC_CHARGE_PARAMETER_DISCOVERY = "AC_ChargeParameterDiscovery"
    AC_SCHEDULE_EXCHANGE = "AC_ScheduleExchange"
    AC_POWER_DELIVERY = "AC_PowerDelivery"
    AC_CHARGE_LOOP = "AC_ChargeLoop"
    AC_RENEGOTIATION = "AC_Renegotiation"
    AC_RENEGOTIATED = "AC_Renegotiated"
    AC_POWER_OFF = "AC_PowerOff"
    ENDED = "Ended"


S = State
OK = "ok"
ONGOING = "ongoing"  # our EVSEProcessing is Ongoing
EV_ONGOING = "ev_ongoing"  # PowerDelivery(Start) with the EV's EVProcessing Ongoing
STOP = {"SessionStopReq": {"terminate": S.ENDED, "pause": S.ENDED}}
RENEGOTIATION = "schedulerenegotiation"  # PowerDelivery(ScheduleRenegotiation), EV-initiated
# AuthorizationRes warnings after which the EV may try again: the session stays in
# Authorization (another AuthorizationReq - PnC with the right challenge or EIM, an offered
# service - or a CertificateInstallationReq).
AUTHORIZATION_RETRY = frozenset({
    "WARNING_ChallengeInvalid", "WARNING_AuthorizationSelectionInvalid",
})


def _metering(state: State) -> dict[str, dict[str, State]]:
    """MeteringConfirmationReq (PnC): the EV signs a meter reading; the state stays."""
    return {"MeteringConfirmationReq": {OK: state}}


def _renegotiation(
    exchange: State, renegotiated: State, loop: State, power_off: State
) -> dict[State, dict[str, dict[str, State]]]:
    """EV-initiated schedule renegotiation: from the charge loop, PowerDelivery
    (ScheduleRenegotiation) -> ScheduleExchange (repeated while Ongoing) -> PowerDelivery
    (Start) back to the loop, or (Stop) to end it. The current is at zero meanwhile
    (contactors stay closed)."""
    return {
        exchange: {"ScheduleExchangeReq": {ONGOING: exchange, OK: renegotiated}},
        renegotiated: {
            "PowerDeliveryReq": {EV_ONGOING: renegotiated, "start": loop, "stop": power_off}
        },
    }


TRANSITIONS: dict[State, dict[str, dict[str, State]]] = {
    S.SESSION_SETUP: {
        "SessionSetupReq": {
            "new": S.AUTHORIZATION_SETUP,
            "resumed_dc": S.DC_CHARGE_PARAMETER_DISCOVERY,
            "resumed_ac": S.AC_CHARGE_PARAMETER_DISCOVERY,
        },
    },
    S.AUTHORIZATION_SETUP: {"AuthorizationSetupReq": {OK: S.AUTHORIZATION}, **STOP},
    S.AUTHORIZATION: {
        "AuthorizationReq": {
            ONGOING: S.AUTHORIZATION,
            OK: S.SERVICE_DISCOVERY,
            "expires_soon": S.CONTRACT_EXPIRES_SOON,
            "retry": S.AUTHORIZATION,  # see AUTHORIZATION_RETRY
            "refused": S.AUTHORIZATION_REFUSED,
        },
        # Only when offered (PnC over TLS with a CPS hook); Ongoing while the CPS works.
        "CertificateInstallationReq": {ONGOING: S.AUTHORIZATION, OK: S.AUTHORIZATION},
        **STOP,
    },
    S.AUTHORIZATION_REFUSED: {**STOP},
    S.CONTRACT_EXPIRES_SOON: {
        "ServiceDiscoveryReq": {OK: S.SERVICE_DETAIL},
        "CertificateInstallationReq": {
            ONGOING: S.CONTRACT_EXPIRES_SOON, OK: S.CONTRACT_EXPIRES_SOON,
        },
        **STOP,
    },
    S.SERVICE_DISCOVERY: {"ServiceDiscoveryReq": {OK: S.SERVICE_DETAIL}, **STOP},
    # Per the issue: ServiceSelection directly after ServiceDiscovery is a sequence error.
    S.SERVICE_DETAIL: {"ServiceDetailReq": {OK: S.SERVICE_SELECTION}, **STOP},
    S.SERVICE_SELECTION: {
        "ServiceDetailReq": {OK: S.SERVICE_SELECTION},
        "ServiceSelectionReq": {
            "dc": S.DC_CHARGE_PARAMETER_DISCOVERY,
            "ac": S.AC_CHARGE_PARAMETER_DISCOVERY,
        },
        **STOP,
    },
    # -- DC ----------------------------------------------------------------------------------
    S.DC_CHARGE_PARAMETER_DISCOVERY: {
        "DC_ChargeParameterDiscoveryReq": {OK: S.DC_SCHEDULE_EXCHANGE},
        **STOP,
    },
    S.DC_SCHEDULE_EXCHANGE: {
        "ScheduleExchangeReq": {ONGOING: S.DC_SCHEDULE_EXCHANGE, OK: S.DC_CABLE_CHECK},
        **STOP,
    },
    S.DC_CABLE_CHECK: {
        "DC_CableCheckReq": {ONGOING: S.DC_CABLE_CHECK, OK: S.DC_PRE_CHARGE},
        **STOP,
    },
    S.DC_PRE_CHARGE: {
        "DC_PreChargeReq": {OK: S.DC_PRE_CHARGE},
        "PowerDeliveryReq": {EV_ONGOING: S.DC_PRE_CHARGE, "start": S.DC_CHARGE_LOOP},
        **STOP,
    },
    S.DC_CHARGE_LOOP: {
        "DC_ChargeLoopReq": {OK: S.DC_CHARGE_LOOP},
        "PowerDeliveryReq": {
            "stop": S.DC_POWER_OFF,
            "standby": S.DC_CHARGE_LOOP,
            "start": S.DC_CHARGE_LOOP,  # leaving standby
            EV_ONGOING: S.DC_CHARGE_LOOP,
            RENEGOTIATION: S.DC_RENEGOTIATION,
        },
        **_metering(S.DC_CHARGE_LOOP),
    },
    **_renegotiation(S.DC_RENEGOTIATION, S.DC_RENEGOTIATED, S.DC_CHARGE_LOOP, S.DC_POWER_OFF),
    S.DC_POWER_OFF: {
        "DC_WeldingDetectionReq": {OK: S.DC_WELDING_DETECTION},
        **_metering(S.DC_POWER_OFF),
        **STOP,
    },
    S.DC_WELDING_DETECTION: {"DC_WeldingDetectionReq": {OK: S.DC_WELDING_DETECTION}, **STOP},
    # -- AC ----------------------------------------------------------------------------------
    S.AC_CHARGE_PARAMETER_DISCOVERY: {
        "AC_ChargeParameterDiscoveryReq": {OK: S.AC_SCHEDULE_EXCHANGE},
        **STOP,
    },
    S.AC_SCHEDULE_EXCHANGE: {
        "ScheduleExchangeReq": {ONGOING: S.AC_SCHEDULE_EXCHANGE, OK: S.AC_POWER_DELIVERY},
        **STOP,
    },
    S.AC_POWER_DELIVERY: {
        "PowerDeliveryReq": {EV_ONGOING: S.AC_POWER_DELIVERY, "start": S.AC_CHARGE_LOOP},
        **STOP,
    },
    S.AC_CHARGE_LOOP: {
        "AC_ChargeLoopReq": {OK: S.AC_CHARGE_LOOP},
        "PowerDeliveryReq": {
            "stop": S.AC_POWER_OFF,
            "standby": S.AC_CHARGE_LOOP,
            "start": S.AC_CHARGE_LOOP,
            EV_ONGOING: S.AC_CHARGE_LOOP,
            RENEGOTIATION: S.AC_RENEGOTIATION,
        },
        **_metering(S.AC_CHARGE_LOOP),
    },
    **_renegotiation(S.AC_RENEGOTIATION, S.AC_RENEGOTIATED, S.AC_CHARGE_LOOP, S.AC_POWER_OFF),
    S.AC_POWER_OFF: {**STOP, **_metering(S.AC_POWER_OFF)},
    S.ENDED: {},
}

# States in which energy may flow (a charger stop request is signalled, not failed).
ENERGY_STATES = frozenset({S.DC_CHARGE_LOOP, S.AC_CHARGE_LOOP})


def legal(state: State, request: str) -> bool:
    return request in TRANSITIONS.get(state, {})


def expected_request(state: State) -> str | None:
    """The request we wait for in `state` (first of its row), None when nothing is expected."""
    return next(iter(TRANSITIONS.get(state, {})), None)


def outcome(req: Any, res: Any, energy: str | None) -> str:
    """The label selecting the next state; `energy` is "dc"/"ac" (the selected service)."""
    name = type(req).__name__
    code = str(res.response_code)
    if name == "SessionSetupReq":
        return f"resumed_{energy}" if code == "OK_OldSessionJoined" else "new"
    if name == "ServiceSelectionReq":
        return energy or OK
    if name == "SessionStopReq":
        return "pause" if req.charging_session == "Pause" else "terminate"
    if name == "AuthorizationReq" and code in AUTHORIZATION_RETRY:
        return "retry"
    if name == "AuthorizationReq" and code.startswith("WARNING"):
        return "refused"
    if name == "AuthorizationReq" and code == "OK_CertificateExpiresSoon":
        return "expires_soon"
    if name == "PowerDeliveryReq":
        progress = str(req.charge_progress)
        if progress == "Start" and req.ev_processing != "Finished":
            return EV_ONGOING
        return progress.lower()
    processing = getattr(res, "evse_processing", None)
    if processing is not None and processing != "Finished":
        return ONGOING
    return OK
