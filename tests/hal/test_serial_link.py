"""`SerialLink` and `SerialBoard` against a scripted MCU on an in-memory transport, on a fake
clock: every link loss reaches the board (and stays reported until acknowledged), the host
never re-closes the contactors by itself, and the host's own status age bounds loss
detection whatever the MCU announces."""

from __future__ import annotations

import pytest

from hal.backends.serial import LinkState, SerialLink
from hal.backends.serial.backend import LinkLossNotAcknowledged, SerialBoard
from hal.backends.serial.framing import FrameDecoder, encode_frame
from hal.backends.serial.protocol import (
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Ack,
    AckResult,
    ErrorFlags,
    ErrorReport,
    EstopFlags,
    Features,
    HelloReply,
    McuState,
    MsgType,
    PilotCode,
    Status,
    pack_body,
    unpack_body,
)


class MemoryTransport:
    def __init__(self) -> None:
        self.rx = bytearray()  # MCU -> host
        self.tx = bytearray()  # host -> MCU

    def read(self) -> bytes:
        data, self.rx = bytes(self.rx), bytearray()
        return data

    def write(self, data: bytes) -> int:
        self.tx += data
        return len(data)

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


class ScriptedMcu:
    """Writes MCU frames into the transport and reads what the host sent."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.t = transport
        self.seq = 0
        self.decoder = FrameDecoder()
        self.contactors = False

    def frame(self, msg_type: int, payload: bytes = b"") -> None:
        self.seq += 1
        self.t.rx += b"\x00" + encode_frame(pack_body(msg_type, self.seq, payload))

    def hello_reply(
        self, major: int = PROTOCOL_MAJOR, interval_ms: int = 100, firmware: str = "fw 1"
    ) -> None:
        reply = HelloReply(major, PROTOCOL_MINOR, Features.CONTACTOR_FEEDBACK, 500, interval_ms,
                           50, firmware)
        self.frame(MsgType.HELLO_REPLY, reply.pack())

    def status(self) -> None:
        status = Status(McuState.ACTIVE, PilotCode.C, 50, 32, self.contactors, self.contactors,
                        EstopFlags(0), ErrorFlags(0), 0, 0)
        self.frame(MsgType.STATUS, status.pack())

    def received(self) -> list[tuple[MsgType, int, bytes]]:
        """The host's frames since the last call; ACKs every command (OK)."""
        out = []
        data, self.t.tx = bytes(self.t.tx), bytearray()
        for body in self.decoder.feed(data):
            raw, seq, payload = unpack_body(body)
            msg_type = MsgType(raw)
            out.append((msg_type, seq, payload))
            if msg_type is MsgType.SET_CONTACTORS:
                self.contactors = payload == b"\x01"
            if msg_type in (MsgType.SET_CONTACTORS, MsgType.SET_PWM):
                self.frame(MsgType.ACK, Ack(seq, msg_type, AckResult.OK).pack())
        return out


def make(**options: float) -> tuple[SerialLink, SerialBoard, ScriptedMcu]:
    transport = MemoryTransport()
    link = SerialLink(transport, **options)  # type: ignore[arg-type]
    return link, SerialBoard(link), ScriptedMcu(transport)


def connect(link: SerialLink, mcu: ScriptedMcu, now: float = 0.0) -> float:
    link.poll(now)  # HELLO out
    assert [m for m, _, _ in mcu.received()] == [MsgType.HELLO]
    mcu.hello_reply()
    mcu.status()
    link.poll(now + 0.01)
    assert link.state is LinkState.UP
    mcu.received()  # SET_PWM, SET_CONTACTORS(open): ACKed
    mcu.status()
    link.poll(now + 0.02)
    return now + 0.02


def closed_contactors(link: SerialLink, board: SerialBoard, mcu: ScriptedMcu) -> float:
    t = connect(link, mcu)
    board.close_contactors()
    assert mcu.contactors is False
    mcu.received()
    assert mcu.contactors is True
    mcu.status()
    t += 0.01
    link.poll(t)
    assert board.contactors_closed and board.fault is None
    return t


# ---- item 10: every link loss reaches the board -------------------------------------------


def test_another_protocol_version_while_up_is_a_link_loss() -> None:
    link, board, mcu = make()
    t = closed_contactors(link, board, mcu)
    mcu.hello_reply(major=PROTOCOL_MAJOR + 1)
    link.poll(t + 0.01)
    losses = [e.text for e in link.events if e.kind == "lost"]
    assert len(losses) == 1 and "HELLO_REPLY" in losses[0]
    assert link.stats.link_losses == 1
    assert link.state is LinkState.INCOMPATIBLE
    assert not board.contactors_commanded_closed
    assert board.fault is not None and "protocol" in board.fault


def test_reconnect_after_a_version_change_never_recloses_the_contactors() -> None:
    """The incident: version change, then a handshake with the old version (the MCU opened
    its contactors), all inside one poll. The host must not close them again and the board
    must still report the loss."""
    link, board, mcu = make()
    t = closed_contactors(link, board, mcu)
    mcu.hello_reply(major=PROTOCOL_MAJOR + 1)
    link.poll(t + 0.01)
    sent = mcu.received()
    assert MsgType.HELLO in [m for m, _, _ in sent]  # the host starts over
    mcu.contactors = False  # a HELLO makes the MCU open them
    mcu.hello_reply()
    mcu.status()
    link.poll(t + 0.02)
    assert link.state is LinkState.UP
    for _ in range(20):  # a second of polls after the reconnect
        t += 0.05
        for msg_type, _, payload in mcu.received():
            assert not (msg_type is MsgType.SET_CONTACTORS and payload == b"\x01")
        mcu.status()
        link.poll(t)
    assert mcu.contactors is False
    assert link.up
    assert board.fault is not None and "HELLO_REPLY" in board.fault  # latched
    with pytest.raises(LinkLossNotAcknowledged):
        board.close_contactors()
    assert board.acknowledge_link_loss()
    assert board.fault is None
    board.close_contactors()  # control asks again: now it goes out
    mcu.received()
    assert mcu.contactors is True


def test_a_loss_and_reconnect_between_two_polls_is_still_reported() -> None:
    link, board, mcu = make()
    t = closed_contactors(link, board, mcu)
    mcu.hello_reply(interval_ms=50, firmware="fw 2")  # same major, other MCU session
    link.poll(t + 0.01)
    assert link.stats.link_losses == 1
    assert link.state is LinkState.CONNECTING  # a fresh HELLO must be answered first
    mcu.received()
    mcu.hello_reply(interval_ms=50, firmware="fw 2")
    mcu.status()
    link.poll(t + 0.02)
    assert link.up and link.stats.handshakes == 2
    assert board.fault is not None  # the board still says so


def test_unsolicited_reply_in_the_same_read_as_the_loss_does_not_bring_the_link_up() -> None:
    link, board, mcu = make()
    t = closed_contactors(link, board, mcu)
    mcu.hello_reply(firmware="other")
    mcu.hello_reply(firmware="other")  # no HELLO of the host asked for this one
    link.poll(t + 0.01)
    assert link.state is LinkState.CONNECTING
    assert link.stats.handshakes == 1


def test_duplicate_reply_to_a_repeated_hello_is_not_a_loss() -> None:
    link, board, mcu = make(hello_interval=0.25)
    link.poll(0.0)
    link.poll(0.3)  # no answer yet: HELLO again
    assert [m for m, _, _ in mcu.received()] == [MsgType.HELLO, MsgType.HELLO]
    mcu.hello_reply()
    mcu.status()
    link.poll(0.31)
    assert link.up
    mcu.hello_reply()  # the answer to the second HELLO
    mcu.status()
    link.poll(0.32)
    assert link.up and link.stats.link_losses == 0
    assert link.stats.duplicate_hello_replies == 1
    mcu.hello_reply()  # a third one was never asked for: the MCU restarted its session
    link.poll(0.33)
    assert link.stats.link_losses == 1 and board.fault is not None


def test_mcu_state_other_than_active_is_a_latched_loss() -> None:
    link, board, mcu = make()
    t = closed_contactors(link, board, mcu)
    status = Status(McuState.WAIT_HELLO, PilotCode.F, 0, 0, False, False, EstopFlags(0),
                    ErrorFlags(0), 0, 0)  # the MCU was reset
    mcu.frame(MsgType.STATUS, status.pack())
    link.poll(t + 0.01)
    assert link.stats.link_losses == 1
    assert not board.contactors_commanded_closed
    assert board.fault is not None and "WAIT_HELLO" in board.fault


# ---- item 11: the host's own status age ----------------------------------------------------


def test_status_age_is_the_hosts_not_the_mcus() -> None:
    link, board, mcu = make()
    t = closed_contactors(link, board, mcu)
    last_status = t
    # The MCU keeps talking (reports, unknown types), but sends no STATUS any more; an
    # e-stop inside the missing STATUS frames must not go unnoticed for long.
    while link.up and t < last_status + 5.0:
        t += 0.05
        mcu.frame(MsgType.ERROR_REPORT, ErrorReport(99, 0, "chatter").pack())
        mcu.frame(0x7E, b"\x01")
        link.poll(t)
    assert not link.up
    assert t - last_status == pytest.approx(link.max_status_age, abs=0.051)
    assert "STATUS" in (board.fault or "")
    assert not board.contactors_commanded_closed


def test_only_status_frames_refresh_the_status_age() -> None:
    link, _, mcu = make(max_status_age_s=1.0)
    t = connect(link, mcu)
    mcu.status()
    link.poll(t)
    age0 = link.status_age(t)
    assert age0 == pytest.approx(0.0)
    mcu.frame(MsgType.ERROR_REPORT, ErrorReport(99, 0, "x").pack())
    mcu.frame(0x7E, b"")
    link.poll(t + 0.4)
    assert link.status_age(t + 0.4) == pytest.approx(0.4)
    mcu.status()
    link.poll(t + 0.5)
    assert link.status_age(t + 0.5) == pytest.approx(0.0)


@pytest.mark.parametrize("age", [0.5, 1.0])
def test_max_status_age_comes_from_the_configuration(age: float) -> None:
    link, _, mcu = make(max_status_age_s=age, mcu_timeout=5.0, keepalive_interval=0.1)
    t = connect(link, mcu)
    start = t
    while link.up and t < start + 3.0:
        t += 0.01
        mcu.frame(0x7E, b"")  # any other valid frame: the line is alive
        link.poll(t)
    assert t - start == pytest.approx(age, abs=0.011)


@pytest.mark.parametrize("interval_ms", [65535, 251, 9, 0])
def test_announced_status_interval_outside_the_sane_range_fails_the_handshake(
    interval_ms: int,
) -> None:
    link, board, mcu = make()  # max_status_age_s 0.5: intervals 10..250 ms
    link.poll(0.0)
    mcu.received()
    mcu.hello_reply(interval_ms=interval_ms)
    mcu.status()
    link.poll(0.01)
    assert link.state is LinkState.INCOMPATIBLE
    assert link.stats.handshakes == 0 and link.stats.handshakes_refused == 1
    assert f"{interval_ms} ms" in (board.fault or "") and "10..250 ms" in (board.fault or "")
    # ... and the host keeps asking (an MCU fixed or updated is picked up)
    link.poll(0.3)
    assert MsgType.HELLO in [m for m, _, _ in mcu.received()]
    mcu.hello_reply(interval_ms=100)
    mcu.status()
    link.poll(0.31)
    assert link.up and board.fault is None


def test_a_longer_status_age_admits_a_longer_interval() -> None:
    link, _, mcu = make(max_status_age_s=2.0, mcu_timeout=2.0)
    link.poll(0.0)
    mcu.received()
    mcu.hello_reply(interval_ms=1000)
    link.poll(0.01)
    assert link.up


def test_the_interval_must_also_fit_the_silence_timeout() -> None:
    link, board, mcu = make(max_status_age_s=2.0)  # mcu_timeout 0.5 s: 250 ms at most
    link.poll(0.0)
    mcu.received()
    mcu.hello_reply(interval_ms=1000)
    link.poll(0.01)
    assert link.state is LinkState.INCOMPATIBLE
    assert "10..250 ms" in (board.fault or "")


@pytest.mark.parametrize("age", [0.0, 0.01, -1.0, 61.0, float("nan")])
def test_bad_max_status_age_is_refused(age: float) -> None:
    with pytest.raises(ValueError, match="max_status_age_s"):
        SerialLink(MemoryTransport(), max_status_age_s=age)


def test_mcu_timeout_is_not_stretched_by_the_announced_interval() -> None:
    link, _, mcu = make(max_status_age_s=2.0, mcu_timeout=2.0)
    link.poll(0.0)
    mcu.received()
    mcu.hello_reply(interval_ms=1000)
    link.poll(0.01)
    assert link.up and link.mcu_timeout == 2.0  # not 3 x 1000 ms
