"""The simulated -2 EV's Plug & Charge crypto: the requests it signs and the installation it
opens (evse.security.iso2_pnc / iso2_signatures do the work), and its credentials from the
test PKI (certs/iso2_pki.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization

from certs.iso2_pki import Iso2Pki
from certs.pnc_pki import Chain
from evse.security import iso2_signatures as sig
from evse.security.iso2_pnc import certificate_chain, open_provisioned
from exi_codec.schemas import iso2
from simulators.ev.iso2_evcc import Iso2EvCredentials


def credentials(pki: Iso2Pki, *, contract: Chain | None = None,
                now: Callable[[], dt.datetime] | None = None) -> Iso2EvCredentials:
    """A car of `pki`: its OEM provisioning credential, the V2G root, and `contract` (None:
    no contract yet, it must install one)."""
    der = pki.oem_provisioning.leaf.cert.public_bytes(serialization.Encoding.DER)
    return Iso2EvCredentials(
        emaid=pki.emaid,
        oem_provisioning_cert=der,
        oem_provisioning_key=pki.oem_provisioning.key,
        v2g_roots=pki.v2g_roots,
        now=now or (lambda: dt.datetime.now(dt.UTC)),
        contract_chain=None if contract is None else certificate_chain(
            contract.leaf.cert, [s.cert for s in contract.subs], "id1"),
        contract_key=None if contract is None else contract.key,
    )


def installation_request(creds: Iso2EvCredentials) -> iso2.CertificateInstallationReqType:
    roots = tuple(iso2.X509IssuerSerialType(x509_issuer_name=r.issuer.rfc4514_string(),
                                            x509_serial_number=r.serial_number)
                  for r in creds.v2g_roots)
    return iso2.CertificateInstallationReqType(
        id="ID1", oem_provisioning_cert=creds.oem_provisioning_cert,
        list_of_root_certificate_i_ds=iso2.ListOfRootCertificateIDsType(
            root_certificate_id=roots))


def install(creds: Iso2EvCredentials, res: Any, signature: Any) -> None:
    """Check the response (SA chain to our V2G root, its signature), decrypt the contract key
    with the OEM provisioning key and keep the new contract. Raises ValueError."""
    chain, key = open_provisioned(res, signature, creds.oem_provisioning_key, creds.v2g_roots,
                                  creds.now())
    creds.contract_chain, creds.contract_key = chain, key
    if res.e_maid is not None and res.e_maid.value:
        creds.emaid = str(res.e_maid.value)


def payment_details(creds: Iso2EvCredentials) -> iso2.PaymentDetailsReqType:
    return iso2.PaymentDetailsReqType(e_maid=creds.emaid,
                                      contract_signature_cert_chain=creds.contract_chain)


def authorization(creds: Iso2EvCredentials, challenge: bytes) -> tuple[Any, Any]:
    """AuthorizationReq (Id, GenChallenge) and its Signature by the contract key."""
    req = iso2.AuthorizationReqType(id="ID1", gen_challenge=challenge)
    return req, sig.sign(creds.contract_key, sig.element("AuthorizationReq", req))


def metering_receipt(creds: Iso2EvCredentials, session_id: bytes, tuple_id: int | None,
                     meter_info: Any) -> tuple[Any, Any]:
    req = iso2.MeteringReceiptReqType(id="ID2", session_id=session_id,
                                      sa_schedule_tuple_id=tuple_id, meter_info=meter_info)
    return req, sig.sign(creds.contract_key, sig.element("MeteringReceiptReq", req))


def credentials_from_files(ca: str, oem_cert: str, oem_key: str, *,
                           contract_cert: str | None = None,
                           contract_key: str | None = None) -> Iso2EvCredentials:
    """`evse ev --protocol iso2 --scenario iso2_*pnc*`: the car's PEM files (--ca the V2G
    root, --oem-prov-cert/--oem-prov-key, optionally --contract-cert/--contract-key)."""
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from evse.security.chains import common_name

    oem = x509.load_pem_x509_certificates(Path(oem_cert).read_bytes())[0]
    creds = Iso2EvCredentials(
        emaid="", oem_provisioning_cert=oem.public_bytes(serialization.Encoding.DER),
        oem_provisioning_key=load_pem_private_key(Path(oem_key).read_bytes(), None),
        v2g_roots=tuple(x509.load_pem_x509_certificates(Path(ca).read_bytes())),
        now=lambda: dt.datetime.now(dt.UTC))
    if contract_cert and contract_key:
        certs = x509.load_pem_x509_certificates(Path(contract_cert).read_bytes())
        creds.contract_chain = certificate_chain(certs[0], certs[1:], "id1")
        creds.contract_key = load_pem_private_key(Path(contract_key).read_bytes(), None)
        creds.emaid = common_name(certs[0])
    return creds
