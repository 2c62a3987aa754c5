"""A simulated car doing SLAC (the EV side of ISO 15118-3), with ways to misbehave.

    result = await ev_slac(transport, EvSlacBehaviour())   # EvSlacResult or EvSlacFailed

The car broadcasts CM_SLAC_PARM.REQ (repeated while unanswered), CM_START_ATTEN_CHAR.IND x3
and the M-sounds, waits for CM_ATTEN_CHAR.IND, answers CM_ATTEN_CHAR.RSP, asks
CM_SLAC_MATCH.REQ and takes NID/NMK from CM_SLAC_MATCH.CNF; optionally it then broadcasts
its own CM_SET_KEY.REQ to its modem (as real cars do; the charger must ignore it).
Behaviours for the charger's tests: a car that never answers CM_ATTEN_CHAR.IND, answers it
late, uses a wrong RunID after the parameter exchange, or validates (CM_VALIDATE.REQ).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from evse.aio.slac_link import FrameTransport
from evse.link import slac_messages as m
from evse.link.keys import nid_from_nmk


class EvSlacFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class EvSlacBehaviour:
    sounds: int = 10
    start_atten_repeats: int = 3
    batch_interval: float = 0.02  # between START_ATTEN_CHAR / sound messages (20-50 ms)
    response_timeout: float = 0.2  # TT_match_response, for PARM.CNF and MATCH.CNF
    atten_results_timeout: float = 1.2  # TT_EV_atten_results
    retries: int = 3  # requests sent while unanswered
    answer_atten_char: bool = True  # False: a car that never answers
    atten_rsp_delay: float = 0.0  # answer CM_ATTEN_CHAR.IND this late
    wrong_run_id: bool = False  # RSP and MATCH.REQ with another RunID
    validate: bool = False  # send CM_VALIDATE.REQ before the match
    own_set_key: bool = True  # broadcast CM_SET_KEY.REQ to "our" modem after the match

    def scaled(self, factor: float) -> EvSlacBehaviour:
        """Looser timeouts for loaded machines."""
        return replace(self, response_timeout=self.response_timeout * factor,
                       atten_results_timeout=self.atten_results_timeout * factor)


@dataclass(frozen=True, slots=True)
class EvSlacResult:
    evse_mac: bytes
    run_id: bytes
    nid: bytes
    nmk: bytes
    validate_result: int | None = None


async def _expect(transport: FrameTransport, timeout: float,
                  match: Callable[[m.Frame], bool]) -> m.Frame | None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while (left := end - loop.time()) > 0:
        try:
            data = await asyncio.wait_for(transport.receive(), left)
        except TimeoutError:
            return None
        frame = m.decode_frame(data)
        if frame is not None and frame.dst in (transport.mac, m.BROADCAST) and match(frame):
            return frame
    return None


async def _ask(transport: FrameTransport, frame: bytes, b: EvSlacBehaviour,
               match: Callable[[m.Frame], bool], what: str) -> m.Frame:
    for _ in range(b.retries):
        transport.send(frame)
        answer = await _expect(transport, b.response_timeout, match)
        if answer is not None:
            return answer
    raise EvSlacFailed(f"no {what}")


async def ev_slac(transport: FrameTransport, behaviour: EvSlacBehaviour | None = None, *,
                  run_id: bytes | None = None) -> EvSlacResult:
    b = behaviour or EvSlacBehaviour()
    mac = transport.mac
    run = run_id or os.urandom(8)

    def ours(kind: type[m.Message]) -> Callable[[m.Frame], bool]:
        return lambda f: isinstance(f.message, kind) and getattr(f.message, "run_id", run) == run

    parm = m.encode_frame(m.BROADCAST, mac, m.SlacParmReq(0, 0, run))
    cnf = await _ask(transport, parm, b, ours(m.SlacParmCnf), "CM_SLAC_PARM.CNF")
    assert isinstance(cnf.message, m.SlacParmCnf)
    evse = cnf.src
    start = m.StartAttenCharInd(0, 0, b.sounds, cnf.message.time_out, 1, mac, run)
    for _ in range(b.start_atten_repeats):
        transport.send(m.encode_frame(m.BROADCAST, mac, start))
        await asyncio.sleep(b.batch_interval)
    for left in range(b.sounds - 1, -1, -1):
        sound = m.MnbcSoundInd(0, 0, m.Z17, left, run, m.Z8, os.urandom(16))
        transport.send(m.encode_frame(m.BROADCAST, mac, sound))
        await asyncio.sleep(b.batch_interval)
    ind = await _expect(transport, b.atten_results_timeout, ours(m.AttenCharInd))
    if ind is None:
        raise EvSlacFailed("no CM_ATTEN_CHAR.IND")
    if not b.answer_atten_char:
        raise EvSlacFailed("told not to answer CM_ATTEN_CHAR.IND")
    if b.atten_rsp_delay:
        await asyncio.sleep(b.atten_rsp_delay)
    used = bytes(x ^ 0xFF for x in run) if b.wrong_run_id else run
    transport.send(m.encode_frame(evse, mac, m.AttenCharRsp(0, 0, mac, used, m.Z17, m.Z17, 0)))
    validate_result = None
    if b.validate:
        vreq = m.encode_frame(evse, mac, m.ValidateReq(0, 0, 1))
        vcnf = await _ask(transport, vreq, b, lambda f: isinstance(f.message, m.ValidateCnf),
                          "CM_VALIDATE.CNF")
        assert isinstance(vcnf.message, m.ValidateCnf)
        validate_result = vcnf.message.result
    req = m.encode_frame(evse, mac, m.SlacMatchReq(0, 0, m.MATCH_REQ_MVF_LENGTH, m.Z17, mac,
                                                   m.Z17, evse, used))
    match = await _ask(transport, req, b, lambda f: isinstance(f.message, m.SlacMatchCnf)
                       and f.message.run_id == used, "CM_SLAC_MATCH.CNF")
    assert isinstance(match.message, m.SlacMatchCnf)
    nmk, nid = match.message.nmk, match.message.nid
    if nid != nid_from_nmk(nmk):
        raise EvSlacFailed("the NID does not belong to the NMK")
    if b.own_set_key:  # to our own modem, as a real car does: not for the charger
        transport.send(m.encode_frame(m.BROADCAST, mac, m.SetKeyReq(
            1, os.urandom(4), bytes(4), 4, 0, 0, 0, nid, 1, nmk)))
    return EvSlacResult(evse, run, nid, nmk, validate_result)
