"""asyncio adapters of the link layer: frames on the wire, the SLAC machine, the pilot loop.

    transport = RawSocketTransport("eth1")            # AF_PACKET, ethertype 0x88E1 (root or
                                                      # CAP_NET_RAW), the connector's modem NIC
    # or, without root: medium = InProcessMedium(); transport = medium.port(mac)
    async with SlacLink(transport) as slac, ConnectorLink(board, slac) as link:
        effect = await link.events.get()              # SessionAllowed, EnergyAllowed, ...

- `RawSocketTransport` / `InProcessMedium`: a frame transport (`mac`, `send`, `receive`,
  `close`). The raw socket sees every 0x88E1 frame on the interface, including frames other
  local sockets send (a simulated modem on the same interface); the SLAC core filters by
  destination and drops its own.
- `SlacLink`: runs `evse.link.slac.SlacEvse` on a transport with the loop's clock and
  `os.urandom` (20 bytes per start: a fresh NMK per match). Non-frame effects go to
  `listener` (and `matched()` waits for the match).
- `ConnectorLink`: polls the board's pilot (`pilot_state`, every `poll_interval`), runs
  `evse.link.pilot.PilotLifecycle`, sets the duty, starts/stops SLAC and forwards the
  lifecycle effects (`SessionAllowed`, `EnergyAllowed`, `EndSession`, `SafeState`,
  `LinkEvent`) to `events` for the controller/session wiring.

See docs/link.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self

from evse.aio.tasks import cancel_task
from evse.link import pilot as pl
from evse.link.slac import (
    ENTROPY_LEN,
    ModemKeyFailed,
    SendFrame,
    SlacAttemptFailed,
    SlacConfig,
    SlacEffect,
    SlacEvse,
    SlacMatched,
    SlacStarted,
)
from evse.link.slac_messages import ETHERTYPE_HOMEPLUG, mac_text

log = logging.getLogger(__name__)

MAX_FRAME = 1518
RECEIVE_QUEUE = 256  # frames waiting for the SLAC loop; beyond this they are dropped


class FrameTransport(Protocol):
    mac: bytes

    def send(self, frame: bytes) -> None: ...

    async def receive(self) -> bytes: ...

    def close(self) -> None: ...


class RawSocketTransport:
    """An AF_PACKET raw socket for HomePlug MMEs (ethertype 0x88E1) on one interface."""

    def __init__(self, interface: str, *, queue_size: int = RECEIVE_QUEUE) -> None:
        self.interface = interface
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                   socket.htons(ETHERTYPE_HOMEPLUG))
        try:
            self._sock.bind((interface, ETHERTYPE_HOMEPLUG))
            self._sock.setblocking(False)
            self.mac: bytes = self._sock.getsockname()[4]
        except OSError:
            self._sock.close()
            raise
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self.dropped = 0
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(64):  # bounded work per wake-up
            try:
                data = self._sock.recv(MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("%s: receive failed: %s", self.interface, exc)
                return
            try:
                self._queue.put_nowait(data)
            except asyncio.QueueFull:
                self.dropped += 1

    def send(self, frame: bytes) -> None:
        try:
            self._sock.send(frame)
        except OSError as exc:  # a full queue or a downed link: SLAC's retries cover it
            log.warning("%s: send failed: %s", self.interface, exc)

    async def receive(self) -> bytes:
        return await self._queue.get()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


class InProcessMedium:
    """A shared Ethernet segment in one process, for runs without root: every frame a port
    sends reaches every other port (like the PLC medium, the modems filter by address)."""

    def __init__(self) -> None:
        self._ports: list[InProcessPort] = []

    def port(self, mac: bytes, *, queue_size: int = RECEIVE_QUEUE) -> InProcessPort:
        port = InProcessPort(self, mac, queue_size)
        self._ports.append(port)
        return port

    def _deliver(self, sender: InProcessPort, frame: bytes) -> None:
        for port in self._ports:
            if port is not sender:
                port._put(frame)

    def _remove(self, port: InProcessPort) -> None:
        with contextlib.suppress(ValueError):
            self._ports.remove(port)


class InProcessPort:
    def __init__(self, medium: InProcessMedium, mac: bytes, queue_size: int) -> None:
        self.mac = mac
        self._medium = medium
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self.dropped = 0

    def _put(self, frame: bytes) -> None:
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1

    def send(self, frame: bytes) -> None:
        self._medium._deliver(self, bytes(frame))

    async def receive(self) -> bytes:
        return await self._queue.get()

    def close(self) -> None:
        self._medium._remove(self)


class SlacLink:
    """`SlacEvse` on a transport, on the running loop's clock."""

    def __init__(self, transport: FrameTransport, config: SlacConfig | None = None, *,
                 listener: Callable[[SlacEffect], None] | None = None,
                 entropy: Callable[[int], bytes] = os.urandom) -> None:
        self.transport = transport
        self.core = SlacEvse(config or SlacConfig(evse_mac=transport.mac))
        self.listener = listener
        self._entropy = entropy
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._matched: asyncio.Future[SlacMatched] = self._loop.create_future()
        self.late_sends = 0
        self.errors = 0

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="slac-link")
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await cancel_task(self._task)
        self._task = None
        self.transport.close()

    def now(self) -> float:
        return self._loop.time()

    def start(self) -> None:
        """Listen for a car with a fresh NMK (also after a previous match)."""
        if self._matched.done():
            self._matched = self._loop.create_future()
        self._apply(self.core.start(self.now(), self._entropy(ENTROPY_LEN)))
        self._wake.set()

    def stop(self) -> None:
        self._apply(self.core.stop())
        self._wake.set()

    async def matched(self) -> SlacMatched:
        return await asyncio.shield(self._matched)

    def _apply(self, effects: list[SlacEffect]) -> None:
        for effect in effects:
            if isinstance(effect, SendFrame):
                self.transport.send(effect.data)
                if self.now() > effect.deadline:
                    self.late_sends += 1
                    log.warning("SLAC: %s sent late", effect.what)
                continue
            if isinstance(effect, SlacMatched):
                log.info("SLAC matched car %s (NID %s)", mac_text(effect.ev_mac),
                         effect.nid.hex())
                if not self._matched.done():
                    self._matched.set_result(effect)
            elif isinstance(effect, SlacAttemptFailed | ModemKeyFailed):
                log.warning("SLAC: %s", effect.reason)
            elif isinstance(effect, SlacStarted):
                log.info("SLAC started by car %s", mac_text(effect.ev_mac))
            if self.listener is not None:
                self.listener(effect)

    async def _run(self) -> None:
        receive: asyncio.Task[bytes] | None = None
        try:
            while True:
                if receive is None:
                    receive = asyncio.create_task(self.transport.receive())
                deadline = self.core.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - self.now())
                wake = asyncio.create_task(self._wake.wait())
                done, _ = await asyncio.wait({receive, wake}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                self._wake.clear()
                try:
                    if receive in done:
                        frame, receive = receive.result(), None
                        self._apply(self.core.receive_frame(frame, self.now()))
                    self._apply(self.core.handle_timeout(self.now()))
                except Exception:  # a bug must not end the link: log it, keep listening
                    self.errors += 1
                    log.exception("SLAC: frame or timer handling failed")
        finally:
            if receive is not None:
                receive.cancel()


class PilotBoard(Protocol):
    """What the pilot loop needs of a board (hal.interfaces.Board has it)."""

    @property
    def pilot_state(self) -> object: ...

    def set_pwm_duty(self, percent: float) -> None: ...


POLL_INTERVAL = 0.05  # s between pilot readings


class ConnectorLink:
    """The pilot lifecycle of one connector on a board, with its SLAC link (None: basic
    charging only)."""

    def __init__(self, board: PilotBoard, slac: SlacLink | None,
                 config: pl.PilotConfig | None = None, *,
                 poll_interval: float = POLL_INTERVAL) -> None:
        if config is None:
            config = pl.PilotConfig(digital_communication=slac is not None)
        if config.digital_communication and slac is None:
            raise ValueError("digital communication needs a SLAC link")
        self.board = board
        self.slac = slac
        self.pilot = pl.PilotLifecycle(config)
        self.poll_interval = poll_interval
        self.events: asyncio.Queue[pl.PilotEffect] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        if slac is not None:
            slac.listener = self._on_slac

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="connector-link")
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await cancel_task(self._task)

    def set_current_limit(self, amps: float) -> None:
        self._apply(self.pilot.set_current_limit(amps, self._loop.time()))

    def set_in_service(self, in_service: bool) -> None:
        self._apply(self.pilot.set_in_service(in_service, self._loop.time()))

    def _on_slac(self, effect: SlacEffect) -> None:
        now = self._loop.time()
        if isinstance(effect, SlacStarted):
            self._apply(self.pilot.slac_started(now))
        elif isinstance(effect, SlacMatched):
            self._apply(self.pilot.slac_matched(now))
        elif isinstance(effect, SlacAttemptFailed):
            self._apply(self.pilot.slac_attempt_failed(now, effect.reason))

    def _apply(self, effects: list[pl.PilotEffect]) -> None:
        for effect in effects:
            if isinstance(effect, pl.SetDuty):
                try:
                    self.board.set_pwm_duty(effect.percent)
                except Exception as exc:  # a board that cannot set the duty: fault
                    log.error("pilot: setting the duty to %s %% failed: %s", effect.percent, exc)
                    self.events.put_nowait(pl.SafeState(f"duty command failed: {exc}"))
            elif isinstance(effect, pl.StartSlac):
                if self.slac is not None:
                    self.slac.start()
            elif isinstance(effect, pl.StopSlac):
                if self.slac is not None:
                    self.slac.stop()
            else:
                if isinstance(effect, pl.LinkEvent):
                    log.info("pilot: %s %s", effect.name, effect.detail)
                self.events.put_nowait(effect)

    def _read(self) -> object:
        try:
            return self.board.pilot_state
        except Exception as exc:  # an unreadable pilot is an invalid reading
            log.error("pilot: reading failed: %s", exc)
            return None

    def _reassert_duty(self) -> None:
        """The board must generate the lifecycle's duty: a board that lost it (a serial MCU
        back from a link loss drives F, 0 %, until told again) is told again, else its F
        would hold the connector in the fault state for good."""
        try:
            actual = getattr(self.board, "pwm_duty", self.pilot.duty)
            if actual != self.pilot.duty:
                log.warning("pilot: the board generates %s %%, not %s %%: set again", actual,
                            self.pilot.duty)
                self.board.set_pwm_duty(self.pilot.duty)
        except Exception as exc:  # the link is still down: try again at the next poll
            log.debug("pilot: duty not re-asserted: %s", exc)

    async def _run(self) -> None:
        while True:
            now = self._loop.time()
            self._apply(self.pilot.pilot_measured(self._read(), now))
            self._apply(self.pilot.handle_timeout(now))
            self._reassert_duty()
            await asyncio.sleep(self.poll_interval)
