"""-2 CertificateInstallation/Update held for an asynchronous provisioning answer
(`SeccConfig.iso2_certificates_async`, e.g. the CSMS's Get15118EVCertificate), on a fake
clock: the SECC asks with RequestIso2Certificate, sends nothing until the answer comes, and
answers FAILED itself when it does not come within the provisioning wait (inside the 4.5 s
performance time); a late answer changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import exi_codec
from evse.protocol import events as sev
from evse.protocol.config import Iso2Provisioned, SeccConfig
from evse.protocol.iso2.timeouts import PERFORMANCE_TIME_SLOW, PROVISIONING_WAIT
from evse.protocol.secc import SeccConnection
from evse.protocol.session import SessionStore
from simulators.ev.evcc import SendData
from simulators.ev.iso2_evcc import Done, Iso2Evcc
from tests.protocol.iso2.harness import EPOCH_OFFSET, _charger, back_to_back, config, provision
from tests.protocol.iso2.test_pnc import _ev, _run, _service, _Updating, pki  # noqa: F401

ASYNC = {"iso2_certificates_async": True}


def test_installation_answered_through_the_effect(pki: Any) -> None:  # noqa: F811
    ev = _ev(pki, "iso2_dc_pnc_install")
    run = _run(pki, ev, **ASYNC)
    assert run.done.success, run.done
    (asked,) = run.of(sev.RequestIso2Certificate)
    assert asked.action == "Install"
    assert asked.message.body.certificate_installation_req is not None
    assert bytes(asked.message.header.session_id) == asked.session_id  # the whole message
    assert ev.credentials is not None and ev.credentials.contract_chain is not None


def test_update_answered_through_the_effect(pki: Any) -> None:  # noqa: F811
    ev = _ev(pki, "iso2_dc_pnc", contract=pki.contract, cls=_Updating)
    run = _run(pki, ev, pnc_auto_authorize=True, **ASYNC)
    assert run.done.success, run.done
    (asked,) = run.of(sev.RequestIso2Certificate)
    assert asked.action == "Update"
    assert ev.credentials is not None
    assert bytes(ev.credentials.contract_chain.certificate) != ev.old_certificate


@dataclass
class Held:
    """The run up to the held request, and what happened after."""

    conn: SeccConnection
    ev: Iso2Evcc
    request: sev.RequestIso2Certificate
    at: float  # when the SECC received the request
    effects: list[Any] = field(default_factory=list)


def _until_held(ev: Iso2Evcc, cfg: SeccConfig) -> Held:
    """Drive the EV until the SECC holds its Certificate* request."""
    now = 100.0
    conn = SeccConnection(cfg, tls=True, now=now, session_store=SessionStore(),
                          epoch_offset=EPOCH_OFFSET, tls_version="TLSv1.2")
    inbox = [ev.start(now)]
    while inbox:
        now += 0.01
        effects = conn.receive_data(inbox.pop(0), now)
        for effect in effects:
            if isinstance(effect, sev.RequestIso2Certificate):
                assert not [e for e in effects if isinstance(e, sev.SendData)]
                return Held(conn, ev, effect, now)
        effects += _charger(conn, effects, now, True)
        for effect in effects:
            if isinstance(effect, sev.SendData):
                now += 0.01
                inbox += [o.data for o in ev.receive_data(effect.data, now)
                          if isinstance(o, SendData)]
    raise AssertionError("no RequestIso2Certificate")


def _to_ev(held: Held, effects: list[Any], now: float) -> list[Any]:
    out: list[Any] = []
    for effect in effects:
        if isinstance(effect, sev.SendData):
            out += held.ev.receive_data(effect.data, now)
    return out


def test_answer_after_a_delay_is_sent_then(pki: Any) -> None:  # noqa: F811
    held = _until_held(_ev(pki, "iso2_dc_pnc_install"), config(iso2_pnc=_service(pki), **ASYNC))
    conn, request = held.conn, held.request
    assert request.deadline == held.at + PROVISIONING_WAIT < held.at + PERFORMANCE_TIME_SLOW
    assert conn.next_deadline() == request.deadline  # no sequence timeout meanwhile
    assert conn.handle_timeout(held.at + 3.0) == []  # still waiting, nothing sent
    answer = provision(conn.config, request)
    effects = conn.handle_event(sev.Iso2CertificateAnswered(answer), held.at + 3.0)
    (sent,) = [e for e in effects if isinstance(e, sev.SendData)]
    assert sent.deadline == held.at + PERFORMANCE_TIME_SLOW  # counted from the request
    assert not [e for e in effects if isinstance(e, (sev.StopPower, sev.SessionEnded))]
    replies = _to_ev(held, effects, held.at + 3.01)
    assert [o for o in replies if isinstance(o, SendData)]  # the EV goes on (PaymentDetails)
    assert held.ev.credentials is not None and held.ev.credentials.contract_chain is not None
    assert conn.next_deadline() is not None and conn.next_deadline() > held.at + 60  # sequence


def _failed_to_ev(held: Held, effects: list[Any], now: float) -> Done:
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]
    (sent,) = [e for e in effects if isinstance(e, sev.SendData)]
    msg = exi_codec.decode(sent.data[8:], "iso2")
    assert str(msg.body.certificate_installation_res.response_code).startswith("FAILED")
    (done,) = [o for o in _to_ev(held, effects, now) if isinstance(o, Done)]
    assert not done.success and done.log[-1][0] == "CertificateInstallationReq"
    assert done.log[-1][1].startswith("FAILED")
    return done


def test_no_answer_within_the_performance_time_is_failed(pki: Any) -> None:  # noqa: F811
    held = _until_held(_ev(pki, "iso2_dc_pnc_install"), config(iso2_pnc=_service(pki), **ASYNC))
    conn, request = held.conn, held.request
    assert conn.handle_timeout(request.deadline - 0.001) == []
    effects = conn.handle_timeout(request.deadline)
    _failed_to_ev(held, effects, request.deadline + 0.01)
    ended = [e for e in effects if isinstance(e, sev.SessionEnded)]
    assert ended and ended[0].failed and "did not answer" in ended[0].reason
    # the answer arriving afterwards changes nothing
    late = provision(conn.config, request)
    assert conn.handle_event(sev.Iso2CertificateAnswered(late), request.deadline + 1) == []
    assert conn.closed


def test_failed_answer_is_failed_at_once(pki: Any) -> None:  # noqa: F811
    held = _until_held(_ev(pki, "iso2_dc_pnc_install"), config(iso2_pnc=_service(pki), **ASYNC))
    answer = Iso2Provisioned(response_code="FAILED_NoCertificateAvailable", reason="CSMS")
    effects = held.conn.handle_event(sev.Iso2CertificateAnswered(answer), held.at + 0.5)
    done = _failed_to_ev(held, effects, held.at + 0.51)
    assert done.log[-1][1] == "FAILED_NoCertificateAvailable"


def test_another_request_while_held_is_a_sequence_error(pki: Any) -> None:  # noqa: F811
    ev = _ev(pki, "iso2_dc_pnc_install")
    held = _until_held(ev, config(iso2_pnc=_service(pki), **ASYNC))
    repeat = exi_codec.encode(held.request.message, strict=False)
    from evse.protocol.v2gtp import PayloadType, encode_frame
    effects = held.conn.receive_data(encode_frame(PayloadType.SAP, repeat), held.at + 0.1)
    (sent,) = [e for e in effects if isinstance(e, sev.SendData)]
    msg = exi_codec.decode(sent.data[8:], "iso2")
    assert str(msg.body.certificate_installation_res.response_code) == "FAILED_SequenceError"
    assert effects[:2] == [sev.StopPower(), sev.OpenContactors()]


def test_synchronous_path_unchanged(pki: Any) -> None:  # noqa: F811
    run = back_to_back(_ev(pki, "iso2_dc_pnc_install").scenario,
                       config(iso2_pnc=_service(pki)), tls=True,
                       ev=_ev(pki, "iso2_dc_pnc_install"))
    assert run.done.success and not run.of(sev.RequestIso2Certificate)
