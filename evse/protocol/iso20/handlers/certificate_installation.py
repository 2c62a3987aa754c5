"""CertificateInstallation: the EV asks for a contract certificate through the SECC.

Offered in AuthorizationSetupRes (CertificateInstallationService=true) only over TLS, with
PnC, a `pnc_verifier` and a `certificate_installation` hook (the CPS backend) configured; the
request is legal after AuthorizationSetup, before AuthorizationReq (also after a
WARNING_ChallengeInvalid) and after an AuthorizationRes OK_CertificateExpiresSoon (states.py).
Each request:

1. not offered in this session: FAILED_SequenceError (the EV must not ask; the session ends
   safely);
2. `pnc_verifier.verify_certificate_installation`: the header Signature over
   OEMProvisioningCertificateChain with the OEM provisioning key (FAILED_SignatureError ends
   the session), and that chain up to an installed OEM root when the verifier has OEM roots
   (WARNING_CertificateExpired / ... / _ValidationError, EVSEProcessing=Finished);
3. the hook's answer: None while pending (OK, EVSEProcessing=Ongoing: the EV repeats the same
   request, at most until the Ongoing timeout), then OK with CPSCertificateChain,
   SignedInstallationData and the CPS's Signature in the header, or the hook's WARNING code
   (e.g. WARNING_NoCertificateAvailable).

Responses without installation data (Ongoing, WARNING) carry schema-valid placeholders in the
mandatory fields; the EV ignores them.
"""

from __future__ import annotations

from typing import Any

from evse.protocol.config import InstallationAnswer, PncVerdict
from evse.protocol.errors import SequenceError
from evse.protocol.iso20.handlers.authorization import (
    certificate_installation_offered,
    raise_failed,
    warning_code,
)
from evse.protocol.iso20.handlers.common import HandlerResult, Inputs, res_header
from evse.protocol.session import Session
from exi_codec.schemas import iso20
from exi_codec.schemas.iso20 import CertificateInstallationReq, CertificateInstallationRes

NO_CERTIFICATE = "WARNING_NoCertificateAvailable"


def _placeholder() -> dict[str, Any]:
    chain = iso20.ContractCertificateChainType(
        certificate=b"\x00", sub_certificates=iso20.SubCertificatesType(certificate=(b"\x00",))
    )
    return {
        "cps_certificate_chain": iso20.CertificateChainType(certificate=b"\x00"),
        "signed_installation_data": iso20.SignedInstallationDataType(
            id="none",
            contract_certificate_chain=chain,
            ecdh_curve=iso20.ecdhCurveType.SECP521,
            dh_public_key=bytes(133),
            secp521_encrypted_private_key=bytes(94),
        ),
        "remaining_contract_certificate_chains": 0,
    }


def _respond(
    session: Session, inputs: Inputs, code: str, processing: str,
    answer: InstallationAnswer | None = None,
) -> CertificateInstallationRes:
    header = res_header(iso20, session, inputs)
    if answer is None:
        fields = _placeholder()
    else:
        header = header.replace(signature=answer.signature)
        fields = {
            "cps_certificate_chain": answer.cps_certificate_chain,
            "signed_installation_data": answer.signed_installation_data,
            "remaining_contract_certificate_chains": answer.remaining_contract_certificate_chains,
        }
    return CertificateInstallationRes(
        header=header,
        response_code=iso20.responseCodeType(code),
        evse_processing=iso20.processingType(processing),
        **fields,
    )


def handle_certificate_installation(
    req: CertificateInstallationReq, session: Session, inputs: Inputs
) -> HandlerResult[CertificateInstallationRes]:
    cfg = inputs.config
    verifier, backend = cfg.pnc_verifier, cfg.certificate_installation
    offered = "PnC" in session.offered_auth and certificate_installation_offered(inputs)
    if not offered or verifier is None or backend is None:
        raise SequenceError("CertificateInstallation was not offered in this session")
    kw: dict[str, Any] = {"timestamp": inputs.timestamp, "session_id": session.session_id}
    verdict = verifier.verify_certificate_installation(req, **kw)
    raise_failed(verdict)
    if not verdict.ok:
        code = warning_code(verdict, "WARNING_CertificateValidationError")
        return _respond(session, inputs, code, "Finished"), []
    answer = backend.installation_data(req, **kw)
    if answer is None:
        return _respond(session, inputs, "OK", "Ongoing"), []
    result = PncVerdict(answer.response_code, answer.reason)
    raise_failed(result)
    if not result.ok:
        return _respond(session, inputs, warning_code(result, NO_CERTIFICATE), "Finished"), []
    if answer.signed_installation_data is None or answer.signature is None:
        return _respond(session, inputs, NO_CERTIFICATE, "Finished"), []
    return _respond(session, inputs, "OK", "Finished", answer), []
