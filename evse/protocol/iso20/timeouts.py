"""Every SECC timer of the -20 session, in seconds (DESIGN.md section 5).

The values come from DESIGN.md section 5 (the team's digest of ISO 15118-20). The standard's
own requirement ids were not available while writing this module: each constant names the
timer it implements; `REQUIREMENT_IDS` maps a constant to its `[V2G20-nnnn]` id once somebody
checks it against the standard (None = not verified yet, never guessed).

Nothing here reads a clock: `SeccConnection` adds these to the `now` it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

# Time the EV may take between our response and its next request; the session fails after.
SEQUENCE_TIMEOUT = 60.0
# ... but after a ChargeLoopRes the next request must follow much faster.
CHARGE_LOOP_SEQUENCE_TIMEOUT = 0.5

# Our own time to answer a request (informational: the core answers at once; the adapter gets
# `SendData.deadline` and may report a late send).
PERFORMANCE_TIME = 1.5
PERFORMANCE_TIME_SERVICE_DETAIL = 4.5  # ServiceDetail and CertificateInstallation
PERFORMANCE_TIME_CHARGE_LOOP = 0.25  # DC_ChargeLoop / AC_ChargeLoop

# Longest time we may keep answering EVSEProcessing=Ongoing (Authorization, ScheduleExchange).
ONGOING_TIMEOUT = 55.0
# Longest cable check (insulation test), from the first DC_CableCheckReq.
CABLE_CHECK_TIMEOUT = 40.0
# From the TCP connection to a successful SessionSetup (covers supportedAppProtocol).
COMMUNICATION_SETUP_TIMEOUT = 18.0
# Close TCP no earlier than this after SessionStopRes (and after a FAILED response), unless
# the EV closes first.
CLOSE_AFTER_SESSION_STOP = 5.0

REQUIREMENT_IDS: dict[str, str | None] = {
    "SEQUENCE_TIMEOUT": None,
    "CHARGE_LOOP_SEQUENCE_TIMEOUT": None,
    "PERFORMANCE_TIME": None,
    "PERFORMANCE_TIME_SERVICE_DETAIL": None,
    "PERFORMANCE_TIME_CHARGE_LOOP": None,
    "ONGOING_TIMEOUT": None,
    "CABLE_CHECK_TIMEOUT": None,
    "COMMUNICATION_SETUP_TIMEOUT": None,
    "CLOSE_AFTER_SESSION_STOP": None,
}

_SLOW_REQUESTS = frozenset({"ServiceDetailReq", "CertificateInstallationReq"})
_LOOP_REQUESTS = frozenset({"DC_ChargeLoopReq", "AC_ChargeLoopReq"})


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The timers one SECC uses; defaults are the standard's. Tests and labs may override."""

    sequence: float = SEQUENCE_TIMEOUT
    charge_loop_sequence: float = CHARGE_LOOP_SEQUENCE_TIMEOUT
    performance: float = PERFORMANCE_TIME
    performance_service_detail: float = PERFORMANCE_TIME_SERVICE_DETAIL
    performance_charge_loop: float = PERFORMANCE_TIME_CHARGE_LOOP
    ongoing: float = ONGOING_TIMEOUT
    cable_check: float = CABLE_CHECK_TIMEOUT
    communication_setup: float = COMMUNICATION_SETUP_TIMEOUT
    close_after_session_stop: float = CLOSE_AFTER_SESSION_STOP

    def performance_time(self, request: str) -> float:
        """How long we may take to answer `request` (a root element name)."""
        if request in _LOOP_REQUESTS:
            return self.performance_charge_loop
        if request in _SLOW_REQUESTS:
            return self.performance_service_detail
        return self.performance

    def sequence_after(self, request: str) -> float:
        """How long the EV may stay silent after we answered `request`."""
        return self.charge_loop_sequence if request in _LOOP_REQUESTS else self.sequence
