"""CertificateInstallation through `SeccConnection`: offered only with PnC over TLS and a CPS
hook; the OEM provisioning signature and chain; Ongoing while the CPS works; the EV can use
the installed contract for PnC at once."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cryptography import x509

from certs.pnc_pki import Chain, Credential, PncPki
from evse.protocol import events as ev
from evse.protocol.config import InstallationAnswer, SeccConfig
from evse.protocol.iso20.states import State
from evse.protocol.iso20.timeouts import Timeouts
from evse.protocol.secc import SeccConnection
from evse.security import PncVerifier
from evse.security.cps import LocalCps, accept_installation
from evse.security.signatures import ECDSA_SHA512, ED448, SHA512, SHAKE256, SignedElement
from exi_codec.schemas import iso20
from tests.protocol.evcc import Ev, FakeRng, assert_safe_end, config, of
from tests.security.helpers import (
    NOW,
    NOW_TS,
    authorization_req,
    certificate_installation_req,
    local_cps,
    pki_for,
    pre_iso20_ed448_signature,
    verifier,
)


@dataclasses.dataclass(eq=False)
class SilentCps:
    """A CPS that never answers."""

    def installation_data(self, req: Any, *, timestamp: int, session_id: bytes) -> Any:
        return None


def install_config(pki: PncPki, cps: Any = None, **kw: Any) -> SeccConfig:
    kw.setdefault("pnc_verifier", verifier(pki))
    return config(offer_pnc=True, certificate_installation=cps or local_cps(pki),
                  pnc_auto_authorize=True, **kw)


def connect(cfg: SeccConfig, *, tls: bool = True, epoch_offset: float = NOW_TS) -> Ev:
    return Ev(SeccConnection(cfg, tls=tls, now=0.0, rng=FakeRng(), epoch_offset=epoch_offset))


def setup(x: Ev) -> Any:
    x.sap()
    x.setup()
    res, _ = x.send(iso20.AuthorizationSetupReq(header=x.header()))
    return res


def test_offered_only_with_pnc_over_tls_and_a_cps() -> None:
    pki = pki_for("secp521r1")
    assert setup(connect(install_config(pki))).certificate_installation_service is True
    assert setup(connect(install_config(pki), tls=False)).certificate_installation_service \
        is False
    no_cps = config(offer_pnc=True, pnc_verifier=verifier(pki))
    assert setup(connect(no_cps)).certificate_installation_service is False
    no_pnc = dataclasses.replace(install_config(pki), offer_pnc=False)
    assert setup(connect(no_pnc)).certificate_installation_service is False


@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
def test_installation_then_pnc_with_the_new_contract(algorithm: str) -> None:
    pki = pki_for(algorithm)
    cps = local_cps(pki, pending_polls=2)
    x = connect(install_config(pki, cps))
    challenge = bytes(setup(x).pnc_as_res_authorization_mode.gen_challenge)
    req = certificate_installation_req(pki, x.header())
    for _ in range(2):
        res, effects = x.send(req)
        assert (res.response_code, res.evse_processing) == ("OK", "Ongoing")
        assert x.conn.state == State.AUTHORIZATION and not of(effects, ev.StopPower)
    res, _ = x.send(req)
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")
    assert res.header.signature is not None and res.header.session_id == x.session_id
    contract = accept_installation(res, pki.oem_provisioning.key,
                                   v2g_roots=[pki.v2g_root.cert], now=NOW)
    assert contract.emaid == cps.issued[-1][0]
    data = res.signed_installation_data
    if algorithm == "ed448":  # X448 key transport
        assert str(data.ecdh_curve) == "X448" and data.secp521_encrypted_private_key is None
        assert len(bytes(data.x448_encrypted_private_key)) == 84
        assert len(bytes(data.dh_public_key)) == 133
    else:
        assert str(data.ecdh_curve) == "SECP521" and data.x448_encrypted_private_key is None
    assert x.conn.state == State.AUTHORIZATION
    # The EV authorizes with the contract it just received.


    leaf = Credential(x509.load_der_x509_certificate(contract.certificate), contract.key)
    chain = Chain(leaf, pki.contract.subs, pki.mo_root)
    res, _ = x.send(authorization_req(chain, challenge, x.header()))
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")
    assert x.conn.state == State.SERVICE_DISCOVERY


def test_tampered_request_signature_ends_the_session() -> None:
    pki = pki_for("secp521r1")
    x = connect(install_config(pki))
    setup(x)
    req = certificate_installation_req(pki, x.header())
    sig = req.header.signature
    value = bytes(b ^ 1 for b in sig.signature_value.value)
    req = req.replace(header=req.header.replace(signature=sig.replace(
        signature_value=iso20.SignatureValueType(value=value))))
    res, effects = x.send(req)
    assert res.response_code == "FAILED_SignatureError"
    assert_safe_end(effects)


@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
def test_expired_provisioning_certificate_is_a_warning(algorithm: str) -> None:
    pki = pki_for(algorithm)
    cps = local_cps(pki)
    x = connect(install_config(pki, cps))
    setup(x)
    req = certificate_installation_req(pki, x.header(), pki.variants["oem_provisioning_expired"])
    res, effects = x.send(req)
    assert (res.response_code, res.evse_processing) == ("WARNING_CertificateExpired", "Finished")
    assert not cps.issued and x.conn.state == State.AUTHORIZATION and not x.conn.closed
    assert x.authorization().response_code == "OK"  # EIM is still possible


def test_without_oem_roots_only_the_signature_is_checked() -> None:
    pki = pki_for("secp521r1")
    cfg = install_config(pki, pnc_verifier=PncVerifier(mo_roots=pki.mo_roots))
    x = connect(cfg)
    setup(x)
    res, _ = x.send(certificate_installation_req(pki, x.header(),
                                                 pki.variants["oem_provisioning_expired"]))
    assert res.response_code == "OK"


def test_x448_key_transport_round_trip_and_tampering() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed448

    from evse.security.cps import (
        KeyTransportError,
        decrypt_contract_key_x448,
        ed448_to_x448_private,
        ed448_to_x448_public,
        encrypt_contract_key_x448,
        new_x448_transportable_ed448_key,
    )

    oem = ed448.Ed448PrivateKey.generate()
    assert ed448_to_x448_private(oem).public_key().public_bytes_raw() == \
        ed448_to_x448_public(oem.public_key()).public_bytes_raw()
    contract = new_x448_transportable_ed448_key()
    dh, enc = encrypt_contract_key_x448(contract, oem.public_key())
    assert (len(dh), len(enc)) == (133, 84) and not any(dh[56:])
    got = decrypt_contract_key_x448(dh, enc, oem)
    assert got.private_bytes_raw() == contract.private_bytes_raw()
    for bad in (dh[:-1] + b"\x01", bytes([dh[0] ^ 1]) + dh[1:]):
        with pytest.raises(KeyTransportError):
            decrypt_contract_key_x448(bad, enc, oem)
    with pytest.raises(KeyTransportError):
        decrypt_contract_key_x448(dh, enc[:-1] + bytes([enc[-1] ^ 1]), oem)
    with pytest.raises(KeyTransportError):  # another vehicle's key
        decrypt_contract_key_x448(dh, enc, ed448.Ed448PrivateKey.generate())
    with pytest.raises(KeyTransportError):  # a 57-byte seed does not fit the 84 bytes
        encrypt_contract_key_x448(ed448.Ed448PrivateKey.from_private_bytes(b"\x01" * 57),
                                  oem.public_key())


@pytest.mark.parametrize("how", ["plain_tcp", "no_cps"])
def test_not_offered_is_a_sequence_error(how: str) -> None:
    pki = pki_for("secp521r1")
    if how == "plain_tcp":
        x = connect(install_config(pki), tls=False)
    else:
        x = connect(config(offer_pnc=True, pnc_verifier=verifier(pki)))
    setup(x)
    res, effects = x.send(certificate_installation_req(pki, x.header()))
    assert res.response_code == "FAILED_SequenceError"
    assert_safe_end(effects)


def test_a_cps_that_never_answers_hits_the_ongoing_timeout() -> None:
    pki = pki_for("secp521r1")
    cfg = install_config(pki, SilentCps(), timeouts=Timeouts(ongoing=2.0))
    x = connect(cfg)
    setup(x)
    req = certificate_installation_req(pki, x.header())
    for _ in range(3):
        assert x.send(req, dt=0.5)[0].evse_processing == "Ongoing"
    effects = x.conn.handle_timeout(x.now + 2.0)
    assert_safe_end(effects)
    assert "Ongoing" in of(effects, ev.SessionEnded)[0].reason


def test_cps_verdict_codes_are_passed_on() -> None:
    pki = pki_for("secp521r1")

    @dataclasses.dataclass(eq=False)
    class Refusing(LocalCps):
        def installation_data(self, req: Any, *, timestamp: int, session_id: bytes) -> Any:
            return InstallationAnswer("FAILED_SignatureError", reason="backend says so")

    base = local_cps(pki)
    cps = Refusing(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    x = connect(install_config(pki, cps))
    setup(x)
    res, effects = x.send(certificate_installation_req(pki, x.header()))
    assert res.response_code == "FAILED_SignatureError"
    assert_safe_end(effects)


def test_not_offered_without_a_verifier() -> None:
    pki = pki_for("secp521r1")
    cfg = config(offer_pnc=True, certificate_installation=local_cps(pki))
    x = connect(cfg)
    assert setup(x).certificate_installation_service is False
    res, effects = x.send(certificate_installation_req(pki, x.header()))
    assert res.response_code == "FAILED_SequenceError"
    assert_safe_end(effects)


# -- the -20 signature identifiers on both sides -------------------------------------------------


@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
def test_cps_signs_installation_data_with_the_iso20_identifiers(algorithm: str) -> None:
    pki = pki_for(algorithm)
    x = connect(install_config(pki))
    setup(x)
    res, _ = x.send(certificate_installation_req(pki, x.header()))
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")
    signed_info = res.header.signature.signed_info
    method, digest = (ED448, SHAKE256) if algorithm == "ed448" else (ECDSA_SHA512, SHA512)
    assert signed_info.signature_method.algorithm == method
    assert [r.digest_method.algorithm for r in signed_info.reference] == [digest]
    accept_installation(res, pki.oem_provisioning.key, v2g_roots=[pki.v2g_root.cert], now=NOW)


def test_ed448_request_with_pre_iso20_identifiers_is_a_signature_error() -> None:
    pki = pki_for("ed448")
    cps = local_cps(pki)
    x = connect(install_config(pki, cps))
    setup(x)
    req = certificate_installation_req(pki, x.header())
    old = pre_iso20_ed448_signature(pki.oem_provisioning.key, SignedElement(
        "OEMProvisioningCertificateChain", req.oem_provisioning_certificate_chain))
    res, effects = x.send(req.replace(header=req.header.replace(signature=old)))
    assert res.response_code == "FAILED_SignatureError"
    assert_safe_end(effects)
    assert not cps.issued


# -- when CertificateInstallationReq may come ----------------------------------------------------


def test_installation_after_a_wrong_challenge() -> None:
    """WARNING_ChallengeInvalid leaves the session in Authorization: the EV may install a
    contract and then authorize with it."""
    pki = pki_for("ed448")
    x = connect(install_config(pki))
    challenge = bytes(setup(x).pnc_as_res_authorization_mode.gen_challenge)
    res, _ = x.send(authorization_req(pki.contract, bytes(16), x.header()))
    assert (res.response_code, res.evse_processing) == ("WARNING_ChallengeInvalid", "Finished")
    res, _ = x.send(certificate_installation_req(pki, x.header()))
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")
    contract = accept_installation(res, pki.oem_provisioning.key,
                                   v2g_roots=[pki.v2g_root.cert], now=NOW)
    leaf = Credential(x509.load_der_x509_certificate(contract.certificate), contract.key)
    chain = Chain(leaf, pki.contract.subs, pki.mo_root)
    res, _ = x.send(authorization_req(chain, challenge, x.header()))
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")
    assert x.conn.state == State.SERVICE_DISCOVERY


@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
def test_renewal_after_ok_certificate_expires_soon(algorithm: str) -> None:
    pki = pki_for(algorithm)
    cps = local_cps(pki, pending_polls=1)
    end = pki.contract.leaf.cert.not_valid_after_utc.timestamp()
    x = connect(install_config(pki, cps), epoch_offset=end - 5 * 86_400)
    challenge = bytes(setup(x).pnc_as_res_authorization_mode.gen_challenge)
    res, _ = x.send(authorization_req(pki.contract, challenge, x.header()))
    assert (res.response_code, res.evse_processing) == ("OK_CertificateExpiresSoon", "Finished")
    req = certificate_installation_req(pki, x.header())
    res, effects = x.send(req)
    assert (res.response_code, res.evse_processing) == ("OK", "Ongoing")
    res, effects = x.send(req)
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")
    assert not of(effects, ev.StopPower) and len(cps.issued) == 1
    assert x.conn.state == State.CONTRACT_EXPIRES_SOON
    res, _ = x.send(iso20.ServiceDiscoveryReq(header=x.header()))
    assert res.response_code == "OK" and x.conn.state == State.SERVICE_DETAIL


def test_no_installation_after_a_plain_ok() -> None:
    """Authorized with OK (contract not about to expire): installation is over."""
    pki = pki_for("secp521r1")
    x = connect(install_config(pki))
    challenge = bytes(setup(x).pnc_as_res_authorization_mode.gen_challenge)
    res, _ = x.send(authorization_req(pki.contract, challenge, x.header()))
    assert res.response_code == "OK" and x.conn.state == State.SERVICE_DISCOVERY
    res, effects = x.send(certificate_installation_req(pki, x.header()))
    assert res.response_code == "FAILED_SequenceError"
    assert_safe_end(effects)
