"""ISO 15118-20 security: XML signatures over EXI fragments, certificate chains, the
Plug & Charge verifier the protocol core calls through `SeccConfig.pnc_verifier`, and a local
certificate provisioning service (CPS) for tests and SIL runs.

The protocol core (`evse.protocol`) never imports this package (it stays crypto-free); the
application wires a `PncVerifier` into `SeccConfig`.
"""

from evse.security.chains import (
    ChainError,
    ChainFailure,
    ChainPolicy,
    ValidatedChain,
    contract_emaid,
    load_pem_certificates,
    validate_chain,
)
from evse.security.pnc import PncVerifier, resume_binding
from evse.security.signatures import (
    ECDSA_SHA512,
    ED448,
    SHA512,
    SHAKE256,
    Failure,
    SignatureError,
    SignedElement,
    sign,
    verify,
)

__all__ = [
    "ECDSA_SHA512",
    "ED448",
    "SHA512",
    "SHAKE256",
    "ChainError",
    "ChainFailure",
    "ChainPolicy",
    "Failure",
    "PncVerifier",
    "SignatureError",
    "SignedElement",
    "ValidatedChain",
    "contract_emaid",
    "load_pem_certificates",
    "resume_binding",
    "sign",
    "validate_chain",
    "verify",
]
