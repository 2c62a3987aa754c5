"""-2 response codes that -20 does not have (errors.py holds the common ones)."""

from __future__ import annotations

from evse.protocol.errors import Failed, ProtocolError


class PaymentSelectionInvalid(ProtocolError):
    response_code = "FAILED_PaymentSelectionInvalid"


class NoChargeServiceSelected(ProtocolError):
    response_code = "FAILED_NoChargeServiceSelected"


class WrongEnergyTransferMode(ProtocolError):
    response_code = "FAILED_WrongEnergyTransferMode"


class TariffSelectionInvalid(ProtocolError):
    response_code = "FAILED_TariffSelectionInvalid"


# Plug & Charge: the codes an Iso2PncBackend answers with (`pnc_error` maps them)
class CertChainError(ProtocolError):
    response_code = "FAILED_CertChainError"


class CertificateExpired(ProtocolError):
    response_code = "FAILED_CertificateExpired"


class CertificateRevoked(ProtocolError):
    response_code = "FAILED_CertificateRevoked"


class SignatureError(ProtocolError):
    response_code = "FAILED_SignatureError"


class ChallengeInvalid(ProtocolError):
    response_code = "FAILED_ChallengeInvalid"


class MeteringSignatureNotValid(ProtocolError):
    response_code = "FAILED_MeteringSignatureNotValid"


class NoCertificateAvailable(ProtocolError):
    response_code = "FAILED_NoCertificateAvailable"


class ContractCanceled(ProtocolError):
    response_code = "FAILED_ContractCanceled"


_PNC_ERRORS: dict[str, type[ProtocolError]] = {
    cls.response_code: cls
    for cls in (CertChainError, CertificateExpired, CertificateRevoked, SignatureError,
                ChallengeInvalid, MeteringSignatureNotValid, NoCertificateAvailable,
                ContractCanceled)
}


def pnc_error(response_code: str, reason: str = "") -> ProtocolError:
    """The error to raise for a backend's FAILED code (plain FAILED when unknown)."""
    cls = _PNC_ERRORS.get(response_code, Failed)
    return cls(reason or response_code)
