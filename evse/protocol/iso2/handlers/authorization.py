"""Authorization (EIM), and the Plug & Charge requests as seams.

EIM: EVSEProcessing=Ongoing until the charger answers RequestAuthorization (or
`auto_authorize`); a denial is FAILED (-2 has no WARNING codes for it).

PaymentDetails, CertificateInstallation and CertificateUpdate belong to Plug & Charge,
which is not offered yet (`services.payment_options`): the state table only reaches them
after PaymentServiceSelection(Contract), so these handlers refuse. The PnC work replaces
them (contract chain to the MO root, GenChallenge, signatures over EXI fragments).
"""

from __future__ import annotations

from evse.protocol.errors import Failed
from evse.protocol.events import Effect, RequestAuthorization
from evse.protocol.iso2.handlers.common import FINISHED, OK, ONGOING, HandlerResult, Inputs
from evse.protocol.iso2.session import Iso2Session
from exi_codec.schemas import iso2


def handle_authorization(
    req: iso2.AuthorizationReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult:
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


def _pnc_not_offered(req: object, session: Iso2Session, inputs: Inputs) -> HandlerResult:
    raise Failed("Plug & Charge is not offered")


handle_payment_details = _pnc_not_offered
handle_certificate_installation = _pnc_not_offered
handle_certificate_update = _pnc_not_offered
