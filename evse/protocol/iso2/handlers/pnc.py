"""-2 Plug & Charge: PaymentDetails, Authorization with the challenge, CertificateInstallation,
CertificateUpdate and the signed MeteringReceipt.

The core stays crypto-free: every check goes to `SeccConfig.iso2_pnc` (an `Iso2PncBackend`,
evse.security.iso2_pnc.Iso2PncService), which answers "OK" or the -2 FAILED code to send
(FAILED_CertChainError, FAILED_CertificateExpired, FAILED_CertificateRevoked,
FAILED_SignatureError, FAILED_ChallengeInvalid, FAILED_MeteringSignatureNotValid, ...). Any
FAILED ends the session with the power stage made safe (the machine does that).

Flow: PaymentServiceSelection(Contract) -> [CertificateInstallation | CertificateUpdate]* ->
PaymentDetails (contract chain, eMAID; we answer a fresh GenChallenge) -> Authorization (the
EV's signature over AuthorizationReq with Id and that GenChallenge, by the contract key; the
challenge is used once) -> ChargeParameterDiscovery. With `receipt_required` the first charge
loop response asks for a MeteringReceipt, which must be signed by the same contract key.
"""

from __future__ import annotations

from evse.protocol.config import Iso2PncBackend
from evse.protocol.errors import Failed
from evse.protocol.events import Effect, RequestAuthorization
from evse.protocol.iso2.errors import PaymentSelectionInvalid, pnc_error
from evse.protocol.iso2.handlers.common import FINISHED, OK, ONGOING, HandlerResult, Inputs
from evse.protocol.iso2.session import Iso2Session
from exi_codec.schemas import iso2

CONTRACT = "Contract"


def backend(inputs: Inputs) -> Iso2PncBackend:
    pnc = inputs.config.iso2_pnc
    if pnc is None or not inputs.tls:  # unreachable: Contract is not offered then
        raise PaymentSelectionInvalid("Plug & Charge is not offered")
    return pnc


def offered(inputs: Inputs) -> bool:
    """Contract (PnC) is offered over TLS with a configured backend."""
    return inputs.tls and inputs.config.iso2_pnc is not None


def handle_payment_details(
    req: iso2.PaymentDetailsReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.PaymentDetailsResType]:
    pnc = backend(inputs)
    verdict = pnc.verify_contract(req.contract_signature_cert_chain, req.e_maid,
                                  timestamp=inputs.timestamp)
    if not verdict.ok:
        raise pnc_error(verdict.response_code, verdict.reason)
    session.contract_chain = verdict.certificate_chain
    session.emaid = verdict.emaid
    session.record.emaid = verdict.emaid
    session.gen_challenge = pnc.new_challenge()
    session.contract_authenticated = False
    res = iso2.PaymentDetailsResType(response_code=OK, gen_challenge=session.gen_challenge,
                                     evse_time_stamp=inputs.timestamp)
    return res, []


def handle_contract_authorization(
    req: iso2.AuthorizationReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.AuthorizationResType]:
    """AuthorizationReq after PaymentDetails: verified once (a repeated request while the
    backend decides is not verified again: its challenge is spent), then the decision."""
    record = session.record
    if not session.contract_authenticated:
        if session.gen_challenge is None:  # unreachable through the state table
            raise Failed("no GenChallenge sent")
        verdict = backend(inputs).verify_authorization(
            req, inputs.signature, session.contract_chain, session.gen_challenge)
        session.gen_challenge = None
        if not verdict.ok:
            raise pnc_error(verdict.response_code, verdict.reason)
        session.contract_authenticated = True
    granted = inputs.charger.authorization
    if record.authorized or granted is True or inputs.config.pnc_auto_authorize:
        record.authorized = True
        record.authorization_method = "PnC"
        return iso2.AuthorizationResType(response_code=OK, evse_processing=FINISHED), []
    if granted is False:
        raise Failed("contract not authorized")
    effects: list[Effect] = []
    if not record.authorization_requested:
        record.authorization_requested = True
        effects.append(RequestAuthorization(method="PnC", evcc_id=record.evcc_id,
                                            emaid=session.emaid,
                                            certificate_chain=session.contract_chain))
    return iso2.AuthorizationResType(response_code=OK, evse_processing=ONGOING), effects


def handle_certificate_installation(
    req: iso2.CertificateInstallationReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.CertificateInstallationResType]:
    pnc = backend(inputs)
    answer = inputs.provisioned if inputs.provisioned is not None \
        else pnc.install(req, timestamp=inputs.timestamp)
    if not answer.ok or answer.body is None:
        raise pnc_error(answer.response_code, answer.reason)
    session.response_signature = answer.signature
    return answer.body, []


def handle_certificate_update(
    req: iso2.CertificateUpdateReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.CertificateUpdateResType]:
    pnc = backend(inputs)
    answer = inputs.provisioned if inputs.provisioned is not None \
        else pnc.update(req, timestamp=inputs.timestamp)
    if not answer.ok or answer.body is None:
        raise pnc_error(answer.response_code, answer.reason)
    session.response_signature = answer.signature
    return answer.body, []


def ask_for_receipt(session: Iso2Session, inputs: Inputs) -> None:
    """Charge loop: set ReceiptRequired once per PnC session when the backend wants it."""
    pnc = inputs.config.iso2_pnc
    if session.contract_chain and pnc is not None and pnc.receipt_required \
            and not session.receipt_asked:
        session.receipt_asked = True
        session.receipt_requested = True


def verify_receipt(req: iso2.MeteringReceiptReqType, session: Iso2Session,
                   inputs: Inputs) -> None:
    """A PnC session's MeteringReceiptReq must be signed by its contract key."""
    if not session.contract_chain:
        return
    verdict = backend(inputs).verify_metering_receipt(req, inputs.signature,
                                                      session.contract_chain)
    if not verdict.ok:
        raise pnc_error(verdict.response_code, verdict.reason)


__all__ = [
    "CONTRACT",
    "ask_for_receipt",
    "handle_certificate_installation",
    "handle_certificate_update",
    "handle_contract_authorization",
    "handle_payment_details",
    "offered",
    "verify_receipt",
]
