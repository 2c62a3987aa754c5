"""MeteringConfirmation: the EV signs the meter reading it received (PnC sessions only).

Legal in the charge loop and after PowerDelivery(Stop). The header Signature over
SignedMeteringData must verify with the contract key accepted by this session's PnC
Authorization, and SignedMeteringData's SessionID must be this session's
(`pnc_verifier.verify_metering_confirmation`); anything else, including a session authorized
by EIM, is FAILED_MeteringSignatureNotValid and ends the session safely.

The SECC asks for it with EVSENotification=MeteringConfirmation in a ChargeLoopRes that
carries MeterInfo (`SeccConfig.pnc_metering_confirmation`, `handlers.common.metering_status`).
A verified confirmation leaves as the effect `MeteringConfirmed` (the signed record, for
billing); the aio adapter keeps it in `SessionSummary.metering_confirmations`.
"""

from __future__ import annotations

from evse.protocol.events import MeteringConfirmed
from evse.protocol.iso20.handlers.authorization import MeteringSignatureNotValid, raise_failed
from evse.protocol.iso20.handlers.common import HandlerResult, Inputs, res_header
from evse.protocol.session import Session
from exi_codec.schemas import iso20
from exi_codec.schemas.iso20 import MeteringConfirmationReq, MeteringConfirmationRes


def handle_metering_confirmation(
    req: MeteringConfirmationReq, session: Session, inputs: Inputs
) -> HandlerResult[MeteringConfirmationRes]:
    verifier = inputs.config.pnc_verifier
    if verifier is None or "PnC" not in session.offered_auth or not session.authorized:
        raise MeteringSignatureNotValid("no PnC contract to verify the signature with")
    verdict = verifier.verify_metering_confirmation(
        req, timestamp=inputs.timestamp, session_id=session.session_id
    )
    raise_failed(verdict)
    if not verdict.ok:
        raise MeteringSignatureNotValid(verdict.reason or verdict.response_code)
    res = MeteringConfirmationRes(
        header=res_header(iso20, session, inputs), response_code=iso20.responseCodeType.OK
    )
    record = MeteringConfirmed(session_id=session.session_id, emaid=session.emaid,
                               signed_metering_data=req.signed_metering_data,
                               signature=req.header.signature)
    return res, [record]
