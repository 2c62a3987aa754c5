"""A simulated safety MCU speaking docs/serial_protocol.md on the far end of a pty.

The simulation is single-threaded and clocked: `SimulatedMcu.step(now)` reads what the host
wrote, answers, advances the contactor and e-stop physics and runs the host watchdog. Tests
drive it on a fake clock beside the backend; `McuThread` runs it on the real clock for the
benchmark and for manual runs (``python -m simulators.mcu`` prints a pty path to point
`create_backend("serial", port=...)` at).

Fault injection: `silent` (stop transmitting), `deaf` (stop reading), `status_paused` (no
STATUS frames, everything else still sent), `corrupt_crc(n)`, `send_garbage()`,
`send_unknown_type()`, `send_oversized()`, `send_hello_reply()` (an unsolicited HELLO_REPLY,
e.g. announcing another protocol version mid-session), `weld_contactor()`
(`repair_contactor()`), `press_emergency_stop()`; the EV side is `ev_pilot` and `pp_current_a`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import struct
import threading
import time
import tty
from dataclasses import dataclass

from hal.backends.serial.framing import (
    FrameDecoder,
    FramingStats,
    cobs_encode,
    crc32,
    encode_frame,
)
from hal.backends.serial.protocol import (
    COMMANDS,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Ack,
    AckResult,
    ErrorCode,
    ErrorFlags,
    ErrorReport,
    EstopFlags,
    Features,
    Hello,
    HelloReply,
    MalformedMessage,
    McuState,
    MsgType,
    PilotCode,
    Status,
    pack_body,
    seq_after,
    unpack_body,
    unpack_u8,
    unpack_u16,
)

log = logging.getLogger(__name__)

ALL_FEATURES = (
    Features.PILOT_PWM
    | Features.PROXIMITY_PILOT
    | Features.CONTACTOR_FEEDBACK
    | Features.EMERGENCY_STOP_INPUT
    | Features.HOST_EMERGENCY_STOP
)


class PtyPair:
    """A pseudo-terminal: the MCU owns `master_fd`, the host opens `port` (the slave)."""

    def __init__(self) -> None:
        self.master_fd, self._slave_fd = os.openpty()
        tty.setraw(self._slave_fd)  # no echo, no line editing, 8 bits through
        self.port = os.ttyname(self._slave_fd)
        os.set_blocking(self.master_fd, False)

    def close(self) -> None:
        for fd in (self.master_fd, self._slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class McuStats:
    framing: FramingStats
    frames_sent: int = 0
    malformed: int = 0
    unknown_types: int = 0
    commands: int = 0
    duplicate_commands: int = 0
    rejected: int = 0
    hellos: int = 0
    host_timeouts: int = 0


class SimulatedMcu:
    def __init__(
        self,
        fd: int,
        *,
        firmware_id: str = "sim-mcu 1.0.0",
        protocol: tuple[int, int] = (PROTOCOL_MAJOR, PROTOCOL_MINOR),
        features: Features = ALL_FEATURES,
        host_timeout: float = 0.5,
        status_interval: float = 0.1,
        estop_contactor_delay: float = 0.05,
        contactor_switch_time: float = 0.02,
    ) -> None:
        self.fd = fd
        self.firmware_id = firmware_id
        self.protocol = protocol
        self.features = features
        self.host_timeout = host_timeout
        self.status_interval = status_interval
        self.estop_contactor_delay = estop_contactor_delay
        self.contactor_switch_time = contactor_switch_time
        self.lock = threading.RLock()
        self.stats = McuStats(FramingStats())
        self._decoder = FrameDecoder(stats=self.stats.framing)
        self._tx = bytearray()
        self._seq = 0
        self.now: float | None = None
        self.state = McuState.WAIT_HELLO
        self.host_last_seen: float | None = None
        # outputs and inputs
        self.pwm_requested = 0  # what the host asked for, in permille (0 until it asks)
        self.ev_pilot = PilotCode.A  # what the EV does to the pilot (A-E)
        self.pp_current_a = 0
        self.contactors_commanded = False  # the coil drive
        self.contactors_closed = False  # the real contacts (what the feedback reports)
        self._switch_started: float | None = None
        self._weld_on_close = False
        self.welded = False
        self.estop_button = False
        self.estop_latched = False
        self.estop_host = False
        self._estop_open_at: float | None = None
        self.errors = ErrorFlags(0)
        self._reported: set[ErrorCode] = set()
        self._last_status_sent: float | None = None
        self._last_status: Status | None = None
        self.last_command: tuple[int, int, AckResult] | None = None  # (seq, type, result)
        # fault injection
        self.silent = False
        self.deaf = False
        self.status_paused = False  # a stuck STATUS task: ACKs and reports still go out
        self._corrupt = 0
        self.received_types: list[int] = []

    # ---- observation ---------------------------------------------------------------------

    @property
    def pwm_output(self) -> int:
        """The duty actually generated: 0 (state F) in any safe state or e-stop."""
        if self.state is not McuState.ACTIVE or self.estop_latched:
            return 0
        return self.pwm_requested

    @property
    def pilot_measured(self) -> PilotCode:
        return PilotCode.F if self.pwm_output == 0 else self.ev_pilot

    # ---- fault injection -----------------------------------------------------------------

    def corrupt_crc(self, frames: int = 1) -> None:
        """Flip a bit in the CRC of the next `frames` frames sent."""
        with self.lock:
            self._corrupt += frames

    def send_garbage(self, data: bytes | None = None) -> None:
        """Raw bytes on the line (default: a burst with zeros, 0xFF runs and a half frame)."""
        if data is None:
            data = b"\x13\x37\x00\xff\xff\xff\x00\x05\x01\x02" + bytes(range(1, 40)) + b"\x00"
        with self.lock:
            self._tx += data
            self._flush()

    def send_unknown_type(self, msg_type: int = 0x7E, payload: bytes = b"\x01\x02") -> None:
        with self.lock:
            self._send(msg_type, payload)

    def send_hello_reply(
        self, protocol: tuple[int, int] | None = None, status_interval_ms: int | None = None
    ) -> None:
        """A HELLO_REPLY nobody asked for (a restarted or swapped firmware announcing
        itself), with this MCU's capabilities unless overridden; the MCU's state is kept."""
        with self.lock:
            major, minor = protocol if protocol is not None else self.protocol
            reply = self._hello_reply()
            interval = (
                reply.status_interval_ms if status_interval_ms is None else status_interval_ms
            )
            reply = HelloReply(major, minor, reply.features, reply.host_timeout_ms, interval,
                               reply.estop_contactor_delay_ms, reply.firmware_id)
            self._send(MsgType.HELLO_REPLY, reply.pack())
            self._flush()

    def send_oversized(self, size: int = 600) -> None:
        with self.lock:
            self._tx += b"\x00" + bytes(1 + i % 250 for i in range(size)) + b"\x00"
            self._flush()

    def weld_contactor(self) -> None:
        """Weld now if closed, else at the next closing: the contacts never open again."""
        with self.lock:
            self._weld_on_close = True
            if self.contactors_closed:
                self.welded = True

    def repair_contactor(self) -> None:
        """Undo `weld_contactor()`: the contacts follow the coil again."""
        with self.lock:
            self._weld_on_close = False
            self.welded = False

    def press_emergency_stop(self) -> None:
        with self.lock:
            self.estop_button = True
            self._latch_estop(host=False)

    def release_emergency_stop(self) -> None:
        with self.lock:
            self.estop_button = False

    # ---- the loop ------------------------------------------------------------------------

    def step(self, now: float, wait: float = 0.0) -> None:
        """Handle input (waiting up to `wait` s for some), then physics, watchdog, STATUS."""
        with self.lock:
            if self.now is not None and now < self.now:
                now = self.now
            self.now = now
            if not self.deaf:
                self._receive(now, wait)
            self._physics(now)
            self._watchdog(now)
            self._maybe_status(now)
            self._flush()

    def _receive(self, now: float, wait: float) -> None:
        if wait > 0:
            ready, _, _ = select.select([self.fd], [], [], wait)
            if not ready:
                return
        for _ in range(64):
            try:
                data = os.read(self.fd, 4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EIO: the host side is closed
                return
            if not data:
                return
            for body in self._decoder.feed(data):
                self._handle(now, body)

    def _handle(self, now: float, body: bytes) -> None:
        try:
            raw_type, seq, payload = unpack_body(body)
        except MalformedMessage:
            self.stats.malformed += 1
            return
        self.received_types.append(raw_type)
        if self.state is McuState.ACTIVE:
            self.host_last_seen = now  # any valid frame is a keep-alive
        try:
            msg_type = MsgType(raw_type)
        except ValueError:
            self.stats.unknown_types += 1
            self._report(ErrorCode.UNKNOWN_MESSAGE, raw_type, "unknown message type", once=False)
            return
        try:
            if msg_type is MsgType.HELLO:
                self._on_hello(now, Hello.unpack(payload))
            elif msg_type is MsgType.HEARTBEAT:
                pass
            elif msg_type in COMMANDS:
                self._on_command(now, msg_type, seq, payload)
            else:
                self.stats.unknown_types += 1
        except MalformedMessage:
            self.stats.malformed += 1
            if msg_type in COMMANDS:
                self._ack(seq, msg_type, AckResult.REJECTED_INVALID)

    def _hello_reply(self) -> HelloReply:
        return HelloReply(
            self.protocol[0],
            self.protocol[1],
            self.features,
            round(self.host_timeout * 1000),
            min(round(self.status_interval * 1000), 0xFFFF),
            round(self.estop_contactor_delay * 1000),
            self.firmware_id,
        )

    def _on_hello(self, now: float, hello: Hello) -> None:
        self.stats.hellos += 1
        reply = self._hello_reply()
        if hello.major != self.protocol[0]:
            self._send(MsgType.HELLO_REPLY, reply.pack())
            self._report(ErrorCode.PROTOCOL_VERSION, hello.major, "unsupported major", once=False)
            return
        # A HELLO starts a new session: whatever the old one left energised goes safe, and
        # the pilot stays at F until the host asks for a duty.
        self._go_safe()
        self.pwm_requested = 0
        self.state = McuState.ACTIVE
        self.errors &= ~ErrorFlags.HOST_TIMEOUT
        self._reported.discard(ErrorCode.HOST_TIMEOUT)
        self.host_last_seen = now
        self.last_command = None
        self._send(MsgType.HELLO_REPLY, reply.pack())

    def _on_command(self, now: float, msg_type: MsgType, seq: int, payload: bytes) -> None:
        last = self.last_command
        if last is not None and last[0] == seq and last[1] == msg_type:
            self.stats.duplicate_commands += 1  # a retransmission: ACK again, do nothing
            self._ack(seq, msg_type, last[2])
            return
        self.stats.commands += 1
        result = self._execute(now, msg_type, payload)
        if result is not AckResult.OK:
            self.stats.rejected += 1
        self.last_command = (seq, msg_type, result)
        self._ack(seq, msg_type, result)
        self._maybe_status(now, force=True)

    def _execute(self, now: float, msg_type: MsgType, payload: bytes) -> AckResult:
        if msg_type is MsgType.EMERGENCY_STOP:
            self._latch_estop(host=True)
            return AckResult.OK
        if msg_type is MsgType.RESET_EMERGENCY_STOP:
            if self.estop_button:
                return AckResult.REJECTED_BUTTON_PRESSED
            self.estop_latched = self.estop_host = False
            self._estop_open_at = None
            self._reported.discard(ErrorCode.EMERGENCY_STOP_PRESSED)
            return AckResult.OK
        if self.state is not McuState.ACTIVE:
            return AckResult.REJECTED_NOT_READY
        if msg_type is MsgType.SET_PWM:
            duty = unpack_u16(payload)
            if duty > 1000:
                return AckResult.REJECTED_INVALID
            self.pwm_requested = duty  # generated once no safe state or e-stop holds it at F
            return AckResult.OK
        if msg_type is MsgType.SET_CONTACTORS:
            value = unpack_u8(payload)
            if value > 1:
                return AckResult.REJECTED_INVALID
            if value and self.estop_latched:
                return AckResult.REJECTED_EMERGENCY_STOP
            self._command_contactors(now, bool(value))
            return AckResult.OK
        return AckResult.REJECTED_INVALID

    # ---- physics and watchdog ------------------------------------------------------------

    def _command_contactors(self, now: float, closed: bool) -> None:
        if closed != self.contactors_commanded:
            self.contactors_commanded = closed
            self._switch_started = now

    def _go_safe(self) -> None:
        assert self.now is not None
        self._command_contactors(self.now, False)

    def _latch_estop(self, host: bool) -> None:
        first = not self.estop_latched
        self.estop_latched = True
        if host:
            self.estop_host = True
            if self.now is not None:
                self._command_contactors(self.now, False)  # the host has cut the power
        elif first:
            now = self.now or 0.0
            self._estop_open_at = now + self.estop_contactor_delay
            self._report(ErrorCode.EMERGENCY_STOP_PRESSED, 0, "emergency stop pressed")
        self._status_due = True

    def _physics(self, now: float) -> None:
        if self._estop_open_at is not None and now >= self._estop_open_at - 1e-9:
            self._estop_open_at = None
            self._command_contactors(now, False)
        if self.contactors_closed != self.contactors_commanded and not self.welded:
            started = self._switch_started if self._switch_started is not None else now
            if now - started >= self.contactor_switch_time - 1e-9:
                self.contactors_closed = self.contactors_commanded
                if self.contactors_closed and self._weld_on_close:
                    self.welded = True
        errors = self.errors & ~(ErrorFlags.CONTACTOR_WELDED | ErrorFlags.CONTACTOR_STUCK_OPEN)
        settled = (
            self._switch_started is None
            or now - self._switch_started > 2 * self.contactor_switch_time + 1e-9
        )
        if settled and self.contactors_closed and not self.contactors_commanded:
            errors |= ErrorFlags.CONTACTOR_WELDED
            self._report(ErrorCode.CONTACTOR_WELDED, 0, "contactor feedback closed")
        elif settled and self.contactors_commanded and not self.contactors_closed:
            errors |= ErrorFlags.CONTACTOR_STUCK_OPEN
            self._report(ErrorCode.CONTACTOR_STUCK_OPEN, 0, "contactor feedback open")
        # Report each occurrence once: a condition that cleared may be reported again.
        if ErrorFlags.CONTACTOR_WELDED not in errors:
            self._reported.discard(ErrorCode.CONTACTOR_WELDED)
        if ErrorFlags.CONTACTOR_STUCK_OPEN not in errors:
            self._reported.discard(ErrorCode.CONTACTOR_STUCK_OPEN)
        self.errors = errors

    def _watchdog(self, now: float) -> None:
        if self.state is not McuState.ACTIVE or self.host_last_seen is None:
            return
        if now - self.host_last_seen > self.host_timeout:
            self.stats.host_timeouts += 1
            self.state = McuState.SAFE_HOST_TIMEOUT
            self.errors |= ErrorFlags.HOST_TIMEOUT
            self._go_safe()
            self._report(
                ErrorCode.HOST_TIMEOUT,
                round((now - self.host_last_seen) * 1000),
                "host silent: safe state",
            )

    # ---- transmit ------------------------------------------------------------------------

    _status_due = False
    _crc_errors_reported = 0

    def status(self) -> Status:
        estop = EstopFlags(0)
        if self.estop_latched:
            estop |= EstopFlags.LATCHED
        if self.estop_button:
            estop |= EstopFlags.BUTTON_PRESSED
        if self.estop_host:
            estop |= EstopFlags.HOST_TRIGGERED
        last_seq = self.last_command[0] if self.last_command else 0
        return Status(
            self.state,
            self.pilot_measured,
            self.pwm_output,
            self.pp_current_a,
            self.contactors_commanded,
            self.contactors_closed,
            estop,
            self.errors,
            round((self.now or 0.0) * 1000),
            last_seq,
        )

    def _maybe_status(self, now: float, force: bool = False) -> None:
        crc_errors = self.stats.framing.crc_errors + self.stats.framing.cobs_errors
        if crc_errors != self._crc_errors_reported:
            self.errors |= ErrorFlags.RX_CRC_ERRORS
        status = self.status()
        changed = self._last_status is None or _without_uptime(status) != _without_uptime(
            self._last_status
        )
        due = self._last_status_sent is None or now - self._last_status_sent >= (
            self.status_interval - 1e-9
        )
        if self.status_paused:
            return
        if force or changed or due or self._status_due:
            self._status_due = False
            self._last_status = status
            self._last_status_sent = now
            self._send(MsgType.STATUS, status.pack())
            if ErrorFlags.RX_CRC_ERRORS in self.errors:  # reported once per STATUS
                self._crc_errors_reported = crc_errors
                self.errors &= ~ErrorFlags.RX_CRC_ERRORS

    def _ack(self, seq: int, msg_type: MsgType, result: AckResult) -> None:
        self._send(MsgType.ACK, Ack(seq, msg_type, result).pack())

    def _report(self, code: ErrorCode, detail: int, text: str, once: bool = True) -> None:
        if once:
            if code in self._reported:
                return
            self._reported.add(code)
        self._send(MsgType.ERROR_REPORT, ErrorReport(code, detail, text).pack())

    def _send(self, msg_type: int, payload: bytes) -> None:
        self._seq = seq_after(self._seq)
        body = pack_body(msg_type, self._seq, payload)
        frame = encode_frame(body)
        if self._corrupt > 0:
            self._corrupt -= 1
            frame = cobs_encode(body + struct.pack("<I", crc32(body) ^ 0x00010000)) + b"\x00"
        self._tx += b"\x00" + frame
        self.stats.frames_sent += 1

    def _flush(self) -> None:
        if self.silent:
            self._tx.clear()
            return
        while self._tx:
            try:
                n = os.write(self.fd, bytes(self._tx))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._tx.clear()  # the host closed its side
                return
            del self._tx[:n]


def _without_uptime(status: Status) -> tuple[object, ...]:
    return (
        status.state,
        status.pilot,
        status.pwm_permille,
        status.pp_current_a,
        status.contactors_commanded,
        status.contactors_feedback,
        status.estop,
        status.errors,
        status.last_command_seq,
    )


class McuThread:
    """Runs a SimulatedMcu on the real (monotonic) clock until `stop()`."""

    def __init__(self, mcu: SimulatedMcu, wait: float = 0.002) -> None:
        self.mcu = mcu
        self.wait = wait
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-mcu", daemon=True)

    def start(self) -> McuThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.mcu.step(time.monotonic(), wait=self.wait)
            except Exception:  # a simulator bug must not hang the test run
                log.exception("simulated MCU crashed")
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="simulated safety MCU on a pty")
    parser.add_argument("--host-timeout", type=float, default=0.5)
    parser.add_argument("--status-interval", type=float, default=0.1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with PtyPair() as pty:
        mcu = SimulatedMcu(
            pty.master_fd, host_timeout=args.host_timeout, status_interval=args.status_interval
        )
        runner = McuThread(mcu).start()
        print(f"simulated MCU on {pty.port} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            runner.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
