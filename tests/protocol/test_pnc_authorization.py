"""Plug & Charge Authorization through `SeccConnection` with the real verifier (evse.security):
success, every failure with the -20 response code, safe end, and nothing authorized."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certs.pnc_pki import PncPki
from evse.protocol import events as ev
from evse.protocol.config import PncVerdict, SeccConfig
from evse.protocol.iso20.states import State
from evse.protocol.secc import SeccConnection
from evse.security.signatures import (
    ECDSA_SHA256,
    SignedElement,
    sign,
    sign_bytes,
    signed_info_fragment,
)
from exi_codec.schemas import iso20
from tests.protocol.evcc import Ev, FakeRng, assert_safe_end, config, kinds, of
from tests.security.helpers import (
    ALGORITHMS,
    NOW_TS,
    authorization_req,
    pki_for,
    pnc_mode,
    pre_iso20_ed448_signature,
    verifier,
)

DAY = 86_400


@pytest.fixture(params=ALGORITHMS)
def pki(request: pytest.FixtureRequest) -> PncPki:
    return pki_for(str(request.param))


def pnc_config(pki: PncPki, **kw: Any) -> SeccConfig:
    kw.setdefault("pnc_verifier", verifier(pki))
    return config(offer_pnc=True, **kw)


def connect(
    cfg: SeccConfig, *, tls: bool = True, rng: Any = None, epoch_offset: float = NOW_TS
) -> Ev:
    conn = SeccConnection(cfg, tls=tls, now=0.0, rng=rng or FakeRng(), epoch_offset=epoch_offset)
    return Ev(conn)


def setup(x: Ev) -> Any:
    """supportedAppProtocol, SessionSetup, AuthorizationSetup: the AuthorizationSetupRes."""
    x.sap()
    x.setup()
    res, _ = x.send(iso20.AuthorizationSetupReq(header=x.header()))
    return res


def challenge_of(res: Any) -> bytes:
    return bytes(res.pnc_as_res_authorization_mode.gen_challenge)


def nothing_authorized(x: Ev) -> None:
    assert not of(x.effects, ev.RequestAuthorization)
    assert not of(x.effects, ev.CloseContactors) and not of(x.effects, ev.SetPowerTarget)
    assert x.conn.session is not None and not x.conn.session.authorized


# -- offering PnC -----------------------------------------------------------------------------


def test_pnc_is_offered_over_tls_with_a_fresh_random_challenge(pki: PncPki) -> None:
    challenges = set()
    for _ in range(3):
        res = setup(connect(pnc_config(pki), rng=secrets))
        assert res.authorization_services == ("EIM", "PnC")
        assert res.certificate_installation_service is False  # no CPS hook configured
        challenges.add(challenge_of(res))
    assert len(challenges) == 3 and all(len(c) == 16 for c in challenges)


def test_pnc_is_not_offered_over_plain_tcp(pki: PncPki) -> None:
    x = connect(pnc_config(pki), tls=False)
    res = setup(x)
    assert res.authorization_services == ("EIM",)
    assert res.pnc_as_res_authorization_mode is None
    assert res.eim_as_res_authorization_mode is not None
    # The EV asks for PnC anyway: refused, nothing authorized; it may choose again.
    res, _ = x.send(authorization_req(pki.contract, bytes(16), x.header()))
    assert (res.response_code, res.evse_processing) == (
        "WARNING_AuthorizationSelectionInvalid", "Finished")
    assert x.conn.state == State.AUTHORIZATION
    nothing_authorized(x)


# -- success --------------------------------------------------------------------------------


def test_pnc_authorized_by_the_backend(pki: PncPki) -> None:
    x = connect(pnc_config(pki))
    challenge = challenge_of(setup(x))
    req = authorization_req(pki.contract, challenge, x.header())
    res, effects = x.send(req)
    assert (res.response_code, res.evse_processing) == ("OK", "Ongoing")
    (asked,) = of(effects, ev.RequestAuthorization)
    assert asked.method == "PnC" and asked.emaid == pki.emaid
    assert asked.evcc_id == "WMIV1234567890ABCDEX"
    assert asked.certificate_chain == (pki.contract.leaf_der, *pki.contract.sub_ders)
    res, effects = x.send(req.replace(header=x.header().replace(
        signature=req.header.signature)))  # the EV repeats while Ongoing
    assert res.evse_processing == "Ongoing" and not of(effects, ev.RequestAuthorization)
    assert x.conn.session is not None and not x.conn.session.authorized
    x.event(ev.AuthorizationGranted("contract ok"))
    res, _ = x.send(req)
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")
    assert x.conn.state == State.SERVICE_DISCOVERY and x.conn.session.authorized


def test_pnc_auto_authorize(pki: PncPki) -> None:
    x = connect(pnc_config(pki, pnc_auto_authorize=True))
    challenge = challenge_of(setup(x))
    res, effects = x.send(authorization_req(pki.contract, challenge, x.header()))
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")
    assert not of(effects, ev.RequestAuthorization)
    assert x.conn.state == State.SERVICE_DISCOVERY


def test_eim_still_works_when_pnc_is_offered(pki: PncPki) -> None:
    x = connect(pnc_config(pki))
    setup(x)
    assert x.authorization().evse_processing == "Finished"  # config() auto-authorizes EIM


def test_backend_denies_then_the_ev_stops(pki: PncPki) -> None:
    x = connect(pnc_config(pki))
    challenge = challenge_of(setup(x))
    req = authorization_req(pki.contract, challenge, x.header())
    x.send(req)
    x.event(ev.AuthorizationDenied("contract cancelled"))
    res, _ = x.send(req)
    assert (res.response_code, res.evse_processing) == (
        "WARNING_GeneralPnCAuthorizationError", "Finished")
    assert x.conn.state == State.AUTHORIZATION_REFUSED
    res, effects = x.session_stop()
    assert res.response_code == "OK"
    assert_safe_end(effects, failed=False)


# -- failures -------------------------------------------------------------------------------


def _tamper_value(pki: PncPki, req: Any) -> Any:
    sig = req.header.signature
    value = bytearray(sig.signature_value.value)
    value[-1] ^= 0x01
    sig = sig.replace(signature_value=iso20.SignatureValueType(value=bytes(value)))
    return req.replace(header=req.header.replace(signature=sig))


def _tamper_element(pki: PncPki, req: Any) -> Any:
    mode = req.pnc_a_req_authorization_mode
    chain = mode.contract_certificate_chain
    reordered = tuple(reversed(chain.sub_certificates.certificate))
    subs = iso20.SubCertificatesType(certificate=reordered)
    return req.replace(pnc_a_req_authorization_mode=mode.replace(
        contract_certificate_chain=chain.replace(sub_certificates=subs)))


def _wrong_uri(pki: PncPki, req: Any) -> Any:
    si = req.header.signature.signed_info.replace(
        signature_method=iso20.SignatureMethodType(algorithm=ECDSA_SHA256))
    sig = iso20.SignatureType(signed_info=si, signature_value=iso20.SignatureValueType(
        value=sign_bytes(pki.contract.key, signed_info_fragment(si))))
    return req.replace(header=req.header.replace(signature=sig))


def _foreign_key(pki: PncPki, req: Any) -> Any:
    other = authorization_req(pki.contract, req.pnc_a_req_authorization_mode.gen_challenge,
                              req.header, key=pki.variants["contract_unknown_root"].key)
    return other


def _unsigned(pki: PncPki, req: Any) -> Any:
    return req.replace(header=req.header.replace(signature=None))


FAILED_CASES = {
    "tampered_signature": _tamper_value,
    "tampered_element": _tamper_element,
    "wrong_algorithm_uri": _wrong_uri,
    "signed_by_another_key": _foreign_key,
    "no_signature": _unsigned,
}


@pytest.mark.parametrize("case", sorted(FAILED_CASES))
def test_signature_failures_end_the_session_safely(pki: PncPki, case: str) -> None:
    x = connect(pnc_config(pki))
    challenge = challenge_of(setup(x))
    req = FAILED_CASES[case](pki, authorization_req(pki.contract, challenge, x.header()))
    res, effects = x.send(req)
    assert res.response_code == "FAILED_SignatureError"
    assert_safe_end(effects)  # StopPower, OpenContactors, then SessionEnded
    names = kinds(effects)
    assert names.index("SessionEnded") < names.index("CloseConnection")
    assert x.conn.closed and x.conn.state == State.ENDED
    nothing_authorized(x)


WARNING_CASES = {
    "contract_expired": "WARNING_CertificateExpired",
    "contract_not_yet_valid": "WARNING_CertificateNotYetValid",
    "contract_sub_ca_expired": "WARNING_CertificateExpired",
    "contract_unknown_root": "WARNING_CertificateValidationError",
    "contract_wrong_chain": "WARNING_CertificateValidationError",
    "contract_ca_flag": "WARNING_CertificateValidationError",
}


@pytest.mark.parametrize("variant", sorted(WARNING_CASES))
def test_certificate_failures_are_refusals(pki: PncPki, variant: str) -> None:
    x = connect(pnc_config(pki))
    challenge = challenge_of(setup(x))
    res, _ = x.send(authorization_req(pki.variants[variant], challenge, x.header()))
    assert (res.response_code, res.evse_processing) == (WARNING_CASES[variant], "Finished")
    assert x.conn.state == State.AUTHORIZATION_REFUSED
    nothing_authorized(x)
    # Anything but SessionStop now fails the session safely ...
    res, effects = x.send(iso20.ServiceDiscoveryReq(header=x.header()))
    assert res.response_code == "FAILED_SequenceError"
    assert_safe_end(effects)
    nothing_authorized(x)


def test_a_refused_session_stops_safely(pki: PncPki) -> None:
    x = connect(pnc_config(pki))
    challenge = challenge_of(setup(x))
    x.send(authorization_req(pki.variants["contract_expired"], challenge, x.header()))
    res, effects = x.session_stop()
    assert res.response_code == "OK"
    assert_safe_end(effects, failed=False)
    nothing_authorized(x)


def test_wrong_challenge(pki: PncPki) -> None:
    x = connect(pnc_config(pki))
    challenge = challenge_of(setup(x))
    wrong = bytes(b ^ 0xFF for b in challenge)
    res, _ = x.send(authorization_req(pki.contract, wrong, x.header()))
    assert (res.response_code, res.evse_processing) == ("WARNING_ChallengeInvalid", "Finished")
    nothing_authorized(x)


def test_replayed_request_from_another_session(pki: PncPki) -> None:
    first = connect(pnc_config(pki, pnc_auto_authorize=True), rng=secrets)
    recorded = authorization_req(pki.contract, challenge_of(setup(first)), first.header())
    assert first.send(recorded)[0].response_code == "OK"
    # An attacker replays the signed request in a new session (the header is not signed).
    second = connect(pnc_config(pki, pnc_auto_authorize=True), rng=secrets)
    setup(second)
    res, _ = second.send(recorded.replace(header=second.header().replace(
        signature=recorded.header.signature)))
    assert res.response_code == "WARNING_ChallengeInvalid"
    nothing_authorized(second)


def test_no_verifier_means_no_pnc_authorization(pki: PncPki) -> None:
    x = connect(config(offer_pnc=True, pnc_auto_authorize=True))
    challenge = challenge_of(setup(x))
    res, _ = x.send(authorization_req(pki.contract, challenge, x.header()))
    assert res.response_code == "WARNING_GeneralPnCAuthorizationError"
    nothing_authorized(x)


def test_a_charger_grant_does_not_override_a_failed_check(pki: PncPki) -> None:
    x = connect(pnc_config(pki))
    challenge = challenge_of(setup(x))
    x.event(ev.AuthorizationGranted("pre-authorized"))
    res, _ = x.send(authorization_req(pki.variants["contract_expired"], challenge, x.header()))
    assert res.response_code == "WARNING_CertificateExpired"
    assert x.conn.session is not None and not x.conn.session.authorized


# -- the seam: what the core does with a verifier's verdicts ------------------------------------


@dataclass(eq=False)
class StubVerifier:
    verdict: PncVerdict
    calls: list[Any] = field(default_factory=list)

    def verify_authorization(self, req: Any, *, timestamp: int, session_id: bytes) -> PncVerdict:
        self.calls.append((timestamp, session_id))
        return self.verdict

    verify_certificate_installation = verify_authorization
    verify_metering_confirmation = verify_authorization


@pytest.mark.parametrize(("code", "sent"), [
    ("OK", "OK"),
    ("WARNING_eMSPUnknown", "WARNING_eMSPUnknown"),
    ("WARNING_NotACode", "WARNING_GeneralPnCAuthorizationError"),
    ("FAILED_SignatureError", "FAILED_SignatureError"),
    ("FAILED_SomethingElse", "FAILED"),
])
def test_verdicts_become_response_codes(code: str, sent: str) -> None:
    pki = pki_for("ed448")
    stub = StubVerifier(PncVerdict(code, "stub", emaid="DEEVSC00000001X"))
    x = connect(config(offer_pnc=True, pnc_verifier=stub, pnc_auto_authorize=True))
    challenge = challenge_of(setup(x))
    res, effects = x.send(authorization_req(pki.contract, challenge, x.header()))
    assert res.response_code == sent
    ((timestamp, session_id),) = stub.calls
    assert session_id == x.session_id and 0 <= timestamp - NOW_TS < 10  # Unix time, no clock
    if sent.startswith("FAILED"):
        assert_safe_end(effects)
    assert (x.conn.session is not None and x.conn.session.authorized) == (sent == "OK")


def test_the_challenge_is_checked_before_the_verifier_runs() -> None:
    pki = pki_for("ed448")
    stub = StubVerifier(PncVerdict("OK"))
    x = connect(config(offer_pnc=True, pnc_verifier=stub))
    setup(x)
    res, _ = x.send(authorization_req(pki.contract, bytes(16), x.header()))
    assert res.response_code == "WARNING_ChallengeInvalid" and stub.calls == []


# -- hostile content ---------------------------------------------------------------------------

REFUSALS = {"WARNING_CertificateValidationError", "WARNING_CertificateExpired",
            "WARNING_CertificateNotYetValid", "FAILED_SignatureError"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    leaf=st.one_of(st.binary(min_size=1, max_size=1600), st.sampled_from(["real", "flip"])),
    subs=st.lists(st.binary(min_size=1, max_size=300), max_size=3),
    value=st.binary(max_size=200),
    algorithm=st.sampled_from(ALGORITHMS),
)
def test_hostile_chains_and_signatures_are_refused(
    leaf: Any, subs: list[bytes], value: bytes, algorithm: str
) -> None:
    pki = pki_for(algorithm)
    x = connect(pnc_config(pki))
    challenge = challenge_of(setup(x))
    req = authorization_req(pki.contract, challenge, x.header())
    mode = req.pnc_a_req_authorization_mode
    if leaf == "real":
        leaf_der = pki.contract.leaf_der
    elif leaf == "flip":
        der = bytearray(pki.contract.leaf_der)
        der[len(der) // 2] ^= 0x10
        leaf_der = bytes(der)
    else:
        leaf_der = leaf
    chain = iso20.ContractCertificateChainType(
        certificate=leaf_der,
        sub_certificates=iso20.SubCertificatesType(
            certificate=tuple(subs) or pki.contract.sub_ders),
    )
    sig = req.header.signature.replace(signature_value=iso20.SignatureValueType(value=value))
    req = req.replace(header=req.header.replace(signature=sig),
                      pnc_a_req_authorization_mode=mode.replace(contract_certificate_chain=chain))
    res, effects = x.send(req)
    assert res.response_code in REFUSALS, res.response_code
    nothing_authorized(x)
    if str(res.response_code).startswith("FAILED"):
        assert_safe_end(effects)


# -- Ed448 with the -20 identifiers -----------------------------------------------------------


def test_ed448_request_with_pre_iso20_identifiers_is_a_signature_error() -> None:
    """RFC 9231 EdDSA URI + SHA-512 references, validly signed: not -20, FAILED_SignatureError."""
    pki = pki_for("ed448")
    x = connect(pnc_config(pki, pnc_auto_authorize=True))
    challenge = challenge_of(setup(x))
    req = authorization_req(pki.contract, challenge, x.header())
    mode = SignedElement("PnC_AReqAuthorizationMode", req.pnc_a_req_authorization_mode)
    old = pre_iso20_ed448_signature(pki.contract.key, mode)
    res, effects = x.send(req.replace(header=req.header.replace(signature=old)))
    assert res.response_code == "FAILED_SignatureError"
    assert_safe_end(effects)
    nothing_authorized(x)


# -- after WARNING_ChallengeInvalid the session goes on ------------------------------------------


@pytest.mark.parametrize("then", ["pnc", "eim"])
def test_after_a_wrong_challenge_the_ev_may_try_again(pki: PncPki, then: str) -> None:
    x = connect(pnc_config(pki, pnc_auto_authorize=True))
    challenge = challenge_of(setup(x))
    wrong = bytes(b ^ 0xFF for b in challenge)
    res, effects = x.send(authorization_req(pki.contract, wrong, x.header()))
    assert (res.response_code, res.evse_processing) == ("WARNING_ChallengeInvalid", "Finished")
    assert x.conn.state == State.AUTHORIZATION and not x.conn.closed
    assert not of(effects, ev.StopPower) and not of(effects, ev.SessionEnded)
    nothing_authorized(x)
    if then == "pnc":
        res, _ = x.send(authorization_req(pki.contract, challenge, x.header()))
    else:
        res = x.authorization()
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")
    assert x.conn.state == State.SERVICE_DISCOVERY
    assert x.conn.session is not None
    assert x.conn.session.authorization_method == {"pnc": "PnC", "eim": "EIM"}[then]


# -- repeated requests while Ongoing ---------------------------------------------------------


def _other_credentials(pki: PncPki, change: str, challenge: bytes, header: Any) -> Any:
    if change == "contract":  # another (validly signed) contract chain
        return authorization_req(pki.variants["contract_unknown_root"], challenge, header)
    if change == "challenge":
        return authorization_req(pki.contract, bytes(b ^ 0xFF for b in challenge), header)
    mode = pnc_mode(pki.contract, challenge, "id2")  # same contract and challenge, other Id
    signature = sign(pki.contract.key, SignedElement("PnC_AReqAuthorizationMode", mode))
    return iso20.AuthorizationReq(header=header.replace(signature=signature),
                                  selected_authorization_service="PnC",
                                  pnc_a_req_authorization_mode=mode)


@pytest.mark.parametrize("change", ["contract", "challenge", "id"])
def test_a_repeat_while_ongoing_must_carry_the_same_credentials(pki: PncPki, change: str) -> None:
    x = connect(pnc_config(pki))  # the backend decides: Ongoing until it answers
    challenge = challenge_of(setup(x))
    res, _ = x.send(authorization_req(pki.contract, challenge, x.header()))
    assert (res.response_code, res.evse_processing) == ("OK", "Ongoing")
    x.event(ev.AuthorizationGranted("the first contract is fine"))
    res, effects = x.send(_other_credentials(pki, change, challenge, x.header()))
    assert res.response_code == "FAILED_SequenceError"
    assert_safe_end(effects)
    assert x.conn.session is not None and not x.conn.session.authorized


def test_a_repeat_with_the_same_credentials_keeps_polling(pki: PncPki) -> None:
    """The same credentials (a fresh header signature is not part of them) keep polling."""
    x = connect(pnc_config(pki))
    challenge = challenge_of(setup(x))
    for _ in range(3):  # signed anew each time (ECDSA is randomized): same credentials
        res, _ = x.send(authorization_req(pki.contract, challenge, x.header()))
        assert (res.response_code, res.evse_processing) == ("OK", "Ongoing")
    x.event(ev.AuthorizationGranted("ok"))
    res, _ = x.send(authorization_req(pki.contract, challenge, x.header()))
    assert (res.response_code, res.evse_processing) == ("OK", "Finished")


# -- a contract that expires soon ---------------------------------------------------------------


def _days_before_contract_end(pki: PncPki, days: float) -> float:
    """An epoch offset that puts the session `days` before the contract certificate ends."""
    return pki.contract.leaf.cert.not_valid_after_utc.timestamp() - days * DAY


@pytest.mark.parametrize(("days_left", "code", "state"), [
    (10, "OK_CertificateExpiresSoon", State.CONTRACT_EXPIRES_SOON),
    (0.5, "OK_CertificateExpiresSoon", State.CONTRACT_EXPIRES_SOON),
    (15, "OK", State.SERVICE_DISCOVERY),
])
def test_a_contract_that_expires_within_14_days(
    pki: PncPki, days_left: float, code: str, state: State
) -> None:
    x = connect(pnc_config(pki), epoch_offset=_days_before_contract_end(pki, days_left))
    challenge = challenge_of(setup(x))
    req = authorization_req(pki.contract, challenge, x.header())
    res, _ = x.send(req)
    assert (res.response_code, res.evse_processing) == ("OK", "Ongoing")
    x.event(ev.AuthorizationGranted("ok"))
    res, _ = x.send(req)
    assert (res.response_code, res.evse_processing) == (code, "Finished")
    assert x.conn.state == state
    assert x.conn.session is not None and x.conn.session.authorized
    assert x.conn.session.emaid == pki.emaid
    res, _ = x.send(iso20.ServiceDiscoveryReq(header=x.header()))  # charging goes on
    assert res.response_code == "OK" and x.conn.state == State.SERVICE_DETAIL
