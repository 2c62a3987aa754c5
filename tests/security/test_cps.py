"""Certificate installation crypto: contract key transport (ECDH P-521 + ConcatKDF-SHA-512 +
AES-256-GCM), the local CPS and the EV's acceptance checks."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import exi_codec
from certs.pnc_pki import PncPki
from evse.security.chains import ChainError
from evse.security.cps import (
    KeyTransportError,
    accept_installation,
    decrypt_contract_key,
    encrypt_contract_key,
)
from evse.security.signatures import SignatureError
from exi_codec.schemas import iso20
from tests.security.helpers import NOW, NOW_TS, certificate_installation_req, local_cps, pki_for


def test_key_transport_round_trip() -> None:
    contract = ec.generate_private_key(ec.SECP521R1())
    recipient = ec.generate_private_key(ec.SECP521R1())
    dh, sealed = encrypt_contract_key(contract, recipient.public_key())
    assert len(dh) == 133 and dh[0] == 0x04 and len(sealed) == 94
    got = decrypt_contract_key(dh, sealed, recipient)
    assert got.private_numbers() == contract.private_numbers()
    with pytest.raises(KeyTransportError):
        decrypt_contract_key(dh, sealed, ec.generate_private_key(ec.SECP521R1()))
    tampered = bytearray(sealed)
    tampered[20] ^= 1
    with pytest.raises(KeyTransportError):
        decrypt_contract_key(dh, bytes(tampered), recipient)
    with pytest.raises(KeyTransportError):
        decrypt_contract_key(dh[:-1], sealed, recipient)
    with pytest.raises(KeyTransportError):
        encrypt_contract_key(contract, ec.generate_private_key(ec.SECP256R1()).public_key())


def response(answer: Any) -> Any:
    res = iso20.CertificateInstallationRes(
        header=iso20.MessageHeaderType(session_id=bytes(8), time_stamp=NOW_TS,
                                       signature=answer.signature),
        response_code=answer.response_code,
        evse_processing="Finished",
        cps_certificate_chain=answer.cps_certificate_chain,
        signed_installation_data=answer.signed_installation_data,
        remaining_contract_certificate_chains=answer.remaining_contract_certificate_chains,
    )
    return exi_codec.decode(exi_codec.encode(res), "iso20")  # as the EV receives it


def request(pki: PncPki) -> Any:
    header = iso20.MessageHeaderType(session_id=bytes(8), time_stamp=NOW_TS)
    return certificate_installation_req(pki, header)


def test_local_cps_and_the_ev_side() -> None:
    pki = pki_for("secp521r1")
    cps = local_cps(pki, pending_polls=2)
    req = request(pki)
    kw: dict[str, Any] = {"timestamp": NOW_TS, "session_id": bytes(8)}
    assert cps.installation_data(req, **kw) is None
    assert cps.installation_data(req, **kw) is None
    answer = cps.installation_data(req, **kw)
    assert answer is not None and answer.response_code == "OK"
    contract = accept_installation(response(answer), pki.oem_provisioning.key,
                                   v2g_roots=[pki.v2g_root.cert], now=NOW)
    assert contract.emaid == "DEEVSC00000042Y" == cps.issued[0][0]
    assert contract.sub_certificates == pki.contract.sub_ders
    # The installed contract chains to the MO root: it can authorize right away.
    from evse.security.chains import validate_chain

    validate_chain(contract.certificate, contract.sub_certificates, pki.mo_roots, NOW)


def test_ev_rejects_tampered_or_foreign_installation_data() -> None:
    pki = pki_for("secp521r1")
    answer = local_cps(pki).installation_data(request(pki), timestamp=NOW_TS,
                                              session_id=bytes(8))
    assert answer is not None
    res = response(answer)
    data = res.signed_installation_data
    bad = res.replace(signed_installation_data=data.replace(dh_public_key=bytes(133)))
    with pytest.raises(SignatureError):
        accept_installation(bad, pki.oem_provisioning.key)
    with pytest.raises(ChainError):  # CPS chain checked against a root it does not reach
        accept_installation(res, pki.oem_provisioning.key, v2g_roots=pki.mo_roots, now=NOW)
    with pytest.raises(KeyTransportError):  # not our provisioning key
        accept_installation(res, ec.generate_private_key(ec.SECP521R1()))


def test_cps_prefers_the_evs_emaid_and_refuses_what_it_cannot_do() -> None:
    pki = pki_for("secp521r1")
    req = request(pki).replace(prioritized_emai_ds=iso20.EMAIDListType(emaid=("DEXYZ000000007",)))
    kw: dict[str, Any] = {"timestamp": NOW_TS, "session_id": bytes(8)}
    answer = local_cps(pki).installation_data(req, **kw)
    assert answer is not None
    assert accept_installation(response(answer), pki.oem_provisioning.key).emaid == \
        "DEXYZ000000007"
    none = local_cps(pki).installation_data(req.replace(maximum_contract_certificate_chains=0),
                                            **kw)
    assert none is not None and none.response_code == "WARNING_NoCertificateAvailable"
    ed = pki_for("ed448")  # an Ed448 car: X448 key transport
    ed_cps = local_cps(ed)
    x448 = ed_cps.installation_data(request(ed), **kw)
    assert x448 is not None and x448.response_code == "OK"
    assert str(x448.signed_installation_data.ecdh_curve) == "X448"
    contract = accept_installation(response(x448), ed.oem_provisioning.key)
    assert contract.emaid == ed_cps.issued[-1][0]
