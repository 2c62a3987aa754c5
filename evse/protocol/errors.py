"""Protocol errors: raised inside handlers, turned into the FAILED response at the boundary.

Each class carries its -20 response code as a class attribute. Every one of them ends the
session (all codes here are FAILED_*): `SeccConnection` answers with the request's response
type and that code, puts power in a safe state and ends the session.
"""

from __future__ import annotations

from typing import ClassVar


class ProtocolError(Exception):
    response_code: ClassVar[str] = "FAILED"

    def __init__(self, reason: str = "", *, terminate: bool = False) -> None:
        super().__init__(reason or self.response_code)
        self.reason = reason or self.response_code
        # Add EVSEStatus(EVSENotification=Terminate) where the response type has one.
        self.terminate = terminate


class Failed(ProtocolError):
    """Generic FAILED (undecodable request, isolation fault, emergency stop, ...)."""


class SequenceError(ProtocolError):
    response_code = "FAILED_SequenceError"


class UnknownSession(ProtocolError):
    response_code = "FAILED_UnknownSession"


class ServiceIDInvalid(ProtocolError):
    response_code = "FAILED_ServiceIDInvalid"


class ServiceSelectionInvalid(ProtocolError):
    response_code = "FAILED_ServiceSelectionInvalid"


class NoEnergyTransferServiceSelected(ProtocolError):
    response_code = "FAILED_NoEnergyTransferServiceSelected"


class WrongChargeParameter(ProtocolError):
    response_code = "FAILED_WrongChargeParameter"


class ScheduleSelectionInvalid(ProtocolError):
    response_code = "FAILED_ScheduleSelectionInvalid"


class PowerDeliveryNotApplied(ProtocolError):
    response_code = "FAILED_PowerDeliveryNotApplied"


class PauseNotAllowed(ProtocolError):
    response_code = "FAILED_PauseNotAllowed"


class NoServiceRenegotiationSupported(ProtocolError):
    response_code = "FAILED_NoServiceRenegotiationSupported"
