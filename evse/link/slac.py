"""`SlacEvse`: the EVSE side of SLAC (ISO 15118-3), sans-IO.

    slac = SlacEvse(SlacConfig(evse_mac=mac))
    effects = slac.start(now, entropy)       # entropy: >= 20 random bytes (NMK + nonce)
    effects = slac.receive_frame(frame, now) # every 0x88E1 frame seen on the interface
    effects = slac.handle_timeout(now)       # at or after next_deadline()
    effects = slac.stop()

Effects: `SendFrame` (bytes for the raw socket), `SlacStarted`, `SlacAttemptFailed`,
`SlacMatched`, `ModemKeySet`, `ModemKeyFailed`. Nothing reads a clock or draws random
numbers here: the adapter passes `now` and `os.urandom` bytes, tests pass their own.

The sequence per matching attempt (one RunID, one car):

    EV  CM_SLAC_PARM.REQ (bcast)      -> we answer CM_SLAC_PARM.CNF (unicast) at once
    EV  CM_START_ATTEN_CHAR.IND x3    -> the sounding window opens (TIME_OUT x 100 ms)
    EV  CM_MNBC_SOUND.IND x10         -> our modem reports CM_ATTEN_PROFILE.IND per sound
    window closed or all sounds in    -> CM_ATTEN_CHAR.IND: per group the mean attenuation,
                                         repeated after TT_match_response, 3 sends in all
    EV  CM_ATTEN_CHAR.RSP             -> wait for the match
    EV  CM_VALIDATE.REQ (optional)    -> CM_VALIDATE.CNF result Failure: we do not validate
    EV  CM_SLAC_MATCH.REQ             -> CM_SLAC_MATCH.CNF with NID and NMK: matched

Before that, `start` sends CM_SET_KEY.REQ with the fresh NMK/NID to the local modem (repeated
until CM_SET_KEY.CNF), so our modem runs the new network when the car joins it.

Several cars on a shared medium (one cable's crosstalk to the next connector) each run their
own attempt, keyed by RunID and MAC; frames with an unknown RunID, from another MAC than the
attempt's car, or out of sequence are dropped; the first CM_SLAC_MATCH.REQ wins and ends the
others. Repeated requests (the car missed our answer) are answered again. Malformed frames are
dropped (`ignored` counts why), never raised.

We answer CM_VALIDATE.REQ with Failure, as EVerest's EvseSlac does ("replies to
CM_VALIDATE.REQ with a failed CM_VALIDATE.CNF"): an EVSE without pilot toggling detection.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from evse.link import timing
from evse.link.keys import NMK_LEN, nid_from_nmk
from evse.link.slac_messages import (
    BROADCAST,
    KEY_TYPE_NMK,
    MATCH_CNF_MVF_LENGTH,
    PID_HLE,
    QCA_LOCAL_MAC,
    VALIDATE_FAILURE,
    Z8,
    Z17,
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    Frame,
    Message,
    MnbcSoundInd,
    SetKeyCnf,
    SetKeyReq,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
    ValidateCnf,
    ValidateReq,
    decode_frame,
    encode_frame,
    mac_text,
    peek_mmtype,
)

ENTROPY_LEN = NMK_LEN + 4  # NMK + the CM_SET_KEY nonce


@dataclass(frozen=True, slots=True)
class SlacConfig:
    evse_mac: bytes  # our host interface's MAC: source of every frame, EVSE MAC in MATCH
    modem_mac: bytes = QCA_LOCAL_MAC  # where CM_SET_KEY.REQ goes
    evse_id: bytes = Z17
    num_sounds: int = timing.C_EV_MATCH_MNBC
    time_out_units: int = timing.SOUND_TIME_OUT_UNITS  # sounding window, x 100 ms
    match_response: float = timing.TT_MATCH_RESPONSE
    match_sequence: float = timing.TT_MATCH_SEQUENCE
    match_session: float = timing.TT_EVSE_MATCH_SESSION
    atten_char_sends: int = 1 + timing.C_EV_MATCH_RETRY
    set_key_timeout: float = timing.SET_KEY_TIMEOUT
    set_key_attempts: int = timing.SET_KEY_ATTEMPTS
    max_parallel: int = timing.MAX_PARALLEL_ATTEMPTS


# -- effects --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendFrame:
    data: bytes
    what: str  # message name, for logs
    deadline: float  # when it must have left (TT_match_response for answers)


@dataclass(frozen=True, slots=True)
class SlacStarted:
    """The first CM_SLAC_PARM.REQ since `start`: the car does SLAC."""

    run_id: bytes
    ev_mac: bytes


@dataclass(frozen=True, slots=True)
class SlacAttemptFailed:
    run_id: bytes
    ev_mac: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class SlacMatched:
    run_id: bytes
    ev_mac: bytes
    nid: bytes
    nmk: bytes


@dataclass(frozen=True, slots=True)
class ModemKeySet:
    nid: bytes


@dataclass(frozen=True, slots=True)
class ModemKeyFailed:
    reason: str


SlacEffect = (SendFrame | SlacStarted | SlacAttemptFailed | SlacMatched | ModemKeySet
              | ModemKeyFailed)


class SlacState(StrEnum):
    STOPPED = "stopped"
    LISTENING = "listening"  # waiting for / running attempts
    MATCHED = "matched"


class Step(StrEnum):
    WAIT_START_ATTEN = "wait_start_atten_char"
    SOUNDING = "sounding"
    WAIT_ATTEN_RSP = "wait_atten_char_rsp"
    WAIT_MATCH = "wait_match"


@dataclass(slots=True)
class Attempt:
    run_id: bytes
    ev_mac: bytes
    session_deadline: float
    step: Step = Step.WAIT_START_ATTEN
    deadline: float = 0.0
    sums: list[int] = field(default_factory=lambda: [0] * timing.ATTEN_GROUPS)
    profiles: int = 0
    sounds: int = 0
    atten_sends: int = 0
    atten_frame: bytes = b""


@dataclass(slots=True)
class SlacEvse:
    config: SlacConfig
    state: SlacState = SlacState.STOPPED
    attempts: dict[bytes, Attempt] = field(default_factory=dict)
    nmk: bytes = b""
    nid: bytes = b""
    matched: SlacMatched | None = None
    key_confirmed: bool = False
    ignored: Counter[str] = field(default_factory=Counter)
    _started: bool = False
    _nonce: bytes = b""
    _key_sends: int = 0
    _key_deadline: float | None = None
    _key_frame: bytes = b""
    _modem_src: bytes | None = None  # learned from CM_SET_KEY.CNF
    _match_cnf: bytes = b""

    # -- control ----------------------------------------------------------------------------
    def start(self, now: float, entropy: bytes) -> list[SlacEffect]:
        """Listen for a car with a fresh NMK (`entropy[:16]`) and CM_SET_KEY nonce."""
        if len(entropy) < ENTROPY_LEN:
            raise ValueError(f"start needs {ENTROPY_LEN} random bytes")
        self.state = SlacState.LISTENING
        self.attempts.clear()
        self.matched = None
        self._match_cnf = b""
        self._started = False
        self.nmk = bytes(entropy[:NMK_LEN])
        self.nid = nid_from_nmk(self.nmk)
        self._nonce = bytes(entropy[NMK_LEN:ENTROPY_LEN])
        self.key_confirmed = False
        self._key_frame = encode_frame(self.config.modem_mac, self.config.evse_mac, SetKeyReq(
            key_type=KEY_TYPE_NMK, my_nonce=self._nonce, your_nonce=b"\0" * 4, pid=PID_HLE,
            prn=0, pmn=0, cco_capability=0, nid=self.nid, new_eks=0x01, new_key=self.nmk))
        self._key_sends = 0
        return self._send_key(now)

    def stop(self) -> list[SlacEffect]:
        self.state = SlacState.STOPPED
        self.attempts.clear()
        self._key_deadline = None
        return []

    def next_deadline(self) -> float | None:
        times = [min(a.deadline, a.session_deadline) for a in self.attempts.values()]
        if self._key_deadline is not None:
            times.append(self._key_deadline)
        return min(times, default=None)

    def handle_timeout(self, now: float) -> list[SlacEffect]:
        out: list[SlacEffect] = []
        if self._key_deadline is not None and now >= self._key_deadline:
            if self._key_sends >= self.config.set_key_attempts:
                self._key_deadline = None
                out.append(ModemKeyFailed(
                    f"no CM_SET_KEY.CNF after {self._key_sends} CM_SET_KEY.REQ"))
            else:
                out += self._send_key(now)
        for attempt in list(self.attempts.values()):
            if now >= attempt.session_deadline:
                out += self._fail(attempt, "TT_EVSE_match_session expired")
            elif now >= attempt.deadline:
                out += self._step_timeout(attempt, now)
        return out

    # -- frames -----------------------------------------------------------------------------
    def _frame_for_us(self, data: bytes) -> Frame | None:
        """The decoded frame, or None (counted) when malformed, unsupported or not ours."""
        frame = decode_frame(data)
        if frame is None:
            self.ignored["malformed" if peek_mmtype(data) is None else "unsupported"] += 1
            return None
        if frame.src == self.config.evse_mac or frame.dst not in (self.config.evse_mac,
                                                                  BROADCAST):
            self.ignored["not_for_us"] += 1
            return None
        return frame

    def receive_frame(self, data: bytes, now: float) -> list[SlacEffect]:
        frame = self._frame_for_us(data)
        if frame is None:
            return []
        msg = frame.message
        if isinstance(msg, SetKeyCnf):
            return self._on_set_key_cnf(msg, frame.src)
        if self.state == SlacState.STOPPED or isinstance(msg, SetKeyReq):
            # a car's own CM_SET_KEY to its modem, or SLAC while we do not listen
            self.ignored["set_key_req" if isinstance(msg, SetKeyReq) else "stopped"] += 1
            return []
        if isinstance(msg, SlacParmReq):
            return self._on_parm_req(msg, frame.src, now)
        if isinstance(msg, SlacMatchReq):
            return self._on_match_req(msg, frame.src, now)
        if self.state == SlacState.MATCHED:
            self.ignored["matched"] += 1
            return []
        if isinstance(msg, AttenProfileInd):
            return self._on_profile(msg, frame.src, now)
        if isinstance(msg, ValidateReq):
            return self._on_validate(msg, frame.src, now)
        attempt = self._attempt_of(msg, frame.src)
        if attempt is None:
            return []
        return self._on_sounding(attempt, msg, now)

    def _on_sounding(self, attempt: Attempt, msg: Message, now: float) -> list[SlacEffect]:
        """The messages of a known run: the sounding and the car's CM_ATTEN_CHAR.RSP."""
        if isinstance(msg, StartAttenCharInd):
            if attempt.step == Step.WAIT_START_ATTEN:
                attempt.step = Step.SOUNDING
                attempt.deadline = now + self.config.time_out_units / 10
            return []  # the car repeats it: the window runs from the first
        if isinstance(msg, MnbcSoundInd):
            attempt.sounds += 1
            return []
        if isinstance(msg, AttenCharRsp):
            if attempt.step != Step.WAIT_ATTEN_RSP:
                self.ignored["out_of_sequence"] += 1
                return []
            if msg.result != 0:
                return self._fail(attempt, f"CM_ATTEN_CHAR.RSP result {msg.result}")
            attempt.step = Step.WAIT_MATCH
            attempt.deadline = attempt.session_deadline
            return []
        self.ignored["unexpected"] += 1
        return []

    # -- handlers ---------------------------------------------------------------------------
    def _attempt_of(self, msg: Message, src: bytes) -> Attempt | None:
        run_id = getattr(msg, "run_id", None)
        attempt = self.attempts.get(run_id) if isinstance(run_id, bytes) else None
        if attempt is None or attempt.ev_mac != src:
            self.ignored["unknown_run_id"] += 1
            return None
        return attempt

    def _on_parm_req(self, msg: SlacParmReq, src: bytes, now: float) -> list[SlacEffect]:
        if msg.application_type != 0 or msg.security_type != 0:
            self.ignored["unsupported_parameters"] += 1
            return []
        if self.state == SlacState.MATCHED:
            self.ignored["matched"] += 1
            return []
        attempt = self.attempts.get(msg.run_id)
        out: list[SlacEffect] = []
        if attempt is not None:
            if attempt.ev_mac != src or attempt.step != Step.WAIT_START_ATTEN:
                self.ignored["out_of_sequence"] += 1
                return []
            # the car missed our CNF and asks again: same answer
        else:
            if len(self.attempts) >= self.config.max_parallel:
                self.ignored["too_many_attempts"] += 1
                return []
            attempt = Attempt(msg.run_id, src, now + self.config.match_session)
            self.attempts[msg.run_id] = attempt
            if not self._started:
                self._started = True
                out.append(SlacStarted(msg.run_id, src))
        attempt.deadline = now + self.config.match_sequence + self.config.match_response
        cnf = SlacParmCnf(msound_target=BROADCAST, num_sounds=self.config.num_sounds,
                          time_out=self.config.time_out_units, resp_type=0x01,
                          forwarding_sta=src, application_type=0, security_type=0,
                          run_id=msg.run_id)
        out.append(self._send(src, cnf, "CM_SLAC_PARM.CNF", now))
        return out

    def _on_profile(self, msg: AttenProfileInd, src: bytes, now: float) -> list[SlacEffect]:
        if self._modem_src is not None and src != self._modem_src:
            self.ignored["profile_not_from_modem"] += 1
            return []
        if len(msg.groups) != timing.ATTEN_GROUPS:
            self.ignored["profile_groups"] += 1
            return []
        for attempt in self.attempts.values():
            if attempt.ev_mac == msg.pev_mac and attempt.step == Step.SOUNDING \
                    and src != attempt.ev_mac:
                for i, g in enumerate(msg.groups):
                    attempt.sums[i] += g
                attempt.profiles += 1
                if attempt.profiles >= self.config.num_sounds:
                    return self._send_atten_char(attempt, now)
                return []
        self.ignored["profile_without_attempt"] += 1
        return []

    def _on_validate(self, msg: ValidateReq, src: bytes, now: float) -> list[SlacEffect]:
        if not any(a.ev_mac == src and a.step in (Step.WAIT_ATTEN_RSP, Step.WAIT_MATCH)
                   for a in self.attempts.values()):
            self.ignored["validate_without_attempt"] += 1
            return []
        cnf = ValidateCnf(signal_type=msg.signal_type, toggle_num=0, result=VALIDATE_FAILURE)
        return [self._send(src, cnf, "CM_VALIDATE.CNF", now)]

    def _on_match_req(self, msg: SlacMatchReq, src: bytes, now: float) -> list[SlacEffect]:
        if self.matched is not None:
            if self.matched.run_id == msg.run_id and self.matched.ev_mac == src:
                # our CNF was lost: repeat it
                return [SendFrame(self._match_cnf, "CM_SLAC_MATCH.CNF",
                                  now + self.config.match_response)]
            self.ignored["matched"] += 1
            return []
        attempt = self._attempt_of(msg, src)
        if attempt is None:
            return []
        if msg.pev_mac != src or msg.evse_mac != self.config.evse_mac or attempt.step not in (
                Step.WAIT_ATTEN_RSP, Step.WAIT_MATCH):
            self.ignored["out_of_sequence"] += 1
            return []
        cnf = SlacMatchCnf(application_type=0, security_type=0,
                           mvf_length=MATCH_CNF_MVF_LENGTH, pev_id=msg.pev_id, pev_mac=src,
                           evse_id=self.config.evse_id, evse_mac=self.config.evse_mac,
                           run_id=msg.run_id, reserved=Z8, nid=self.nid, reserved2=0,
                           nmk=self.nmk)
        send = self._send(src, cnf, "CM_SLAC_MATCH.CNF", now)
        self._match_cnf = send.data
        self.state = SlacState.MATCHED
        self.attempts.clear()  # the other cars' attempts end here
        self.matched = SlacMatched(msg.run_id, src, self.nid, self.nmk)
        return [send, self.matched]

    def _on_set_key_cnf(self, msg: SetKeyCnf, src: bytes) -> list[SlacEffect]:
        if self._key_deadline is None or msg.your_nonce != self._nonce:
            self.ignored["set_key_cnf"] += 1
            return []
        self._key_deadline = None
        if msg.result != 0:
            return [ModemKeyFailed(f"CM_SET_KEY.CNF result {msg.result}")]
        self.key_confirmed = True
        self._modem_src = src
        return [ModemKeySet(self.nid)]

    # -- steps ------------------------------------------------------------------------------
    def _step_timeout(self, attempt: Attempt, now: float) -> list[SlacEffect]:
        if attempt.step == Step.WAIT_START_ATTEN:
            return self._fail(attempt, "no CM_START_ATTEN_CHAR.IND")
        if attempt.step == Step.SOUNDING:
            if attempt.profiles == 0:
                return self._fail(attempt, "no sounds in the sounding window")
            return self._send_atten_char(attempt, now)
        if attempt.step == Step.WAIT_ATTEN_RSP:
            if attempt.atten_sends >= self.config.atten_char_sends:
                return self._fail(attempt, "no CM_ATTEN_CHAR.RSP")
            attempt.atten_sends += 1
            attempt.deadline = now + self.config.match_response
            return [SendFrame(attempt.atten_frame, "CM_ATTEN_CHAR.IND (repeat)",
                              now + self.config.match_response)]
        return self._fail(attempt, "no CM_SLAC_MATCH.REQ")

    def _send_atten_char(self, attempt: Attempt, now: float) -> list[SlacEffect]:
        n = attempt.profiles
        groups = tuple((s + n // 2) // n for s in attempt.sums)  # rounded mean, 0..255
        ind = AttenCharInd(application_type=0, security_type=0, source_address=attempt.ev_mac,
                           run_id=attempt.run_id, source_id=Z17, resp_id=Z17, num_sounds=n,
                           groups=groups)
        send = self._send(attempt.ev_mac, ind, "CM_ATTEN_CHAR.IND", now)
        attempt.atten_frame = send.data
        attempt.atten_sends = 1
        attempt.step = Step.WAIT_ATTEN_RSP
        attempt.deadline = now + self.config.match_response
        return [send]

    def _fail(self, attempt: Attempt, reason: str) -> list[SlacEffect]:
        del self.attempts[attempt.run_id]
        return [SlacAttemptFailed(attempt.run_id, attempt.ev_mac,
                                  f"{reason} (car {mac_text(attempt.ev_mac)})")]

    def _send_key(self, now: float) -> list[SlacEffect]:
        self._key_sends += 1
        self._key_deadline = now + self.config.set_key_timeout
        return [SendFrame(self._key_frame, "CM_SET_KEY.REQ", self._key_deadline)]

    def _send(self, dst: bytes, msg: Message, what: str, now: float) -> SendFrame:
        return SendFrame(encode_frame(dst, self.config.evse_mac, msg), what,
                         now + self.config.match_response)
