"""The OCPP authorizer: `evse.hooks.Authorizer` through the CSMS's Authorize, with the local
authorization list and cache while the CSMS cannot be asked (evse/ocpp/authorization.py,
evse/ocpp/local_list.py).

The local list (SendLocalList) [C13/C14, D01]: while offline and AuthCtrlr.LocalAuthorizeOffline
is true, a token the list holds decides: Accepted (not expired) is granted, any other status
is denied (before the cache is looked at; a PnC contract the list blocks is denied too).
Online with AuthCtrlr.LocalPreAuthorize true, a token the list holds as Accepted is granted
without an Authorize; every other token is asked to the CSMS.

    hooks = Hooks(authorizer=OcppAuthorizer(client))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from evse.aio.ocpp_client import OcppClient
from evse.hooks import AuthorizationRequest, Decision
from evse.ocpp.authorization import AuthCache, authorize_payload, decision_of

if TYPE_CHECKING:
    from evse.aio.ocpp_certificates import OcppOcspChecker

__all__ = ["OcppAuthorizer"]

log = logging.getLogger(__name__)


class OcppAuthorizer:
    def __init__(self, client: OcppClient, *, cache: AuthCache | None = None,
                 pnc_offline: bool = True, timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.time,
                 evse_ids: Mapping[str, int] | None = None,
                 ocsp: OcppOcspChecker | None = None, ocsp_always: bool = False) -> None:
        self.client = client
        # PnC: the contract chain's OCSP status through GetCertificateStatus when the
        # Authorize answer has no certificateStatus (or always, `ocsp_always`) [M06, C07]
        self.ocsp = ocsp
        self.ocsp_always = ocsp_always
        # connector -> OCPP EVSE id (RequestStartTransaction); default: connector "N" is N
        self.evse_ids = dict(evse_ids) if evse_ids is not None else None
        self.cache = cache if cache is not None else AuthCache()
        self.pnc_offline = pnc_offline  # offline PnC: the SECC's MO-root check decides
        self.timeout_s = timeout_s  # below the EV's patience (-20 Ongoing limit 55 s)
        self._clock = clock

    async def authorize(self, request: AuthorizationRequest) -> Decision:
        evse_id = (self.evse_ids.get(request.connector_id) if self.evse_ids is not None
                   else int(request.connector_id) if request.connector_id.isdigit() else None)
        remote = self.client.remote_starts.pop(evse_id, None) if evse_id is not None else None
        if remote is not None:  # the CSMS started this one (RequestStartTransaction)
            assert evse_id is not None
            self.client.remote_granted[evse_id] = remote
            return Decision(True, id_token=str(remote[0].get("idToken", "")))
        payload = authorize_payload(request.method, request.evcc_id, request.emaid,
                                    request.certificate_chain)
        token = payload["idToken"]["idToken"]
        ops = self.client.ops
        listed = ops.local_status(payload["idToken"], self._clock())
        if listed == "Accepted" and ops.local_pre_authorize and self.client.station.accepted:
            log.info("Authorize %s: granted from the local list (LocalPreAuthorize)", token)
            return Decision(True, id_token=token)
        answer = await self.client.call_now("Authorize", payload, self.timeout_s)
        if answer is not None:
            self.cache.store(token, answer.get("idTokenInfo", {}), self._clock())
            granted, reason = decision_of(answer)
            if granted and request.method == "PnC" and self.ocsp is not None and (
                    self.ocsp_always or "certificateStatus" not in answer):
                denied = await self.ocsp.check(request.certificate_chain)  # fails closed
                if denied is not None:
                    return Decision(False, denied, id_token=token)
            return Decision(granted, reason, id_token=token)
        if listed is not None and ops.local_authorize_offline:
            if listed == "Accepted":
                log.info("Authorize %s: CSMS offline, granted from the local list", token)
                return Decision(True, id_token=token)
            return Decision(False, f"CSMS offline, token {listed} on the local list",
                            id_token=token)
        if request.method == "PnC":
            if self.pnc_offline:
                return Decision(True, id_token=token)  # the contract passed the MO roots
            return Decision(False, "CSMS offline", id_token=token)
        status = self.cache.lookup(token, self._clock())
        if status == "Accepted":
            log.info("Authorize %s: CSMS offline, granted from the local cache", token)
            return Decision(True, id_token=token)
        return Decision(False, f"CSMS offline, token {status or 'not cached'}", id_token=token)
