"""AuthorizationSetup and Authorization: EIM, and Plug & Charge through the injected verifier.

PnC is offered only over TLS, with a fresh 16-byte GenChallenge from the connection's CSPRNG
(`SeccConnection` draws it for AuthorizationSetupReq). A PnC AuthorizationReq passes, in this
order (the first failure decides the response code):

1. PnC offered and selected, PnC_AReqAuthorizationMode present, TLS:
   else WARNING_AuthorizationSelectionInvalid (the -20 enum has no FAILED code for it);
2. GenChallenge equal to the one we sent in this session (a replayed request from another
   session carries another challenge): else WARNING_ChallengeInvalid;
3. `config.pnc_verifier` (evse.security): the header Signature over PnC_AReqAuthorizationMode
   (FAILED_SignatureError, which ends the session), the contract chain up to an installed MO
   root and its validity (WARNING_CertificateExpired / _NotYetValid / _Revoked /
   _ValidationError), the eMAID. No verifier configured: WARNING_GeneralPnCAuthorizationError;
4. the authorization decision: `pnc_auto_authorize`, or RequestAuthorization(method="PnC",
   emaid=..., certificate_chain=...) to the backend (EVSEProcessing=Ongoing until it answers
   AuthorizationGranted / AuthorizationDenied -> WARNING_GeneralPnCAuthorizationError).

A repeated PnC AuthorizationReq while we answer Ongoing must carry the credentials we verified
(Id, GenChallenge, contract chain): anything else is FAILED_SequenceError. A valid contract
that expires soon (the verifier's OK_CertificateExpiresSoon) is answered with that code once
authorized; the EV may then renew it with CertificateInstallation (states.py).

WARNING codes come with EVSEProcessing=Finished: the session moves to AuthorizationRefused,
where only SessionStop is legal, except after WARNING_ChallengeInvalid and
WARNING_AuthorizationSelectionInvalid (`states.AUTHORIZATION_RETRY`), which leave the session
in Authorization (another AuthorizationReq or a CertificateInstallationReq may follow). Those
retries are bounded: past `MAX_AUTHORIZATION_RETRIES` the session ends with FAILED (an EV must
not hold a connector by retrying forever). Nothing is authorized on any failure.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from evse.protocol.config import PncVerdict
from evse.protocol.errors import Failed, ProtocolError, SequenceError
from evse.protocol.events import Effect, RequestAuthorization
from evse.protocol.iso20.handlers.common import HandlerResult, Inputs, res_header
from evse.protocol.iso20.states import AUTHORIZATION_RETRY
from evse.protocol.session import Session
from exi_codec.schemas import iso20
from exi_codec.schemas.iso20 import (
    AuthorizationReq,
    AuthorizationRes,
    AuthorizationSetupReq,
    AuthorizationSetupRes,
)

RESPONSE_CODES = frozenset(str(c) for c in iso20.responseCodeType)
GENERAL_PNC_ERROR = "WARNING_GeneralPnCAuthorizationError"


class SignatureError(ProtocolError):
    """A signature over a signed request part is invalid (ends the session)."""

    response_code = "FAILED_SignatureError"


class MeteringSignatureNotValid(ProtocolError):
    response_code = "FAILED_MeteringSignatureNotValid"


_FAILED: dict[str, type[ProtocolError]] = {
    SignatureError.response_code: SignatureError,
    MeteringSignatureNotValid.response_code: MeteringSignatureNotValid,
}


def raise_failed(verdict: PncVerdict) -> None:
    """Raise the ProtocolError for a FAILED verdict (unknown FAILED codes: plain FAILED)."""
    if verdict.response_code.startswith("FAILED"):
        raise _FAILED.get(verdict.response_code, Failed)(verdict.reason or verdict.response_code)


def warning_code(verdict: PncVerdict, default: str = GENERAL_PNC_ERROR) -> str:
    """The verdict's code if it is a -20 WARNING code, else `default`."""
    code = verdict.response_code
    return code if code.startswith("WARNING") and code in RESPONSE_CODES else default


def pnc_offered(inputs: Inputs) -> bool:
    return inputs.config.offer_pnc and inputs.tls and inputs.gen_challenge is not None


def certificate_installation_offered(inputs: Inputs) -> bool:
    """CertificateInstallation: only with a CPS hook and a verifier, over TLS, with PnC."""
    cfg = inputs.config
    return (cfg.offer_pnc and inputs.tls and cfg.certificate_installation is not None
            and cfg.pnc_verifier is not None)


def handle_authorization_setup(
    req: AuthorizationSetupReq, session: Session, inputs: Inputs
) -> HandlerResult[AuthorizationSetupRes]:
    """Offer EIM; PnC too when configured and only over TLS (with a fresh GenChallenge)."""
    pnc = pnc_offered(inputs)
    session.offered_auth = ("EIM", "PnC") if pnc else ("EIM",)
    fields: dict[str, Any] = {}
    if pnc:
        session.gen_challenge = inputs.gen_challenge
        fields["pnc_as_res_authorization_mode"] = iso20.PnC_ASResAuthorizationModeType(
            gen_challenge=inputs.gen_challenge
        )
    else:
        session.gen_challenge = None
        fields["eim_as_res_authorization_mode"] = iso20.EIM_ASResAuthorizationModeType()
    res = AuthorizationSetupRes(
        header=res_header(iso20, session, inputs),
        response_code=iso20.responseCodeType.OK,
        authorization_services=tuple(iso20.authorizationType(a) for a in session.offered_auth),
        certificate_installation_service=pnc and certificate_installation_offered(inputs),
        **fields,
    )
    return res, []


def _respond(session: Session, inputs: Inputs, code: str, processing: str) -> AuthorizationRes:
    return AuthorizationRes(
        header=res_header(iso20, session, inputs),
        response_code=iso20.responseCodeType(code),
        evse_processing=iso20.processingType(processing),
    )


def _credentials(mode: Any) -> bytes:
    """What identifies the PnC credentials of a request: Id, GenChallenge, contract chain."""
    chain = mode.contract_certificate_chain
    subs = chain.sub_certificates.certificate if chain and chain.sub_certificates else ()
    parts = [str(mode.id or "").encode(), bytes(mode.gen_challenge or b""),
             bytes(chain.certificate if chain else b""), *(bytes(c) for c in subs)]
    h = hashlib.sha256()
    for part in parts:  # length-prefixed: no two different lists hash alike
        h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


def _verify_pnc(req: AuthorizationReq, session: Session, inputs: Inputs) -> PncVerdict:
    """Steps 1-3 of the module docstring; a refusal is a verdict with a WARNING code."""
    pnc = req.pnc_a_req_authorization_mode
    if pnc is None or not inputs.tls:
        return PncVerdict("WARNING_AuthorizationSelectionInvalid", "PnC needs TLS and its mode")
    if session.pnc_credentials is not None and _credentials(pnc) != session.pnc_credentials:
        raise SequenceError("repeated PnC AuthorizationReq with other credentials")
    expected = session.gen_challenge
    if expected is None or not hmac.compare_digest(bytes(pnc.gen_challenge or b""), expected):
        return PncVerdict("WARNING_ChallengeInvalid", "GenChallenge is not the one we sent")
    verifier = inputs.config.pnc_verifier
    if verifier is None:
        return PncVerdict(GENERAL_PNC_ERROR, "no PnC verifier configured")
    verdict = verifier.verify_authorization(
        req, timestamp=inputs.timestamp, session_id=session.session_id
    )
    raise_failed(verdict)
    if not verdict.ok:
        return PncVerdict(warning_code(verdict), verdict.reason)
    session.pnc_credentials = _credentials(pnc)
    return verdict


MAX_AUTHORIZATION_RETRIES = 8


def handle_authorization(
    req: AuthorizationReq, session: Session, inputs: Inputs
) -> HandlerResult[AuthorizationRes]:
    """Ongoing until the charger answers RequestAuthorization (or auto-authorize applies).

    Refusals are WARNING codes with EVSEProcessing=Finished; the EV then stops the session
    (only SessionStop is legal afterwards), or retries after the codes that allow it.
    """
    res, effects = _authorize(req, session, inputs)
    if str(res.response_code) in AUTHORIZATION_RETRY:
        session.authorization_retries += 1
        if session.authorization_retries > MAX_AUTHORIZATION_RETRIES:
            raise Failed(f"{session.authorization_retries} refused AuthorizationReqs in a row")
    return res, effects


def _authorize(
    req: AuthorizationReq, session: Session, inputs: Inputs
) -> HandlerResult[AuthorizationRes]:
    method = str(req.selected_authorization_service)
    if method not in session.offered_auth:
        return _respond(session, inputs, "WARNING_AuthorizationSelectionInvalid", "Finished"), []
    verdict: PncVerdict | None = None
    if method == "PnC":
        verdict = _verify_pnc(req, session, inputs)
        if not verdict.ok:
            return _respond(session, inputs, verdict.response_code, "Finished"), []
    elif req.eim_a_req_authorization_mode is None:
        return _respond(session, inputs, "WARNING_AuthorizationSelectionInvalid", "Finished"), []
    cfg = inputs.config
    granted = inputs.charger.authorization
    auto = cfg.auto_authorize if method == "EIM" else cfg.pnc_auto_authorize
    if session.authorized or granted is True or auto:
        session.authorized = True
        session.authorization_method = method
        code = "OK"
        if verdict is not None:
            session.emaid = verdict.emaid
            code = verdict.response_code if verdict.response_code in RESPONSE_CODES else "OK"
        return _respond(session, inputs, code, "Finished"), []
    if granted is False:
        warning = "WARNING_EIMAuthorizationFailure" if method == "EIM" else GENERAL_PNC_ERROR
        return _respond(session, inputs, warning, "Finished"), []
    effects: list[Effect] = []
    if not session.authorization_requested:
        session.authorization_requested = True
        effects.append(
            RequestAuthorization(
                method=method,
                evcc_id=session.evcc_id,
                emaid=verdict.emaid if verdict is not None else None,
                certificate_chain=verdict.certificate_chain if verdict is not None else (),
            )
        )
    processing = "Ongoing_WaitingForCustomerInteraction" if method == "EIM" else "Ongoing"
    return _respond(session, inputs, "OK", processing), effects
