"""-2 response codes that -20 does not have (errors.py holds the common ones)."""

from __future__ import annotations

from evse.protocol.errors import ProtocolError


class PaymentSelectionInvalid(ProtocolError):
    response_code = "FAILED_PaymentSelectionInvalid"


class NoChargeServiceSelected(ProtocolError):
    response_code = "FAILED_NoChargeServiceSelected"


class WrongEnergyTransferMode(ProtocolError):
    response_code = "FAILED_WrongEnergyTransferMode"


class TariffSelectionInvalid(ProtocolError):
    response_code = "FAILED_TariffSelectionInvalid"
