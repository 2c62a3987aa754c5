"""The `serial` backend against the simulated MCU over a real pty, on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hal_rigs import SerialRig

from hal.backends.serial import LinkState, SerialBackend
from hal.backends.serial.backend import LinkLossNotAcknowledged
from hal.backends.serial.protocol import (
    PROTOCOL_MAJOR,
    ErrorCode,
    ErrorFlags,
    Features,
    McuState,
    MsgType,
    PilotCode,
)
from hal.interfaces import EmergencyStopActive, PilotState
from hal.registry import create_backend
from simulators.mcu import PtyPair, SimulatedMcu


@pytest.fixture
def rig() -> Iterator[SerialRig]:
    r = SerialRig()
    yield r
    r.close()


def up(rig: SerialRig) -> None:
    link = rig.serial.link
    rig.run(1.0, until=lambda: link.up and link.status is not None and not link.pending)
    assert link.up and not link.pending


def test_handshake_reports_the_mcu_capabilities(rig: SerialRig) -> None:
    up(rig)
    hello = rig.serial.link.hello
    assert hello is not None
    assert hello.firmware_id == "sim-mcu 1.0.0"
    assert hello.major == PROTOCOL_MAJOR
    assert Features.HOST_EMERGENCY_STOP in hello.features
    assert rig.mcu.state is McuState.ACTIVE
    assert rig.serial.board.fault is None
    assert rig.serial.link.stats.handshakes == 1


def test_registry_opens_a_port_by_name() -> None:
    with PtyPair() as pty:
        backend = create_backend("serial", port=pty.port)
        assert isinstance(backend, SerialBackend)
        backend.poll(0.0)
        assert backend.link_state is LinkState.CONNECTING
        backend.close()


def test_pilot_pwm_and_proximity(rig: SerialRig) -> None:
    up(rig)
    assert rig.board.pilot_state is PilotState.A
    assert rig.board.proximity_current_rating is None  # type: ignore[attr-defined]
    rig.mcu.ev_pilot = PilotCode.B
    rig.mcu.pp_current_a = 32
    rig.board.set_pwm_duty(5.0)
    rig.run(0.1)
    assert rig.mcu.pwm_output == 50
    assert rig.board.pilot_state is PilotState.B
    assert rig.board.proximity_current_rating == 32.0  # type: ignore[attr-defined]
    rig.mcu.ev_pilot = PilotCode.C
    rig.run(0.2)
    assert rig.board.pilot_state is PilotState.C
    rig.board.set_pwm_duty(0.0)
    rig.run(0.1)
    assert rig.board.pilot_state is PilotState.F


def test_commands_are_acknowledged(rig: SerialRig) -> None:
    up(rig)
    stats = rig.serial.link.stats
    acks = stats.acks
    rig.board.close_contactors()
    assert rig.serial.link.pending  # sent, not yet acknowledged
    rig.run(0.1, until=lambda: not rig.serial.link.pending)
    assert stats.acks == acks + 1
    assert rig.mcu.contactors_commanded
    rig.run(0.1)
    assert rig.board.contactors_closed
    assert stats.retransmissions == 0 and stats.naks == 0


def test_lost_command_is_retransmitted_with_the_same_seq(rig: SerialRig) -> None:
    up(rig)
    rig.mcu.deaf = True
    rig.board.set_pwm_duty(5.0)
    rig.run(0.15)  # one ack timeout passes: the command goes out again
    (seq,) = rig.serial.link.pending
    rig.mcu.deaf = False
    rig.serial.link.pending[seq].last_sent = -1.0  # make the retry due now
    rig.run(0.1, until=lambda: not rig.serial.link.pending)
    assert rig.serial.link.stats.retransmissions >= 2
    assert rig.mcu.pwm_output == 50
    # The MCU got the command twice but executed it once (ACKed both).
    assert rig.mcu.stats.duplicate_commands >= 1 or rig.mcu.stats.commands == 1


def test_unacknowledged_command_means_the_link_is_lost(rig: SerialRig) -> None:
    up(rig)
    rig.mcu.deaf = True  # hears nothing, still talks
    rig.board.close_contactors()
    rig.run(1.0, until=lambda: not rig.serial.link.up)
    link = rig.serial.link
    assert link.stats.commands_failed == 1
    assert any(e.kind == "command_failed" for e in link.events)
    assert not rig.board.contactors_commanded_closed  # falls back to the MCU's safe state


def test_silent_mcu_is_a_fault_and_the_link_recovers(rig: SerialRig) -> None:
    up(rig)
    rig.board.set_pwm_duty(5.0)
    rig.board.close_contactors()
    rig.run(0.2)
    rig.mcu.silent = True
    t0 = rig.t
    rig.run(2.0, until=lambda: rig.board.fault is not None)  # type: ignore[attr-defined]
    assert "silent" in rig.board.fault  # type: ignore[attr-defined, operator]
    assert rig.t - t0 <= rig.serial.link.mcu_timeout + 0.05
    assert rig.serial.link.stats.link_losses == 1
    assert not rig.board.contactors_commanded_closed
    assert rig.board.pilot_state is PilotState.F
    # The host says HELLO again; the MCU, hearing it, went to its safe state.
    rig.run(0.3)
    assert not rig.mcu.contactors_commanded
    rig.mcu.silent = False
    rig.run(1.0, until=lambda: rig.serial.link.up)
    assert rig.serial.link.stats.handshakes == 2
    # The loss stays reported (and closing refused) until control acknowledges it.
    assert "silent" in (rig.board.fault or "")  # type: ignore[attr-defined]
    with pytest.raises(LinkLossNotAcknowledged):
        rig.board.close_contactors()
    rig.serial.acknowledge_faults(rig.t)
    assert rig.board.fault is None  # type: ignore[attr-defined]
    rig.board.close_contactors()  # control commands again: nothing re-closed by itself
    rig.run(0.2)
    assert rig.board.contactors_closed


def test_silent_host_puts_the_mcu_in_its_safe_state(rig: SerialRig) -> None:
    up(rig)
    rig.board.set_pwm_duty(5.0)
    rig.board.close_contactors()
    rig.run(0.2)
    assert rig.mcu.contactors_closed and rig.mcu.pwm_output == 50
    # The host stalls: only the MCU runs.
    t = rig.t
    for _ in range(40):
        t += 0.02
        rig.mcu.step(t)
    assert rig.mcu.state is McuState.SAFE_HOST_TIMEOUT
    assert not rig.mcu.contactors_closed
    assert rig.mcu.pwm_output == 0 and rig.mcu.pilot_measured is PilotCode.F
    rig.t = t
    # The host comes back: it reads the MCU's state, counts the link as lost, says HELLO.
    rig.run(1.0, until=lambda: rig.serial.link.stats.handshakes == 2)
    link = rig.serial.link
    assert link.stats.link_losses == 1
    assert any("HOST_TIMEOUT" in e.text for e in link.events)
    assert rig.mcu.state is McuState.ACTIVE
    assert not rig.board.contactors_commanded_closed


def test_crc_errors_garbage_unknown_and_oversized_frames_are_survived(rig: SerialRig) -> None:
    up(rig)
    stats = rig.serial.link.stats
    rig.mcu.corrupt_crc(3)
    rig.run(0.5)  # the next three STATUS frames go out with a bad CRC
    assert stats.framing.crc_errors == 3
    assert rig.serial.link.up  # three lost STATUS frames are within the MCU timeout
    rig.mcu.send_garbage()
    rig.mcu.send_garbage(bytes(range(256)) * 3)
    rig.mcu.send_oversized(1000)
    rig.run(0.1)
    rig.mcu.send_unknown_type(0x7E)
    rig.mcu.send_unknown_type(0x33, b"")
    rig.run(0.1)
    assert stats.framing.crc_errors >= 3
    assert stats.framing.oversized_frames >= 1
    assert stats.framing.cobs_errors + stats.framing.runt_frames >= 1
    assert stats.unknown_types == 2
    assert rig.serial.link.up and rig.board.fault is None  # type: ignore[attr-defined]
    # ... and it still works.
    rig.board.close_contactors()
    rig.run(0.2)
    assert rig.board.contactors_closed


def test_host_garbage_is_survived_by_the_mcu(rig: SerialRig) -> None:
    up(rig)
    rig.serial.link.transport.write(
        b"\x00\x01\x02\x03\xff\xfe\x00" + bytes(range(1, 256)) + b"\x00"
    )
    seen = rig.run(0.2, until=lambda: ErrorFlags.RX_CRC_ERRORS in rig.board.mcu_error_flags)  # type: ignore[attr-defined]
    assert seen < 0.2  # the MCU tells the host it received damaged frames
    assert rig.mcu.stats.framing.errors >= 1
    rig.board.set_pwm_duty(5.0)
    rig.run(0.1)
    assert rig.mcu.pwm_output == 50


def test_welded_contactor_shows_in_the_feedback(rig: SerialRig) -> None:
    up(rig)
    rig.board.close_contactors()
    rig.run(0.2)
    rig.mcu.weld_contactor()
    rig.board.open_contactors()
    rig.run(0.3)
    assert not rig.board.contactors_commanded_closed
    assert rig.board.contactors_closed  # welded
    assert ErrorFlags.CONTACTOR_WELDED in rig.board.mcu_error_flags  # type: ignore[attr-defined]
    codes = [r.code for _, r in rig.serial.link.mcu_errors]
    assert ErrorCode.CONTACTOR_WELDED in codes


def test_emergency_stop_button_on_the_mcu(rig: SerialRig) -> None:
    up(rig)
    rig.board.set_pwm_duty(5.0)
    rig.board.close_contactors()
    rig.run(0.2)
    rig.mcu.press_emergency_stop()
    rig.run(0.04)
    assert rig.board.emergency_stop_active
    assert not rig.board.contactors_commanded_closed
    assert rig.board.pilot_state is PilotState.F
    rig.run(0.2)
    assert not rig.board.contactors_closed  # opened after the MCU's e-stop delay
    with pytest.raises(EmergencyStopActive):
        rig.board.close_contactors()
    assert not rig.board.reset_emergency_stop()  # still pressed
    rig.mcu.release_emergency_stop()
    rig.run(0.1)
    assert rig.board.reset_emergency_stop()
    rig.run(0.1)
    assert not rig.board.emergency_stop_active
    assert not rig.mcu.estop_latched
    assert rig.mcu.pwm_output == 50  # the requested duty comes back
    rig.board.close_contactors()
    rig.run(0.2)
    assert rig.board.contactors_closed


def test_host_emergency_stop(rig: SerialRig) -> None:
    up(rig)
    rig.board.close_contactors()
    rig.run(0.2)
    rig.board.emergency_stop()
    assert rig.board.emergency_stop_active  # at once, before the MCU answers
    rig.run(0.1)
    assert rig.mcu.estop_latched and rig.mcu.estop_host
    assert not rig.board.contactors_closed
    assert rig.board.reset_emergency_stop()
    rig.run(0.1)
    assert not rig.board.emergency_stop_active and not rig.mcu.estop_latched


def test_incompatible_protocol_version_is_a_fault() -> None:
    r = SerialRig(mcu_options={"protocol": (PROTOCOL_MAJOR + 1, 0)})
    try:
        r.run(0.5)
        assert r.serial.link.state is LinkState.INCOMPATIBLE
        assert "protocol" in (r.board.fault or "")  # type: ignore[attr-defined]
        assert r.mcu.state is McuState.WAIT_HELLO
    finally:
        r.close()


def test_commands_before_the_link_is_up_are_sent_on_connect(rig: SerialRig) -> None:
    rig.board.set_pwm_duty(5.0)
    rig.board.close_contactors()
    assert rig.mcu.received_types == []
    up(rig)
    rig.run(0.2)
    assert rig.mcu.pwm_output == 50 and rig.mcu.contactors_closed


def test_mcu_rejects_commands_without_a_hello() -> None:
    with PtyPair() as pty:
        mcu = SimulatedMcu(pty.master_fd)
        import os
        import select

        from hal.backends.serial.framing import FrameDecoder, encode_frame
        from hal.backends.serial.protocol import Ack, AckResult, pack_body, unpack_body

        fd = os.open(pty.port, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, encode_frame(pack_body(MsgType.SET_CONTACTORS, 9, b"\x01")))
            mcu.step(0.0, wait=0.05)
            decoder, acks = FrameDecoder(), []
            while select.select([fd], [], [], 0.05)[0]:
                for body in decoder.feed(os.read(fd, 4096)):
                    t, _, payload = unpack_body(body)
                    if t == MsgType.ACK:
                        acks.append(Ack.unpack(payload))
            assert acks == [Ack(9, MsgType.SET_CONTACTORS, AckResult.REJECTED_NOT_READY)]
            assert not mcu.contactors_commanded
        finally:
            os.close(fd)


# ---- every loss is reported; nothing re-closes by itself (issue 11, items 10 and 11) -------


def test_version_change_mid_session_over_the_pty_never_recloses_the_contactors(
    rig: SerialRig,
) -> None:
    up(rig)
    rig.board.set_pwm_duty(5.0)
    rig.board.close_contactors()
    rig.run(0.2)
    assert rig.mcu.contactors_closed
    # The MCU announces another protocol version while the link is up; the host's next
    # HELLO (version 1) makes it open its contactors and answer with version 1 again.
    rig.mcu.send_hello_reply((PROTOCOL_MAJOR + 1, 0))
    rig.run(1.0, until=lambda: rig.serial.link.stats.handshakes == 2)
    link = rig.serial.link
    assert link.up and link.stats.link_losses == 1
    rig.run(1.0)  # the host does not close them again by itself
    assert not rig.mcu.contactors_commanded and not rig.mcu.contactors_closed
    assert not rig.board.contactors_commanded_closed
    assert "HELLO_REPLY" in (rig.board.fault or "")  # type: ignore[attr-defined]
    with pytest.raises(LinkLossNotAcknowledged):
        rig.board.close_contactors()
    rig.serial.acknowledge_faults(rig.t)  # a new session: control asks again
    rig.board.close_contactors()
    rig.run(0.2)
    assert rig.mcu.contactors_closed


def test_mcu_announcing_a_65535_ms_status_interval_is_refused() -> None:
    r = SerialRig(mcu_options={"status_interval": 65.535})
    try:
        r.run(0.5)
        assert r.serial.link.state is LinkState.INCOMPATIBLE
        assert not r.serial.link.up and r.serial.link.stats.handshakes == 0
        assert "65535 ms" in (r.board.fault or "")  # type: ignore[attr-defined]
    finally:
        r.close()


def test_stale_status_is_a_fault_even_while_other_frames_arrive(rig: SerialRig) -> None:
    up(rig)
    rig.board.close_contactors()
    rig.run(0.2)
    rig.mcu.status_paused = True  # the MCU's STATUS task hangs; it still ACKs and reports
    rig.mcu.press_emergency_stop()  # ... so this e-stop never shows in a STATUS
    t0 = rig.t

    def chatter() -> bool:
        rig.mcu.send_unknown_type()
        return rig.board.fault is not None  # type: ignore[attr-defined]

    rig.run(3.0, until=chatter)
    assert "STATUS" in (rig.board.fault or "")  # type: ignore[attr-defined]
    assert rig.t - t0 <= rig.serial.link.max_status_age + 0.1
    assert not rig.board.contactors_commanded_closed


def test_max_status_age_comes_from_the_config_file_table() -> None:
    from hal.registry import create_backend_from_config

    with PtyPair() as pty:
        backend = create_backend_from_config(
            {"backends": [{"name": "serial", "target": pty.port,
                           "options": {"max_status_age_s": 0.3}}, {"name": "sim"}],
             "allow_simulated_parts": True})
        try:
            serial = backend.sources["board"]  # type: ignore[attr-defined]
            assert isinstance(serial, SerialBackend)
            assert serial.link.max_status_age == 0.3
            assert serial.link.max_status_interval_ms == 150
        finally:
            backend.close()
        with pytest.raises(ValueError, match="max_status_age_s"):
            create_backend("serial", port=pty.port, max_status_age_s=0.0)
