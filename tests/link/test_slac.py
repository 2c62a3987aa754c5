"""SlacEvse on a fake clock: the whole match, every timeout and retry, hostile and parallel
cars. Frames are built here byte by byte with the message codecs (no simulator)."""

from __future__ import annotations

from dataclasses import dataclass

from evse.link import slac_messages as m
from evse.link import timing
from evse.link.keys import nid_from_nmk
from evse.link.slac import (
    ModemKeyFailed,
    ModemKeySet,
    SendFrame,
    SlacAttemptFailed,
    SlacConfig,
    SlacEffect,
    SlacEvse,
    SlacMatched,
    SlacStarted,
    SlacState,
)

EVSE = bytes.fromhex("02000000e0e0")
MODEM = bytes.fromhex("00b052aabbcc")  # the modem's own MAC, source of its answers
ENTROPY = bytes(range(16)) + b"\xa1\xa2\xa3\xa4"


def sent(effects: list[SlacEffect]) -> list[m.Frame]:
    out = []
    for e in effects:
        if isinstance(e, SendFrame):
            frame = m.decode_frame(e.data)
            assert frame is not None, e.data.hex()
            out.append(frame)
    return out


def of(effects: list[SlacEffect], kind: type) -> list[SlacEffect]:
    return [e for e in effects if isinstance(e, kind)]


@dataclass
class Car:
    mac: bytes
    run_id: bytes

    def frame(self, msg: m.Message, dst: bytes = EVSE) -> bytes:
        return m.encode_frame(dst, self.mac, msg)

    def parm_req(self) -> bytes:
        return self.frame(m.SlacParmReq(0, 0, self.run_id), m.BROADCAST)

    def start_atten(self) -> bytes:
        return self.frame(m.StartAttenCharInd(0, 0, 10, 6, 1, self.mac, self.run_id),
                          m.BROADCAST)

    def sound(self, left: int) -> bytes:
        return self.frame(m.MnbcSoundInd(0, 0, m.Z17, left, self.run_id, m.Z8, b"\x55" * 16),
                          m.BROADCAST)

    def profile(self, groups: tuple[int, ...]) -> bytes:
        return m.encode_frame(EVSE, MODEM, m.AttenProfileInd(self.mac, groups))

    def atten_rsp(self, result: int = 0) -> bytes:
        return self.frame(m.AttenCharRsp(0, 0, self.mac, self.run_id, m.Z17, m.Z17, result))

    def match_req(self, run_id: bytes | None = None) -> bytes:
        return self.frame(m.SlacMatchReq(0, 0, 0x3E, b"\x45" * 17, self.mac, m.Z17, EVSE,
                                         run_id or self.run_id))


CAR = Car(bytes.fromhex("0a0000000001"), bytes.fromhex("1111111111111111"))
CAR2 = Car(bytes.fromhex("0a0000000002"), bytes.fromhex("2222222222222222"))


def started(config: SlacConfig | None = None, now: float = 0.0) -> SlacEvse:
    slac = SlacEvse(config or SlacConfig(evse_mac=EVSE))
    out = slac.start(now, ENTROPY)
    [key] = sent(out)
    assert key.dst == m.QCA_LOCAL_MAC and isinstance(key.message, m.SetKeyReq)
    assert key.message.new_key == ENTROPY[:16] and key.message.nid == nid_from_nmk(ENTROPY[:16])
    cnf = m.SetKeyCnf(0, b"\x01\x02\x03\x04", ENTROPY[16:20], 4, 0, 0, 0)
    assert of(slac.receive_frame(m.encode_frame(EVSE, MODEM, cnf), now + 0.01), ModemKeySet)
    return slac


def sound_all(slac: SlacEvse, car: Car, t: float, n: int = 10,
              groups: tuple[int, ...] = (20,) * 58) -> list[SlacEffect]:
    out: list[SlacEffect] = []
    for i in range(n):
        out += slac.receive_frame(car.sound(n - 1 - i), t + 0.02 * i)
        out += slac.receive_frame(car.profile(groups), t + 0.02 * i + 0.001)
    return out


def test_a_full_match_answers_unicast_within_the_response_time() -> None:
    slac = started()
    out = slac.receive_frame(CAR.parm_req(), 1.0)
    assert of(out, SlacStarted) == [SlacStarted(CAR.run_id, CAR.mac)]
    [cnf] = sent(out)
    assert cnf.dst == CAR.mac and cnf.src == EVSE
    assert cnf.message == m.SlacParmCnf(m.BROADCAST, 10, 6, 1, CAR.mac, 0, 0, CAR.run_id)
    assert of(out, SendFrame)[0].deadline == 1.0 + timing.TT_MATCH_RESPONSE  # type: ignore[union-attr]
    for i in range(3):  # the car repeats START_ATTEN_CHAR; the window runs from the first
        assert slac.receive_frame(CAR.start_atten(), 1.05 + 0.01 * i) == []
    assert slac.next_deadline() == 1.05 + 6 / 10
    groups = tuple(range(58))
    out = sound_all(slac, CAR, 1.1, groups=groups)
    [ind] = sent(out)  # all 10 profiles in: no need to wait for the window
    assert ind.dst == CAR.mac and isinstance(ind.message, m.AttenCharInd)
    assert ind.message.num_sounds == 10 and ind.message.groups == groups
    assert ind.message.run_id == CAR.run_id and ind.message.source_address == CAR.mac
    assert slac.receive_frame(CAR.atten_rsp(), 1.4) == []
    # a car that validates gets "Failure": we do not toggle the pilot
    [vcnf] = sent(slac.receive_frame(CAR.frame(m.ValidateReq(0, 0, 1)), 1.45))
    assert vcnf.message == m.ValidateCnf(0, 0, m.VALIDATE_FAILURE) and vcnf.dst == CAR.mac
    out = slac.receive_frame(CAR.match_req(), 1.5)
    [match] = sent(out)
    assert isinstance(match.message, m.SlacMatchCnf) and match.dst == CAR.mac
    assert match.message.nmk == ENTROPY[:16] and match.message.nid == nid_from_nmk(ENTROPY[:16])
    assert match.message.pev_id == b"\x45" * 17 and match.message.evse_mac == EVSE
    assert of(out, SlacMatched) == [SlacMatched(CAR.run_id, CAR.mac, match.message.nid,
                                                ENTROPY[:16])]
    assert slac.state == SlacState.MATCHED and slac.next_deadline() is None
    # the car missed the CNF: the same frame again; another car gets nothing
    assert sent(slac.receive_frame(CAR.match_req(), 1.6)) == [match]
    assert slac.receive_frame(CAR2.parm_req(), 1.7) == []


def test_attenuation_is_averaged_per_group_over_the_profiles_received() -> None:
    slac = started()
    slac.receive_frame(CAR.parm_req(), 1.0)
    slac.receive_frame(CAR.start_atten(), 1.1)
    slac.receive_frame(CAR.profile((10,) * 57 + (0,)), 1.2)
    slac.receive_frame(CAR.profile((13,) * 57 + (255,)), 1.3)
    slac.receive_frame(CAR.profile((13,) * 57 + (255,)), 1.35)
    window_end = slac.next_deadline()
    assert window_end is not None and abs(window_end - 1.7) < 1e-9
    assert slac.handle_timeout(window_end - 0.001) == []
    [ind] = sent(slac.handle_timeout(window_end))  # the window (600 ms) closed with 3 of 10
    assert isinstance(ind.message, m.AttenCharInd)
    assert ind.message.num_sounds == 3 and ind.message.groups == (12,) * 57 + (170,)


def test_atten_char_ind_is_repeated_then_the_attempt_fails() -> None:
    slac = started()
    slac.receive_frame(CAR.parm_req(), 1.0)
    slac.receive_frame(CAR.start_atten(), 1.1)
    [first] = sent(sound_all(slac, CAR, 1.1))
    t = slac.next_deadline()
    assert t is not None
    repeats = []
    for _ in range(timing.C_EV_MATCH_RETRY):
        repeats += sent(slac.handle_timeout(t))
        assert slac.next_deadline() == t + timing.TT_MATCH_RESPONSE
        t += timing.TT_MATCH_RESPONSE
    assert repeats == [first, first]
    out = slac.handle_timeout(t)
    assert [type(e) for e in out] == [SlacAttemptFailed]
    assert "no CM_ATTEN_CHAR.RSP" in out[0].reason  # type: ignore[union-attr]
    assert slac.attempts == {} and slac.state == SlacState.LISTENING


def test_a_car_that_never_starts_sounding_or_never_sounds() -> None:
    slac = started()
    slac.receive_frame(CAR.parm_req(), 1.0)
    deadline = 1.0 + timing.TT_MATCH_SEQUENCE + timing.TT_MATCH_RESPONSE
    assert slac.next_deadline() == deadline
    out = slac.handle_timeout(deadline)
    assert "no CM_START_ATTEN_CHAR.IND" in out[0].reason  # type: ignore[union-attr]
    # a new attempt (the car retries with a new RunID), sounding window without sounds
    retry = Car(CAR.mac, b"\x33" * 8)
    out = slac.receive_frame(retry.parm_req(), 5.0)
    assert not of(out, SlacStarted)  # started once per start()
    slac.receive_frame(retry.start_atten(), 5.1)
    out = slac.handle_timeout(5.1 + 6 / 10)
    assert "no sounds" in out[0].reason  # type: ignore[union-attr]


def test_a_car_that_answers_late_or_never_asks_for_the_match() -> None:
    slac = started()
    slac.receive_frame(CAR.parm_req(), 1.0)
    slac.receive_frame(CAR.start_atten(), 1.1)
    sound_all(slac, CAR, 1.1)
    slac.receive_frame(CAR.atten_rsp(), 1.4)
    # MATCH.REQ never comes: the whole attempt ends TT_EVSE_match_session after PARM.REQ
    assert slac.next_deadline() == 1.0 + timing.TT_EVSE_MATCH_SESSION
    out = slac.handle_timeout(11.0)
    assert "TT_EVSE_match_session" in out[0].reason  # type: ignore[union-attr]
    # ... and a MATCH.REQ after that is for no attempt
    assert slac.receive_frame(CAR.match_req(), 11.1) == []
    assert slac.ignored["unknown_run_id"] == 1


def test_late_atten_char_rsp_after_the_last_repeat_is_dropped() -> None:
    slac = started()
    slac.receive_frame(CAR.parm_req(), 1.0)
    slac.receive_frame(CAR.start_atten(), 1.1)
    sound_all(slac, CAR, 1.1)
    t = slac.next_deadline()
    for _ in range(3):
        assert t is not None
        out = slac.handle_timeout(t)
        t = slac.next_deadline()
    assert of(out, SlacAttemptFailed)
    assert slac.receive_frame(CAR.atten_rsp(), 3.0) == []


def test_wrong_run_id_and_wrong_mac_are_dropped() -> None:
    slac = started()
    slac.receive_frame(CAR.parm_req(), 1.0)
    slac.receive_frame(CAR.start_atten(), 1.1)
    sound_all(slac, CAR, 1.1)
    intruder = Car(CAR2.mac, CAR.run_id)  # another MAC with this car's RunID
    assert slac.receive_frame(intruder.atten_rsp(), 1.4) == []
    assert slac.receive_frame(CAR.match_req(run_id=b"\x99" * 8), 1.45) == []
    assert slac.receive_frame(intruder.match_req(), 1.46) == []
    slac.receive_frame(CAR.atten_rsp(), 1.5)
    assert of(slac.receive_frame(CAR.match_req(), 1.6), SlacMatched)


def test_two_cars_at_once_each_get_their_own_answers_and_the_first_match_wins() -> None:
    slac = started()
    out = slac.receive_frame(CAR.parm_req(), 1.0) + slac.receive_frame(CAR2.parm_req(), 1.01)
    assert [f.dst for f in sent(out)] == [CAR.mac, CAR2.mac]
    slac.receive_frame(CAR.start_atten(), 1.1)
    slac.receive_frame(CAR2.start_atten(), 1.11)
    # interleaved sounds: car 1 is on our cable (low attenuation), car 2 next door (high)
    inds: list[m.Frame] = []
    for i in range(10):
        inds += sent(slac.receive_frame(CAR.profile((10,) * 58), 1.2 + i * 0.02))
        inds += sent(slac.receive_frame(CAR2.profile((60,) * 58), 1.21 + i * 0.02))
    assert [(f.dst, f.message.groups[0]) for f in inds] == [  # type: ignore[attr-defined]
        (CAR.mac, 10), (CAR2.mac, 60)]
    slac.receive_frame(CAR.atten_rsp(), 1.5)
    slac.receive_frame(CAR2.atten_rsp(), 1.5)
    out = slac.receive_frame(CAR.match_req(), 1.6)
    assert of(out, SlacMatched) and slac.attempts == {}
    assert slac.receive_frame(CAR2.match_req(), 1.61) == []


def test_the_cars_own_key_messages_and_foreign_frames_are_ignored() -> None:
    slac = started()
    car_key = m.encode_frame(m.BROADCAST, CAR.mac, m.SetKeyReq(
        1, b"\1" * 4, b"\0" * 4, 4, 0, 0, 0, b"\5" * 7, 1, b"\6" * 16))
    get_key = bytes(m.BROADCAST + CAR.mac) + bytes.fromhex("88e1010c600000") + bytes(41)
    assert slac.receive_frame(car_key, 1.0) == [] and slac.receive_frame(get_key, 1.0) == []
    assert slac.ignored["set_key_req"] == 1 and slac.ignored["unsupported"] == 1
    other = m.encode_frame(bytes.fromhex("020000000099"), CAR.mac, m.SlacParmReq(0, 0, b"1" * 8))
    assert slac.receive_frame(other, 1.0) == [] and slac.ignored["not_for_us"] == 1
    assert slac.receive_frame(b"\x00" * 10, 1.0) == [] and slac.ignored["malformed"] == 1
    assert slac.attempts == {}


def test_a_forged_profile_from_the_car_itself_does_not_count() -> None:
    slac = started()
    slac.receive_frame(CAR.parm_req(), 1.0)
    slac.receive_frame(CAR.start_atten(), 1.1)
    forged = m.encode_frame(EVSE, CAR.mac, m.AttenProfileInd(CAR.mac, (0,) * 58))
    assert slac.receive_frame(forged, 1.2) == []
    assert slac.ignored["profile_not_from_modem"] == 1
    assert slac.attempts[CAR.run_id].profiles == 0


def test_parallel_attempts_are_bounded() -> None:
    slac = started(SlacConfig(evse_mac=EVSE, max_parallel=3))
    for i in range(5):
        slac.receive_frame(Car(CAR.mac, bytes([i]) * 8).parm_req(), 1.0)
    assert len(slac.attempts) == 3 and slac.ignored["too_many_attempts"] == 2


def test_set_key_is_repeated_until_confirmed_then_reported_failed() -> None:
    slac = SlacEvse(SlacConfig(evse_mac=EVSE, set_key_attempts=3))
    first = sent(slac.start(0.0, ENTROPY))
    t = 0.0
    for _ in range(2):
        t += timing.SET_KEY_TIMEOUT
        assert sent(slac.handle_timeout(t)) == first
    out = slac.handle_timeout(t + timing.SET_KEY_TIMEOUT)
    assert of(out, ModemKeyFailed) and not slac.key_confirmed
    assert slac.next_deadline() is None
    # a confirmation with the wrong nonce is not ours
    slac2 = SlacEvse(SlacConfig(evse_mac=EVSE))
    slac2.start(0.0, ENTROPY)
    wrong = m.SetKeyCnf(0, b"\0" * 4, b"\xff" * 4, 4, 0, 0, 0)
    assert slac2.receive_frame(m.encode_frame(EVSE, MODEM, wrong), 0.1) == []
    assert not slac2.key_confirmed


def test_every_start_takes_a_fresh_key() -> None:
    slac = started()
    other = bytes(range(100, 120))
    [key] = sent(slac.start(5.0, other))
    assert key.message.new_key == other[:16]  # type: ignore[attr-defined]
    assert slac.nid == nid_from_nmk(other[:16]) and slac.nmk != ENTROPY[:16]


def test_stopped_machine_ignores_slac() -> None:
    slac = started()
    slac.stop()
    assert slac.receive_frame(CAR.parm_req(), 1.0) == []
    assert slac.next_deadline() is None
