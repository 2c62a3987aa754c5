"""Shared by the PnC tests (security, protocol, simulators): the test PKI, cached per
algorithm and generated at test time, and builders of signed -20 requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from certs.pnc_pki import Chain, PncPki, make_pnc_pki
from evse.security import PncVerifier
from evse.security.cps import LocalCps
from evse.security.signatures import (
    RFC9231_EDDSA_ED448,
    SHA512,
    SignedElement,
    make_signed_info,
    sign,
    signed_info_fragment,
)
from exi_codec.schemas import iso20

ALGORITHMS = ("secp521r1", "ed448")
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
NOW_TS = int(NOW.timestamp())

_CACHE: dict[str, PncPki] = {}


def pki_for(algorithm: str) -> PncPki:
    """The PKI of `algorithm`, created once per test process (valid around NOW)."""
    if algorithm not in _CACHE:
        _CACHE[algorithm] = make_pnc_pki(algorithm, now=NOW)
    return _CACHE[algorithm]


def contract_chain(chain: Chain) -> Any:
    return iso20.ContractCertificateChainType(
        certificate=chain.leaf_der,
        sub_certificates=iso20.SubCertificatesType(certificate=chain.sub_ders),
    )


def pnc_mode(chain: Chain, challenge: bytes, id_: str = "id1") -> Any:
    return iso20.PnC_AReqAuthorizationModeType(
        id=id_, gen_challenge=challenge, contract_certificate_chain=contract_chain(chain)
    )


def pre_iso20_ed448_signature(key: Any, *elements: SignedElement) -> Any:
    """An Ed448 signature the way this stack made them before it used the -20 identifiers:
    RFC 9231's EdDSA URI and SHA-512 references. Cryptographically valid; -20 refuses it."""
    signed_info = make_signed_info(elements, RFC9231_EDDSA_ED448, SHA512)
    value = key.sign(signed_info_fragment(signed_info))
    return iso20.SignatureType(signed_info=signed_info,
                               signature_value=iso20.SignatureValueType(value=value))


def authorization_req(
    chain: Chain, challenge: bytes, header: Any, *, key: Any = None, **sign_kw: Any
) -> Any:
    """A PnC AuthorizationReq signed with the contract key (or `key`)."""
    mode = pnc_mode(chain, challenge)
    signature = sign(key or chain.key, SignedElement("PnC_AReqAuthorizationMode", mode), **sign_kw)
    return iso20.AuthorizationReq(
        header=header.replace(signature=signature),
        selected_authorization_service="PnC",
        pnc_a_req_authorization_mode=mode,
    )


def certificate_installation_req(pki: PncPki, header: Any, chain: Chain | None = None) -> Any:
    chain = chain or pki.oem_provisioning
    prov = iso20.SignedCertificateChainType(
        id="id1",
        certificate=chain.leaf_der,
        sub_certificates=iso20.SubCertificatesType(certificate=chain.sub_ders),
    )
    root = pki.v2g_root.cert
    return iso20.CertificateInstallationReq(
        header=header.replace(
            signature=sign(chain.key, SignedElement("OEMProvisioningCertificateChain", prov))
        ),
        oem_provisioning_certificate_chain=prov,
        list_of_root_certificate_i_ds=iso20.ListOfRootCertificateIDsType(
            root_certificate_id=(
                iso20.X509IssuerSerialType(
                    x509_issuer_name=root.subject.rfc4514_string(),
                    x509_serial_number=root.serial_number,
                ),
            )
        ),
        maximum_contract_certificate_chains=1,
    )


def verifier(pki: PncPki, **kw: Any) -> PncVerifier:
    return PncVerifier(mo_roots=pki.mo_roots, oem_roots=pki.oem_roots, **kw)


def local_cps(pki: PncPki, **kw: Any) -> LocalCps:
    kw.setdefault("emaid", "DEEVSC00000042Y")
    return LocalCps(
        cps_key=pki.cps.key,
        cps_chain=[pki.cps.leaf.cert, *(s.cert for s in pki.cps.subs)],
        mo_sub_ca=pki.contract.subs[0].cert,
        mo_sub_ca_key=pki.contract.subs[0].key,
        mo_chain=[s.cert for s in pki.contract.subs],
        **kw,
    )
