"""AuthorizationSetup and Authorization (EIM; PnC only as a hand-over to the backend)."""

from __future__ import annotations

from typing import Any

from evse.protocol.events import Effect, RequestAuthorization
from evse.protocol.handlers.common import HandlerResult, Inputs, res_header
from evse.protocol.session import Session
from exi_codec.schemas import iso20
from exi_codec.schemas.iso20 import (
    AuthorizationReq,
    AuthorizationRes,
    AuthorizationSetupReq,
    AuthorizationSetupRes,
)


def handle_authorization_setup(
    req: AuthorizationSetupReq, session: Session, inputs: Inputs
) -> HandlerResult:
    """Offer EIM; PnC too when configured and only over TLS (with a fresh GenChallenge)."""
    pnc = inputs.config.offer_pnc and inputs.tls and inputs.gen_challenge is not None
    session.offered_auth = ("EIM", "PnC") if pnc else ("EIM",)
    fields: dict[str, Any] = {}
    if pnc:
        session.gen_challenge = inputs.gen_challenge
        fields["pnc_as_res_authorization_mode"] = iso20.PnC_ASResAuthorizationModeType(
            gen_challenge=inputs.gen_challenge
        )
    else:
        fields["eim_as_res_authorization_mode"] = iso20.EIM_ASResAuthorizationModeType()
    res = AuthorizationSetupRes(
        header=res_header(iso20, session, inputs),
        response_code=iso20.responseCodeType.OK,
        authorization_services=tuple(iso20.authorizationType(a) for a in session.offered_auth),
        certificate_installation_service=False,
        **fields,
    )
    return res, []


def _respond(session: Session, inputs: Inputs, code: str, processing: str) -> AuthorizationRes:
    return AuthorizationRes(
        header=res_header(iso20, session, inputs),
        response_code=iso20.responseCodeType(code),
        evse_processing=iso20.processingType(processing),
    )


def handle_authorization(req: AuthorizationReq, session: Session, inputs: Inputs) -> HandlerResult:
    """Ongoing until the charger answers RequestAuthorization (or auto_authorize).

    Refusals are WARNING codes with EVSEProcessing=Finished; the EV then stops the session
    (only SessionStop is legal afterwards).
    """
    method = str(req.selected_authorization_service)
    if method not in session.offered_auth:
        return _respond(session, inputs, "WARNING_AuthorizationSelectionInvalid", "Finished"), []
    if method == "PnC":
        pnc = req.pnc_a_req_authorization_mode
        if pnc is None or pnc.gen_challenge != session.gen_challenge:
            return _respond(session, inputs, "WARNING_ChallengeInvalid", "Finished"), []
    elif req.eim_a_req_authorization_mode is None:
        return _respond(session, inputs, "WARNING_AuthorizationSelectionInvalid", "Finished"), []
    granted = inputs.charger.authorization
    if session.authorized or granted is True or (method == "EIM" and inputs.config.auto_authorize):
        session.authorized = True
        return _respond(session, inputs, "OK", "Finished"), []
    if granted is False:
        warning = (
            "WARNING_EIMAuthorizationFailure"
            if method == "EIM"
            else ("WARNING_GeneralPnCAuthorizationError")
        )
        return _respond(session, inputs, warning, "Finished"), []
    effects: list[Effect] = []
    if not session.authorization_requested:
        session.authorization_requested = True
        chain: tuple[bytes, ...] = ()
        if method == "PnC":
            contract = req.pnc_a_req_authorization_mode.contract_certificate_chain
            chain = (contract.certificate, *contract.sub_certificates.certificate)
        effects.append(
            RequestAuthorization(method=method, evcc_id=session.evcc_id, certificate_chain=chain)
        )
    processing = "Ongoing_WaitingForCustomerInteraction" if method == "EIM" else "Ongoing"
    return _respond(session, inputs, "OK", processing), effects
