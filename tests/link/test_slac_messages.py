"""SLAC MMEs byte-exact both ways, and strict decoding of untrusted frames."""

from __future__ import annotations

import random

import pytest

from evse.link import slac_messages as m
from evse.link.keys import nid_from_nmk

EV = bytes.fromhex("0a0b0c0d0e0f")
EVSE = bytes.fromhex("020000000001")
RUN = bytes.fromhex("0102030405060708")


def test_parm_req_is_byte_exact() -> None:
    frame = m.encode_frame(m.BROADCAST, EV, m.SlacParmReq(0, 0, RUN))
    # dst, src, ethertype 88e1, MMV 01, MMTYPE 6064 little endian, FMI 0000, payload
    head = "ffffffffffff" "0a0b0c0d0e0f" "88e1" "01" "6460" "0000"
    assert frame.hex() == head + "0000" + RUN.hex() + "00" * (60 - 19 - 10)
    assert len(frame) == 60
    decoded = m.decode_frame(frame)
    assert decoded == m.Frame(m.BROADCAST, EV, m.SlacParmReq(0, 0, RUN))


def test_match_cnf_is_byte_exact() -> None:
    nmk = bytes(range(16))
    nid = nid_from_nmk(nmk)
    cnf = m.SlacMatchCnf(0, 0, 0x56, b"\x11" * 17, EV, b"\x22" * 17, EVSE, RUN, m.Z8, nid, 0,
                         nmk)
    frame = m.encode_frame(EV, EVSE, cnf)
    assert len(frame) == 19 + 90
    assert frame[15:17] == b"\x7d\x60" and frame[19:23] == b"\x00\x00\x56\x00"
    assert frame[-16:] == nmk and frame[-24:-17] == nid
    assert m.decode_frame(frame) == m.Frame(EV, EVSE, cnf)


def test_set_key_req_layout() -> None:
    nmk = bytes(16)
    req = m.SetKeyReq(1, b"\xaa" * 4, b"\0" * 4, 4, 0, 0, 0, b"\x33" * 7, 1, nmk)
    frame = m.encode_frame(m.QCA_LOCAL_MAC, EVSE, req)
    assert frame[15:17] == b"\x08\x60" and len(frame) == 60
    payload = frame[19:19 + 38]
    assert payload.hex() == "01" + "aa" * 4 + "00" * 4 + "04" + "0000" + "00" + "00" \
        + "33" * 7 + "01" + "00" * 16


ALL = [
    m.SlacParmReq(0, 0, RUN),
    m.SlacParmCnf(m.BROADCAST, 10, 6, 1, EV, 0, 0, RUN),
    m.StartAttenCharInd(0, 0, 10, 6, 1, EV, RUN),
    m.MnbcSoundInd(0, 0, m.Z17, 9, RUN, m.Z8, bytes(range(16))),
    m.AttenProfileInd(EV, tuple(range(58))),
    m.AttenCharInd(0, 0, EV, RUN, m.Z17, m.Z17, 10, tuple(range(100, 158))),
    m.AttenCharRsp(0, 0, EV, RUN, m.Z17, m.Z17, 0),
    m.ValidateReq(0, 0, 1),
    m.ValidateCnf(0, 0, m.VALIDATE_FAILURE),
    m.SlacMatchReq(0, 0, 0x3E, m.Z17, EV, m.Z17, EVSE, RUN),
    m.SlacMatchCnf(0, 0, 0x56, m.Z17, EV, m.Z17, EVSE, RUN, m.Z8, b"\1" * 7, 0, b"\2" * 16),
    m.SetKeyReq(1, b"\1" * 4, b"\0" * 4, 4, 0, 0, 0, b"\1" * 7, 1, b"\2" * 16),
    m.SetKeyCnf(0, b"\1" * 4, b"\2" * 4, 4, 0, 0, 0),
]


@pytest.mark.parametrize("msg", ALL, ids=lambda msg: type(msg).__name__)
def test_every_message_round_trips(msg: m.Message) -> None:
    frame = m.encode_frame(EV, EVSE, msg)
    assert m.decode_frame(frame) == m.Frame(EV, EVSE, msg)
    assert m.peek_mmtype(frame) == msg.MMTYPE
    need = 19 + len(msg.encode_payload())
    # one byte short is dropped; so is one byte beyond the padding
    assert m.decode_frame(frame[:need - 1]) is None
    assert m.decode_frame(frame + b"\0" * (max(need, 60) - len(frame) + 1)) is None


def test_wrong_header_fields_are_dropped() -> None:
    good = m.encode_frame(EV, EVSE, m.SlacParmReq(0, 0, RUN))
    for offset, value in ((12, 0x88), (13, 0xE2), (14, 0x00), (15, 0x99), (17, 0x01)):
        bad = bytearray(good)
        bad[offset] = value if bad[offset] != value else value ^ 1
        assert m.decode_frame(bytes(bad)) is None, offset
    match = bytearray(m.encode_frame(EV, EVSE, ALL[9]))
    match[21] = 0x3F  # MVFLength
    assert m.decode_frame(bytes(match)) is None
    prof = bytearray(m.encode_frame(EV, EVSE, ALL[4]))
    prof[19 + 6] = 59  # more groups than Green PHY has
    assert m.decode_frame(bytes(prof)) is None
    prof[19 + 6] = 0
    assert m.decode_frame(bytes(prof)) is None


def test_random_garbage_never_raises() -> None:
    rng = random.Random(15118)
    seeds = [m.encode_frame(EV, EVSE, msg) for msg in ALL]
    for _ in range(5000):
        base = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        cut = rng.randint(0, len(base) + 4)
        data = bytes(base[:cut]) + bytes(rng.randrange(256) for _ in range(max(0, cut - len(base))))
        frame = m.decode_frame(data)
        assert frame is None or isinstance(frame.message, m.Message)


def test_nid_derivation_matches_the_homeplug_default_network() -> None:
    # the NMK of the HomePlug AV default password "HomePlugAV" gives the well-known
    # default NID b0f2e695666b03 (security level 0)
    nmk = bytes.fromhex("50d3e4933f855b7040784df815aa8db7")
    assert nid_from_nmk(nmk).hex() == "b0f2e695666b03"
    assert nid_from_nmk(nmk)[-1] & 0xF0 == 0  # security level bits clear
    assert nid_from_nmk(nmk, 1)[-1] == 0x13
    with pytest.raises(ValueError):
        nid_from_nmk(b"short")
