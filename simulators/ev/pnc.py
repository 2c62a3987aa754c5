"""Plug & Charge for the simulated EV: its credentials and the signed -20 requests.

    creds = PncCredentials.from_pem(contract_chain_pem, contract_key_pem)
    scenario = get_scenario("dc_pnc", pnc=creds)

The EV signs PnC_AReqAuthorizationMode (AuthorizationReq) with the contract key and
OEMProvisioningCertificateChain (CertificateInstallationReq) with the OEM provisioning key,
using `evse.security.signatures` (the same code the SECC verifies with). With
`install_certificate`, it asks for a contract through CertificateInstallation when the SECC
offers it, checks the CPS signature (and the CPS chain against `v2g_roots` when given),
decrypts the contract key and then authorizes with that contract. Told that its contract
expires soon (AuthorizationRes OK_CertificateExpiresSoon), it renews the contract the same way
when the SECC offers installation and it holds OEM provisioning credentials, then charges on.

The crypto is imported lazily, so EIM-only use of the simulator needs no `cryptography`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from exi_codec.schemas import iso20


def _load_pem_chain(data: bytes) -> tuple[bytes, ...]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    certs = x509.load_pem_x509_certificates(data)
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in certs)


def _load_pem_key(data: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(data, password=None)


@dataclass(frozen=True)
class PncCredentials:
    """What the EV holds for PnC. Certificates are DER; keys are `cryptography` objects."""

    contract_certificate: bytes | None = None
    contract_sub_certificates: tuple[bytes, ...] = ()
    contract_key: Any = field(default=None, repr=False)
    oem_provisioning_certificate: bytes | None = None
    oem_provisioning_sub_certificates: tuple[bytes, ...] = ()
    oem_provisioning_key: Any = field(default=None, repr=False)
    v2g_roots: tuple[Any, ...] = ()  # x509.Certificate: ListOfRootCertificateIDs, CPS check
    install_certificate: bool = False  # use CertificateInstallation when the SECC offers it
    prioritized_emaids: tuple[str, ...] = ()

    @property
    def has_contract(self) -> bool:
        return self.contract_certificate is not None and self.contract_key is not None

    @classmethod
    def from_pem(
        cls,
        contract_chain: bytes | None = None,
        contract_key: bytes | None = None,
        *,
        oem_provisioning_chain: bytes | None = None,
        oem_provisioning_key: bytes | None = None,
        v2g_roots: bytes | None = None,
        install_certificate: bool = False,
    ) -> PncCredentials:
        """From PEM data: chains are the leaf followed by its Sub-CAs."""
        from cryptography import x509

        contract = _load_pem_chain(contract_chain) if contract_chain else ()
        prov = _load_pem_chain(oem_provisioning_chain) if oem_provisioning_chain else ()
        return cls(
            contract_certificate=contract[0] if contract else None,
            contract_sub_certificates=contract[1:],
            contract_key=_load_pem_key(contract_key) if contract_key else None,
            oem_provisioning_certificate=prov[0] if prov else None,
            oem_provisioning_sub_certificates=prov[1:],
            oem_provisioning_key=(
                _load_pem_key(oem_provisioning_key) if oem_provisioning_key else None
            ),
            v2g_roots=tuple(x509.load_pem_x509_certificates(v2g_roots)) if v2g_roots else (),
            install_certificate=install_certificate,
        )


@dataclass
class PncState:
    """What the EV learnt during the session (the contract may come from an installation)."""

    credentials: PncCredentials
    gen_challenge: bytes | None = None
    contract_certificate: bytes | None = None
    contract_sub_certificates: tuple[bytes, ...] = ()
    contract_key: Any = field(default=None, repr=False)
    installed_emaid: str | None = None
    metering_confirmations: int = 0  # MeteringConfirmationReqs sent

    @classmethod
    def of(cls, creds: PncCredentials) -> PncState:
        return cls(
            credentials=creds,
            contract_certificate=creds.contract_certificate,
            contract_sub_certificates=creds.contract_sub_certificates,
            contract_key=creds.contract_key,
        )

    @property
    def has_contract(self) -> bool:
        return self.contract_certificate is not None and self.contract_key is not None

    def wants_installation(self, offered: bool) -> bool:
        creds = self.credentials
        return (offered and creds.install_certificate
                and creds.oem_provisioning_certificate is not None
                and creds.oem_provisioning_key is not None)

    def wants_renewal(self, offered: bool) -> bool:
        """After OK_CertificateExpiresSoon: renew through CertificateInstallation when the SECC
        offers it and the EV holds its OEM provisioning credentials (once per session)."""
        creds = self.credentials
        return (offered and self.installed_emaid is None
                and creds.oem_provisioning_certificate is not None
                and creds.oem_provisioning_key is not None)

    # -- requests -------------------------------------------------------------------------------

    def authorization_req(self, header: Any) -> Any:
        from evse.security.signatures import SignedElement, sign

        if not self.has_contract or self.gen_challenge is None:
            raise ValueError("PnC needs a contract certificate, its key and a GenChallenge")
        mode = iso20.PnC_AReqAuthorizationModeType(
            id="id1",
            gen_challenge=self.gen_challenge,
            contract_certificate_chain=iso20.ContractCertificateChainType(
                certificate=self.contract_certificate,
                sub_certificates=iso20.SubCertificatesType(
                    certificate=self.contract_sub_certificates
                ),
            ),
        )
        signature = sign(self.contract_key, SignedElement("PnC_AReqAuthorizationMode", mode))
        return iso20.AuthorizationReq(
            header=header.replace(signature=signature),
            selected_authorization_service=iso20.authorizationType.PnC,
            pnc_a_req_authorization_mode=mode,
        )

    def certificate_installation_req(self, header: Any) -> Any:
        from evse.security.signatures import SignedElement, sign

        creds = self.credentials
        subs = creds.oem_provisioning_sub_certificates
        chain = iso20.SignedCertificateChainType(
            id="id1",
            certificate=creds.oem_provisioning_certificate,
            sub_certificates=iso20.SubCertificatesType(certificate=subs) if subs else None,
        )
        roots = tuple(
            iso20.X509IssuerSerialType(
                x509_issuer_name=root.issuer.rfc4514_string(),
                x509_serial_number=root.serial_number,
            )
            for root in creds.v2g_roots[:20]
        ) or (iso20.X509IssuerSerialType(x509_issuer_name="CN=unknown", x509_serial_number=1),)
        emaids = creds.prioritized_emaids[:8]
        signature = sign(creds.oem_provisioning_key,
                         SignedElement("OEMProvisioningCertificateChain", chain))
        return iso20.CertificateInstallationReq(
            header=header.replace(signature=signature),
            oem_provisioning_certificate_chain=chain,
            list_of_root_certificate_i_ds=iso20.ListOfRootCertificateIDsType(
                root_certificate_id=roots
            ),
            maximum_contract_certificate_chains=1,
            prioritized_emai_ds=iso20.EMAIDListType(emaid=emaids) if emaids else None,
        )

    def metering_confirmation_req(self, header: Any, meter_info: Any,
                                  schedule_tuple_id: int | None) -> Any:
        """MeteringConfirmationReq: SignedMeteringData (this session, the MeterInfo the SECC
        sent, the control mode) signed with the contract key in the header Signature."""
        from evse.security.signatures import SignedElement, sign

        if not self.has_contract:
            raise ValueError("MeteringConfirmation needs the contract key")
        mode: dict[str, Any] = (
            {"dynamic_smdt_control_mode": iso20.Dynamic_SMDTControlModeType()}
            if schedule_tuple_id is None else
            {"scheduled_smdt_control_mode": iso20.Scheduled_SMDTControlModeType(
                selected_schedule_tuple_id=schedule_tuple_id)})
        info = iso20.MeterInfoType(**{f: getattr(meter_info, f)
                                      for f in type(meter_info)._py_names()})  # DC/AC -> common
        data = iso20.SignedMeteringDataType(id="id1", session_id=bytes(header.session_id),
                                            meter_info=info, **mode)
        signature = sign(self.contract_key, SignedElement("SignedMeteringData", data))
        self.metering_confirmations += 1
        return iso20.MeteringConfirmationReq(header=header.replace(signature=signature),
                                             signed_metering_data=data)

    def accept_installation(self, res: Any, timestamp: float) -> str:
        """Take the contract from a CertificateInstallationRes (OK); returns its eMAID."""
        from evse.security.cps import accept_installation

        contract = accept_installation(
            res,
            self.credentials.oem_provisioning_key,
            v2g_roots=self.credentials.v2g_roots,
            now=dt.datetime.fromtimestamp(timestamp, dt.UTC),
        )
        self.contract_certificate = contract.certificate
        self.contract_sub_certificates = contract.sub_certificates
        self.contract_key = contract.key
        self.installed_emaid = contract.emaid
        return contract.emaid


__all__ = ["PncCredentials", "PncState"]
