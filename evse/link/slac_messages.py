"""HomePlug Green PHY management messages (MMEs) of SLAC (ISO 15118-3): byte-exact frames.

    frame = encode_frame(dst_mac, src_mac, SlacParmCnf(...))   # bytes, padded to 60
    decoded = decode_frame(data)    # Frame(dst, src, message) or None, never an exception

Frame layout (MMV 0x01): destination MAC (6), source MAC (6), ethertype 0x88E1 (2, big
endian), MMV (1), MMTYPE (2, LITTLE endian: CM_SLAC_PARM.REQ 0x6064 is `64 60` on the wire),
FMI (2: fragment number/sequence, always 0 here), then the payload. Multi-byte numbers inside
payloads are little endian too (MVFLength, PRN). Frames shorter than Ethernet's 60-byte
minimum are zero-padded.

Strict length checks, as the peer is untrusted: a frame must be at least header + payload of
its type and at most that (or 60 bytes if that is less: the padding); a wrong ethertype, MMV,
fragmented MME, unknown MMTYPE, bad MVFLength or group count is None. Layouts as in
ISO 15118-3 annex A and the HomePlug AV specification, as also laid out by EVerest libslac
(`include/slac/slac.hpp`) and uhi22/pyPLC.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import ClassVar

from evse.link.timing import ATTEN_GROUPS

ETHERTYPE_HOMEPLUG = 0x88E1
MMV = 0x01
HEADER_LEN = 19  # 6 + 6 + 2 + 1 + 2 + 2
MIN_FRAME_LEN = 60  # Ethernet minimum without the FCS
BROADCAST = b"\xff" * 6
# Qualcomm Atheros modems (QCA7000/7005) answer host management messages sent here.
QCA_LOCAL_MAC = bytes.fromhex("00b052000001")

# MMTYPE base | mode: REQ 0, CNF 1, IND 2, RSP 3
CM_SET_KEY_REQ, CM_SET_KEY_CNF = 0x6008, 0x6009
CM_GET_KEY_REQ, CM_GET_KEY_CNF = 0x600C, 0x600D
CM_SLAC_PARM_REQ, CM_SLAC_PARM_CNF = 0x6064, 0x6065
CM_START_ATTEN_CHAR_IND = 0x606A
CM_ATTEN_CHAR_IND, CM_ATTEN_CHAR_RSP = 0x606E, 0x606F
CM_MNBC_SOUND_IND = 0x6076
CM_VALIDATE_REQ, CM_VALIDATE_CNF = 0x6078, 0x6079
CM_SLAC_MATCH_REQ, CM_SLAC_MATCH_CNF = 0x607C, 0x607D
CM_ATTEN_PROFILE_IND = 0x6086

# CM_VALIDATE result codes
VALIDATE_NOT_READY, VALIDATE_READY, VALIDATE_SUCCESS = 0, 1, 2
VALIDATE_FAILURE, VALIDATE_NOT_REQUIRED = 3, 4

MATCH_REQ_MVF_LENGTH = 0x3E  # bytes after MVFLength in CM_SLAC_MATCH.REQ
MATCH_CNF_MVF_LENGTH = 0x56  # ... and in CM_SLAC_MATCH.CNF

Z8, Z17 = b"\0" * 8, b"\0" * 17


class MessageError(ValueError):
    """Raised by encoding a message whose fields do not fit its layout (our bug, not the
    peer's: decoding never raises)."""


@dataclass(frozen=True, slots=True)
class Message:
    """A fixed-layout MME payload: the dataclass fields in `FORMAT` order."""

    MMTYPE: ClassVar[int] = 0
    FORMAT: ClassVar[struct.Struct] = struct.Struct("")

    def encode_payload(self) -> bytes:
        try:
            return self.FORMAT.pack(*(getattr(self, f.name) for f in fields(self)))
        except struct.error as exc:
            raise MessageError(f"{type(self).__name__}: {exc}") from exc

    @classmethod
    def payload_len(cls, data: bytes) -> int | None:
        return cls.FORMAT.size

    @classmethod
    def decode_payload(cls, data: bytes) -> Message | None:
        return cls(*cls.FORMAT.unpack_from(data))

    def valid(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class SlacParmReq(Message):
    MMTYPE = CM_SLAC_PARM_REQ
    FORMAT = struct.Struct("<BB8s")
    application_type: int
    security_type: int
    run_id: bytes


@dataclass(frozen=True, slots=True)
class SlacParmCnf(Message):
    MMTYPE = CM_SLAC_PARM_CNF
    FORMAT = struct.Struct("<6sBBB6sBB8s")
    msound_target: bytes
    num_sounds: int
    time_out: int  # units of 100 ms
    resp_type: int
    forwarding_sta: bytes  # the EV's MAC
    application_type: int
    security_type: int
    run_id: bytes


@dataclass(frozen=True, slots=True)
class StartAttenCharInd(Message):
    MMTYPE = CM_START_ATTEN_CHAR_IND
    FORMAT = struct.Struct("<BBBBB6s8s")
    application_type: int
    security_type: int
    num_sounds: int
    time_out: int
    resp_type: int
    forwarding_sta: bytes
    run_id: bytes


@dataclass(frozen=True, slots=True)
class MnbcSoundInd(Message):
    MMTYPE = CM_MNBC_SOUND_IND
    FORMAT = struct.Struct("<BB17sB8s8s16s")
    application_type: int
    security_type: int
    sender_id: bytes
    count: int  # sounds still to come
    run_id: bytes
    reserved: bytes
    rnd: bytes


class _Groups:
    """Messages ending in NumGroups + that many attenuation bytes."""

    @staticmethod
    def check(groups: tuple[int, ...]) -> bool:
        return 0 < len(groups) <= ATTEN_GROUPS and all(0 <= g <= 255 for g in groups)


@dataclass(frozen=True, slots=True)
class AttenProfileInd(Message):
    """From the local modem: the attenuation it measured on one M-sound of `pev_mac`."""

    MMTYPE = CM_ATTEN_PROFILE_IND
    FORMAT = struct.Struct("<6sBB")
    pev_mac: bytes
    groups: tuple[int, ...]

    def encode_payload(self) -> bytes:
        if not _Groups.check(self.groups):
            raise MessageError("AttenProfileInd: 1..58 groups of 0..255")
        return self.FORMAT.pack(self.pev_mac, len(self.groups), 0) + bytes(self.groups)

    @classmethod
    def payload_len(cls, data: bytes) -> int | None:
        if len(data) < cls.FORMAT.size:
            return None
        return cls.FORMAT.size + data[6]

    @classmethod
    def decode_payload(cls, data: bytes) -> Message | None:
        mac, n, _rsvd = cls.FORMAT.unpack_from(data)
        return cls(mac, tuple(data[cls.FORMAT.size:cls.FORMAT.size + n]))

    def valid(self) -> bool:
        return _Groups.check(self.groups)


@dataclass(frozen=True, slots=True)
class AttenCharInd(Message):
    MMTYPE = CM_ATTEN_CHAR_IND
    FORMAT = struct.Struct("<BB6s8s17s17sBB")
    application_type: int
    security_type: int
    source_address: bytes  # the EV's MAC
    run_id: bytes
    source_id: bytes
    resp_id: bytes
    num_sounds: int
    groups: tuple[int, ...]

    def encode_payload(self) -> bytes:
        if not _Groups.check(self.groups):
            raise MessageError("AttenCharInd: 1..58 groups of 0..255")
        head = self.FORMAT.pack(self.application_type, self.security_type,
                                self.source_address, self.run_id, self.source_id,
                                self.resp_id, self.num_sounds, len(self.groups))
        return head + bytes(self.groups)

    @classmethod
    def payload_len(cls, data: bytes) -> int | None:
        if len(data) < cls.FORMAT.size:
            return None
        return cls.FORMAT.size + data[cls.FORMAT.size - 1]

    @classmethod
    def decode_payload(cls, data: bytes) -> Message | None:
        app, sec, source, run_id, source_id, resp_id, sounds, n = cls.FORMAT.unpack_from(data)
        return cls(app, sec, source, run_id, source_id, resp_id, sounds,
                   tuple(data[cls.FORMAT.size:cls.FORMAT.size + n]))

    def valid(self) -> bool:
        return _Groups.check(self.groups)


@dataclass(frozen=True, slots=True)
class AttenCharRsp(Message):
    MMTYPE = CM_ATTEN_CHAR_RSP
    FORMAT = struct.Struct("<BB6s8s17s17sB")
    application_type: int
    security_type: int
    source_address: bytes
    run_id: bytes
    source_id: bytes
    resp_id: bytes
    result: int  # 0 = success


@dataclass(frozen=True, slots=True)
class ValidateReq(Message):
    MMTYPE = CM_VALIDATE_REQ
    FORMAT = struct.Struct("<BBB")
    signal_type: int
    timer: int
    result: int


@dataclass(frozen=True, slots=True)
class ValidateCnf(Message):
    MMTYPE = CM_VALIDATE_CNF
    FORMAT = struct.Struct("<BBB")
    signal_type: int
    toggle_num: int
    result: int


@dataclass(frozen=True, slots=True)
class SlacMatchReq(Message):
    MMTYPE = CM_SLAC_MATCH_REQ
    FORMAT = struct.Struct("<BBH17s6s17s6s8s8s")
    application_type: int
    security_type: int
    mvf_length: int
    pev_id: bytes
    pev_mac: bytes
    evse_id: bytes
    evse_mac: bytes
    run_id: bytes
    reserved: bytes = Z8

    def valid(self) -> bool:
        return self.mvf_length == MATCH_REQ_MVF_LENGTH


@dataclass(frozen=True, slots=True)
class SlacMatchCnf(Message):
    MMTYPE = CM_SLAC_MATCH_CNF
    FORMAT = struct.Struct("<BBH17s6s17s6s8s8s7sB16s")
    application_type: int
    security_type: int
    mvf_length: int
    pev_id: bytes
    pev_mac: bytes
    evse_id: bytes
    evse_mac: bytes
    run_id: bytes
    reserved: bytes
    nid: bytes
    reserved2: int
    nmk: bytes

    def valid(self) -> bool:
        return self.mvf_length == MATCH_CNF_MVF_LENGTH


KEY_TYPE_NMK = 0x01
PID_HLE = 0x04  # protocol id: key set by a higher layer entity (the host)
CCO_CAPABILITY_NONE = 0x00


@dataclass(frozen=True, slots=True)
class SetKeyReq(Message):
    """To the local modem: join/form the AVLN of this NMK/NID (HomePlug AV CM_SET_KEY)."""

    MMTYPE = CM_SET_KEY_REQ
    FORMAT = struct.Struct("<B4s4sBHBB7sB16s")
    key_type: int
    my_nonce: bytes
    your_nonce: bytes
    pid: int
    prn: int
    pmn: int
    cco_capability: int
    nid: bytes
    new_eks: int
    new_key: bytes


@dataclass(frozen=True, slots=True)
class SetKeyCnf(Message):
    MMTYPE = CM_SET_KEY_CNF
    FORMAT = struct.Struct("<B4s4sBHBB")
    result: int  # 0 = success
    my_nonce: bytes
    your_nonce: bytes
    pid: int
    prn: int
    pmn: int
    cco_capability: int


MESSAGES: dict[int, type[Message]] = {
    cls.MMTYPE: cls for cls in (
        SlacParmReq, SlacParmCnf, StartAttenCharInd, MnbcSoundInd, AttenProfileInd,
        AttenCharInd, AttenCharRsp, ValidateReq, ValidateCnf, SlacMatchReq, SlacMatchCnf,
        SetKeyReq, SetKeyCnf,
    )
}


@dataclass(frozen=True, slots=True)
class Frame:
    dst: bytes
    src: bytes
    message: Message


def encode_frame(dst: bytes, src: bytes, message: Message) -> bytes:
    if len(dst) != 6 or len(src) != 6:
        raise MessageError("MAC addresses are 6 bytes")
    payload = message.encode_payload()
    head = dst + src + struct.pack("!HB", ETHERTYPE_HOMEPLUG, MMV) \
        + struct.pack("<HH", message.MMTYPE, 0)
    frame = head + payload
    return frame + b"\0" * (MIN_FRAME_LEN - len(frame)) if len(frame) < MIN_FRAME_LEN \
        else frame


def peek_mmtype(data: bytes) -> int | None:
    """The MMTYPE of a HomePlug MMV 1 frame, or None (to tell ignored types apart)."""
    if len(data) < HEADER_LEN or data[12:15] != b"\x88\xe1\x01":
        return None
    return int.from_bytes(data[15:17], "little")


def decode_frame(data: bytes) -> Frame | None:
    """A received frame -> `Frame`, or None if it is not a well-formed SLAC/key MME."""
    try:
        mmtype = peek_mmtype(data)
        if mmtype is None or data[17:19] != b"\0\0":  # no fragmented MMEs in SLAC
            return None
        cls = MESSAGES.get(mmtype)
        if cls is None:
            return None
        payload = data[HEADER_LEN:]
        need = cls.payload_len(payload)
        if need is None or len(payload) < need:
            return None
        if len(data) > max(HEADER_LEN + need, MIN_FRAME_LEN):
            return None
        message = cls.decode_payload(payload[:need])
        if message is None or not message.valid():
            return None
        return Frame(bytes(data[0:6]), bytes(data[6:12]), message)
    except (struct.error, ValueError, IndexError, TypeError):  # defence in depth
        return None


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_bytes(text: str) -> bytes:
    raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return raw
