"""Pause/resume bound to the vehicle certificate (mutual TLS), in memory.

A session paused on a connection whose vehicle presented a TLS client certificate is bound to
SHA-512(SessionID || SHA-512(certificate DER)); SessionSetup with its SessionID resumes it only
when the new connection presents the same certificate. Otherwise the EV gets a new session
(OK_NewSessionEstablished, new SessionID) and the paused session stays resumable. A session
paused without a vehicle certificate is not bound. The core treats certificates as opaque DER
bytes, so plain byte strings stand in for them here.
"""

from __future__ import annotations

import hashlib
import secrets

import pytest

from evse.protocol import events as sev
from evse.protocol.config import ISO20_DC, ServiceId
from evse.protocol.iso20.handlers import HANDLERS, Inputs
from evse.protocol.iso20.machine import Iso20Machine
from evse.protocol.machine import MachineContext
from evse.protocol.secc import SeccConnection
from evse.protocol.session import (
    ChargerState,
    Session,
    SessionStore,
    resume_binding,
    same_vehicle,
)
from exi_codec.schemas import iso20
from simulators.ev import Failed, Finished, get_scenario
from tests.protocol.evcc import config
from tests.simulators.test_ev_vs_secc_sansio import back_to_back

CERT_A = b"\x30\x82" + b"vehicle certificate A" * 20
CERT_B = b"\x30\x82" + b"vehicle certificate B" * 20
OLD_ID = bytes.fromhex("2EFA1894DC7B9011")
NEW_ID = bytes.fromhex("0A0B0C0D0E0F1011")


def test_binding_is_sha512_of_session_id_and_certificate_hash() -> None:
    expected = hashlib.sha512(OLD_ID + hashlib.sha512(CERT_A).digest()).digest()
    assert resume_binding(OLD_ID, CERT_A) == expected and len(expected) == 64
    assert resume_binding(NEW_ID, CERT_A) != expected
    assert resume_binding(OLD_ID, CERT_B) != expected
    from evse.security import resume_binding as security_binding

    assert security_binding(OLD_ID, CERT_A) == expected  # one function, two import paths


# -- the SessionSetup handler ------------------------------------------------------------------


def _paused(cert: bytes | None) -> SessionStore:
    old = Session(protocol=ISO20_DC, session_id=OLD_ID, evcc_id="EV1", established=True,
                  service=ServiceId.DC, authorized=True, authorization_method="PnC",
                  emaid="DEEVSC00000001X")
    old.vehicle_binding = None if cert is None else resume_binding(OLD_ID, cert)
    store = SessionStore()
    store.pause(old)
    return store


def _setup(store: SessionStore, cert: bytes | None) -> tuple[Session, str]:
    cfg = config()
    inputs = Inputs(now=1.0, timestamp=1_700_000_000, config=cfg,
                    charger=ChargerState(limits=cfg.limits), tls=True, new_session_id=NEW_ID,
                    paused=store, vehicle_certificate=cert)
    req = iso20.SessionSetupReq(header=iso20.MessageHeaderType(session_id=OLD_ID, time_stamp=1),
                                evccid="EV1")
    session = Session(protocol=ISO20_DC)
    res, effects = HANDLERS["SessionSetupReq"](req, session, inputs)
    started = effects[0]
    assert isinstance(started, sev.SessionStarted)
    assert started.resumed is (str(res.response_code) == "OK_OldSessionJoined")
    return session, str(res.response_code)


@pytest.mark.parametrize(("paused_with", "resumed_with", "joined"), [
    (CERT_A, CERT_A, True),
    (CERT_A, CERT_B, False),
    (CERT_A, None, False),
    (None, CERT_A, True),  # not bound: the first connection had no vehicle certificate
    (None, None, True),
])
def test_session_setup_checks_the_binding(paused_with: bytes | None,
                                          resumed_with: bytes | None, joined: bool) -> None:
    store = _paused(paused_with)
    session, code = _setup(store, resumed_with)
    if joined:
        assert code == "OK_OldSessionJoined" and session.session_id == OLD_ID
        assert session.authorized and session.emaid == "DEEVSC00000001X"
    else:
        assert code == "OK_NewSessionEstablished" and session.session_id == NEW_ID
        assert not session.authorized and session.emaid is None  # authorize from scratch
        assert OLD_ID in store  # still resumable by the vehicle it is bound to
        assert _setup(store, paused_with)[1] == "OK_OldSessionJoined"
    # the (new or resumed) session is bound to the certificate of this connection
    expected = None if resumed_with is None else resume_binding(session.session_id, resumed_with)
    assert session.vehicle_binding == expected


def test_same_vehicle_compares_in_constant_time_and_needs_a_certificate() -> None:
    bound = Session(protocol=ISO20_DC, session_id=OLD_ID)
    bound.vehicle_binding = resume_binding(OLD_ID, CERT_A)
    assert same_vehicle(bound, CERT_A) and not same_vehicle(bound, CERT_B)
    assert not same_vehicle(bound, None) and not same_vehicle(bound, b"")
    assert same_vehicle(Session(protocol=ISO20_DC), None)


def _machine(conn: SeccConnection) -> Iso20Machine:
    ctx = MachineContext(
        config=conn.config, namespace=ISO20_DC, tls=conn.tls, created=0.0, now=0.0,
        charger=conn.charger, store=SessionStore(), rng=secrets, epoch_offset=0.0,
        peer_certificate=conn.peer_certificate,
    )
    return Iso20Machine(ctx)


def test_plain_tcp_connections_never_bind() -> None:
    conn = SeccConnection(config(allow_plain_tcp_iso20=True), tls=False, now=0.0,
                          peer_certificate=CERT_A)
    assert _machine(conn)._inputs("SessionSetupReq", 0.0).vehicle_certificate is None
    tls = SeccConnection(config(), tls=True, now=0.0, peer_certificate=CERT_A)
    assert _machine(tls)._inputs("SessionSetupReq", 0.0).vehicle_certificate == CERT_A
    assert SeccConnection(config(), tls=True, now=0.0, peer_certificate=b"").peer_certificate \
        is None


# -- whole sessions: our EV pauses and resumes against our SECC ---------------------------------


def _pause_resume(*certs: bytes | None, store: SessionStore | None = None) -> object:
    sc = get_scenario("pause_resume", loop_sim_seconds=30.0)
    return back_to_back(sc, peer_certificates=certs, store=store)


def test_resume_with_the_same_vehicle_certificate() -> None:
    store = SessionStore()
    run = _pause_resume(CERT_A, CERT_A, store=store)
    assert isinstance(run.effect, Finished), run.effect
    started = [e for e in run.secc_effects if isinstance(e, sev.SessionStarted)]
    assert [s.resumed for s in started] == [False, True]
    assert started[0].session_id == started[1].session_id
    assert len(store) == 0  # taken by the resume


@pytest.mark.parametrize("second", [CERT_B, None])
def test_resume_with_another_or_no_certificate_gets_a_new_session(second: bytes | None) -> None:
    store = SessionStore()
    run = _pause_resume(CERT_A, second, store=store)
    assert isinstance(run.effect, Failed)
    assert "expected OK_OldSessionJoined, got OK_NewSessionEstablished" in run.effect.reason
    started = [e for e in run.secc_effects if isinstance(e, sev.SessionStarted)]
    assert [s.resumed for s in started] == [False, False]
    assert started[1].session_id != started[0].session_id
    paused = store.get(started[0].session_id)
    assert paused is not None and paused.vehicle_binding == resume_binding(
        started[0].session_id, CERT_A)
    # no power on the refused connection: nothing after the second SessionStarted closes
    # the contactors
    second_start = run.secc_effects.index(started[1])
    assert not any(isinstance(e, sev.CloseContactors) for e in run.secc_effects[second_start:])


def test_unbound_session_resumes_with_a_certificate() -> None:
    run = _pause_resume(None, CERT_A)
    assert isinstance(run.effect, Finished), run.effect


def test_paused_copy_keeps_the_binding() -> None:
    s = Session(protocol=ISO20_DC, session_id=OLD_ID, service=ServiceId.DC)
    s.vehicle_binding = resume_binding(OLD_ID, CERT_A)
    store = SessionStore()
    store.pause(s)
    s.vehicle_binding = None  # the live object changes later: the stored copy does not
    paused = store.get(OLD_ID)
    assert paused is not None and paused.vehicle_binding == resume_binding(OLD_ID, CERT_A)
