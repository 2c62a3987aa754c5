"""A -2 CertificateInstallationReq / CertificateUpdateReq the machine holds while an
asynchronous provisioning service (e.g. the CSMS's Get15118EVCertificate) answers
(`SeccConfig.iso2_certificates_async`): -2 has no EVSEProcessing=Ongoing for these, so the
EV simply waits; the machine answers FAILED itself at `deadline`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CERTIFICATE_ACTIONS = {"CertificateInstallationReq": "Install", "CertificateUpdateReq": "Update"}
NO_PROVISIONING_ANSWER = "certificate provisioning did not answer within the performance time"


@dataclass(frozen=True, slots=True)
class Held:
    """The request as received, waiting for its provisioning answer."""

    received: float  # on the `now` clock: the performance time counts from here
    name: str
    req: Any
    session_id: bytes
    signature: Any
    deadline: float
