"""Authorization: EIM here, Plug & Charge (Contract) in pnc.py.

EIM: EVSEProcessing=Ongoing until the charger answers RequestAuthorization (or
`auto_authorize`); a denial is FAILED (-2 has no WARNING codes for it).

PaymentDetails, CertificateInstallation and CertificateUpdate belong to Plug & Charge
(pnc.py); the state table reaches them only after PaymentServiceSelection(Contract).
"""

from __future__ import annotations

from evse.protocol.errors import Failed
from evse.protocol.events import Effect, RequestAuthorization
from evse.protocol.iso2.handlers import pnc
from evse.protocol.iso2.handlers.common import FINISHED, OK, ONGOING, HandlerResult, Inputs
from evse.protocol.iso2.session import Iso2Session
from exi_codec.schemas import iso2


def handle_authorization(
    req: iso2.AuthorizationReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.AuthorizationResType]:
    if session.payment_option == pnc.CONTRACT:
        return pnc.handle_contract_authorization(req, session, inputs)
    record = session.record
    granted = inputs.charger.authorization
    if record.authorized or granted is True or inputs.config.auto_authorize:
        record.authorized = True
        record.authorization_method = "EIM"
        return iso2.AuthorizationResType(response_code=OK, evse_processing=FINISHED), []
    if granted is False:
        raise Failed("authorization denied")
    effects: list[Effect] = []
    if not record.authorization_requested:
        record.authorization_requested = True
        effects.append(RequestAuthorization(method="EIM", evcc_id=record.evcc_id))
    return iso2.AuthorizationResType(response_code=OK, evse_processing=ONGOING), effects


handle_payment_details = pnc.handle_payment_details
handle_certificate_installation = pnc.handle_certificate_installation
handle_certificate_update = pnc.handle_certificate_update
