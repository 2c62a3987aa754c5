"""Host side of the safety-MCU link: handshake, keep-alive, commands with ACK and retry.

Sans-clock: every method that depends on time takes `now` (the HAL poll's), so the state
machine runs unchanged on a fake clock. I/O goes through a `Transport` whose reads and
writes never block.

Why non-blocking reads inside `poll(now)` and not a reader thread: the HAL contract is
synchronous with an explicit `now`; a reader thread would have to timestamp frames with its
own (real) clock, share state under a lock and could not run on a test's fake clock. The
MCU sends a few hundred bytes per second, far below what the kernel's tty buffer holds
between two polls (a 4 KiB pty buffer lasts over ten seconds at that rate), so nothing is
lost by reading only when polled. The cost is latency: a reply is seen at the next poll,
so the control loop's poll period bounds the reaction time (the event loop can wake the
poll early with `fileno()`; the benchmark does).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from hal.backends.serial.framing import DEFAULT_MAX_BODY, FrameDecoder, FramingStats, encode_frame
from hal.backends.serial.protocol import (
    COMMANDS,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    Ack,
    AckResult,
    ErrorCode,
    ErrorReport,
    Hello,
    HelloReply,
    MalformedMessage,
    McuState,
    MsgType,
    Status,
    pack_body,
    seq_after,
    unpack_body,
)

log = logging.getLogger(__name__)

MAX_TX_BUFFER = 4096

# The host's own bound on how old the MCU's last STATUS may be before the link counts as
# lost (`max_status_age_s`); the MCU's announced interval never stretches it.
DEFAULT_MAX_STATUS_AGE = 0.5
# Announced STATUS intervals the host accepts: from MIN_STATUS_INTERVAL_MS up to half the
# maximum status age and of mcu_timeout (so one lost STATUS frame is survived). Outside:
# the handshake fails.
MIN_STATUS_INTERVAL_MS = 10


class Transport(Protocol):
    def read(self) -> bytes:
        """Whatever bytes are available now (b"" if none); never blocks."""

    def write(self, data: bytes) -> int:
        """Write what fits without blocking; return the count written."""

    def fileno(self) -> int: ...

    def close(self) -> None: ...


class PySerialTransport:
    """A pyserial port (any URL pyserial opens) in non-blocking mode.

    Writes go straight to the file descriptor where there is one: pyserial's own write with
    write_timeout=0 spins while the driver's buffer is full, and a full buffer is exactly
    the situation (a stalled peer) this link must ride out.
    """

    def __init__(self, port: Any) -> None:
        self.port = port
        port.timeout = 0
        port.write_timeout = 0
        try:
            self._fd: int | None = port.fileno()
        except Exception:  # URL handlers (loop://, socket://) may have none
            self._fd = None

    @classmethod
    def open(cls, url: str, baudrate: int = 115200) -> PySerialTransport:
        import serial  # type: ignore[import-untyped,unused-ignore]  # loaded on use only

        port = serial.serial_for_url(url, baudrate=baudrate, timeout=0, write_timeout=0)
        return cls(port)

    def read(self) -> bytes:
        return bytes(self.port.read(4096))

    def write(self, data: bytes) -> int:
        if self._fd is not None:
            try:
                return os.write(self._fd, data)
            except BlockingIOError:
                return 0
        return int(self.port.write(data) or 0)

    def fileno(self) -> int:
        return -1 if self._fd is None else self._fd

    def close(self) -> None:
        self.port.close()


class LinkState(StrEnum):
    CONNECTING = "connecting"  # sending HELLO, no reply yet
    UP = "up"
    INCOMPATIBLE = "incompatible"  # another major version, or timing the host refuses


@dataclass(slots=True)
class LinkStats:
    framing: FramingStats = field(default_factory=FramingStats)
    frames_sent: int = 0
    bytes_sent: int = 0
    tx_dropped: int = 0  # frames dropped because the transmit buffer was full
    read_errors: int = 0
    write_errors: int = 0
    malformed: int = 0  # good CRC, bad header or payload
    unknown_types: int = 0
    unexpected: int = 0  # valid type in the wrong direction or state
    status_frames: int = 0
    error_reports: int = 0
    acks: int = 0
    naks: int = 0
    stale_acks: int = 0  # ACK for a seq that is no longer pending
    retransmissions: int = 0
    commands_failed: int = 0  # no ACK after every retry
    link_losses: int = 0
    handshakes: int = 0
    handshakes_refused: int = 0  # a HELLO_REPLY with another major or unacceptable timing
    duplicate_hello_replies: int = 0  # answers to HELLOs repeated while connecting


@dataclass(slots=True)
class PendingCommand:
    seq: int
    msg_type: MsgType
    payload: bytes
    first_sent: float
    last_sent: float
    retries: int = 0


@dataclass(frozen=True, slots=True)
class LinkEvent:
    time: float
    kind: str  # "up", "lost", "nak", "command_failed", "mcu_error", "incompatible"
    text: str


class SerialLink:
    """The host's protocol engine. The board reads `status`; callbacks report link changes."""

    def __init__(
        self,
        transport: Transport,
        *,
        keepalive_interval: float = 0.1,
        mcu_timeout: float = 0.5,
        hello_interval: float = 0.25,
        ack_timeout: float = 0.1,
        max_retries: int = 3,
        connect_timeout: float = 2.0,
        max_status_age_s: float = DEFAULT_MAX_STATUS_AGE,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if not 0 < keepalive_interval < mcu_timeout:
            raise ValueError("need 0 < keepalive_interval < mcu_timeout")
        if ack_timeout <= 0 or max_retries < 0 or hello_interval <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be positive and max_retries >= 0")
        if not 2 * MIN_STATUS_INTERVAL_MS / 1000.0 <= max_status_age_s <= 60.0:
            raise ValueError(
                f"max_status_age_s must be {2 * MIN_STATUS_INTERVAL_MS / 1000.0}..60 s, "
                f"got {max_status_age_s!r}"
            )
        self.transport = transport
        self.keepalive_interval = keepalive_interval
        self.mcu_timeout_configured = mcu_timeout
        self.hello_interval = hello_interval
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self.connect_timeout = connect_timeout
        self.max_status_age = float(max_status_age_s)
        self.stats = LinkStats()
        self._decoder = FrameDecoder(max_body, self.stats.framing)
        self._tx = bytearray()
        self._seq = 0
        self.state = LinkState.CONNECTING
        self.hello: HelloReply | None = None
        self.status: Status | None = None
        self.status_time: float | None = None  # when the last STATUS arrived (any state)
        self.last_rx: float | None = None  # time of the last valid frame from the MCU
        self.up_since: float | None = None
        self._replies_due = 0  # HELLOs sent since the link left UP and not answered yet
        self._last_tx: float | None = None
        self._last_hello: float | None = None
        self._started: float | None = None
        self._connecting_since: float | None = None
        self.pending: dict[int, PendingCommand] = {}
        self.events: deque[LinkEvent] = deque(maxlen=256)
        self.mcu_errors: deque[tuple[float, ErrorReport]] = deque(maxlen=64)
        self.now: float = 0.0
        self._fault: str | None = None
        self.on_up: Callable[[], None] | None = None
        self.on_lost: Callable[[str], None] | None = None
        self.on_ack: Callable[[PendingCommand, AckResult], None] | None = None
        self.on_command_failed: Callable[[PendingCommand], None] | None = None
        self._log_counts: dict[str, int] = {}

    # ---- public --------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.state is LinkState.UP

    @property
    def mcu_timeout(self) -> float:
        """Silence (no valid frame at all) after which the MCU counts as lost. The host's
        own setting: what the MCU announces never stretches it."""
        return self.mcu_timeout_configured

    @property
    def max_status_interval_ms(self) -> int:
        """The longest STATUS interval a HELLO_REPLY may announce: half the status age (and
        of `mcu_timeout`, which a STATUS-only MCU must also stay inside), so one lost STATUS
        frame is survived."""
        return int(min(self.max_status_age, self.mcu_timeout) * 1000 / 2)

    def status_age(self, now: float) -> float | None:
        """Seconds since the freshest STATUS of this link session (None while not UP).

        Only a STATUS frame refreshes it; until the first STATUS after the handshake it
        counts from the handshake."""
        if self.state is not LinkState.UP or self.up_since is None:
            return None
        ref = self.up_since
        if self.status_time is not None and self.status_time > ref:
            ref = self.status_time
        return now - ref

    @property
    def fault(self) -> str | None:
        """Why the link is unusable now (None while up or still inside the connect time)."""
        return self._fault

    def send_command(self, msg_type: MsgType, payload: bytes = b"") -> int:
        """Send a command now; it is retried until ACKed. A newer command of the same type
        supersedes a pending one (the MCU only needs the latest). Returns its seq."""
        if msg_type not in COMMANDS:
            raise ValueError(f"{msg_type!r} is not a command")
        for seq, cmd in list(self.pending.items()):
            if cmd.msg_type is msg_type:
                del self.pending[seq]
        seq = self._send(msg_type, payload)
        self.pending[seq] = PendingCommand(seq, msg_type, payload, self.now, self.now)
        return seq

    def send_unacknowledged(self, msg_type: MsgType, payload: bytes = b"") -> int:
        """Send once, without retries (used while the link is down, when no ACK can be
        expected but the MCU may still be listening)."""
        return self._send(msg_type, payload)

    def drop_pending(self) -> None:
        self.pending.clear()

    def poll(self, now: float) -> None:
        """Read and handle everything that arrived, then run the timers. Never raises on
        anything the MCU or the line does."""
        self.now = now
        if self._started is None:
            self._started = now
            self._connecting_since = now
        self._receive(now)
        self._timers(now)
        self._flush()

    def close(self) -> None:
        self._flush()
        try:
            self.transport.close()
        except Exception as exc:  # closing is best effort
            log.debug("closing the transport failed: %s", exc)

    # ---- receive -------------------------------------------------------------------------

    def _receive(self, now: float) -> None:
        for _ in range(64):  # bounded: a babbling peer cannot starve the control loop
            try:
                data = self.transport.read()
            except Exception as exc:
                self.stats.read_errors += 1
                self._rate_log("read", "serial read failed: %s", exc)
                return
            if not data:
                return
            errors_before = self.stats.framing.errors
            for body in self._decoder.feed(data):
                self._handle_body(now, body)
            if self.stats.framing.errors != errors_before:
                self._rate_log(
                    "framing",
                    "dropped bad frame(s): %s (%s)",
                    self._decoder.last_error,
                    self.stats.framing,
                )

    def _handle_body(self, now: float, body: bytes) -> None:
        try:
            raw_type, seq, payload = unpack_body(body)
            try:
                msg_type = MsgType(raw_type)
            except ValueError:
                self.stats.unknown_types += 1
                self._rate_log("unknown", "unknown message type 0x%02x ignored", raw_type)
                self.last_rx = now  # a valid frame: the MCU is alive
                return
            self._dispatch(now, msg_type, payload)
        except MalformedMessage as exc:
            self.stats.malformed += 1
            self._rate_log("malformed", "malformed message dropped: %s", exc)

    def _dispatch(self, now: float, msg_type: MsgType, payload: bytes) -> None:
        if msg_type is MsgType.HELLO_REPLY:
            self._on_hello_reply(now, HelloReply.unpack(payload))
            return
        if msg_type is MsgType.STATUS:
            # Readings are taken in any link state (a welded contactor or a pressed e-stop
            # matters while reconnecting too); only an established link checks the state.
            status = Status.unpack(payload)
            self.status = status
            self.status_time = now
            self.stats.status_frames += 1
            if self.state is LinkState.UP:
                self.last_rx = now
                if status.state is not McuState.ACTIVE:
                    self._lose(now, f"MCU reports state {status.state.name}")
            return
        if self.state is not LinkState.UP:
            # Before the handshake ACKs and reports belong to an earlier session.
            self.stats.unexpected += 1
            return
        self.last_rx = now
        if msg_type is MsgType.ACK:
            self._on_ack(now, Ack.unpack(payload))
        elif msg_type is MsgType.ERROR_REPORT:
            report = ErrorReport.unpack(payload)
            self.stats.error_reports += 1
            self.mcu_errors.append((now, report))
            name = _error_name(report.code)
            self._event(now, "mcu_error", f"{name} ({report.detail}): {report.text}")
            log.warning("MCU error %s detail=%d: %s", name, report.detail, report.text)
        else:
            self.stats.unexpected += 1

    def _on_hello_reply(self, now: float, reply: HelloReply) -> None:
        if self.state is LinkState.UP:
            if self._replies_due > 0 and reply == self.hello:
                # An answer to a HELLO repeated while connecting: the MCU saw that HELLO
                # before any command sent since UP (the line keeps order), so nothing the
                # host commanded was undone by it.
                self._replies_due -= 1
                self.stats.duplicate_hello_replies += 1
                return
            # Another version, other timing, or a reply the host did not ask for: the MCU
            # restarted its session (and opened its contactors) or is not the one the
            # handshake agreed with. Either way the link as the host knew it is gone.
            self._lose(
                now,
                f"unexpected HELLO_REPLY while up: protocol {reply.major}.{reply.minor}, "
                f"status interval {reply.status_interval_ms} ms, firmware {reply.firmware_id!r}",
            )
            if reply.major != PROTOCOL_MAJOR:
                self._refuse(now, reply, self._version_mismatch(reply))
            return  # otherwise a fresh HELLO must be answered before the link is up again
        if self._replies_due <= 0:
            self.stats.unexpected += 1  # not an answer to a HELLO of this connection attempt
            return
        self._replies_due -= 1
        if reply.major != PROTOCOL_MAJOR:
            self._refuse(now, reply, self._version_mismatch(reply))
            return
        if not MIN_STATUS_INTERVAL_MS <= reply.status_interval_ms <= self.max_status_interval_ms:
            self._refuse(
                now,
                reply,
                f"MCU announces a STATUS interval of {reply.status_interval_ms} ms, outside "
                f"{MIN_STATUS_INTERVAL_MS}..{self.max_status_interval_ms} ms "
                f"(max_status_age_s {self.max_status_age:g} s, mcu_timeout "
                f"{self.mcu_timeout:g} s): handshake refused",
            )
            return
        self.hello = reply
        self.state = LinkState.UP
        self.last_rx = now
        self.up_since = now
        self._fault = None
        self.stats.handshakes += 1
        if reply.host_timeout_ms / 1000.0 < 2 * self.keepalive_interval:
            log.warning(
                "MCU host timeout %d ms is under twice the keep-alive interval %.0f ms",
                reply.host_timeout_ms,
                self.keepalive_interval * 1000,
            )
        self._event(
            now,
            "up",
            f"MCU {reply.firmware_id!r} protocol {reply.major}.{reply.minor} "
            f"features={reply.features!r}",
        )
        log.info("MCU link up: %s", reply.firmware_id)
        if self.on_up is not None:
            self.on_up()

    @staticmethod
    def _version_mismatch(reply: HelloReply) -> str:
        return (
            f"MCU speaks protocol {reply.major}.{reply.minor}, "
            f"host {PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
        )

    def _refuse(self, now: float, reply: HelloReply, reason: str) -> None:
        """The handshake fails: report it, keep saying HELLO (an updated MCU is picked up)."""
        self.hello = reply
        self.stats.handshakes_refused += 1
        if self.state is LinkState.INCOMPATIBLE and self._fault == reason:
            return  # the same answer to a repeated HELLO
        self.state = LinkState.INCOMPATIBLE
        self._fault = reason
        self._event(now, "incompatible", reason)
        log.error("%s", reason)

    def _on_ack(self, now: float, ack: Ack) -> None:
        cmd = self.pending.pop(ack.acked_seq, None)
        if cmd is None or cmd.msg_type != ack.acked_type:
            self.stats.stale_acks += 1
            if cmd is not None:  # a seq collision with another type: keep waiting
                self.pending[cmd.seq] = cmd
            return
        if ack.result is AckResult.OK:
            self.stats.acks += 1
        else:
            self.stats.naks += 1
            self._event(now, "nak", f"{cmd.msg_type.name} rejected: {ack.result.name}")
            log.warning("MCU rejected %s: %s", cmd.msg_type.name, ack.result.name)
        if self.on_ack is not None:
            self.on_ack(cmd, ack.result)

    # ---- timers --------------------------------------------------------------------------

    def _timers(self, now: float) -> None:
        if self.state is LinkState.UP:
            assert self.last_rx is not None
            if now - self.last_rx > self.mcu_timeout:
                self._lose(now, f"MCU silent for {now - self.last_rx:.3f} s")
                return
            age = self.status_age(now)
            if age is not None and age > self.max_status_age:
                # Other frames (ACKs, reports, unknown types) keep the line alive but say
                # nothing about the contactors or the e-stop: only a STATUS does.
                self._lose(
                    now,
                    f"no fresh STATUS for {age:.3f} s (max_status_age_s "
                    f"{self.max_status_age:g} s)",
                )
                return
            self._retransmit(now)
            if self.state is LinkState.UP and (
                self._last_tx is None or now - self._last_tx >= self.keepalive_interval
            ):
                self._send(MsgType.HEARTBEAT)
            return
        # CONNECTING or INCOMPATIBLE: keep saying HELLO (an MCU may be updated or reset).
        if self._last_hello is None or now - self._last_hello >= self.hello_interval:
            self._last_hello = now
            hello = Hello(PROTOCOL_MAJOR, PROTOCOL_MINOR, round(self.keepalive_interval * 1000))
            self._send(MsgType.HELLO, hello.pack())
            self._replies_due += 1
        if (
            self.state is LinkState.CONNECTING
            and self._fault is None
            and self._connecting_since is not None
            and now - self._connecting_since > self.connect_timeout
        ):
            self._fault = f"no answer from the MCU for {now - self._connecting_since:.1f} s"
            self._event(now, "lost", self._fault)
            log.error("%s", self._fault)

    def _retransmit(self, now: float) -> None:
        for cmd in list(self.pending.values()):
            if now - cmd.last_sent < self.ack_timeout:
                continue
            if cmd.retries >= self.max_retries:
                del self.pending[cmd.seq]
                self.stats.commands_failed += 1
                text = f"{cmd.msg_type.name} seq {cmd.seq} not acknowledged"
                self._event(now, "command_failed", text)
                if self.on_command_failed is not None:
                    self.on_command_failed(cmd)
                self._lose(now, text)
                return
            cmd.retries += 1
            cmd.last_sent = now
            self.stats.retransmissions += 1
            self._send(cmd.msg_type, cmd.payload, seq=cmd.seq)  # same seq: MCU dedupes

    def _lose(self, now: float, reason: str) -> None:
        """Every way out of UP comes here, so the board (and through it the controller)
        hears of each loss, however short."""
        self.stats.link_losses += 1
        self.state = LinkState.CONNECTING
        self._connecting_since = now
        self._last_hello = None
        self._replies_due = 0  # an answer to an older HELLO no longer counts
        self.up_since = None
        self.pending.clear()
        self._fault = f"MCU link lost: {reason}"
        self._event(now, "lost", self._fault)
        log.error("%s", self._fault)
        if self.on_lost is not None:
            self.on_lost(self._fault)

    # ---- transmit ------------------------------------------------------------------------

    def _send(self, msg_type: MsgType, payload: bytes = b"", seq: int | None = None) -> int:
        if seq is None:
            self._seq = seq_after(self._seq)
            seq = self._seq
        frame = b"\x00" + encode_frame(pack_body(msg_type, seq, payload))
        if len(self._tx) + len(frame) > MAX_TX_BUFFER:
            self.stats.tx_dropped += 1
            self._rate_log("txfull", "transmit buffer full: %s dropped", msg_type.name)
        else:
            self._tx += frame
            self.stats.frames_sent += 1
        self._last_tx = self.now
        self._flush()
        return seq

    def _flush(self) -> None:
        if not self._tx:
            return
        try:
            n = self.transport.write(bytes(self._tx))
        except Exception as exc:
            self.stats.write_errors += 1
            self._rate_log("write", "serial write failed: %s", exc)
            return
        if n > 0:
            self.stats.bytes_sent += n
            del self._tx[:n]

    # ---- helpers -------------------------------------------------------------------------

    def _event(self, now: float, kind: str, text: str) -> None:
        self.events.append(LinkEvent(now, kind, text))

    def _rate_log(self, key: str, msg: str, *args: object) -> None:
        # Log the first few of each kind, then every 100th: line noise must not flood logs.
        n = self._log_counts.get(key, 0) + 1
        self._log_counts[key] = n
        if n <= 5 or n % 100 == 0:
            log.warning(msg + " [#%d]", *args, n)


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"
