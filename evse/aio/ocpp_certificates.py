"""Plug & Charge certificates through the CSMS (OCPP 2.0.1 / 2.1, functional block M).

- `OcppCertificateSource`: an `evse.hooks.CertificateSource` for the -20 CertificateInstallation
  [M01/M02]: the EV's CertificateInstallationReq goes to the CSMS as its EXI (base64,
  `exiRequest`) in `Get15118EVCertificate`; the CSMS's `exiResponse` (a CertificateInstallationRes
  the CPS built and signed) becomes the SECC's answer. The SECC keeps the EV on
  EVSEProcessing=Ongoing while the CSMS is asked (`evse.aio.hook_runner`); anything but a
  usable Accepted answer (status Failed, CallError, timeout, not connected, an exiResponse
  that does not decode) is answered to the EV as WARNING_NoCertificateAvailable, the -20 code
  for "no certificate to be had": the EV may go on with EIM, nothing is installed.
  The same for ISO 15118-2 CertificateInstallation / CertificateUpdate (`iso2_certificate`,
  action Install / Update [M01/M02]): exiRequest is the EV's whole V2G_Message as EXI (its
  header Signature included), exiResponse the CPS's CertificateInstallationRes /
  CertificateUpdateRes V2G_Message, whose body and header Signature the SECC forwards. -2 has
  no EVSEProcessing=Ongoing: the SECC holds the request and answers FAILED itself after
  `evse.protocol.iso2.timeouts.PROVISIONING_WAIT` (4 s, inside the 4.5 s performance time),
  so `iso2_timeout_s` stays below that.
- `OcppOcspChecker`: the contract chain's OCSP status through `GetCertificateStatus` [M06],
  one request per certificate below the root, each answer checked by `evse.ocpp.ocsp` (signed
  by the issuer or its delegated responder, GOOD, fresh), cached until its nextUpdate; fails
  closed.

    source = OcppCertificateSource(client)          # hooks.certificates
    checker = OcppOcspChecker(client, mo_roots)     # OcppAuthorizer(..., ocsp=checker)
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Sequence

from cryptography import x509

import exi_codec
from evse.aio.ocpp_client import OcppClient
from evse.hooks import CertificateRequest
from evse.ocpp.ocsp import OcspCache, OcspError, check_ocsp_response, ocsp_request_data
from evse.protocol.config import InstallationAnswer, Iso2Provisioned
from exi_codec.errors import ExiError

__all__ = ["ISO2_NAMESPACE", "ISO20_NAMESPACE", "OcppCertificateSource", "OcppOcspChecker"]

log = logging.getLogger(__name__)

# iso15118SchemaVersion: the namespace of the EV's messages, so the CSMS can parse the EXI
ISO20_NAMESPACE = "urn:iso:std:iso:15118:-20:CommonMessages"
ISO2_NAMESPACE = "urn:iso:15118:2:2013:MsgDef"
ISO2_RESPONSES = {"Install": "certificate_installation_res", "Update": "certificate_update_res"}
FAILED = "FAILED"  # the -2 code of a failed installation (the session ends)
# -20 has no FAILED_NoCertificateAvailable: its code for "no contract to be had" is this
# WARNING (the same the hook runner gives for a failing certificates hook); the EV decides
# whether to go on with EIM, nothing was installed
NO_CERTIFICATE = "WARNING_NoCertificateAvailable"
# exiRequest maxLength of the Get15118EVCertificateRequest schema per subprotocol
EXI_REQUEST_MAX = {"ocpp2.0.1": 5600, "ocpp2.1": 11000}


class OcppCertificateSource:
    """CertificateInstallation (-20) answered by the CSMS's Get15118EVCertificate.

    `timeout_s` stays below the EV's patience: the SECC answers EVSEProcessing=Ongoing for
    at most 55 s (evse.protocol.iso20.timeouts.ONGOING_TIMEOUT), so the EV hears
    WARNING_NoCertificateAvailable before that limit when the CSMS does not answer."""

    def __init__(self, client: OcppClient, *, timeout_s: float = 20.0,
                 iso2_timeout_s: float = 3.5) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.iso2_timeout_s = iso2_timeout_s
        self.requests = 0
        self.failures: list[str] = []  # why each failed answer failed (logs, tests)

    def _failed(self, reason: str) -> InstallationAnswer:
        log.warning("CertificateInstallation through the CSMS failed: %s", reason)
        self.failures.append(reason)
        return InstallationAnswer(response_code=NO_CERTIFICATE, reason=f"CSMS: {reason}")

    async def installation(self, request: CertificateRequest) -> InstallationAnswer:
        self.requests += 1
        try:  # the EV's request as received, its header Signature included (the CPS checks it)
            exi = exi_codec.encode(request.request, strict=False)
        except ExiError as exc:
            return self._failed(f"cannot encode the EV's request: {exc}")
        exi_request = base64.b64encode(exi).decode("ascii")
        limit = EXI_REQUEST_MAX.get(self.client.subprotocol or "")
        if limit is not None and len(exi_request) > limit:  # the schema would refuse it
            return self._failed(f"exiRequest of {len(exi_request)} characters does not fit "
                                f"{self.client.subprotocol}")
        payload: dict[str, object] = {"iso15118SchemaVersion": ISO20_NAMESPACE,
                                      "action": "Install", "exiRequest": exi_request}  # [M01]
        if self.client.subprotocol == "ocpp2.1":  # 2.1: required in a -20 session
            # (the optional prioritizedEMAIDs is left out: the `ocpp` library would send it
            # as "prioritizedEmaids", which the schema refuses; the CPS finds them in the EXI)
            payload["maximumContractCertificateChains"] = int(
                request.request.maximum_contract_certificate_chains or 0)
        answer = await self.client.call_now("Get15118EVCertificate", payload, self.timeout_s)
        if answer is None:  # not connected / not accepted, timeout, CallError
            return self._failed("no answer to Get15118EVCertificate")
        if answer.get("status") != "Accepted":  # Failed: the EV is told
            info = answer.get("statusInfo", {})
            return self._failed(f"Get15118EVCertificate {answer.get('status')}"
                                + (f" ({info.get('reasonCode')})" if info else ""))
        try:
            # untrusted input: the schema's maximum lengths hold
            res = exi_codec.decode(base64.b64decode(str(answer.get("exiResponse", "")),
                                                    validate=True), "iso20", max_lengths=True)
        except (binascii.Error, ValueError, ExiError) as exc:
            return self._failed(f"exiResponse does not decode: {exc}")
        if type(res).__name__ != "CertificateInstallationRes":
            return self._failed(f"exiResponse is a {type(res).__name__}")
        code = str(res.response_code)
        if not code.startswith("OK"):
            # the CPS's own WARNING codes reach the EV unchanged; anything else: no certificate
            if code.startswith("WARNING"):
                return InstallationAnswer(response_code=code, reason=f"CPS: {code}")
            return self._failed(f"CPS answered {code}")
        if res.header.signature is None:
            return self._failed("exiResponse without the CPS signature")
        # the EV checks the CPS's signature over SignedInstallationData against its V2G
        # roots; the SECC forwards the CPS's work unchanged, in its own header
        return InstallationAnswer(
            response_code="OK",
            cps_certificate_chain=res.cps_certificate_chain,
            signed_installation_data=res.signed_installation_data,
            signature=res.header.signature,
            remaining_contract_certificate_chains=int(res.remaining_contract_certificate_chains),
        )


    def _iso2_failed(self, reason: str) -> Iso2Provisioned:
        log.warning("-2 certificate request through the CSMS failed: %s", reason)
        self.failures.append(reason)
        return Iso2Provisioned(response_code=FAILED, reason=f"CSMS: {reason}")

    async def iso2_certificate(self, request: CertificateRequest) -> Iso2Provisioned:
        """-2 CertificateInstallation (action Install) / CertificateUpdate (Update)."""
        self.requests += 1
        action = request.action
        if request.standard != "iso2" or action not in ISO2_RESPONSES:
            return self._iso2_failed(f"not a -2 request: {request.standard} {action}")
        try:  # the EV's whole V2G_Message, its header Signature included [M01/M02]
            exi = exi_codec.encode(request.request, strict=False)
        except ExiError as exc:
            return self._iso2_failed(f"cannot encode the EV's request: {exc}")
        exi_request = base64.b64encode(exi).decode("ascii")
        limit = EXI_REQUEST_MAX.get(self.client.subprotocol or "")
        if limit is not None and len(exi_request) > limit:
            return self._iso2_failed(f"exiRequest of {len(exi_request)} characters does not "
                                     f"fit {self.client.subprotocol}")
        payload = {"iso15118SchemaVersion": ISO2_NAMESPACE, "action": action,
                   "exiRequest": exi_request}
        answer = await self.client.call_now("Get15118EVCertificate", payload,
                                            min(self.timeout_s, self.iso2_timeout_s))
        if answer is None:
            return self._iso2_failed("no answer to Get15118EVCertificate")
        if answer.get("status") != "Accepted":
            info = answer.get("statusInfo", {})
            return self._iso2_failed(f"Get15118EVCertificate {answer.get('status')}"
                                     + (f" ({info.get('reasonCode')})" if info else ""))
        try:  # untrusted input: the schema's maximum lengths hold
            msg = exi_codec.decode(base64.b64decode(str(answer.get("exiResponse", "")),
                                                    validate=True), "iso2", max_lengths=True)
        except (binascii.Error, ValueError, ExiError) as exc:
            return self._iso2_failed(f"exiResponse does not decode: {exc}")
        body = getattr(getattr(msg, "body", None), ISO2_RESPONSES[action], None)
        if body is None:
            return self._iso2_failed(f"exiResponse holds no {ISO2_RESPONSES[action]}")
        code = str(body.response_code)
        if not code.startswith("OK"):  # the CPS's FAILED_* code reaches the EV unchanged
            return self._iso2_failed(f"CPS answered {code}") if not code.startswith(
                "FAILED") else Iso2Provisioned(response_code=code, reason=f"CPS: {code}")
        if msg.header.signature is None:
            return self._iso2_failed("exiResponse without the provisioning signature")
        # the EV checks the SA provisioning chain and its signature against its V2G roots
        # and decrypts the contract key: the SECC forwards the CPS's work unchanged
        return Iso2Provisioned(body=body, signature=msg.header.signature)


class OcppOcspChecker:
    """The OCSP status of a contract chain through the CSMS's GetCertificateStatus [M06]."""

    def __init__(self, client: OcppClient, roots: Sequence[x509.Certificate], *,
                 timeout_s: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.roots = list(roots)
        self.timeout_s = timeout_s
        self.cache = OcspCache()
        self._clock = clock
        self.asked = 0  # GetCertificateStatus CALLs sent (the cache saves the others)

    async def check(self, chain: tuple[bytes, ...]) -> str | None:
        """None when every certificate of the chain (leaf first, DER, up to but without the
        root) is GOOD; else why not (fail closed: no answer is no)."""
        try:
            entries = ocsp_request_data(chain, self.roots)
        except OcspError as exc:
            return f"OCSP: {exc}"
        for cert, issuer, data in entries:
            now = self._clock()
            if self.cache.lookup(cert, now):
                continue
            self.asked += 1
            answer = await self.client.call_now("GetCertificateStatus",
                                                {"ocspRequestData": data}, self.timeout_s)
            serial = data["serialNumber"]
            if answer is None:
                return f"OCSP: no answer from the CSMS for serial {serial}"
            if answer.get("status") != "Accepted" or "ocspResult" not in answer:
                return f"OCSP: GetCertificateStatus {answer.get('status')} for serial {serial}"
            try:
                der = base64.b64decode(str(answer["ocspResult"]), validate=True)
                next_update = check_ocsp_response(der, cert, issuer, now)
            except (binascii.Error, OcspError) as exc:
                return f"OCSP: serial {serial}: {exc}"
            self.cache.store(cert, next_update)
        return None
